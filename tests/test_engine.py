"""The active learning loop end to end on a simulated survey, with the truth as oracle."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from specscout.archive.ingest import ingest
from specscout.archive.project import Project, ProjectConfig
from specscout.cli import main
from specscout.labels import label_store
from specscout.learn.iterations import status
from specscout.learn.score import predict, score_store
from specscout.learn.train import Fitted
from specscout.simulate import SurveyConfig, simulate_labelled, simulate_survey

FAST = ["--model", "small-cnn", "--epochs", "20", "--patience", "4", "--quiet"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("engine")
    simulate_labelled(tmp / "ond", SurveyConfig(n=240, seed=1, fractions={
        "emission": 0.41, "double-peak": 0.12}))
    simulate_survey(tmp / "survey", SurveyConfig(n=900, seed=2, fractions={
        "emission": 0.06, "double-peak": 0.03}))
    # The loop itself (training in the domain: test_domain_project.py)
    project = Project.init(tmp / "p", ProjectConfig(domain=False))
    ingest(project.store(), [tmp / "survey"], project.config.preprocess(), workers=2,
           progress=False)
    from specscout.archive.ingest import load_labels

    labels = load_labels(tmp / "ond" / "labels.csv", project.config.classes)
    ingest(project.store("labelled"), [tmp / "ond"], project.config.preprocess(None, 1531),
           workers=2, labels=labels, progress=False)
    return project, tmp


def test_iterations_with_an_oracle(project, capsys):
    project, tmp = project
    truth = {r["path"]: r["class"] for r in pq.read_table(tmp / "survey" / "truth.parquet")
             .to_pylist()}
    pool = project.store()
    path_of = dict(zip(*pool.meta(columns=["id", "path"]).to_pydict().values(), strict=True))
    assert main(["iterate", str(project.path), *FAST, "--batch", "40"]) == 0
    first = [r["row"] for r in label_store(project).queue.batch(1)]
    assert len(first) == 40
    # The oracle labels the query batch, through the CSV import.
    with (tmp / "oracle.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "label"])
        for q in label_store(project).queue.batch(1):
            w.writerow([q["spectrum"], truth[path_of[q["spectrum"]]]])
    assert main(["labels", "import", str(project.path), str(tmp / "oracle.csv")]) == 0
    assert main(["iterate", str(project.path), *FAST, "--batch", "40",
                 "--strategy", "rare"]) == 0
    second = [r["row"] for r in label_store(project).queue.batch(2)]
    assert not set(first) & set(second)  # labelled or queued spectra are not asked again
    records = status(project)
    assert [r["iteration"] for r in records] == [1, 2]
    assert records[1]["train"]["pool_labels"] == 40
    assert records[1]["train"]["labelled_set"] == 240
    assert records[1]["query"]["strategy"] == "rare"
    capsys.readouterr()
    assert main(["status", str(project.path)]) == 0
    out = capsys.readouterr().out
    assert "pool labels 40" in out and "queried 40 by rare" in out


def test_local_and_dask_scoring_agree(project):
    project, _ = project
    fitted = Fitted.load(project.path / "iterations" / "0001" / "model.pt")
    store = project.store()
    local = score_store(fitted, store, chunk_rows=256)
    dask = score_store(fitted, store, chunk_rows=256, workers=2)
    np.testing.assert_allclose(local.probabilities.astype(np.float32),
                               dask.probabilities.astype(np.float32), atol=2e-3)
    assert local.probabilities.shape == (len(store), 3)
    np.testing.assert_allclose(local.probabilities.astype(np.float32).sum(1), 1, atol=5e-3)


def test_mc_dropout_and_bald(project):
    project, _ = project
    fitted = Fitted.load(project.path / "iterations" / "0001" / "model.pt")
    x = project.store().flux(np.arange(64))
    _, bald = predict(fitted.model, x, fitted.temperature, mc_passes=8)
    assert bald.shape == (64,) and np.all(bald >= -1e-6) and bald.max() > 0
    det, none = predict(fitted.model, x, fitted.temperature)
    assert none is None
    again, _ = predict(fitted.model, x, fitted.temperature)
    np.testing.assert_array_equal(det, again)  # dropout is off outside MC passes


def test_bald_and_diverse_queries(project):
    project, _ = project
    assert main(["score", str(project.path), "--mc-passes", "4", "--quiet"]) == 0
    for strategy in ("bald", "diverse", "margin", "random"):
        assert main(["query", str(project.path), "--strategy", strategy, "--batch", "10",
                     "--quiet"]) == 0
        assert len(label_store(project).queue.batch()) == 10


def test_a_query_never_proposes_an_audit_spectrum_nor_a_hand_picked_one(project):
    """The audit's spectra stay blind and apart from training; spectra added to a batch by
    hand stay in it when its iteration is queried again, and are not proposed twice."""
    from specscout.catalogue.audit import draw
    from specscout.learn.iterate import query_step

    project, _ = project
    labels = label_store(project)
    number = status(project)[-1]["iteration"]
    draw(project, positives=30, negatives=60)
    drawn = {s["row"] for s in labels.audit_samples.sample()}
    assert drawn
    labels.queue.extend(number, [3], [project.store().records([3], ["id"])["id"][0].as_py()])
    batch = query_step(project, "entropy", 200, number)
    assert not {b["row"] for b in batch} & (drawn | {3})
    queued = labels.queue.batch(number)
    assert [q["row"] for q in queued][-1] == 3 and queued[-1]["strategy"] == "selection"
    assert [q["rank"] for q in queued] == list(range(len(queued)))


def test_experiment_command(project, capsys):
    project, tmp = project
    out = tmp / "experiment"
    assert main(["experiment", str(project.path), "--truth", str(tmp / "survey" /
                 "truth.parquet"), "--out", str(out), "--strategies", "random,rare",
                 "--seeds", "2", "--iterations", "2", "--batch", "30", "--epochs", "3",
                 "--quiet"]) == 0
    with (out / "curves.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 2 * 3
    assert {r["labels"] for r in rows} == {"0", "30", "60"}
    assert (out / "curves.png").stat().st_size > 10_000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pool"] == len(project.store()) and summary["labelled_set"] == 240
    assert set(summary["to_target"]) == {"random", "rare"}
    assert "labels needed to reach" in capsys.readouterr().out


def test_experiment_needs_the_truth_of_every_spectrum(project, tmp_path, capsys):
    project, tmp = project
    truth = pq.read_table(tmp / "survey" / "truth.parquet", columns=["id", "class"])
    pq.write_table(truth.slice(1), tmp_path / "partial.parquet")
    assert main(["experiment", str(project.path), "--truth", str(tmp_path / "partial.parquet"),
                 "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "are not in" in capsys.readouterr().err


def test_a_failure_while_writing_an_iteration_leaves_none_half_written(project, monkeypatch):
    from specscout.learn import iterate
    from specscout.learn.train import TrainConfig

    project, _ = project
    before = iterate.iteration_numbers(project)
    scores = iterate.iteration_path(project, before[-1]) / "scores.npy"
    old_scores = np.load(scores)

    def dies_while_saving(self, path) -> None:
        with open(path, "wb") as fh:
            fh.write(b"the first bytes of a model")
        raise OSError("disk full")

    monkeypatch.setattr(Fitted, "save", dies_while_saving)
    with pytest.raises(OSError, match="disk full"):
        iterate.train_step(project, TrainConfig(model="small-cnn", max_epochs=1))
    monkeypatch.undo()
    assert iterate.iteration_numbers(project) == before
    assert iterate.latest(project) == before[-1]

    def dies_while_writing(values):
        def write(fh) -> None:
            fh.write(b"\x93NUMPY half")
            raise OSError("disk full")
        return write

    real = iterate.write_with
    monkeypatch.setattr(iterate, "write_with", lambda path, w: real(path, dies_while_writing(w)))
    with pytest.raises(OSError, match="disk full"):
        iterate.score_step(project, before[-1])
    monkeypatch.undo()
    np.testing.assert_array_equal(np.load(scores), old_scores)  # the old scores, whole
    assert not list(scores.parent.glob(".*.tmp"))


def test_iterate_killed_at_any_moment_leaves_whole_iterations(project, tmp_path):
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import time

    from specscout.learn.iterations import iteration_numbers, iteration_path

    project, _ = project
    copy = Project(shutil.copytree(project.path, tmp_path / "p"))
    cmd = [sys.executable, "-m", "specscout.cli", "iterate", str(copy.path), *FAST,
           "--epochs", "3", "--batch", "5"]
    for delay in (2.5, 3.5, 4.5, 6.0):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for n in iteration_numbers(copy):
            path = iteration_path(copy, n)
            Fitted.load(path / "model.pt")
            assert "train" in json.loads((path / "iteration.json").read_text())
            if (path / "scores.npy").exists():
                assert np.load(path / "scores.npy").shape == (len(copy.store()), 3)
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    assert len(iteration_numbers(copy)) > len(iteration_numbers(project))


def test_only_the_unfinished_trainings_of_dead_processes_are_cleaned(tmp_path):
    import socket
    import subprocess

    from specscout.learn.iterate import clean_unfinished
    from specscout.learn.iterations import iterations_dir

    project = Project.init(tmp_path / "p", ProjectConfig())
    folder = iterations_dir(project)
    folder.mkdir(parents=True, exist_ok=True)
    dead = subprocess.Popen(["true"])  # a process that has exited
    dead.wait()
    host = socket.gethostname()
    names = {"living": f".tmp-0002-{host}-{os.getpid()}-ab12",
             "dead": f".tmp-0002-{host}-{dead.pid}-cd34",
             "elsewhere": f".tmp-0002-another-host-{dead.pid}-ef56"}
    for name in names.values():
        (folder / name).mkdir()
    assert clean_unfinished(project) == [names["dead"]]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [names["living"], names["elsewhere"]])
