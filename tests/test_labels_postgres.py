"""The label store on a real PostgreSQL server (``.ci/run`` starts one on loopback and sets
SPECSCOUT_TEST_POSTGRES_URL); the same behaviour as on SQLite, and the web app on top."""

from __future__ import annotations

import os

import httpx2 as httpx
import pytest
import sqlalchemy as sa
from test_candidates import make_project

from specscout.labels import LabelStore
from specscout.labels.schema import metadata
from specscout.web import AppConfig, create_app

from conftest import annotate_at_once

URL = os.environ.get("SPECSCOUT_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(
    not URL, reason="no PostgreSQL server: set SPECSCOUT_TEST_POSTGRES_URL (.ci/run starts one)")


@pytest.fixture
def store():
    engine = sa.create_engine(URL)
    metadata.drop_all(engine)  # a database of its own: start empty
    engine.dispose()
    s = LabelStore(URL)
    yield s
    s.engine.dispose()


def test_labels_queue_audit_and_users(store):
    assert store.engine.dialect.name == "postgresql"
    store.add("a", 1, "emission", "ana", iteration=2, acquisition_score=0.7)
    store.add("a", 1, "emission", "bea")
    store.add("b", 2, "other", "ana")
    store.add("b", 2, "emission", "bea")  # a disagreement
    store.add("c", 3, "other", "ana")
    store.add("c", 3, None, "ana")  # retracted
    store.add_many([{"spectrum": "d", "row": 4, "label": "double-peak", "annotator": "csv",
                     "audit": True}])
    assert store.current() == {1: "emission"}
    assert store.disagreements() == {2: {"ana": "other", "bea": "emission"}}
    assert store.current(audit=True) == {4: "double-peak"}
    assert store.latest([1, 3, 9]) == {1: {"ana": "emission", "bea": "emission"},
                                       3: {"ana": None}}
    assert store.history(1)[0]["acquisition_score"] == pytest.approx(0.7)
    store.queue.put(1, [7, 8], ["x", "y"], [0.9, 0.5], "entropy")
    assert [q["row"] for q in store.queue.batch()] == [7, 8]
    draw = store.audit_samples.add(1, [5, 6], ["e", "f"], ["candidate:emission", "rest:q<0.01"],
                                  [3, 900])
    assert [s["row"] for s in store.audit_samples.sample(draw)] == [5, 6]
    token = store.users.add("cy")
    assert store.users.authenticate(token).name == "cy" and store.users.names() == ["cy"]
    store.users.set_role("cy", "auditor")
    assert store.users.roles() == {"cy": "auditor"}
    # sessions, and the serials that tell the app's caches a batch changed
    session, secret = store.users.open_session("cy", 1)
    assert store.users.session(session, secret) == ("cy", "auditor")
    assert store.users.session(session, "guess") is None
    assert store.users.session("guess", secret) is None
    [listed] = store.users.sessions()
    assert listed["annotator"] == "cy" and listed["opened_by"] == "login"
    assert store.users.revoke((listed["id"],)) == 1
    assert store.users.session(session, secret) is None
    before = store.serial("queue")
    assert store.queue.extend(1, [9, 7], ["z", "x"]) == 1  # 7 is in the batch already
    store.queue.put(1, [8, 6], ["y", "w"], [0.8, 0.4], "rare")  # the hand-picked 9 stays
    assert [(q["row"], q["rank"]) for q in store.queue.batch(1)] == [(8, 0), (6, 1), (9, 2)]
    assert store.serial("queue") == before + 2 and store.audit_samples.drawn() == {5, 6}


def test_the_app_on_postgresql_loses_no_label(store, tmp_path):
    project = make_project(tmp_path)
    app = create_app(project, AppConfig(annotator="ana", samp=False))
    state = app.state.specscout
    state.labels = store  # the team's database instead of the project's SQLite file
    tokens = {f"t{i}": store.users.add(f"t{i}") for i in range(4)}
    acks: list[tuple[int, str, int, str]] = []

    def annotate(name: str, token: str, url: str) -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
            for k in range(50):
                r = c.post("/api/labels", json={"row": k % 7, "label": "other"})
                assert r.status_code == 200, r.text
                acks.append((r.json()["id"], name, k % 7, r.json()["spectrum"]))

    annotate_at_once(app, tokens, annotate)
    history = {h["id"]: h for h in store.history()}
    assert len(history) == len(acks) == 200
    for label_id, name, row, spectrum in acks:
        h = history[label_id]
        assert (h["annotator"], h["row"], h["spectrum"]) == (name, row, spectrum)
