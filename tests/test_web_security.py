"""The app under attack: a scripted list of hostile requests, each refused with its reason and
nothing stored; sessions that expire and end; the audit blind in the server; no server path
sent; TLS."""

from __future__ import annotations

import io
import json
import math
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest
from astropy.table import Table
from fastapi.testclient import TestClient
from test_candidates import make_project
from test_web import BASE, client_for, enqueue

from specscout.errors import SpecscoutError
from specscout.labels import label_store
from specscout.web import AppConfig, create_app
from specscout.web.app import COOKIE, MAX_BODY, Bounded

from conftest import LiveServer, log_in, printed


@pytest.fixture
def project(tmp_path):
    p = make_project(tmp_path, folder=f"{tmp_path}/archive/secret/")
    enqueue(p)  # rows 5, 0, 2
    return p


def stored(project) -> int:
    return len(label_store(project).history())


def test_hostile_requests_are_refused_with_a_reason_and_store_nothing(project):
    before = stored(project)
    anon = TestClient(create_app(project, AppConfig(annotator="ana", samp=False)),
                      base_url=BASE)
    body = {"row": 0, "label": "other"}
    refused = []

    def refuse(response, status: int, reason: str, what: str) -> None:
        assert response.status_code == status, (what, response.status_code, response.text)
        assert reason in response.text, (what, response.text)
        refused.append(what)

    # no session, no token: nothing is read or written, on loopback too; every endpoint of
    # the API but the session's own, and the tools' signed URLs, says so
    from specscout.web.routes import candidates, labels, pool_map, samp, session, spectra

    open_ = {"/api/session", "/api/login", "/api/logout", "/api/launch"}
    routes = [(m, r.path) for module in (candidates, labels, pool_map, samp, session, spectra)
              for r in module.router.routes
              if r.path.startswith("/api/") and r.path not in open_ for m in r.methods]
    assert len(routes) >= 17
    for method, path in routes:
        url = path.replace("{row}", "0") + ("?q=spec-1" if path == "/api/search" else "")
        r = anon.request(method, url, json={} if method == "POST" else None)
        refuse(r, 401, "log in first", f"{method} {path} without a session")
    csrf = anon.get("/api/session").json()["csrf"]  # handed to anyone, but worth nothing
    refuse(anon.post("/api/labels", json=body, headers={"X-CSRF-Token": csrf}), 401,
           "log in first", "a write without a session")
    # a wrong or a revoked user token
    refuse(anon.get("/api/queue", headers={"Authorization": "Bearer guess"}), 401,
           "unknown or revoked", "a wrong token")
    token = label_store(project).users.add("bea")
    assert anon.get("/api/queue", headers={"Authorization": f"Bearer {token}"}).status_code \
        == 200
    label_store(project).users.remove("bea")
    refuse(anon.post("/api/labels", json=body, headers={"Authorization": f"Bearer {token}"}),
           401, "unknown or revoked", "a revoked token")
    # a wrong launch link, and the right one used twice
    launch_with = {"X-CSRF-Token": csrf}
    refuse(anon.post("/api/launch", json={"token": "guess"}, headers=launch_with), 401,
           "used already", "a wrong launch link")
    refuse(anon.post("/api/launch", json={"token": "guess"}), 403, "CSRF",
           "a launch link sent without the login token")
    launch = anon.app.state.specscout.launch_token
    client = log_in(TestClient(anon.app, base_url=BASE))
    refuse(anon.post("/api/launch", json={"token": launch}, headers=launch_with), 401,
           "used already", "a launch link used twice")
    # with a session: cross-site, a forged Host, the cookie without the page's secret
    refuse(client.post("/api/labels", json=body, headers={"Origin": "http://evil.example"}),
           403, "cross-site", "a cross-origin write")
    name = f"{COOKIE}_{anon.app.state.specscout.cookie_id}"
    stolen = TestClient(anon.app, base_url=BASE, cookies={name: client.cookies.get(name)})
    for method, path in routes:
        url = path.replace("{row}", "0") + ("?q=spec-1" if path == "/api/search" else "")
        r = stolen.request(method, url, json={} if method == "POST" else None,
                           headers={"X-CSRF-Token": csrf})
        refuse(r, 401, "log in again", f"{method} {path} with the cookie alone")
    session = stolen.get("/api/session").json()
    assert session["annotator"] is None and "classes" not in session
    refuse(client.get("/api/queue", headers={"Host": "evil.example"}), 400, "Invalid host",
           "a forged Host")
    # paths that try to leave the app's static folder for files that exist next to it
    # (the app's own source) or a label on the server's filesystem
    import specscout.web

    assert (Path(specscout.web.__file__).parent / "app.py").is_file()
    for path in ("/static/%2e%2e/app.py", "/static/..%2fapp.py", "/static/%2e%2e/%2e%2e/"
                 "__init__.py", "/static/%2e%2e%2fdeps.py", "/static//etc/hostname",
                 "/samp/guess/spectrum/0.fits", "/samp/%2e%2e/table/x.xml"):
        r = client.get(path)
        assert r.status_code in (400, 404), (path, r.status_code)
        assert "import" not in r.text and "def " not in r.text, path
        refused.append(f"GET {path}")
    r = client.get("/static/app.js")  # what the static folder does serve
    assert r.status_code == 200 and "function" in r.text
    # bodies: oversized (declared and streamed), malformed, for a row that does not exist
    big = json.dumps({**body, "comment": "x" * (MAX_BODY + 1)})
    refuse(client.post("/api/labels", content=big,
                       headers={"Content-Type": "application/json"}), 413, "over",
           "an oversized body")

    def chunks():
        for _ in range(MAX_BODY // 1024 + 2):
            yield b" " * 1024

    refuse(client.post("/api/labels", content=chunks(),  # chunked: no length declared
                       headers={"Content-Type": "application/json"}), 413, "over",
           "an oversized body, streamed")
    refuse(client.post("/api/labels", content=b'{"row": 0, "label": ',
                       headers={"Content-Type": "application/json"}), 422, "json",
           "malformed JSON")
    refuse(client.post("/api/labels", json={"row": 99, "label": "other"}), 404,
           "no spectrum at row 99", "a label for a row that does not exist")
    refuse(client.post("/api/labels", json={"row": 0, "label": "quasar"}), 422,
           "unknown class", "a class the project does not have")
    # replay after logout: the old cookie and the page's secret are worthless
    cookie = client.cookies.get(name)
    assert cookie
    assert client.post("/api/logout", json={}).status_code == 200
    replay = TestClient(anon.app, base_url=BASE, cookies={name: cookie},
                        headers={"X-Session-Secret": client.headers["X-Session-Secret"]})
    refuse(replay.post("/api/labels", json=body), 401, "expired or ended", "replay after logout")
    assert stored(project) == before and len(refused) >= 35


def test_sessions_expire(project, monkeypatch):
    import datetime as dt

    from specscout.labels import users

    client = client_for(project)  # a session of 12 hours
    assert client.post("/api/labels", json={"row": 0, "label": "other"}).status_code == 200
    later = users.now() + dt.timedelta(hours=12, seconds=1)
    monkeypatch.setattr(users, "now", lambda: later)
    r = client.post("/api/labels", json={"row": 1, "label": "other"})
    assert r.status_code == 401 and "expired" in r.text
    assert client.get("/api/session").json()["annotator"] is None  # the page offers a login


def test_no_auth_is_loopback_only_and_open(project):
    with pytest.raises(Exception, match="loopback only"):
        create_app(project, AppConfig(auth=False, allowed_hosts=None, samp=False))
    open_app = TestClient(create_app(project, AppConfig(annotator="ana", auth=False,
                                                        samp=False)), base_url=BASE)
    assert open_app.app.state.specscout.launch_token is None
    csrf = open_app.get("/api/session").json()["csrf"]
    assert open_app.post("/api/labels", json={"row": 0, "label": "other"},
                         headers={"X-CSRF-Token": csrf}).status_code == 200
    assert label_store(project).history(0)[-1]["annotator"] == "ana"


def test_the_audit_is_blind_in_the_server(project):
    labels = label_store(project)
    labels.audit_samples.add(1, [0, 6], ["spec-0", "spec-6"], ["candidate:em", "rest"], [4, 3])
    client = client_for(project)
    labels.add("spec-0", 0, "emission", "bea", audit=True)
    # whichever page it is asked from, an audit spectrum comes without the model's output
    for audit in (False, True):
        s = client.get("/api/spectrum/0", params={"audit": audit}).json()
        assert s["probabilities"] is None and s["iteration"] is None
    assert client.get("/api/spectrum/1").json()["probabilities"] is not None
    # nor with another annotator's audit label
    q = client.get("/api/queue", params={"audit": True}).json()
    assert q["items"][0]["row"] == 0 and q["items"][0]["others"] == {}
    assert "emission" not in json.dumps(client.get("/api/next", params={"audit": True}).json()
                                        ["spectrum"]["history"])
    # nor listed among the candidates, nor counted (which would say what the model thinks)
    c = client.get("/api/candidates").json()
    assert 0 not in [i["row"] for i in c["items"]] and c["spectra"] == 3  # 1, 2, 3
    # nor in the training queue (rows 5, 0, 2), with its acquisition score
    assert [i["row"] for i in client.get("/api/queue").json()["items"]] == [5, 2]
    # nor in a table for VO tools, nor with probabilities there
    url = client.post("/api/samp/message", json={"action": "queue"}).json()["params"]["url"]
    table = Table.read(io.BytesIO(client.get(url).content), format="votable")
    assert list(table["row"]) == [5, 2]
    url = client.post("/api/samp/message", json={"action": "candidates"}).json()["params"]["url"]
    assert 0 not in list(Table.read(io.BytesIO(client.get(url).content), format="votable")["row"])
    # nor may it be added to the queue by hand, nor is another annotator's audit label counted
    assert client.post("/api/queue/add", json={"rows": [0]}).json()["added"] == 0
    progress = client.get("/api/progress").json()
    assert progress["classes"]["emission"]["audit"] == 0  # bea's, not ana's
    # nor labelled for training (it would train on the audit), from any page; and an audit
    # label is for a spectrum of the draw
    before = len(labels.history())
    r = client.post("/api/labels", json={"row": 0, "label": "other", "audit": False})
    assert r.status_code == 409 and "audit page" in r.text
    r = client.post("/api/labels", json={"row": 1, "label": "other", "audit": True})
    assert r.status_code == 409 and "not in the latest audit sample" in r.text
    assert len(labels.history()) == before
    assert client.post("/api/labels", json={"row": 0, "label": "other", "audit": True}
                       ).status_code == 200
    # a new draw (of a candidate): the old one's spectra are shown and listed again, the new
    # one's are not, nor counted, among spectra or objects
    labels.audit_samples.add(1, [1], ["spec-1"], ["candidate:em"], [4])
    assert client.get("/api/spectrum/0").json()["probabilities"] is not None
    c = client.get("/api/candidates").json()
    assert sorted(i["row"] for i in c["items"]) == [0, 2, 3] and c["spectra"] == 3
    assert c["objects"] == len({i["object"] for i in c["items"]})
    state = client.app.state.specscout  # the list of the earlier draw is dropped
    assert [k[3] for k in state._candidates] == [frozenset({1})]


def test_the_votes_handed_out_never_change_while_labels_arrive(project):
    client = client_for(project)
    state = client.app.state.specscout
    before = state.votes(False)
    frozen = {r: dict(v) for r, v in before.items()}
    for row in (1, 2, 3):
        assert client.post("/api/labels", json={"row": row, "label": "other"}
                           ).status_code == 200
    assert before == frozen  # what a caller was reading stays as it was
    assert {1, 2, 3} <= set(state.votes(False))


def test_a_label_committed_late_on_a_server_database_is_still_counted(project):
    """On PostgreSQL a label with a lower id can commit after one with a higher id was read;
    the app reads a window below the newest again (SQLite, which commits in id order, needs
    none: the window is set here as for a server)."""
    import datetime as dt

    import sqlalchemy as sa

    from specscout.labels.schema import labels_table

    client = client_for(project)
    state = client.app.state.specscout
    assert state._reread == 0  # SQLite
    state._reread = 256
    labels = label_store(project)
    base = labels.add("spec-1", 1, "other", "ana")

    def put(i: int, row: int, label: str) -> None:
        with labels.engine.begin() as conn:
            conn.execute(sa.insert(labels_table).values(
                id=base + i, spectrum=f"spec-{row}", row=row, label=label, annotator="bea",
                audit=False, time=dt.datetime.now(dt.UTC)))

    put(5, 2, "emission")
    assert state.votes(False)[2]["bea"] == "emission"
    put(2, 3, "double-peak")  # committed late, and new: counted
    put(3, 2, "other")  # committed late, older than bea's label of row 2: not shown
    votes = state.votes(False)
    assert votes[3]["bea"] == "double-peak" and votes[2]["bea"] == "emission"
    assert votes[1]["ana"] == "other"


def test_sessions_are_the_project_s_own_and_outlive_a_restart(project, tmp_path):
    from test_candidates import make_project

    other = make_project(tmp_path / "other")
    a = client_for(project)
    b = TestClient(create_app(other, AppConfig(annotator="ana", samp=False)), base_url=BASE)
    assert a.app.state.specscout.cookie_id != b.app.state.specscout.cookie_id
    # the other project's app does not take this one's session
    b.cookies.update(a.cookies)
    assert b.get("/api/queue").status_code == 401
    # a restarted app (same project) honours the open page's session
    again = TestClient(create_app(project, AppConfig(annotator="ana", samp=False)),
                       base_url=BASE, cookies=a.cookies,
                       headers={"X-Session-Secret": a.headers["X-Session-Secret"]})
    assert again.post("/api/labels", json={"row": 1, "label": "other"}).status_code == 200
    secret = project.path / ".web-secret"
    assert secret.stat().st_mode & 0o777 == 0o600


def test_a_login_ends_the_session_it_came_with(project):
    client = client_for(project)
    state = client.app.state.specscout
    name = f"{COOKIE}_{state.cookie_id}"
    first, secret = client.cookies.get(name), client.headers["X-Session-Secret"]
    assert label_store(project).users.session(first, secret) is not None
    token = label_store(project).users.add("bea")
    assert client.post("/api/login", json={"name": "bea", "token": token}).status_code == 200
    assert client.cookies.get(name) != first
    assert label_store(project).users.session(first, secret) is None


def test_candidate_lists_are_few_and_thresholds_bounded(project):
    client = client_for(project)
    state = client.app.state.specscout
    for t in (0.0, 0.5, 0.501, 0.5004, 0.7, 0.9, 0.95, 0.3, 1.0):
        r = client.get("/api/candidates", params={"threshold": t})
        assert r.status_code == 200
    assert client.get("/api/candidates", params={"threshold": 0}).json()["threshold"] == 0.05
    assert client.get("/api/candidates", params={"threshold": 0.5004}).json()["threshold"] \
        == 0.5
    assert len(state._candidates) <= 4


def test_a_queue_queried_again_is_served_anew(project):
    """SQLite reuses the ids of a deleted batch: the app must still see the new one."""
    client = client_for(project)
    assert [i["row"] for i in client.get("/api/queue").json()["items"]] == [5, 0, 2]
    label_store(project).queue.put(1, [3, 4, 6], ["spec-3", "spec-4", "spec-6"],
                                   [0.7, 0.6, 0.5], "rare")
    items = client.get("/api/queue").json()["items"]
    assert [i["row"] for i in items] == [3, 4, 6]
    client.post("/api/labels", json={"row": 6, "label": "other"})
    assert label_store(project).history(6)[-1]["acquisition_score"] == pytest.approx(0.5)


def test_no_server_path_is_sent(project, tmp_path):
    client = client_for(project)
    texts = [client.get(p).text for p in (
        "/api/session", "/api/queue", "/api/next", "/api/spectrum/0",
        "/api/spectrum/0/original", "/api/spectrum/0/epochs", "/api/candidates",
        "/api/search?q=spec-0", "/api/progress")]
    assert all(str(tmp_path) not in t for t in texts)
    assert client.get("/api/spectrum/0").json()["record"]["file"] == "f0.fits"
    # nor in an error's message: the file whose reading failed is named by its name
    from specscout.web.app import without_paths

    assert without_paths(f"{tmp_path}/archive/secret/f0.fits: truncated (at /x/y)") == \
        "f0.fits: truncated (at y)"
    assert without_paths("see https://example.org/a/b and 3/4") == \
        "see https://example.org/a/b and 3/4"


def test_caches_are_bounded(project):
    sent = Bounded(3)
    for k in range(10):
        sent[f"t{k}"] = [k]
    assert list(sent) == ["t7", "t8", "t9"]
    # the app's own: tables sent to VO tools, however many are asked for
    from specscout.web.state import SENT_TABLES

    client = client_for(project)
    state = client.app.state.specscout
    urls = [client.post("/api/samp/message", json={"action": "queue"}).json()["params"]["url"]
            for _ in range(SENT_TABLES + 10)]
    assert len(state.sent_tables) == SENT_TABLES
    assert client.get(urls[-1]).status_code == 200  # the newest is served
    assert client.get(urls[0]).status_code == 404  # the oldest forgotten
    # a tool's highlight of a row of a table it got refers to it by URL or by id
    from specscout.catalogue.samp import HIGHLIGHT
    from specscout.web.routes.samp import page_event

    assert page_event(state, HIGHLIGHT, {"url": urls[-1], "row": "1"}) == {"row": 0}


def test_labels_are_written_with_a_full_fsync(project):
    label_store(project).add("spec-0", 0, "other", "ana")
    engine = label_store(project).engine
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_served_over_tls(project, tmp_path):
    """``specscout serve --certfile --keyfile``: HTTPS, the link's session in a Secure
    cookie."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "specscout.cli", "serve", str(project.path), "--port", "0",
         "--no-samp", "--certfile", str(tmp_path / "server.pem"), "--keyfile",
         str(tmp_path / "server.pem")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        m = printed(proc, r"(https://127\.0\.0\.1:\d+/\?token=\S+)")
        trusted = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        with httpx.Client(verify=trusted, timeout=5) as client:
            base = m.group(1).split("/?token=")[0]
            for _ in range(200):
                try:
                    csrf = client.get(f"{base}/api/session").json()["csrf"]
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            r = client.post(f"{base}/api/launch", json={"token": m.group(1).split("token=")[1]},
                            headers={"X-CSRF-Token": csrf})
            assert r.status_code == 200 and "secure" in r.headers["set-cookie"].lower()
            name, value = next(iter(r.cookies.items()))
            assert name.startswith(f"__Host-{COOKIE}_")  # over TLS: no subdomain may shadow it
            client.cookies.set(name, value)
            client.headers["X-Session-Secret"] = r.json()["secret"]
            assert client.get(f"{base}/api/queue").status_code == 200
        with pytest.raises(httpx.TransportError):  # plain HTTP is not spoken
            httpx.get(base.replace("https:", "http:") + "/api/session", timeout=2)
    finally:
        proc.terminate()
        proc.wait(10)


def test_urls_for_vo_tools_are_signed_for_one_item_and_expire(project, monkeypatch):
    from specscout.web.routes import samp

    client = client_for(project)
    url = client.post("/api/samp/message", json={"action": "spectrum", "row": 2}).json()[
        "params"]["url"]
    tool = TestClient(client.app, base_url=BASE)  # a VO tool: no session, no cookie
    assert tool.get(url).status_code == 200
    assert tool.get(url.replace("/spectrum/2.fits", "/spectrum/3.fits")).status_code == 404
    expires = int(url.split("/samp/")[1].split("/")[0])
    # a time that is no time: "²" (a digit to str.isdigit, not to int) and 5,000 digits
    # (past int()'s limit on digit strings)
    for odd in ("\u00b2", "9" * 5000):
        assert tool.get(url.replace(f"/samp/{expires}/", f"/samp/{odd}/")).status_code == 404
    monkeypatch.setattr(samp.time, "time", lambda: expires + 1)
    assert tool.get(url).status_code == 404  # expired


def test_crafted_input_is_a_422_that_echoes_nothing(project):
    client = log_in(TestClient(create_app(project, AppConfig(annotator="ana", samp=False)),
                               base_url=BASE))
    before = stored(project)
    raw = {"Content-Type": "application/json"}
    for body, what in ((b'{"row": true, "label": "other"}', "a row that is a boolean"),
                       (b'{"row": "1", "label": "other"}', "a row that is a string"),
                       (b'{"row": NaN, "label": "other"}', "a row that is NaN"),
                       (b'{"row": 0, "label": "other", "extra": 1}', "an unknown field"),
                       (b'{"row": 0, "label": "other", "comment": "a\\u202eb"}',
                        "a bidirectional override in a comment"),
                       (b'{"row": 0, "label": "other", "comment": "a\\u0000b"}', "a NUL"),
                       (b'{"row": 0, "label": "other", "comment": "\\ud800"}',
                        "an unpaired surrogate")):
        r = client.post("/api/labels", content=body, headers=raw)
        assert r.status_code == 422, (what, r.status_code, r.text)
        assert "\\ud800" not in r.text and "\u202e" not in r.text, what  # named, not echoed
        assert r.headers.get("x-content-type-options") == "nosniff", what
    r = TestClient(client.app, base_url=BASE).post(
        "/api/login", content=b'{"name": "\\ud800", "token": "x"}', headers=raw)
    assert r.status_code == 422, r.text
    assert stored(project) == before
    # a comment with a line break is a person's text
    ok = client.post("/api/labels", json={"row": 0, "label": "other", "comment": "two\nlines"})
    assert ok.status_code == 200, ok.text


def test_an_export_runs_no_formula_in_a_spreadsheet(project, tmp_path):
    import csv

    from specscout.labels.files import export_csv

    labels = label_store(project)
    labels.add_many([{"spectrum": "s", "row": 0, "label": "other", "annotator": "ana",
                      "comment": '=HYPERLINK("http://evil.example","x")'}])
    export_csv(labels, tmp_path / "out.csv")
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert rows[-1]["comment"] == "'=HYPERLINK(\"http://evil.example\",\"x\")"


def test_every_answer_has_the_headers_a_500_and_the_api_uncached(project):
    client = log_in(TestClient(create_app(project, AppConfig(annotator="ana", samp=False)),
                               base_url=BASE))
    state = client.app.state.specscout

    def broken(row):
        raise RuntimeError("a bug")

    state.pool.original = broken
    r = client.get("/api/spectrum/0/original")
    assert r.status_code == 500 and "a bug" not in r.text
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"
    assert client.get("/api/queue").headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in client.get("/api/queue").headers  # plain HTTP
    # and on a refusal, a missing spectrum, and the page and its script
    missing = client.get("/api/spectrum/999999")
    anonymous = TestClient(client.app, base_url=BASE).get("/api/queue")
    page, script = client.get("/"), client.get("/static/app.js")
    assert (missing.status_code, anonymous.status_code, page.status_code,
            script.status_code) == (404, 401, 200, 200)
    for r in (missing, anonymous, page, script):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert page.headers["cache-control"] == script.headers["cache-control"] == "no-cache"


def test_logins_are_rate_limited_and_logout_deletes_the_cookie_as_it_was_set(project):
    client = client_for(project)
    token = label_store(project).users.add("bea")
    for _ in range(10):
        assert client.post("/api/login", json={"name": "bea", "token": "guess"}).status_code \
            == 401
    # the right token too, while the window is full: guessing at speed gets nowhere
    r = client.post("/api/login", json={"name": "bea", "token": token})
    assert r.status_code == 429 and "too many failed logins" in r.text
    client.app.state.specscout.logins.window = 0.0  # the minute has passed
    r = client.post("/api/login", json={"name": "bea", "token": token})
    assert r.status_code == 200
    client.headers["X-Session-Secret"] = r.json()["secret"]  # the new session's
    out = client.post("/api/logout", json={})
    assert out.status_code == 200, out.text
    deletion = out.headers["set-cookie"]
    assert "Max-Age=0" in deletion or "expires=" in deletion.lower()
    assert "HttpOnly" in deletion and "SameSite=strict" in deletion


def test_a_slow_read_is_answered_at_its_deadline_and_a_write_always_finishes(project):
    from specscout.web.app import GIVEN_UP

    app = create_app(project, AppConfig(annotator="ana", samp=False, deadline_s=0.3))
    state = app.state.specscout
    original, add = state.pool.original, state.labels.add
    ended = []

    def slow_original(row):
        time.sleep(1.5)
        ended.append(row)
        return original(row)

    def slow_add(*args, **kwargs):
        time.sleep(0.6)
        return add(*args, **kwargs)

    state.pool.original = slow_original
    with LiveServer(app) as server, httpx.Client(base_url=server.url) as client:
        client.headers["X-CSRF-Token"] = client.get("/api/session").json()["csrf"]
        secret = client.post("/api/launch", json={"token": state.launch_token}).json()
        client.headers["X-Session-Secret"] = secret["secret"]
        start = time.perf_counter()
        r = client.get("/api/spectrum/0/original")
        assert r.status_code == 503 and "took over 0.3 s" in r.text
        assert time.perf_counter() - start < 1.2  # answered at the deadline, not the end
        assert r.headers["cache-control"] == "no-store"  # with the headers of the rest
        assert client.get("/api/queue").status_code == 200  # the next one served as ever
        # reads given up hold their threads: past GIVEN_UP of them, a read is refused at once
        for k in range(GIVEN_UP - 1):
            assert client.get(f"/api/spectrum/{k}/original").status_code == 503
        start = time.perf_counter()
        r = client.get("/api/queue")
        assert r.status_code == 503 and "still at work" in r.text
        assert time.perf_counter() - start < 0.25
        # a write is never cut off, also while the reads given up still run
        state.labels.add = slow_add
        before = stored(project)
        r = client.post("/api/labels", json={"row": 0, "label": "other"})
        assert r.status_code == 200 and stored(project) == before + 1
        time.sleep(1.6)  # the work given up ends on its own, and reads are served again
        assert len(ended) == GIVEN_UP and client.get("/api/queue").status_code == 200
    for bad in (0, -1, math.nan, 3601, True, "30"):
        with pytest.raises(SpecscoutError, match="deadline_s"):
            AppConfig(deadline_s=bad)


def test_the_app_stops_only_once_reads_given_up_have_ended(project):
    """When the app stops, what a read given up at its deadline uses (the worker, the line
    measurements held) is put away only after that read ends."""
    app = create_app(project, AppConfig(annotator="ana", samp=False, deadline_s=0.2))
    state = app.state.specscout
    original, ended = state.pool.original, []

    def slow_original(row):
        time.sleep(1.0)
        ended.append(row)
        return original(row)

    state.pool.original = slow_original
    with LiveServer(app) as server, httpx.Client(base_url=server.url) as client:
        client.headers["X-CSRF-Token"] = client.get("/api/session").json()["csrf"]
        secret = client.post("/api/launch", json={"token": state.launch_token}).json()
        client.headers["X-Session-Secret"] = secret["secret"]
        assert client.get("/api/spectrum/0/original").status_code == 503
        assert ended == [] and len(state.given_up) == 1
    assert ended == [0] and not state.given_up  # stopped after it, not under it
