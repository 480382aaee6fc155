"""Audit estimates: the Wilson interval by hand, exact strata, and coverage at the nominal
rate on a synthetic archive whose every truth is known."""

from __future__ import annotations

import numpy as np
import pytest

from specscout.catalogue.audit import allocate, clopper_pearson, coverage, estimate, strata

CLASSES = ("other", "emission", "double-peak")


def test_clopper_pearson_by_hand():
    # 8 of 10: the published exact limits (e.g. Newcombe 1998, table I) are 0.4439 and 0.9748
    lo, hi = clopper_pearson(8, 10)
    assert lo == pytest.approx(0.4439, abs=1e-4)
    assert hi == pytest.approx(0.9748, abs=1e-4)
    assert clopper_pearson(0, 0) == (0.0, 1.0)
    assert clopper_pearson(0, 20)[0] == 0.0 and clopper_pearson(20, 20)[1] == 1.0
    # 0 of 20: the upper limit is 1 - 0.025^(1/20)
    assert clopper_pearson(0, 20)[1] == pytest.approx(1 - 0.025 ** (1 / 20))


def test_strata_and_allocation():
    p = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.5, 0.45, 0.05],
                  [0.999, 0.0005, 0.0005], [0.9, 0.05, 0.05], [0.2, 0.7, 0.1]])
    s = strata(p, CLASSES, labelled=np.array([6]), threshold=0.5)
    assert s.names == ("candidate:emission", "candidate:double-peak", "rest:q<0.01",
                       "rest:0.01-0.1", "rest:q>=0.1")
    assert s.of_row.tolist() == [3, 0, 1, 4, 2, 3, -1]
    assert s.sizes.tolist() == [1, 1, 1, 2, 1]
    assert allocate(np.array([100, 3, 1000, 1000, 1000]), 3, 50, 100).tolist() == \
        [50, 3, 34, 33, 33]
    assert allocate(np.array([100, 3, 1000, 1000, 1000]), 3, 50, 100,
                    weights=np.array([9, 9, 1, 3, 0])).tolist() == [50, 3, 25, 75, 0]
    assert s.expected[0] == pytest.approx(0.8) and s.expected[3] == pytest.approx(0.1)
    # An empty or small stratum's share goes to the others.
    assert allocate(np.array([100, 3, 0, 10, 1000]), 3, 50, 100).tolist() == [50, 3, 0, 10, 90]


def test_strata_seen_whole_are_exact():
    sizes = np.array([10, 5, 100, 20, 8])
    counts = np.array([[2, 8, 0], [0, 1, 4], [100, 0, 0], [19, 1, 0], [6, 1, 1]])
    e = estimate(sizes, sizes.copy(), counts, labelled=np.array([0, 3, 2]))
    emission = e[0]
    # precision (3 + 8) / (3 + 10); recall 11 / (3 + 8 + 1 + 0 + 1 + 1)
    assert emission["precision"] == pytest.approx(11 / 13)
    assert emission["precision_interval"] == [pytest.approx(11 / 13)] * 2
    assert emission["recall"] == pytest.approx(11 / 14)
    assert emission["recall_interval"] == [pytest.approx(11 / 14)] * 2
    assert emission["count"] == pytest.approx(14)


def synthetic_archive(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Truth at 1 % / 0.3 %, and a model's probabilities that are right most of the time."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(3, size=n, p=[0.987, 0.01, 0.003])
    logits = rng.normal(0, 1.0, (n, 3))
    logits[np.arange(n), truth] += 3.0
    logits[:, 0] += 2.0  # the model leans to "other", as on a real archive
    p = np.exp(logits)
    return p / p.sum(1, keepdims=True), truth


def test_intervals_cover_the_truth_at_their_nominal_rate():
    p, truth = synthetic_archive(40_000, 0)
    labelled = np.random.default_rng(1).choice(len(truth), 300, replace=False)
    result = coverage(p, truth, CLASSES, labelled, positives=40, negatives=120, repeats=300)
    for cls in ("emission", "double-peak"):
        for metric in ("precision", "recall", "count"):
            # At least nominal, within the +-2.5 % that 300 repeats measure a rate to.
            assert result[cls][metric]["coverage"] >= 0.925, (cls, metric, result)


def test_audit_commands_on_a_project(tmp_path, capsys):
    """Draw, label through the CSV the draw writes (as audit labels), estimate."""
    import csv

    from specscout.archive.project import Project
    from specscout.cli import main
    from specscout.labels import label_store

    from conftest import scored_iteration

    project = Project.init(tmp_path / "p")
    p, truth = synthetic_archive(3000, 3)
    project.store().commit(np.zeros((len(p), 140), np.float32), [
        {"path": f"f{i}", "id": f"s{i}", "status": "ok", "flags": 0, "reason": "",
         "detail": ""} for i in range(len(p))])
    path = scored_iteration(project, 1, p)
    label_store(project).add("s0", 0, CLASSES[truth[0]], "ana")  # one training label
    assert main(["audit", str(project.path), "--draw", "--positives", "20",
                 "--negatives", "60"]) == 0
    drawn = path / "audit-001.csv"
    with drawn.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len({r["row"] for r in rows}) and "0" not in {r["row"] for r in rows}
    with (tmp_path / "done.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["row", "label"])
        w.writerows([r["row"], CLASSES[truth[int(r["row"])]]] for r in rows)
    assert main(["labels", "import", str(project.path), str(tmp_path / "done.csv"),
                 "--audit", "--annotator", "ana"]) == 0
    labels = label_store(project)
    assert len(labels.current(audit=True)) == len(rows) and len(labels.current()) == 1
    capsys.readouterr()
    assert main(["audit", str(project.path)]) == 0
    out = capsys.readouterr().out
    assert f"{len(rows)} of {len(rows)} labelled" in out and "recall" in out
    assert (path / "audit-001-estimates.json").exists()
