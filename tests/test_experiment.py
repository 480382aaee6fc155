"""Simulated-oracle experiments: metrics by hand, and the loop on a small synthetic pool."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from specscout.archive.project import Project, ProjectConfig
from specscout.labels import label_store
from specscout.learn.experiment import ExperimentConfig, evaluate, labels_to_reach, run, summary
from specscout.learn.iterations import iteration_numbers, iteration_path
from specscout.learn.train import TrainConfig

CLASSES = ("other", "emission", "double-peak")


def test_evaluate_by_hand():
    truth = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    pred = np.array([0, 0, 1, 0, 1, 1, 0, 2, 2, 1])
    m = evaluate(pred, truth, CLASSES, (1, 2))
    # emission: tp 2, fp 2 (rows 2 and 9), fn 1 -> P 1/2, R 2/3, F1 4/7
    assert m["precision_emission"] == pytest.approx(0.5)
    assert m["recall_emission"] == pytest.approx(2 / 3)
    assert m["f1_emission"] == pytest.approx(4 / 7)
    # double-peak: tp 2, fp 0, fn 1 -> F1 4/5
    assert m["f1_double-peak"] == pytest.approx(0.8)
    assert m["macro_error"] == pytest.approx(((1 - 4 / 7) + (1 - 0.8)) / 2)
    assert m["accuracy"] == pytest.approx(0.7)


def test_labels_to_reach():
    rows = [{"strategy": s, "seed": seed, "round": r, "labels": 100 * r, "macro_error": e}
            for s, seed, errors in (("a", 0, [0.5, 0.1, 0.05]), ("a", 1, [0.5, 0.06, 0.04]),
                                    ("b", 0, [0.5, 0.3, 0.2]), ("b", 1, [0.5, 0.3, 0.06]))
            for r, e in enumerate(errors)]
    reach = labels_to_reach(rows, 0.065)
    assert reach["a"] == {"per_seed": {0: 200, 1: 100}, "median": 150.0}
    assert reach["b"] == {"per_seed": {0: None, 1: 200}, "median": None}
    s = summary(rows, 0.065)
    assert s["final_error"] == {"a": pytest.approx(0.045), "b": pytest.approx(0.13)}


def synthetic_pool(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Absorption lines (other), rare single bumps (emission) and double bumps."""
    rng = np.random.default_rng(seed)
    t = np.arange(140.0)
    y = rng.choice(3, size=n, p=[0.9, 0.07, 0.03])
    x = 1 - 0.3 * np.exp(-0.5 * ((t - 70) / 4) ** 2) + rng.normal(0, 0.05, (n, 140))
    height = rng.uniform(0.3, 1.0, n)[:, None]
    x += np.where(y[:, None] == 1, height * np.exp(-0.5 * ((t - 70) / 3) ** 2), 0)
    x += np.where(y[:, None] == 2, height * (np.exp(-0.5 * ((t - 64) / 2) ** 2)
                                            + np.exp(-0.5 * ((t - 76) / 2) ** 2)), 0)
    return x.astype(np.float32), y


def _project(tmp_path):
    """A project whose pool (1,500) and labelled set (60) are synthetic, written through the
    store's own path; and the pool's true classes."""
    x, y = synthetic_pool(1500, 0)
    lx, ly = synthetic_pool(60, 1)
    project = Project.init(tmp_path / "p", ProjectConfig(domain=False))

    def records(n, labels=None):
        return [{"path": f"f{i}.fits", "id": f"s{i}", "status": "ok", "flags": 0, "reason": "",
                 "detail": "", **({} if labels is None else {"label": CLASSES[labels[i]]})}
                for i in range(n)]

    project.store().commit(x, records(len(x)))
    project.store("labelled").commit(lx, records(len(lx), ly))
    return project, y


def test_the_loop_on_a_synthetic_pool(tmp_path):
    project, y = _project(tmp_path)
    config = ExperimentConfig(strategies=("random", "rare"), seeds=(0,), iterations=3,
                              batch=30, test_fraction=0.3,
                              train=TrainConfig(model="small-cnn", max_epochs=4, patience=2))
    results = run(project, y, config, tmp_path / "runs")
    assert len(results) == 2 * 4
    for strategy in ("random", "rare"):
        curve = [r for r in results if r["strategy"] == strategy]
        assert [r["labels"] for r in curve] == [0, 30, 60, 90]
        asked = [q for r in curve for q in r.get("queried", [])]
        assert len(asked) == len(set(asked)) == 90  # never asked twice
        for r in curve:
            assert 0 <= r["macro_error"] <= 1
        # Each run is a project driven by the iterations' own steps: the oracle's labels are
        # in its label store, the last model trained on exactly the labels asked (no test row)
        run_ = Project(tmp_path / "runs" / f"{strategy}-seed0")
        assert iteration_numbers(run_) == [1, 2, 3, 4]
        assert sorted(label_store(run_).current()) == sorted(asked)
        history = label_store(run_).history()
        assert all(h["spectrum"] == f"s{h['row']}" for h in history)  # each on its spectrum
        examples = pq.read_table(iteration_path(run_, 4) / "training.parquet").to_pydict()
        pool_rows = [r for r, o in zip(examples["row"], examples["origin"], strict=True)
                     if o == "human"]
        assert sorted(pool_rows) == sorted(asked)  # round 3 trained on the 90 asked before
        assert examples["origin"].count("labelled-set") == 60
    # Round 0 is trained once and shared: the second run starts from the first run's network
    # (the same file), and fine-tunes it in round 1.
    one, two = (iteration_path(Project(tmp_path / "runs" / f"{s}-seed0"), 1)
                for s in ("random", "rare"))
    assert (one / "model.pt").read_bytes() == (two / "model.pt").read_bytes()
    second = json.loads((iteration_path(Project(tmp_path / "runs" / "rare-seed0"), 2)
                         / "iteration.json").read_text())
    assert second["train"]["warm_start"]
    # The rare-class hunter finds more of the rare classes than random.
    found = {r["strategy"]: sum(r["found"].values()) for r in results if r["round"] == 3}
    assert found["rare"] > 2 * found["random"]


def test_unknown_strategy():
    with pytest.raises(ValueError, match="unknown strategies"):
        ExperimentConfig(strategies=("entropy", "psychic"))
