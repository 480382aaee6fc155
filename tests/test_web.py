"""The labelling web app's API: queue, labels, validation, safety, search, candidates, progress."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from test_candidates import make_project

from specscout.errors import SpecscoutError
from specscout.labels import label_store
from specscout.web import AppConfig, create_app

from conftest import log_in

BASE = "http://127.0.0.1"


def enqueue(project, rows=(5, 0, 2)) -> None:
    pool = project.store()
    ids = pool.meta(columns=["row", "id"]).to_pydict()
    id_of = dict(zip(ids["row"], ids["id"], strict=True))
    label_store(project).queue.put(1, list(rows), [id_of[r] for r in rows],
                                 [0.9 - 0.1 * i for i in range(len(rows))], "entropy")


@pytest.fixture
def project(tmp_path):
    p = make_project(tmp_path)
    enqueue(p)
    return p


def client_for(project, **config) -> TestClient:
    """A client of the app, logged in by the launch link (as ``ana``) unless logins are
    required."""
    config.setdefault("samp", False)
    client = TestClient(create_app(project, AppConfig(annotator="ana", **config)), base_url=BASE)
    if client.app.state.specscout.launch_token:
        return log_in(client)
    client.headers["X-CSRF-Token"] = client.get("/api/session").json()["csrf"]
    return client


@pytest.fixture
def client(project):
    return client_for(project)


def test_the_page_and_its_assets_are_local(client):
    page = client.get("/")
    assert page.status_code == 200 and "specscout" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for src in re.findall(r'(?:src|href)="([^"#][^"]*)"', page.text.replace('"data:,"', "")):
        assert src.startswith("/static/"), src  # nothing from the internet
        assert client.get(src).status_code == 200
    script = client.get("/static/app.js").text
    assert "http://" not in script and "https://" not in script


def test_queue_next_and_label(client, project):
    s = client.get("/api/session").json()
    assert s["classes"] == ["other", "emission", "double-peak"] and s["annotator"] == "ana"
    q = client.get("/api/queue").json()
    assert [i["row"] for i in q["items"]] == [5, 0, 2] and q["iteration"] == 1
    nxt = client.get("/api/next").json()
    assert nxt["item"]["row"] == 5 and nxt["remaining"] == 3
    spec = nxt["spectrum"]
    assert spec["record"]["id"] == "spec-5" and len(spec["flux"]) == 140
    assert spec["probabilities"]["other"] == pytest.approx(0.45, abs=1e-3)
    r = client.post("/api/labels", json={"row": 5, "label": "emission", "spectrum": "spec-5"})
    assert r.status_code == 200, r.text
    saved = label_store(project).history(5)[-1]
    assert (saved["label"], saved["annotator"], saved["spectrum"], saved["iteration"]) == \
        ("emission", "ana", "spec-5", 1)
    assert saved["acquisition_score"] == pytest.approx(0.9)
    assert saved["model_version"].startswith("0001:")
    # The next one skips what this annotator labelled; after rank 1 comes rank 2.
    assert client.get("/api/next").json()["item"]["row"] == 0
    assert client.get("/api/next", params={"after": 1}).json()["item"]["row"] == 2
    q = client.get("/api/queue").json()
    assert q["done"] == 1 and q["items"][0]["label"] == "emission"


def test_unsure_stays_to_do_and_undo_restores(client, project):
    client.post("/api/labels", json={"row": 5, "label": None, "comment": "unsure"})
    assert client.get("/api/queue").json()["done"] == 0  # comes back later
    client.post("/api/labels", json={"row": 0, "label": "emission"})
    client.post("/api/labels", json={"row": 0, "label": "other"})
    client.post("/api/labels", json={"row": 0, "label": "emission", "comment": "undo"})
    labels = label_store(project)
    assert labels.current()[0] == "emission"
    assert [h["label"] for h in labels.history(0)] == ["emission", "other", "emission"]
    assert labels.history(5)[-1]["comment"] == "unsure"


def test_bad_requests_are_refused_with_a_reason(client, project):
    before = len(label_store(project).history())
    r = client.post("/api/labels", json={"row": 0, "label": "quasar"})
    assert r.status_code == 422 and "unknown class 'quasar'" in r.json()["detail"]
    r = client.post("/api/labels", json={"row": 99, "label": "other"})
    assert r.status_code == 404 and "no spectrum at row 99" in r.json()["detail"]
    r = client.post("/api/labels", json={"row": 1, "label": "other", "spectrum": "spec-2"})
    assert r.status_code == 409 and "holds 'spec-1'" in r.json()["detail"]
    assert client.post("/api/labels", json={"row": -1, "label": "other"}).status_code == 422
    assert client.post("/api/labels", content=b"row=1&label=other",
                       headers={"Content-Type": "application/x-www-form-urlencoded"}
                       ).status_code == 422
    assert client.get("/api/spectrum/77").status_code == 404
    assert client.get("/api/spectrum/x").status_code == 422
    assert len(label_store(project).history()) == before


def test_cross_site_writes_are_refused(client, project):
    body = {"row": 0, "label": "other"}
    r = client.post("/api/labels", json=body, headers={"X-Session-Secret": "guess"})
    assert r.status_code == 401 and "log in again" in r.json()["detail"]
    r = client.post("/api/labels", json=body, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "cross-site" in r.json()["detail"]
    assert client.post("/api/labels", json=body, headers={"Origin": BASE}).status_code == 200
    # A page on another name that resolves to 127.0.0.1 (DNS rebinding) is refused.
    assert client.get("/api/queue", headers={"Host": "evil.example"}).status_code == 400
    assert len(label_store(project).history()) == 3  # two from make_project


def test_static_files_never_leave_the_package(client):
    for path in ("/static/../labels.db", "/static/%2e%2e/%2e%2e/specscout.toml",
                 "/static/..%2f..%2fspecscout.toml"):
        assert client.get(path).status_code in (400, 404), path


def test_login_tokens_and_attribution(project):
    labels = label_store(project)
    token = labels.users.add("bea")
    client = client_for(project, require_login=True)
    assert client.get("/api/queue").status_code == 401
    assert client.get("/api/session").json()["annotator"] is None
    r = client.post("/api/labels", json={"row": 0, "label": "other"})
    assert r.status_code == 401
    assert client.post("/api/login", json={"name": "bea", "token": "wrong"}).status_code == 401
    assert client.post("/api/login", json={"name": "ana", "token": token}).status_code == 401
    r = client.post("/api/login", json={"name": "bea", "token": token})
    assert r.status_code == 200 and "httponly" in r.headers["set-cookie"].lower()
    assert "samesite=strict" in r.headers["set-cookie"].lower()
    assert token not in r.headers["set-cookie"]  # the cookie holds a session, not the token
    client.headers["X-Session-Secret"] = r.json()["secret"]  # the page keeps it in its tab
    assert client.post("/api/labels", json={"row": 0, "label": "other"}).status_code == 200
    assert labels.history(0)[-1]["annotator"] == "bea"
    # A script with the token as a bearer header needs no session.
    script = TestClient(client.app, base_url=BASE)
    r = script.post("/api/labels", json={"row": 1, "label": "emission"},
                    headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and labels.history(1)[-1]["annotator"] == "bea"
    labels.users.remove("bea")
    assert client.get("/api/queue").status_code == 401


def test_login_required_needs_a_user(project):
    with pytest.raises(SpecscoutError, match="specscout user add"):
        create_app(project, AppConfig(require_login=True, samp=False))


def test_user_names_and_tokens(project):
    labels = label_store(project)
    token = labels.users.add("cy.li@obs")
    assert len(token) >= 40 and labels.users.authenticate(token).name == "cy.li@obs"
    assert labels.users.authenticate(token + "x") is None
    with pytest.raises(SpecscoutError, match="exists"):
        labels.users.add("cy.li@obs")
    with pytest.raises(SpecscoutError, match="user name"):
        labels.users.add("a b; drop table")
    assert "cy.li@obs" in labels.users.names()


def test_audit_is_blind_and_kept_apart(client, project):
    labels = label_store(project)
    labels.audit_samples.add(1, [6, 1], ["spec-6", "spec-1"], ["rest:q<0.01", "candidate:em"],
                            [10, 2])
    q = client.get("/api/queue", params={"audit": True}).json()
    assert [i["row"] for i in q["items"]] == [6, 1]
    assert "acquisition_score" not in q["items"][0] and "stratum" not in q["items"][0]
    nxt = client.get("/api/next", params={"audit": True}).json()
    assert nxt["spectrum"]["probabilities"] is None
    client.post("/api/labels", json={"row": 6, "label": "emission", "audit": True})
    assert labels.current(audit=True) == {6: "emission"}
    assert 6 not in labels.current()
    assert client.get("/api/next", params={"audit": True}).json()["item"]["row"] == 1


def test_search(client):
    def rows(q):
        r = client.get("/api/search", params={"q": q})
        assert r.status_code == 200, r.text
        return [h["row"] for h in r.json()["items"]]

    assert rows("spec-3") == [3]
    assert rows("1004") == [4]  # obsid
    assert rows("J2") == [2]  # designation
    assert rows("row 6") == [6]
    assert rows("10.0 20.0") == [0, 1]  # within 5", nearest first
    assert rows("10.0 20.0 20") == [0, 1, 6]
    assert rows("00:40:00 +20:00:00") == [0, 1]  # sexagesimal
    assert rows("nothing-like-this") == []
    assert client.get("/api/search", params={"q": ""}).status_code == 422
    # a cone of at most a degree (one of 1.2 days of arcseconds stalled the server)
    assert rows("10.0 20.0 3600")[:2] == [0, 1]  # a degree, the largest cone
    wide = client.get("/api/search", params={"q": "10 10 99999999"})
    assert wide.status_code == 422 and "at most 3600 arcsec" in wide.json()["detail"]


def test_a_search_runs_in_the_apps_worker_process(project):
    """Searches run in a process of the app's own, which another starts if it dies, and
    which ends with the app."""
    import os
    import signal

    with TestClient(create_app(project, AppConfig(annotator="ana", samp=False)),
                    base_url=BASE) as client:
        log_in(client)
        state = client.app.state.specscout
        state.pool.search = None  # not searched in this process
        assert [h["row"] for h in client.get("/api/search", params={"q": "spec-3"}).json()[
            "items"]] == [3]
        worker = state.worker.pid()
        assert worker is not None and worker != os.getpid()
        os.kill(worker, signal.SIGKILL)
        answers = [client.get("/api/search", params={"q": "spec-4"}) for _ in range(2)]
        # 503 if the search was sent before its death was seen; then a new process serves
        assert answers[0].status_code in (200, 503) and answers[1].status_code == 200
        assert answers[-1].json()["items"][0]["row"] == 4
        assert state.worker.pid() not in (None, worker)
        last = state.worker.pid()
    with pytest.raises(ProcessLookupError):  # ended with the app
        os.kill(last, 0)


def test_a_search_waiting_for_a_busy_worker_is_answered_before_the_deadline(project):
    """A search the worker cannot take in time is answered 503 by its endpoint, never left
    to hold a place among the reads given up; past a queue of waiting searches, at once."""
    import time

    from specscout.web import work

    with TestClient(create_app(project, AppConfig(annotator="ana", samp=False,
                                                  deadline_s=1.0)), base_url=BASE) as client:
        log_in(client)
        state = client.app.state.specscout
        state.worker.submit(time.sleep, 0).result()  # started (seconds: not timed here)
        assert client.get("/api/search", params={"q": "spec-3"}).status_code == 200
        busy = state.worker.submit(time.sleep, 3)  # the worker at a long task
        r = client.get("/api/search", params={"q": "spec-3"})
        assert r.status_code == 503 and "took over 0.8 s" in r.text
        assert not state.given_up
        state.worker._waiting = work.QUEUED  # as many searches as may wait, waiting
        r = client.get("/api/search", params={"q": "spec-3"})
        assert r.status_code == 503 and "searches are waiting" in r.text
        state.worker._waiting = 0
        busy.result()
        assert client.get("/api/search", params={"q": "spec-3"}).status_code == 200


def test_a_worker_that_cannot_start_is_not_started_for_every_search(project, tmp_path):
    import asyncio

    from specscout.web import work

    worker = work.Worker(project)
    project.path.rename(tmp_path / "moved")  # the worker's start cannot open the project
    try:
        with pytest.raises(work.WorkerLost, match="ended during this request"):
            asyncio.run(worker.run(work.search, "spec-1", timeout=60))
        with pytest.raises(work.WorkerLost, match="could not start"):  # for RETRY_S
            asyncio.run(worker.run(work.search, "spec-1", timeout=60))
        assert worker.pid() is None
    finally:
        worker.close()


def test_candidates_progress_and_original(project, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the pool's paths are relative: its files are written here
    client = client_for(project, catalogues=(str(tmp_path / "ref.csv"),))
    c = client.get("/api/candidates").json()
    assert sorted(i["row"] for i in c["items"]) == [0, 1, 2, 3] and c["objects"] == 3
    assert [i["row"] for i in c["items"] if i["known"]] == [2]  # in the reference list
    client.post("/api/labels", json={"row": 5, "label": "double-peak"})
    p = client.get("/api/progress").json()
    assert p["classes"]["double-peak"]["training"] == 1
    assert p["annotators"]["ana"]["training"] == 3 and p["queue"]["done"] == 1  # 2 + 1
    label_store(project).add("spec-5", 5, "emission", "bea")
    p = client.get("/api/progress").json()
    assert p["disagreements"] == 1
    assert p["disagreeing"] == [{"row": 5, "labels": {"ana": "double-peak", "bea": "emission"}}]
    o = client.get("/api/spectrum/0/original").json()
    assert o["file"] == "f0.fits" and "cannot be read" in o["error"] and "path" not in o
    # whatever the path holds now, its bytes are not echoed
    path = project.store().records([0], ["path"]).to_pylist()[0]["path"]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("SIMPLE  = T  secret: the server's private notes")
    o = client.get("/api/spectrum/0/original").json()
    assert "cannot be read" in o["error"] and "secret" not in json.dumps(o)


def test_the_app_prepares_its_first_pages_when_it_starts(project, caplog):
    """At start-up the candidate list at the default threshold and the neighbours' features
    are made, so that the first pages find them; what cannot be made is logged."""
    from specscout.web.app import warm
    from specscout.web.state import DEFAULT_THRESHOLD

    with TestClient(create_app(project, AppConfig(annotator="ana", samp=False)),
                    base_url=BASE) as client:
        state = client.app.state.specscout
        state.neighbours = lambda: (_ for _ in ()).throw(OSError("disk gone"))
        warm(state)  # as the start-up thread does, here to be waited for
        assert [k[1] for k in state._candidates] == [DEFAULT_THRESHOLD]
        live = next(iter(state._candidates.values()))
        assert set(live._records) == {0, 1, 2, 3}  # the first page's records, read
        log_in(client)
        assert client.get("/api/candidates").json()["spectra"] == 4
        assert next(iter(state._candidates.values())) is live  # the same list, not rebuilt
    assert "could not prepare the neighbours at start-up: disk gone" in caplog.text


def test_another_annotators_label_makes_it_done(client, project):
    label_store(project).add("spec-5", 5, "emission", "bea")
    q = client.get("/api/queue").json()
    first = q["items"][0]
    assert first["row"] == 5 and first["done"] and first["label"] is None
    assert first["others"] == {"bea": "emission"}
    assert client.get("/api/next").json()["item"]["row"] == 0


def test_user_and_serve_commands(project, capsys):
    from specscout.cli import main

    assert main(["user", "add", str(project.path), "dee"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert label_store(project).users.authenticate(token).name == "dee"
    assert main(["user", "list", str(project.path)]) == 0
    assert capsys.readouterr().out.strip() == "dee\tannotator"
    assert main(["user", "add", str(project.path)]) == 2  # no name
    assert main(["user", "remove", str(project.path), "dee"]) == 0
    assert label_store(project).users.authenticate(token) is None
    capsys.readouterr()
    # Beyond loopback: TLS, or an explicit --insecure-http; and every request needs a user's
    # token, so with no users it does not start. --no-auth is for loopback only.
    assert main(["serve", str(project.path), "--host", "0.0.0.0", "--no-samp"]) == 2
    assert "--certfile and --keyfile" in capsys.readouterr().err
    assert main(["serve", str(project.path), "--host", "0.0.0.0", "--no-samp",
                 "--insecure-http"]) == 2
    assert "specscout user add" in capsys.readouterr().err
    assert main(["serve", str(project.path), "--host", "0.0.0.0", "--no-auth"]) == 2
    assert "loopback only" in capsys.readouterr().err


def test_the_spectra_kept_in_memory_are_those_of_the_store(client, project):
    """The batch's records and windows are read ahead and kept; what the page gets is what
    the store holds, and rows committed while serving are found."""
    import time

    import numpy as np

    state = client.app.state.specscout
    store = project.store()
    first = client.get("/api/next").json()
    assert first["item"]["row"] == 5
    # the next spectra of the batch are read ahead in the background, and kept
    deadline = time.monotonic() + 10
    while not (state.pool.kept(0) and state.pool.kept(2)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state.pool.kept(0) and state.pool.kept(2)
    for row in (5, 0, 2):
        got = client.get(f"/api/spectrum/{row}").json()
        assert got["record"]["id"] == store.record(row)["id"]
        np.testing.assert_allclose(got["flux"], store.flux([row])[0], atol=1e-5)
        with pytest.raises(ValueError):  # kept, so never written by a caller
            state.pool.flux(row)[0] = 1.0
    assert first["spectrum"]["record"]["id"] == store.record(first["item"]["row"])["id"]
    n = len(store)
    flux = np.random.default_rng(1).normal(size=(2, 140)).astype(np.float32)
    store.commit(flux, [{"path": f"new{i}.fits", "id": f"new-{i}", "status": "ok", "flags": 0,
                         "reason": "", "detail": ""} for i in range(2)])
    got = client.get(f"/api/spectrum/{n + 1}").json()
    assert got["record"]["id"] == "new-1"
    np.testing.assert_allclose(got["flux"], flux[1], atol=1e-5)
    assert client.get(f"/api/spectrum/{n + 2}").status_code == 404
