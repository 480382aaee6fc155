"""The app's SAMP link, against a real hub on loopback with a second client in the role of
TOPCAT, SPLAT and Aladin: what they are sent, and what they send back."""

from __future__ import annotations

import io
import time

import httpx2 as httpx
import pytest
from astropy.table import Table
from fastapi.testclient import TestClient
from playwright import sync_api
from pyvo.samp import SAMPIntegratedClient
from test_browser import browser  # noqa: F401  (a fixture)
from test_candidates import ROWS
from test_samp import hub  # noqa: F401  (a fixture)
from test_web import BASE, enqueue

from specscout.catalogue.samp import HIGHLIGHT, POINT, SPECTRUM, TABLE
from specscout.web import AppConfig, create_app

from conftest import log_in


def connect_tool() -> tuple[SAMPIntegratedClient, list[tuple[str, dict]]]:
    """A VO tool on the hub that SAMP_HUB names, recording every table, spectrum and position
    it is sent."""
    got: list[tuple[str, dict]] = []
    client = SAMPIntegratedClient(name="vo-tool")
    client.connect()
    for mtype in (TABLE, SPECTRUM, POINT):
        client.bind_receive_notification(
            mtype, lambda key, sender, mtype, params, extra: got.append((mtype, params)))
    return client, got


@pytest.fixture
def tool(hub):  # noqa: F811
    client, got = connect_tool()
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


@pytest.fixture
def web_hub(tmp_path, monkeypatch):
    """A hub on the annotator's desktop with the Web Profile on (as TOPCAT runs one), on a free
    port, consenting to every page that registers (the desktop user clicks "yes")."""
    import threading

    from pyvo.samp import SAMPHubServer
    from pyvo.samp.hub import WebProfileDialog

    class Consent(WebProfileDialog):
        def show_dialog(self, samp_name, details, client, origin) -> None:
            asked.append((samp_name, origin))
            self.consent()

    asked: list = []
    dialog, stop = Consent(), threading.Event()
    lockfile = tmp_path / "samp-web.lock"
    server = SAMPHubServer(web_profile=True, web_port=0, web_profile_dialog=dialog,
                           lockfile=str(lockfile), addr="127.0.0.1")
    server.start()
    monkeypatch.setenv("SAMP_HUB", f"std-lockurl:{lockfile.as_uri()}")

    def poll() -> None:
        while not stop.is_set():
            dialog.handle_queue()
            time.sleep(0.02)

    threading.Thread(target=poll, daemon=True).start()
    yield server._web_port, asked
    stop.set()
    server.stop()


def test_the_page_talks_to_the_desktops_hub_by_the_web_profile(web_hub, tmp_path, browser):  # noqa: F811
    """No server-side link: the page registers with the desktop's hub itself, sends the queue,
    a spectrum and a position, and follows what the desktop's tools send back."""
    from test_candidates import make_project

    from conftest import LiveServer

    port, asked = web_hub
    vo, got = connect_tool()
    project = make_project(tmp_path)
    enqueue(project)  # rows 5, 0, 2
    problems: list[str] = []
    app = create_app(project, AppConfig(annotator="ana", samp=False, samp_web_port=port))
    try:
        with LiveServer(app) as server:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: m.type == "error" and problems.append(m.text))
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(server.launch_url)
            expect = sync_api.expect
            expect(page.locator("h2")).to_contain_text("rank 1")
            page.click("#samp-web")
            expect(page.locator("#samp-web")).to_contain_text("this desktop (disconnect)")
            assert asked[0][0] == "specscout" and asked[0][1] == server.url  # the page's origin
            page.click("button[data-samp=queue]")
            mtype, params = wait_for(lambda: got[:1], "the queue")[0]
            assert mtype == TABLE and params["table-id"].startswith("specscout-queue")
            table = Table.read(io.BytesIO(httpx.get(params["url"]).content), format="votable")
            assert list(table["row"]) == [5, 0, 2]
            expect(page.locator("#toast")).to_contain_text("Sent to")
            page.click("button[data-samp=spectrum]")
            mtype, spec = wait_for(lambda: got[1:2], "the spectrum")[0]
            assert mtype == SPECTRUM and spec["spectrum-id"] == "spec-5"
            assert len(Table.read(io.BytesIO(httpx.get(spec["url"]).content), format="fits")) \
                == 140
            page.click("button[data-samp=point]")
            mtype, point = wait_for(lambda: got[2:3], "the position")[0]
            assert mtype == POINT and float(point["dec"]) == pytest.approx(ROWS[5][1])
            # back from the desktop: TOPCAT highlights the table's third row (pool row 2)
            me = next(c for c in vo.get_registered_clients()
                      if vo.get_metadata(c).get("samp.name") == "specscout")
            vo.notify(me, {"samp.mtype": HIGHLIGHT, "samp.params": {
                "table-id": params["table-id"], "url": params["url"], "row": "2"}})
            expect(page).to_have_url(f"{server.url}/#/spectrum/2", timeout=10_000)
            # and Aladin points at a position: the nearest spectrum within 5"
            vo.notify(me, {"samp.mtype": POINT, "samp.params": {"ra": "9.9998", "dec": "20.0"}})
            expect(page).to_have_url(f"{server.url}/#/spectrum/0", timeout=10_000)
            page.click("#samp-web")  # disconnect: unregistered from the hub
            expect(page.locator("#samp-web")).to_contain_text("connect this desktop")
            assert wait_for(lambda: me not in vo.get_registered_clients(), "unregister")
    finally:
        vo.disconnect()
    assert not problems, problems
