"""The map of the pool and the nearest labelled spectra: which spectra are on the map, the
audit's never; neighbours in the network's features; a selection sent to the queue; the page
in Chromium."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from playwright import sync_api
from test_browser import browser  # noqa: F401  (a fixture)
from test_experiment import CLASSES, synthetic_pool

from specscout.archive.project import Project
from specscout.cli import main
from specscout.labels import label_store
from specscout.learn.iterations import load_map
from specscout.learn.map import CANDIDATE, LABELLED, SAMPLE, map_rows
from specscout.web import AppConfig, create_app

from conftest import LiveServer, log_in, scored_iteration

BASE = "http://127.0.0.1"


def test_which_spectra_are_on_the_map():
    rng = np.random.default_rng(0)
    labelled, candidates, hidden = np.arange(0, 500), np.arange(400, 2000), np.array([3, 1500])
    rows, kind = map_rows(10_000, labelled, candidates, hidden, 1000, rng)
    assert len(rows) == len(set(rows.tolist())) == 1000
    assert not set(hidden) & set(rows.tolist())
    assert (kind == LABELLED).sum() == 250 and (kind == CANDIDATE).sum() == 250  # a quarter each
    assert set(rows[kind == CANDIDATE]) <= set(candidates) - set(rows[kind == LABELLED])
    assert (kind == SAMPLE).sum() == 500
    # a small pool: everything, but the hidden
    rows, kind = map_rows(50, np.array([1, 2]), np.array([2, 7]), np.array([9]), 1000, rng)
    assert sorted(rows.tolist()) == [r for r in range(50) if r != 9]
    assert kind[rows.tolist().index(7)] == CANDIDATE and kind[rows.tolist().index(1)] == LABELLED
    # a large pool is sampled without a mask of it
    rows, kind = map_rows(10_000_000, labelled, candidates, hidden, 2000, rng)
    assert len(set(rows.tolist())) == 2000 and rows.max() < 10_000_000


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """400 synthetic spectra scored by an (untrained) network; rows 0-29 labelled, row 400
    a near copy of row 0; an audit draw of rows 100 and 101."""
    tmp = tmp_path_factory.mktemp("map")
    x, y = synthetic_pool(400, 3)
    x = np.concatenate([x, x[:1] + 1e-4])
    project = Project.init(tmp / "p")
    project.store().commit(x, [{"path": f"f{i}.fits", "id": f"s{i}", "status": "ok",
                                "flags": 0, "reason": "", "detail": ""} for i in range(len(x))])
    p = np.full((len(x), 3), 0.1, np.float32)
    p[np.arange(len(x)), np.r_[y, 0]] = 0.8
    scored_iteration(project, 1, p)
    labels = label_store(project)
    for r in range(30):
        labels.add(f"s{r}", r, CLASSES[y[r]], "ana")
    labels.audit_samples.add(1, [100, 101], ["s100", "s101"], ["rest", "rest"], [300, 300])
    assert main(["map", str(project.path), "--points", "300"]) == 0
    return project, y


def test_the_map_command_keeps_the_map_beside_the_iteration(project):
    project, y = project
    m = load_map(project, 1)
    rows = m["rows"].tolist()
    assert len(rows) == 300 and m["xy"].shape == (300, 2) and np.isfinite(m["xy"]).all()
    assert set(range(30)) <= set(rows) and not {100, 101} & set(rows)
    candidates = {r for r in range(401) if r not in range(30) and ([*y, 0][r] > 0)}
    assert candidates - {100, 101} <= set(rows)  # every candidate (fewer than a quarter)


def test_the_map_and_neighbours_through_the_app(project):
    project, y = project
    client = log_in(TestClient(create_app(project, AppConfig(annotator="ana", samp=False)),
                               base_url=BASE))
    m = client.get("/api/map").json()
    assert m["points"] == 300 and len(m["x"]) == len(m["row"]) == len(m["label"]) == 300
    labelled = {r: lab for r, lab in zip(m["row"], m["label"], strict=True) if lab >= 0}
    assert labelled == {r: int(y[r]) for r in range(30)}
    # a label given after the map was made shows at once; a new audit draw leaves the map
    client.post("/api/labels", json={"row": 200, "label": "emission"})
    label_store(project).audit_samples.add(1, [201], ["s201"], ["rest"], [300])
    m = client.get("/api/map").json()
    assert m["label"][m["row"].index(200)] == 1 and 201 not in m["row"]
    # the nearest labelled spectrum to a near copy of row 0 is row 0
    near = client.get("/api/spectrum/400/neighbours").json()["neighbours"]
    assert near[0]["row"] == 0 and near[0]["distance"] < 1e-2 and len(near) == 5
    assert near[0]["label"] == CLASSES[y[0]] and len(near[0]["flux"]) == 140
    assert all(n["row"] in set(range(30)) | {200} for n in near)
    assert client.get("/api/spectrum/201/neighbours").json() == {
        "row": 201, "neighbours": [], "blind": True}  # an audit spectrum
    assert client.get("/api/spectrum/999/neighbours").status_code == 404


def test_a_selection_is_sent_to_the_queue(project):
    project, _ = project
    client = log_in(TestClient(create_app(project, AppConfig(annotator="ana", samp=False)),
                               base_url=BASE))
    r = client.post("/api/queue/add", json={"rows": [250, 251, 250]})
    assert r.status_code == 200 and r.json() == {"iteration": 1, "added": 2, "asked": 2}
    assert client.post("/api/queue/add", json={"rows": [251, 252]}).json()["added"] == 1
    items = client.get("/api/queue").json()["items"]
    assert [i["row"] for i in items] == [250, 251, 252]
    assert all(i["acquisition_score"] is None for i in items)
    assert client.post("/api/queue/add", json={"rows": [5000]}).status_code == 404
    assert client.post("/api/queue/add", json={"rows": list(range(6000))}).status_code == 422
    assert [q["row"] for q in label_store(project).queue.batch(1)] == [250, 251, 252]


def test_the_map_page_in_chromium(project, browser):  # noqa: F811
    """Hover shows the spectrum, a click opens it, a lasso sends a selection to the queue."""
    project, _ = project
    problems: list[str] = []
    with LiveServer(create_app(project, AppConfig(annotator="ana", samp=False))) as server:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: m.type == "error" and problems.append(m.text))
        page.on("pageerror", lambda e: problems.append(f"{e} {e.stack}"))
        page.goto(server.launch_url)
        expect = sync_api.expect
        expect(page.locator("#who")).to_contain_text("labelling as")  # the link traded
        expect(page.locator("h2")).to_be_visible()  # the first page, loaded
        page.goto(f"{server.url}/#/map")
        expect(page.locator("h2")).to_contain_text("Map of the pool (iteration 1")
        box = page.locator("#map").bounding_box()

        def on_screen(i: int) -> tuple[float, float]:  # point i of the map, in page pixels
            x, y = page.evaluate(f"(() => {{ const s = mapScale(); return [s.px({i}), "
                                 f"s.py({i})]; }})()")
            return box["x"] + x * box["width"] / 1000, box["y"] + y * box["height"] / 640

        rows = page.evaluate("S.map.m.row")
        i = rows.index(0)
        page.mouse.move(*on_screen(i))
        expect(page.locator("#map-tip")).to_be_visible()
        expect(page.locator("#map-tip div")).to_contain_text("s0")
        # a lasso around the whole map selects every point, sent to the queue
        before = len(label_store(project).queue.batch())
        page.mouse.move(box["x"] + 2, box["y"] + 2)
        page.mouse.down()
        for fx, fy in ((0.99, 0.01), (0.99, 0.99), (0.01, 0.99), (0.01, 0.02)):
            page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"],
                            steps=4)
        page.mouse.up()
        expect(page.locator("#map-selected")).to_contain_text(f"{len(rows)} selected")
        page.click("#map-send")
        expect(page.locator("#toast")).to_contain_text("added to the queue")
        assert len(label_store(project).queue.batch()) == before + len(
            set(rows) - {q["row"] for q in label_store(project).queue.batch()[:before]})
        # a click opens the spectrum, with its nearest labelled spectra
        page.mouse.click(*on_screen(rows.index(400)))
        expect(page).to_have_url(f"{server.url}/#/spectrum/400")
        expect(page.locator("#neighbours")).to_contain_text("Nearest labelled spectra")
        expect(page.locator(".thumb").first).to_contain_text("row 0")
    assert not problems, problems


def test_the_map_command_says_each_stage_unless_quiet(project, capsys):
    project, _ = project
    assert main(["map", str(project.path), "--points", "100"]) == 0
    out = capsys.readouterr().out
    assert "the network's features of 100 spectra" in out and "UMAP layout" in out
    assert main(["map", str(project.path), "--points", "100", "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["map", str(project.path), "--points", "300", "--quiet"]) == 0  # as it was
