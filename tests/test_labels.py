"""The label store: append-only, provenance, derived current labels, CSV, concurrency."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from specscout.archive.store import Store
from specscout.errors import SpecscoutError
from specscout.labels import LabelStore, resolve_url
from specscout.labels.files import export_csv, import_csv

CLASSES = ("other", "emission", "double-peak")


@pytest.fixture
def labels(tmp_path):
    return LabelStore(f"sqlite:///{tmp_path / 'labels.db'}")


def test_current_labels_are_derived_from_append_only_rows(labels):
    labels.add("a", 0, "emission", "ann", iteration=1, model_version="m1",
               acquisition_score=0.9)
    labels.add("a", 0, "double-peak", "ann", iteration=1)  # a correction
    labels.add("b", 1, "other", "ann")
    labels.add("b", 1, None, "ann")  # undo
    labels.add("c", 2, "emission", "ann")
    labels.add("c", 2, "other", "bob")  # disagreement
    assert labels.current() == {0: "double-peak"}
    assert labels.disagreements() == {2: {"ann": "emission", "bob": "other"}}
    history = labels.history(0)
    assert [h["label"] for h in history] == ["emission", "double-peak"]
    assert history[0]["model_version"] == "m1" and history[0]["acquisition_score"] == 0.9
    assert len(labels.history()) == 6  # nothing was updated or deleted


def test_sqlite_is_in_wal_mode(labels):
    with labels.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_relative_sqlite_url_lives_in_the_project(tmp_path):
    assert resolve_url("sqlite:///labels.db", tmp_path) == f"sqlite:///{tmp_path}/labels.db"
    assert resolve_url("postgresql://u@h/db", tmp_path) == "postgresql://u@h/db"


def test_concurrent_annotators_lose_no_label(labels):
    def work(who: int) -> None:
        for i in range(50):
            labels.add(f"s{who}-{i}", who * 1000 + i, CLASSES[i % 3], f"annotator{who}")

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(labels.history()) == 400 and len(labels.current()) == 400


def _store(tmp_path):
    store = Store.open_or_create(tmp_path / "pool", points=4)
    recs = [{"path": f"/x/{i}", "status": "ok", "id": f"spec-{i}", "obsid": 100 + i,
             "designation": f"LAMOST J{i:04d}00.00+000000.0", "flags": 0, "reason": "",
             "detail": ""} for i in range(5)]
    store.commit(np.zeros((5, 4)), recs)
    return store


def test_csv_import_and_export(labels, tmp_path):
    store = _store(tmp_path)
    (tmp_path / "in.csv").write_text("id,label\nspec-1,emission\nspec-3,other\n")
    assert import_csv(labels, tmp_path / "in.csv", store, CLASSES, annotator="me") == {
        "added": 2, "unchanged": 0}
    assert labels.current() == {1: "emission", 3: "other"}
    (tmp_path / "obs.csv").write_text("obsid,label,comment\n104,double-peak,nice disc\n")
    import_csv(labels, tmp_path / "obs.csv", store, CLASSES)
    assert labels.history(4)[0]["comment"] == "nice disc"
    assert export_csv(labels, tmp_path / "out.csv") == 3
    assert (tmp_path / "out.csv").read_text().count("\n") == 4


def test_csv_import_by_designation_with_a_line_repeated(labels, tmp_path):
    store = _store(tmp_path)
    (tmp_path / "in.csv").write_text("designation,label\nJ000200.00+000000.0,emission\n"
                                     "LAMOST J000200.00+000000.0,emission\n"
                                     "lamost j000300.00+000000.0,other\n")
    # a spectrum named twice with one label is one label
    assert import_csv(labels, tmp_path / "in.csv", store, CLASSES) == {"added": 2,
                                                                        "unchanged": 0}
    assert labels.current() == {2: "emission", 3: "other"}


def test_a_csv_imported_twice_adds_nothing_the_second_time(labels, tmp_path):
    store = _store(tmp_path)
    (tmp_path / "in.csv").write_text("id,label\nspec-1,emission\nspec-3,other\n")
    assert import_csv(labels, tmp_path / "in.csv", store, CLASSES)["added"] == 2
    assert import_csv(labels, tmp_path / "in.csv", store, CLASSES) == {"added": 0,
                                                                        "unchanged": 2}
    (tmp_path / "in.csv").write_text("id,label\nspec-1,other\nspec-3,other\n")  # one changed
    assert import_csv(labels, tmp_path / "in.csv", store, CLASSES) == {"added": 1,
                                                                        "unchanged": 1}
    assert len(labels.history()) == 3 and labels.current() == {1: "other", 3: "other"}


def test_a_spreadsheet_csv_with_a_byte_order_mark_imports(labels, tmp_path):
    store = _store(tmp_path)
    (tmp_path / "in.csv").write_bytes("\ufeffid,label\r\nspec-2,emission\r\n".encode())
    assert import_csv(labels, tmp_path / "in.csv", store, CLASSES)["added"] == 1


def test_label_store_is_shared_and_follows_a_project_made_again(tmp_path):
    import shutil

    from specscout.archive.project import Project
    from specscout.labels import label_store

    project = Project.init(tmp_path / "p")
    assert label_store(project) is label_store(Project(tmp_path / "p"))
    label_store(project).add("s", 0, "other", "ana")
    shutil.rmtree(tmp_path / "p")
    again = Project.init(tmp_path / "p")
    assert label_store(again).history() == []
    label_store(again).add("t", 1, "emission", "bo")
    assert [h["spectrum"] for h in LabelStore(
        f"sqlite:///{tmp_path / 'p' / 'labels.db'}").history()] == ["t"]


@pytest.mark.parametrize("content, message", [
    ("id,label\nspec-0,other\nspec-1,unicorn\n", "is not one of"),
    ("id,label\nspec-0,other\nspec-99,other\n", "matches 0 pooled spectra"),
    ("name,label\nx,other\n", "needs a 'label' column"),
    ("row,label\n1.5,other\n", "is not a row"),
    ("row,label\n-1,other\n", "is not a row"),
    ("id,label\nspec-0,other\nspec-0,emission\n", "lines 2 and 3 label spec-0"),
    ("obsid,label\n99999999999999999999999,other\n", "matches 0 pooled spectra"),
])
def test_bad_csv_imports_nothing(labels, tmp_path, content, message):
    store = _store(tmp_path)
    (tmp_path / "bad.csv").write_text(content)
    with pytest.raises(SpecscoutError, match=message):
        import_csv(labels, tmp_path / "bad.csv", store, CLASSES)
    assert labels.history() == []  # the good first line was not imported either


def test_a_csv_that_is_not_utf8_is_named(labels, tmp_path):
    store = _store(tmp_path)
    (tmp_path / "latin.csv").write_bytes("id,label,comment\nspec-0,other,tr\xe8s\n".encode(
        "latin-1"))
    with pytest.raises(SpecscoutError, match=r"latin\.csv: not UTF-8 text"):
        import_csv(labels, tmp_path / "latin.csv", store, CLASSES)


def test_queue(labels):
    labels.queue.put(1, [5, 3], ["e", "c"], [0.9, 0.8], "entropy")
    labels.queue.put(2, [7], ["g"], [0.5], "rare")
    assert [q["row"] for q in labels.queue.batch(1)] == [5, 3]
    assert labels.queue.batch()[0]["strategy"] == "rare"


def test_sqlite_on_a_network_filesystem_is_warned_about(tmp_path, monkeypatch, capsys):
    from specscout.archive.project import Project
    from specscout.cli import main
    from specscout.labels import schema

    mounts = ("/dev/vda / ext4 rw 0 0\n"
              "server:/export /net/projects nfs4 rw,relatime 0 0\n"
              "/dev/vdb /net/projects/local ext4 rw 0 0\n")
    assert schema.filesystem("/net/projects/a/b", mounts) == "nfs4"
    assert schema.filesystem("/net/projects/local/a", mounts) == "ext4"
    assert schema.filesystem("/home/x", mounts) == "ext4"
    assert schema.sqlite_warning("postgresql+psycopg://db/labels") is None
    project = Project.init(tmp_path / "p")
    assert main(["status", str(project.path)]) == 0
    assert "warning" not in capsys.readouterr().err
    monkeypatch.setattr(schema, "filesystem", lambda path, mounts=None: "nfs4")
    assert main(["query", str(project.path)]) == 2  # no iteration yet; warned first
    err = capsys.readouterr().err
    assert "SQLite on a network filesystem (nfs4)" in err and "PostgreSQL" in err


def test_a_project_and_its_label_database_are_private(tmp_path):
    from specscout.archive.project import Project, ProjectConfig
    from specscout.labels import label_store

    project = Project.init(tmp_path / "p", ProjectConfig())
    label_store(project)
    assert (project.path.stat().st_mode & 0o777) == 0o700
    assert ((project.path / "labels.db").stat().st_mode & 0o777) == 0o600
    # a group's project (chmod g+rwX,g+s): the database is the group's too
    shared = Project.init(tmp_path / "q", ProjectConfig())
    shared.path.chmod(0o2770)
    label_store(shared)
    assert ((shared.path / "labels.db").stat().st_mode & 0o777) == 0o660
