"""A project trained in its own domain: injected positives and pool negatives from the pool's
two folds, two cross-fitted networks each scoring the fold it never saw, every example's
origin recorded; probabilities relative to the pool's mix; known objects as labels."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pyarrow.parquet as pq
import pytest

from specscout.archive.project import Project
from specscout.cli import main
from specscout.labels import label_store
from specscout.learn.domain import fold_of, sky_cells
from specscout.learn.iterate import members_of, training_set
from specscout.learn.iterations import iteration_path
from specscout.learn.score import predict

FAST = ["--model", "small-cnn", "--epochs", "4", "--patience", "2", "--quiet"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("domain")
    p = str(tmp / "p")
    assert main(["init", p]) == 0
    config = tmp / "p" / "specscout.toml"
    config.write_text(config.read_text().replace("injected = 1500", "injected = 60")
                      .replace("negatives = 4000", "negatives = 80")
                      .replace("artefacts = 500", "artefacts = 20"))
    assert main(["simulate", str(tmp / "sim"), "--n", "300", "--seed", "5", "--repeats", "0.2",
                 "--quiet", "--workers", "1"]) == 0
    assert main(["simulate", str(tmp / "ond"), "--kind", "labelled", "--n", "60", "--seed", "6",
                 "--quiet", "--workers", "1"]) == 0
    assert main(["ingest", p, str(tmp / "sim"), "--quiet", "--workers", "1"]) == 0
    assert main(["ingest", p, str(tmp / "ond"), "--labels", str(tmp / "ond" / "labels.csv"),
                 "--degrade-to", "1531", "--quiet", "--workers", "1"]) == 0
    return Project(p), tmp


def test_the_domain_examples_come_from_their_fold_and_say_where_they_come_from(project,
                                                                               capsys):
    project, tmp = project
    assert project.config.domain and project.config.injected == 60
    assert main(["train", str(project.path), *FAST[:-1]]) == 0  # not --quiet
    out = capsys.readouterr().out  # every epoch of each fold's network, with its losses
    assert "  fold 0, epoch 1 (" in out and "  fold 1, epoch 1 (" in out
    assert "; stops after epoch " in out
    path = iteration_path(project, 1)
    info = json.loads((path / "iteration.json").read_text())["train"]
    assert info["domain"] and info["networks"] == 2 and info["fold_nside"] == 256
    assert info["config"]["average_epochs"] == 1.0  # the default: averaged weights
    assert info["targets"] == {"stellar": "target", "nebular": "flag", "core": "target"}
    origins = info["origins"]
    assert {k: origins[k] for k in ("labelled-set", "injected", "artefact")} == {
        "labelled-set": 60, "injected": 120, "artefact": 20}
    # the negatives that show emission themselves were left out, and said so
    dropped = sum(info["negatives_in_emission"].values())
    assert 0 < origins["pool-negative"] <= 80 and dropped > 0
    assert set(info["injected_kinds"]) == {"stellar", "nebular", "core"}
    table = pq.read_table(path / "training.parquet").to_pydict()
    truth = pq.read_table(tmp / "sim" / "truth.parquet").to_pydict()
    strong = {i for i, c, ew in zip(truth["id"], truth["class"], truth["line_ew"], strict=True)
              if c != "other" and ew <= -5}
    ids = project.store("pool").meta(columns=["row", "id"]).sort_by("row")["id"].to_pylist()
    cells = sky_cells(project.store("pool"))
    for network in (0, 1):
        mine = [i for i, n in enumerate(table["network"]) if n == network]
        pool_rows = np.array([table["row"][i] for i in mine
                              if table["origin"][i] in ("injected", "artefact",
                                                        "pool-negative")])
        assert pool_rows.size >= 200 and np.all(fold_of(cells[pool_rows], 0) == network)
        injected = [i for i in mine if table["origin"][i] == "injected"]
        assert {table["label"][i] for i in injected} == {"emission", "double-peak"}
        assert all(json.loads(table["line"][i])["ew"] < 0 for i in injected)
        kinds = {json.loads(table["line"][i])["family"] for i in injected}
        assert {"nebular", "core"} <= kinds
        artefacts = [i for i in mine if table["origin"][i] == "artefact"]
        assert {table["label"][i] for i in artefacts} == {"other"}
        # an injection, its host and the host's star are on one side of the validation split
        assert all(table["key"][i] == f"sky:{cells[table['row'][i]]}" for i in injected)
        # a star in strong emission is neither a negative nor a host
        used = {ids[table["row"][i]] for i in mine if table["origin"][i] != "labelled-set"}
        assert not used & strong


def test_every_spectrum_of_a_star_is_in_one_fold(project):
    project, tmp = project
    truth = pq.read_table(tmp / "sim" / "truth.parquet", columns=["id", "object"]).to_pydict()
    object_of = dict(zip(truth["id"], truth["object"], strict=True))
    pool = project.store("pool")
    ids = pool.meta(columns=["row", "id"]).sort_by("row")["id"].to_pylist()
    folds = fold_of(sky_cells(pool), 0)
    by_object: dict = {}
    for row, i in enumerate(ids):
        by_object.setdefault(object_of[i], set()).add(int(folds[row]))
    observed_twice = [o for o in by_object if sum(object_of[i] == o for i in ids) > 1]
    assert len(observed_twice) >= 20
    assert all(len(by_object[o]) == 1 for o in observed_twice)


def test_each_spectrum_is_scored_by_the_network_that_never_saw_its_fold(project):
    project, _ = project
    assert main(["score", str(project.path), "--quiet", "--no-prior-shift"]) == 0
    path = iteration_path(project, 1)
    scores = np.load(path / "scores.npy").astype(np.float32)
    members = members_of(path)
    pool = project.store("pool")
    rows = np.arange(len(pool))
    x = pool.flux(rows)
    folds = fold_of(sky_cells(pool), members[0].fold_seed)
    for m in members:
        own = folds != m.fold
        expected, _ = predict(m.model, x[own], m.temperature)
        np.testing.assert_allclose(scores[own], expected, atol=2e-3)
    assert {m.fold for m in members} == {0, 1}
    # on Dask workers, each chunk travels with its rows' folds: the same scores
    assert main(["score", str(project.path), "--quiet", "--no-prior-shift", "--workers",
                 "2"]) == 0
    np.testing.assert_allclose(np.load(path / "scores.npy").astype(np.float32), scores,
                               atol=2e-3)


def test_the_prior_shift_is_bayes_rule_with_the_priors_it_records(project):
    project, _ = project
    path = iteration_path(project, 1)
    raw = np.load(path / "scores.npy").astype(np.float64)
    assert main(["score", str(project.path), "--quiet", "--prior-shift"]) == 0
    shifted = np.load(path / "scores.npy").astype(np.float64)
    priors = json.loads((path / "iteration.json").read_text())["score"]["priors"]
    ratio = np.array(priors["pool"]) / np.array(priors["training"])
    expected = raw * ratio / (raw * ratio).sum(1, keepdims=True)
    np.testing.assert_allclose(shifted, expected, atol=2e-3)
    assert priors["applied"] and abs(sum(priors["pool"]) - 1) < 1e-4
    assert priors["em_iterations"] >= 1


def test_known_objects_become_labels_for_training_and_stay_out_of_audits(project, capsys):
    project, tmp = project
    pool = project.store("pool")
    meta = pool.meta(columns=["row", "id", "ra", "dec"]).sort_by("row").to_pydict()
    ra, dec = np.radians(meta["ra"]), np.radians(meta["dec"])

    def alone(r: int) -> bool:  # no other spectrum (a revisit of its star) within 10 arcsec
        cos = np.sin(dec[r]) * np.sin(dec) + np.cos(dec[r]) * np.cos(dec) * np.cos(ra - ra[r])
        return int((np.degrees(np.arccos(np.clip(cos, -1, 1))) * 3600 < 10).sum()) == 1

    known = [r for r in range(3, 60) if alone(r)][:3]
    cat = tmp / "known-stars.csv"
    with cat.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ra", "dec", "type"])
        for r in known:  # 1 arcsec away from the spectrum's position
            w.writerow([meta["ra"][r] + 1 / 3600 / np.cos(np.radians(meta["dec"][r])),
                        meta["dec"][r], "Be"])
        w.writerow([(meta["ra"][0] + 180) % 360, -meta["dec"][0], "far from every spectrum"])
    labels = label_store(project)
    labels.add(meta["id"][known[2]], known[2], "other", "alice")  # a person who says otherwise
    capsys.readouterr()
    assert main(["labels", "from-catalogue", str(project.path), str(cat), "--class", "emission",
                 "--radius", "3"]) == 0
    out = capsys.readouterr().out
    assert "catalogue:known-stars: 4 objects, 3 pool spectra within 3 arcsec; labelled 3" in out
    assert "1 of them carry another label by a person" in out
    votes = labels.votes()
    assert {r for r, v in votes.items() if "catalogue:known-stars" in v} == set(known)
    assert main(["labels", "from-catalogue", str(project.path), str(cat), "--class", "emission",
                 "--radius", "3"]) == 0
    assert "labelled 0 as emission (3 already were)" in capsys.readouterr().out
    assert main(["labels", "from-catalogue", str(project.path), str(cat), "--class", "emission",
                 "--radius", "0.5"]) == 0  # 1 arcsec off: outside
    assert "0 pool spectra within 0.5 arcsec" in capsys.readouterr().out

    _, counts = training_set(project)
    assert counts["origins"]["catalogue"] == 2  # known[2] is a disagreement, not a label
    assert "human" not in counts["origins"]
    assert counts["origins"]["labelled-set"] == 60
    _, counts = training_set(project, labelled_set=False)  # train --no-labelled-set
    assert "labelled-set" not in counts["origins"] and counts["labelled_set"] == 0
    assert main(["audit", str(project.path), "--draw", "--positives", "5", "--negatives",
                 "40"]) == 0
    drawn = {r["row"] for r in labels.audit_samples.sample()}
    assert not drawn & set(known[:2])


def test_a_class_the_project_does_not_know_is_refused(project, capsys):
    project, tmp = project
    cat = tmp / "known-stars.csv"
    assert main(["labels", "from-catalogue", str(project.path), str(cat), "--class",
                 "quasar"]) != 0
    assert "class 'quasar' is not one of" in capsys.readouterr().err


def test_churn_in_status_and_a_reliability_diagram_in_the_report(project, capsys):
    from specscout.catalogue.audit import reliability
    from specscout.learn.predictions import model_candidates

    project, tmp = project
    assert main(["iterate", str(project.path), *FAST, "--no-domain", "--batch", "5"]) == 0
    p1 = np.load(iteration_path(project, 1) / "scores.npy").astype(np.float32)
    p2 = np.load(iteration_path(project, 2) / "scores.npy").astype(np.float32)
    c1, c2 = model_candidates(p1, 0.5)[1], model_candidates(p2, 0.5)[1]
    capsys.readouterr()
    assert main(["status", str(project.path)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("2 "))
    assert (f"the model proposes {c2.sum()} (+{(c2 & ~c1).sum()} "
            f"-{(c1 & ~c2).sum()})") in line
    assert main(["candidates", str(project.path)]) == 0  # the same count, and where it went
    out = capsys.readouterr().out
    assert f"  the model proposes {c2.sum()} ('status' counts these): " in out
    listed, aside, by_people = map(int, re.search(
        r"\): (\d+) listed, (\d+) set aside by their measured kind, (-?\d+) labelled", out
    ).groups())
    assert by_people >= 0 and listed + aside + by_people == c2.sum()

    assert main(["audit", str(project.path), "--draw", "--positives", "5", "--negatives", "40",
                 "--truth", str(tmp / "sim" / "truth.parquet")]) == 0
    r = reliability(project)
    assert r["iteration"] == 2 and sum(b["audited"] for b in r["bins"]) == r["audited"] > 0
    assert all(0 <= b["observed"] <= 1 and b["low"] <= b["predicted"] <= b["high"]
               for b in r["bins"])
    assert main(["report", str(project.path)]) == 0
    page = (project.path / "report" / "index.html").read_text()
    assert "reliability.png" in page and "Churn" in page
    assert (project.path / "report" / "reliability.png").stat().st_size > 1000


def test_negatives_that_the_latest_model_thinks_targets_weigh_less(project):
    project, _ = project
    latest = np.load(iteration_path(project, 2) / "scores.npy").astype(np.float32)
    assert main(["train", str(project.path), *FAST]) == 0
    table = pq.read_table(iteration_path(project, 3) / "training.parquet").to_pydict()
    neg = [i for i, o in enumerate(table["origin"]) if o == "pool-negative"]
    rows = np.array([table["row"][i] for i in neg])
    weight = np.array([table["weight"][i] for i in neg])
    np.testing.assert_allclose(weight, 1 - latest[rows, 1:].sum(1), atol=1e-3)
    assert weight.min() < 1
    # what anyone labelled, the audit's spectra too, is never a negative nor a host
    labels = label_store(project)
    labelled = set(labels.votes()) | set(labels.votes(audit=True))
    assert len(labels.votes(audit=True)) > 20
    drawn = {r for r, o in zip(table["row"], table["origin"], strict=True)
             if o in ("injected", "pool-negative")}
    assert drawn and not drawn & labelled


def test_a_pool_whose_files_cannot_be_read_here_is_refused_for_the_domain(tmp_path, capsys):
    p = str(tmp_path / "p")
    assert main(["init", p]) == 0
    assert main(["simulate", str(tmp_path / "sim"), "--n", "40", "--seed", "2", "--quiet",
                 "--workers", "1"]) == 0
    assert main(["ingest", p, str(tmp_path / "sim"), "--quiet", "--workers", "1"]) == 0
    (tmp_path / "sim").rename(tmp_path / "elsewhere")  # e.g. ingested on another machine
    capsys.readouterr()
    assert main(["train", p, *FAST]) != 0
    err = capsys.readouterr().err
    assert "only 0 of 3000 lines could be injected" in err and "read:" in err
    assert "--no-domain" in err


def test_several_networks_per_fold_are_averaged_over_the_other_fold(project, capsys):
    project, _ = project
    assert main(["train", str(project.path), *FAST[:-1], "--networks", "2",
                 "--average-epochs", "0.5"]) == 0
    assert "  fold 1 network 2, epoch 1 (" in capsys.readouterr().out
    assert main(["score", str(project.path), "--quiet"]) == 0
    path = iteration_path(project, 4)
    members = members_of(path)
    assert [m.fold for m in members] == [0, 1, 0, 1]
    assert all(m.config.average_epochs == 0.5 for m in members)  # as asked, and recorded
    info = json.loads((path / "iteration.json").read_text())["train"]
    assert info["networks"] == 4 and info["config"]["average_epochs"] == 0.5
    pool = project.store("pool")
    x = pool.flux(np.arange(len(pool)))
    folds = fold_of(sky_cells(pool), members[0].fold_seed)
    scores = np.load(path / "scores.npy").astype(np.float32)
    for fold in (0, 1):
        rows = folds == fold
        scorers = [m for m in members if m.fold != fold]
        expected = np.mean([predict(m.model, x[rows], m.temperature)[0] for m in scorers], 0)
        np.testing.assert_allclose(scores[rows], expected, atol=2e-3)
    # two networks of one fold differ (other seeds), or averaging would be pointless
    a, b = (predict(m.model, x[:50], m.temperature)[0] for m in members[::2])
    assert np.abs(a - b).max() > 1e-3


def test_an_experiment_in_the_domain_never_trains_on_its_test_rows(project, tmp_path):
    """``experiment`` drives the iterations' steps with the project's domain training: no
    held-out test row is ever a pool negative, an injection host or a query."""
    from specscout.learn.experiment import ExperimentConfig, run, truth_classes
    from specscout.learn.train import TrainConfig

    project, tmp = project
    y = truth_classes(project, tmp / "sim" / "truth.parquet")
    config = ExperimentConfig(strategies=("entropy",), seeds=(0,), iterations=1, batch=10,
                              train=TrainConfig(model="small-cnn", max_epochs=2, patience=1))
    results = run(project, y, config, tmp_path / "runs")
    test = np.load(tmp_path / "runs" / "test-seed0.npy")
    assert len(test) == round(0.3 * len(y)) and not set(results[0]["queried"]) & set(test)
    for number in (1, 2):
        path = iteration_path(Project(tmp_path / "runs" / "entropy-seed0"), number)
        table = pq.read_table(path / "training.parquet").to_pydict()
        drawn = {r for r, o in zip(table["row"], table["origin"], strict=True)
                 if o in ("injected", "pool-negative")}
        assert len(drawn) > 100 and not drawn & set(test.tolist())
        assert json.loads((path / "iteration.json").read_text())["train"]["networks"] == 2


def test_a_kind_set_to_other_is_taught_as_other_where_it_shows_as_itself(project):
    from specscout.learn.domain import DomainConfig, _quotas

    project, _ = project
    classes = project.config.classes
    quotas = _quotas(classes, [1, 2], DomainConfig(100, 80, 10, 0, {"nebular": "other"}))
    assert quotas == {(1, "stellar"): 80, (1, "core"): 20, (0, "nebular"): 25,
                      (2, "stellar"): 100, (0, "artefact"): 10}
    examples, _ = training_set(project, DomainConfig(40, 80, 10, 0, {"nebular": "other"}),
                               fold=0, labelled_set=False)
    nebular = [i for i, d in enumerate(examples.line) if d.get("family") == "nebular"]
    assert nebular and all(examples.y[i] == 0 and examples.line[i]["shown_as"] == "nebular"
                           for i in nebular)
    assert all(d.get("family") != "nebular" for d, y in zip(examples.line, examples.y,
                                                             strict=True) if y > 0)
    # the artefacts taught as "other" show no emission
    artefacts = [i for i, o in enumerate(examples.origin) if o == "artefact"]
    assert len(artefacts) == 10 and all(examples.y[i] == 0 for i in artefacts)


def test_the_folds_made_in_parallel_processes_are_those_made_one_after_the_other(
        project, monkeypatch):
    from specscout.learn import domain, folds
    from specscout.learn.iterate import training_sets

    project, _ = project
    config = domain.DomainConfig(40, 80, 10, 0)
    monkeypatch.setattr(folds, "PARALLEL_FROM", 10**9)
    alone = training_sets(project, config, (0, 1))
    monkeypatch.setattr(folds, "PARALLEL_FROM", 1)
    monkeypatch.setattr(folds, "_cores", lambda: 2)
    made = []
    real = folds.ProcessPoolExecutor
    monkeypatch.setattr(folds, "ProcessPoolExecutor",
                        lambda *a, **k: made.append(1) or real(*a, **k))
    together = training_sets(project, config, (0, 1))
    assert made  # another process made fold 1
    for (a, ca), (b, cb) in zip(alone, together, strict=True):
        assert ca == cb and a.origin == b.origin and a.key == b.key and a.line == b.line
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.y, b.y)
        np.testing.assert_array_equal(a.weight, b.weight)
    assert alone[0][0].key != alone[1][0].key
