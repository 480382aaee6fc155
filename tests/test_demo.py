"""``specscout demo`` end to end (small): simulate, ingest, iterate with the simulated oracle,
audit, catalogue, report; and the audit labels stay apart from the training labels."""

from __future__ import annotations

import json
import re

from astropy.io.votable import parse
from fastapi.testclient import TestClient

from specscout.archive.project import Project
from specscout.cli import main
from specscout.demo import DemoConfig, run
from specscout.labels import label_store
from specscout.learn.iterations import status
from specscout.web import AppConfig, create_app

from conftest import log_in


def test_demo(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", str(out), "--survey", "1200", "--labelled", "240", "--iterations",
                 "1", "--batch", "40", "--model", "small-cnn", "--epochs", "12",
                 "--workers", "2"]) == 0
    text = capsys.readouterr().out
    assert "audit estimates (95 % intervals) vs the truth" in text
    summary = json.loads((out / "demo.json").read_text())
    assert summary["pooled"] == 1200 and summary["failed"] == 0
    assert summary["pool_labels"] == 40 and summary["audit_labels"] > 100
    for cls in ("emission", "double-peak"):
        e = summary["estimates"][cls]
        if e["listed"]:
            lo, hi = e["precision_interval"]
            assert 0 <= lo <= e["precision"] <= hi <= 1
        else:
            assert e["precision"] is None
        lo, hi = e["recall_interval"]
        assert 0 <= lo <= hi <= 1
    project = Project(out / "project")
    assert [it["iteration"] for it in status(project)] == [1, 2]
    assert status(project)[1]["train"]["pool_labels"] == 40  # audit labels never train
    labels = label_store(project)
    assert len(labels.current(audit=True)) == summary["audit_labels"]
    assert not set(labels.current()) & set(labels.current(audit=True))
    table = parse(out / "candidates.xml").get_first_table().to_table()
    assert len(table) == summary["candidates"]["objects"] > 0
    assert "known" in table.colnames
    page = (out / "project" / "report" / "index.html").read_text()
    images = re.findall(r"src='([^']+)'", page)
    assert {"learning.png", "labels.png", "probabilities.png", "sky.png", "gallery.png"} <= \
        set(images)
    for name in images:
        assert (out / "project" / "report" / name).stat().st_size > 5000
    assert main(["demo", str(out)]) == 2  # never overwrites a project

    # The labelling app opens on the result, as the demo says, with the next batch waiting.
    assert f"specscout serve {out / 'project'}" in text and "the link it prints" in text
    assert summary["queue_waiting"] == 40
    client = log_in(TestClient(create_app(project, AppConfig(annotator="me", samp=False)),
                               base_url="http://127.0.0.1"))
    nxt = client.get("/api/next").json()
    assert nxt["remaining"] == 40 and nxt["spectrum"]["probabilities"] is not None
    assert client.get("/api/queue").json()["iteration"] == 2
    assert client.get("/api/queue", params={"audit": True}).json()["done"] == \
        summary["audit_labels"]
    # the learning curve of the Progress page: labels and predictions per iteration, and the
    # audit's estimates with their intervals where an iteration has them
    curve = client.get("/api/progress/curve").json()["iterations"]
    assert [c["iteration"] for c in curve] == [1, 2]
    assert sum(curve[1]["training"].values()) > sum(curve[0]["training"].values())
    audited = [c["audit"] for c in curve if c["audit"]]
    assert audited and all(
        lo <= e[m] <= hi for a in audited for e in a.values() for m in ("precision", "recall")
        if e[m] is not None for lo, hi in [e[f"{m}_interval"]])


def test_demo_on_an_mrs_survey(tmp_path):
    # the demo's own function, everything in this process and a small domain training (the
    # command line and the local cluster are test_demo's): what differs is the MRS files
    out = tmp_path / "demo"
    run(out, DemoConfig(layout="mrs", survey=100, labelled=160, iterations=1, batch=20,
                        model="small-cnn", max_epochs=2, workers=0, injected=30,
                        negatives=80, artefacts=10), log=None)
    summary = json.loads((out / "demo.json").read_text())
    assert summary["pooled"] == 100 * 4 and summary["failed"] == 0  # coadd + 3 exposures
    project = Project(out / "project")
    assert project.config.resolution == 1531 and project.config.grid.points == 140
    exposures = project.store().meta(columns=["exposure"])["exposure"].to_pylist()
    assert exposures.count("coadd") == 100
    table = parse(out / "candidates-spectra.xml").get_first_table().to_table()
    assert len(table) == summary["candidates"]["spectra"] > 0
    objects = {}  # the epochs of one file (one star) make one object
    for spectrum_id, obj in zip(table["id"], table["object"], strict=True):
        objects.setdefault(str(spectrum_id).split("#")[0], set()).add(int(obj))
    assert all(len(found) == 1 for found in objects.values())
