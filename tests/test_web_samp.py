"""The app's SAMP link, against a real hub on loopback with a second client in the role of
TOPCAT, SPLAT and Aladin: what they are sent, and what they send back."""

from __future__ import annotations

import io
import time

import pytest
from astropy.table import Table
from fastapi.testclient import TestClient
from pyvo.samp import SAMPIntegratedClient
from test_samp import hub  # noqa: F401  (a fixture)
from test_web import BASE, enqueue

from specscout.catalogue.samp import HIGHLIGHT, POINT, SPECTRUM, TABLE
from specscout.web import AppConfig, create_app

from conftest import log_in


@pytest.fixture
def tool(hub):  # noqa: F811
    """A VO tool that records every table, spectrum and position it is sent."""
    got: list[tuple[str, dict]] = []
    client = SAMPIntegratedClient(name="vo-tool")
    client.connect()
    for mtype in (TABLE, SPECTRUM, POINT):
        client.bind_receive_notification(
            mtype, lambda key, sender, mtype, params, extra: got.append((mtype, params)))
    yield client, got
    client.disconnect()


def wait_for(fn, what: str):
    for _ in range(100):
        if value := fn():
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} never arrived")


@pytest.fixture
def app_client(tmp_path):
    from test_candidates import make_project

    project = make_project(tmp_path)
    enqueue(project)  # rows 5, 0, 2
    client = log_in(TestClient(create_app(project, AppConfig(annotator="ana")), base_url=BASE))
    yield client
    client.app.state.specscout.samp.close()


def specscout_id(tool_client) -> str:
    for cid in tool_client.get_registered_clients():
        if tool_client.get_metadata(cid).get("samp.name") == "specscout":
            return cid
    raise AssertionError("specscout is not registered with the hub")


def test_send_and_receive(app_client, tool):
    vo, got = tool
    r = app_client.post("/api/samp", json={"action": "queue"})
    assert r.status_code == 200 and r.json()["sent"] == ["vo-tool"]
    mtype, params = wait_for(lambda: got[:1], "the queue")[0]
    assert mtype == TABLE and params["table-id"].startswith("specscout-queue")
    table = Table.read(io.BytesIO(app_client.get(params["url"]).content), format="votable")
    assert list(table["row"]) == [5, 0, 2] and list(table["id"]) == ["spec-5", "spec-0", "spec-2"]
    assert table["ra"].unit == "deg" and "p_emission" in table.colnames

    # TOPCAT highlights the table's second row: the page is told to show pool row 0.
    me = specscout_id(vo)
    vo.notify(me, {"samp.mtype": HIGHLIGHT, "samp.params": {
        "table-id": params["table-id"], "url": params["url"], "row": "1"}})
    events = wait_for(lambda: app_client.get("/api/samp/events").json()["events"], "event")
    assert events[-1]["row"] == 0 and events[-1]["mtype"] == HIGHLIGHT

    r = app_client.post("/api/samp", json={"action": "spectrum", "row": 2})
    assert r.json()["sent"] == ["vo-tool"]
    mtype, params = wait_for(lambda: got[1:2], "the spectrum")[0]
    assert mtype == SPECTRUM and params["spectrum-id"] == "spec-2"
    assert params["meta"]["Access.Format"] == "application/fits"
    fits = Table.read(io.BytesIO(app_client.get(params["url"]).content), format="fits")
    assert len(fits) == 140 and fits["WAVELENGTH"].unit == "Angstrom"

    r = app_client.post("/api/samp", json={"action": "point", "row": 2})
    mtype, params = wait_for(lambda: got[2:3], "the position")[0]
    assert mtype == POINT and (float(params["ra"]), float(params["dec"])) == (150.0, -5.0)

    # Aladin points at a position: the nearest spectrum within 5" is shown.
    vo.notify(me, {"samp.mtype": POINT, "samp.params": {"ra": "9.9998", "dec": "20.0"}})
    after = events[-1]["n"]
    ev = wait_for(lambda: app_client.get("/api/samp/events", params={"after": after})
                  .json()["events"], "pointAt")[-1]
    assert ev["row"] == 0 and ev["separation"] < 1

    # Tables are served only with the app's key in the URL.
    assert app_client.get(params_url := got[0][1]["url"]).status_code == 200
    assert app_client.get(params_url.replace("/samp/", "/samp/x")).status_code == 404


def test_no_hub_is_a_clear_error(app_client, tmp_path, monkeypatch):
    monkeypatch.setenv("SAMP_HUB", f"std-lockurl:{(tmp_path / 'none.lock').as_uri()}")
    r = app_client.post("/api/samp", json={"action": "queue"})
    assert r.status_code == 503 and "no SAMP hub" in r.json()["detail"]
    assert app_client.post("/api/samp", json={"action": "spectrum"}).status_code == 422
    assert app_client.post("/api/samp", json={"action": "rm -rf"}).status_code == 422


def test_the_app_listens_from_the_start(tool, tmp_path):
    from test_candidates import make_project

    vo, _ = tool
    app = create_app(make_project(tmp_path), AppConfig(annotator="ana"))
    with log_in(TestClient(app, base_url=BASE)) as client:  # runs the app's startup
        vo.notify(specscout_id(vo), {"samp.mtype": POINT,
                                     "samp.params": {"ra": "150.0", "dec": "-5.0"}})
        events = wait_for(lambda: client.get("/api/samp/events").json()["events"], "event")
        assert events[0]["row"] == 2 and events[0]["separation"] == 0
