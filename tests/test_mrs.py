"""A LAMOST MRS project end to end: files of several epochs, at MRS's own sampling."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest

from specscout.archive.project import Project
from specscout.cli import main
from specscout.labels import label_store
from specscout.simulate import SurveyConfig, simulate_labelled, simulate_survey

FAST = ["--model", "small-cnn", "--epochs", "6", "--patience", "2", "--quiet", "--no-domain"]


@pytest.fixture(scope="module")
def mrs(tmp_path_factory, shared_data):
    tmp = tmp_path_factory.mktemp("mrs")
    simulate_survey(tmp / "survey", SurveyConfig(n=60, seed=4, fractions={
        "emission": 0.2, "double-peak": 0.1}), layout="mrs")
    simulate_labelled(tmp / "ond", SurveyConfig(n=160, seed=5, fractions={
        "emission": 0.41, "double-peak": 0.12}))
    assert main(["init", str(tmp / "p"), "--preset", "lamost-mrs"]) == 0
    return Project(tmp / "p"), tmp, shared_data / "lamost-mrs"


def test_mrs_project_from_files_to_a_query(mrs, capsys):
    project, tmp, real = mrs
    assert project.config.grid.points == 1412
    assert main(["ingest", str(project.path), str(tmp / "survey"), str(real), "--workers", "1",
                 "--quiet"]) == 0
    pool = project.store()
    meta = pool.meta(columns=["id", "path", "exposure", "mjd", "instrument"], status=None)
    # One row per spectrum: each simulated file is a coadd and 3 exposures.
    sims = meta.filter(pc.starts_with(meta["path"], str(tmp / "survey")))
    assert sims.num_rows == 60 * 4
    assert sims["exposure"].value_counts().to_pylist()[0] == {"values": "coadd", "counts": 60}
    reals = meta.filter(pc.starts_with(meta["path"], str(real)))
    assert reals.num_rows == 10 + 6 + 5 + 8  # the real files' coadds and exposures
    assert pool.files == 64  # files, not spectra
    again = capsys.readouterr()
    assert main(["ingest", str(project.path), str(tmp / "survey"), str(real),
                 "--workers", "1"]) == 0
    assert "skipped 64 already in the store" in capsys.readouterr().out
    assert len(project.store()) == len(pool)
    assert main(["ingest", str(project.path), str(tmp / "ond"), "--labels",
                 str(tmp / "ond" / "labels.csv"), "--degrade-to", "7500", "--workers", "1",
                 "--quiet"]) == 0
    assert main(["iterate", str(project.path), *FAST, "--batch", "10"]) == 0
    queue = label_store(project).queue.batch()
    assert len(queue) == 10
    assert "again" not in again.err


def test_other_epochs_of_an_object_in_the_app(mrs):
    from fastapi.testclient import TestClient

    from specscout.web import AppConfig, create_app

    project = mrs[0]
    pool = project.store()
    coadd = pool.find(id="med-58270-HIP95119KP01_sp12-076#coadd")["row"][0].as_py()
    star = pool.find(designation="LAMOST J192814.09+435531.0")["row"].to_pylist()
    from conftest import log_in

    client = log_in(TestClient(create_app(project, AppConfig(annotator="ana", samp=False)),
                               base_url="http://127.0.0.1"))
    epochs = client.get(f"/api/spectrum/{coadd}/epochs").json()["epochs"]
    # The same star on three nights: its other pooled coadds and exposures (the faint ones of
    # the first two nights are flagged, not pooled).
    assert sorted(e["row"] for e in epochs) == sorted(set(star) - {coadd})
    assert len(epochs) >= 4
    mjd = [e["mjd"] for e in epochs]
    assert mjd == sorted(mjd) and all(len(e["flux"]) == 1412 for e in epochs)
    exposure = next(e for e in epochs if e["exposure"] != "coadd")
    original = client.get(f"/api/spectrum/{exposure['row']}/original").json()
    assert "error" not in original and len(original["wavelength"]) > 7000
