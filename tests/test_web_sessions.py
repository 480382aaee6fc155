"""Sessions a cookie alone cannot use, listed and revoked from the command line; roles; the
label database watched while serving; a server that stops when told."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import httpx2 as httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from test_candidates import make_project
from test_web import BASE, client_for, enqueue

from specscout.cli import main
from specscout.labels import close_label_stores, label_store
from specscout.labels import users as users_module
from specscout.web import AppConfig, create_app

from conftest import printed


@pytest.fixture
def project(tmp_path):
    p = make_project(tmp_path)
    enqueue(p)
    return p


def logged_in(project, name: str, token: str) -> TestClient:
    """A client of a login-only app, logged in as ``name`` the way the page does it."""
    client = client_for(project, require_login=True)
    r = client.post("/api/login", json={"name": name, "token": token})
    assert r.status_code == 200, r.text
    client.headers["X-Session-Secret"] = r.json()["secret"]
    return client


def test_sessions_are_listed_and_revoked_from_the_command_line(project, capsys):
    owner = client_for(project)  # the one-time link's session
    token = label_store(project).users.add("bea")
    bea = logged_in(project, "bea", token)
    assert main(["user", "sessions", str(project.path)]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()[1:]]
    assert sorted((r[1], r[2]) for r in rows) == [("ana", "launch"), ("bea", "login")]
    launch_id = next(r[0] for r in rows if r[1] == "ana")
    # an id that names nothing, or a word, is refused and nothing ends
    assert main(["user", "revoke", str(project.path), "abcdef0"]) == 2
    assert main(["user", "revoke", str(project.path), "x; DROP"]) == 2
    assert main(["user", "revoke", str(project.path)]) == 2
    capsys.readouterr()
    assert owner.get("/api/queue").status_code == 200
    # the launch link's session, by the start of its id: gone at once
    assert main(["user", "revoke", str(project.path), launch_id[:8]]) == 0
    assert "1 session ended" in capsys.readouterr().out
    r = owner.post("/api/labels", json={"row": 0, "label": "other"})
    assert r.status_code == 401 and "log in again" in r.text
    assert bea.get("/api/queue").status_code == 200
    assert main(["user", "revoke", str(project.path), "--user", "bea"]) == 0
    assert bea.get("/api/queue").status_code == 401
    assert main(["user", "sessions", str(project.path)]) == 0
    assert "no open sessions" in capsys.readouterr().out


def test_a_session_opened_in_one_tab_is_not_another_tab_s(project):
    owner = client_for(project)
    tab = TestClient(owner.app, base_url=BASE, cookies=owner.cookies)  # same browser
    assert tab.get("/api/session").json()["annotator"] is None  # offered the login form
    assert tab.get("/api/queue").status_code == 401
    # the secret of one session does not open another
    token = label_store(project).users.add("bea")
    bea = logged_in(project, "bea", token)
    mixed = TestClient(owner.app, base_url=BASE, cookies=owner.cookies,
                       headers={"X-Session-Secret": bea.headers["X-Session-Secret"]})
    assert mixed.get("/api/queue").status_code == 401


def test_roles_say_who_labels_what_and_who_changes_the_queue(project, capsys):
    labels = label_store(project)
    labels.audit_samples.add(1, [6], ["spec-6"], ["rest"], [3])
    auditor = logged_in(project, "cy", labels.users.add("cy", "auditor"))
    annotator = logged_in(project, "bea", labels.users.add("bea"))
    assert auditor.get("/api/session").json()["role"] == "auditor"
    before = len(labels.history())
    r = auditor.post("/api/labels", json={"row": 0, "label": "other"})
    assert r.status_code == 403 and "audit sample only" in r.text
    r = auditor.post("/api/labels", json={"row": 6, "label": "other", "audit": True})
    assert r.status_code == 200
    assert annotator.post("/api/labels", json={"row": 0, "label": "other"}).status_code == 200
    r = annotator.post("/api/queue/add", json={"rows": [1]})
    assert r.status_code == 403 and "only the project's owner" in r.text
    assert len(labels.history()) == before + 2
    # the launch link's session is the owner's
    assert client_for(project).post("/api/queue/add", json={"rows": [1]}).status_code == 200
    # a role given from the command line holds from the next request on
    assert main(["user", "role", str(project.path), "bea", "owner"]) == 0
    assert main(["user", "list", str(project.path)]) == 0
    assert "bea\towner" in capsys.readouterr().out
    assert annotator.post("/api/queue/add", json={"rows": [2]}).status_code == 200
    assert main(["user", "role", str(project.path), "bea", "admin"]) == 2
    assert main(["user", "add", str(project.path), "dee", "--role", "root"]) == 2
    assert labels.users.roles() == {"bea": "owner", "cy": "auditor"}


def test_a_label_database_that_goes_while_serving_is_a_503_and_never_made_again(project,
                                                                               capsys):
    client = client_for(project)
    assert client.post("/api/labels", json={"row": 0, "label": "other"}).status_code == 200
    db = project.path / "labels.db"
    kept = project.path.parent / "kept.db"
    shutil.copy(db, kept)
    for f in project.path.glob("labels.db*"):
        f.unlink()
    for _ in range(2):
        r = client.post("/api/labels", json={"row": 1, "label": "emission"})
        assert r.status_code == 503 and "has gone" in r.text
    assert client.get("/api/session").status_code == 503
    # another process (a restart, a command) refuses rather than make an empty one
    close_label_stores()
    with pytest.raises(Exception, match="has gone, but this project had one"):
        create_app(project, AppConfig(annotator="ana", samp=False))
    assert main(["status", str(project.path)]) == 2
    assert "has gone" in capsys.readouterr().err
    assert not db.exists()
    # restored: served again; replaced while serving: a 503 as well
    shutil.copy(kept, db)
    client = client_for(project)
    assert client.get("/api/queue").status_code == 200
    db.unlink()
    shutil.copy(kept, db)  # a new file at the same path
    r = client.post("/api/labels", json={"row": 1, "label": "emission"})
    assert r.status_code == 503 and "was replaced" in r.text


def test_a_read_only_label_database_is_refused_at_start(project, capsys):
    label_store(project)
    db = project.path / "labels.db"
    db.chmod(0o444)
    try:
        with pytest.raises(Exception, match="read-only"):
            create_app(project, AppConfig(annotator="ana", samp=False))
        assert main(["serve", str(project.path), "--no-samp", "--port", "0"]) == 2
        assert "read-only" in capsys.readouterr().err
    finally:
        db.chmod(0o600)


def test_the_one_time_link_is_spent_only_once_its_session_is_stored(project, monkeypatch):
    app = create_app(project, AppConfig(annotator="ana", samp=False))
    client = TestClient(app, base_url=BASE)
    client.headers["X-CSRF-Token"] = client.get("/api/session").json()["csrf"]
    token = app.state.specscout.launch_token
    real = users_module.Users.open_session

    def failing(self, *a, **k):
        raise sa.exc.OperationalError("INSERT", {}, Exception("attempt to write a readonly "
                                                              "database"))

    monkeypatch.setattr(users_module.Users, "open_session", failing)
    r = client.post("/api/launch", json={"token": token})
    assert r.status_code == 503 and "not acknowledged" in r.text
    monkeypatch.setattr(users_module.Users, "open_session", real)
    r = client.post("/api/launch", json={"token": token})  # the same link still works
    assert r.status_code == 200 and r.json()["secret"]
    assert client.post("/api/launch", json={"token": token}).status_code == 401


def test_the_server_stops_on_sigterm_while_requests_are_in_flight(project):
    proc = subprocess.Popen(
        [sys.executable, "-m", "specscout.cli", "serve", str(project.path), "--port", "0",
         "--no-samp"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        link = printed(proc, r"(http://127\.0\.0\.1:\d+/\?token=\S+)").group(1)
        url = link.split("/?token=")[0]
        served = threading.Event()
        stop = threading.Event()
        login = httpx.Client(base_url=url, timeout=30)
        for _ in range(600):
            try:
                csrf = login.get("/api/session").json()["csrf"]
                break
            except httpx.TransportError:
                time.sleep(0.05)
        r = login.post("/api/launch", json={"token": link.rsplit("token=", 1)[1]},
                       headers={"X-CSRF-Token": csrf})
        secret = r.json()["secret"]

        answers: list[tuple[float, int]] = []  # (when it came, status)

        def search() -> None:  # the widest search there is, again and again
            with httpx.Client(base_url=url, timeout=30, cookies=login.cookies,
                              headers={"X-Session-Secret": secret}) as c:
                while not stop.is_set():
                    try:
                        code = c.get("/api/search", params={"q": "10 10 3600"}).status_code
                    except httpx.TransportError:
                        return
                    answers.append((time.monotonic(), code))
                    served.set()

        threads = [threading.Thread(target=search) for _ in range(4)]
        for t in threads:
            t.start()
        assert served.wait(60)
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        assert time.monotonic() - began < 15
        stop.set()
        for t in threads:
            t.join(10)
        # served until told to stop; then answered, or refused as the app stops, or cut off
        assert {code for at, code in answers if at < began} == {200}
        assert {code for at, code in answers if at >= began} <= {200, 503}
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_label_database_of_an_earlier_version_is_upgraded(tmp_path):
    """Users without a role, sessions without a page's secret: the users become
    annotators, and such a session opens nothing (its page logs in again)."""
    from specscout.labels.store import LabelStore
    from specscout.labels.users import token_hash

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE users (name VARCHAR PRIMARY KEY, token_hash VARCHAR "
                             "NOT NULL UNIQUE, created DATETIME NOT NULL)"))
        conn.execute(sa.text("CREATE TABLE sessions (token_hash VARCHAR PRIMARY KEY, annotator "
                             "VARCHAR NOT NULL, created DATETIME NOT NULL, expires DATETIME "
                             "NOT NULL)"))
        conn.execute(sa.text("INSERT INTO users VALUES ('bea', :h, '2026-01-01 00:00:00')"),
                     {"h": token_hash("bea-token")})
        conn.execute(sa.text("INSERT INTO sessions VALUES (:h, 'bea', '2026-01-01 00:00:00', "
                             "'2999-01-01 00:00:00')"), {"h": token_hash("cookie")})
    engine.dispose()
    store = LabelStore(url)
    assert store.users.authenticate("bea-token") == ("bea", "annotator")
    assert store.users.session("cookie", "") is None
    assert [s["opened_by"] for s in store.users.sessions()] == ["an earlier version"]
    token, secret = store.users.open_session("bea", 1)
    assert store.users.session(token, secret) == ("bea", "annotator")
    store.engine.dispose()


def test_without_authentication_the_database_is_watched_too(project):
    client = TestClient(create_app(project, AppConfig(annotator="ana", auth=False,
                                                      samp=False)), base_url=BASE)
    client.headers["X-CSRF-Token"] = client.get("/api/session").json()["csrf"]
    assert client.post("/api/labels", json={"row": 0, "label": "other"}).status_code == 200
    for f in project.path.glob("labels.db*"):
        f.unlink()
    r = client.post("/api/labels", json={"row": 1, "label": "other"})
    assert r.status_code == 503 and "has gone" in r.text


def test_an_sqlite_url_with_options_is_the_file_it_names(tmp_path):
    from specscout.archive.project import Project, ProjectConfig

    project = Project.init(tmp_path / "p", ProjectConfig(
        labels_url="sqlite:///labels.db?timeout=30"))
    label_store(project).add("s", 0, "other", "ana")
    assert (project.path / ".labels-made").read_text().strip() == str(
        (project.path / "labels.db").resolve())
    close_label_stores()
    assert len(label_store(project).history()) == 1  # opened again, not refused
