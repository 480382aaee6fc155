"""The labelling page in a real browser: headless Chromium (the system's, e.g. Debian's
package) driven by Playwright. Load the queue, label by key presses, undo, reload and find the
labels still there; a screenshot goes to the test artefacts."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from test_web import enqueue

from specscout.labels import label_store
from specscout.web import AppConfig, create_app

from conftest import LiveServer

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

ARTEFACTS = Path(os.environ.get("SPECSCOUT_TEST_ARTEFACTS",
                                Path(__file__).resolve().parents[1] / "test-artefacts"))
# Chromium is started as in a locked-down CI box: no sandbox (root), no background traffic.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    path = os.environ.get("SPECSCOUT_CHROMIUM") or shutil.which("chromium") or \
        shutil.which("chromium-browser")
    if not path:
        pytest.skip("no Chromium found (install Debian's 'chromium' package or set "
                    "SPECSCOUT_CHROMIUM)")
    return path


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), headless=True, args=FLAGS)
        yield b
        b.close()


def test_label_by_keys_undo_and_reload(browser, tmp_path):
    from test_candidates import make_project

    project = make_project(tmp_path)
    enqueue(project)  # rows 5, 0, 2
    labels = label_store(project)
    problems: list[str] = []
    with LiveServer(create_app(project, AppConfig(annotator="ana", samp=False))) as server:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: m.type == "error" and problems.append(m.text))
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(server.launch_url)  # the one-time link opens a session
        expect = sync_api.expect
        heading = page.locator("h2")
        expect(heading).to_contain_text("rank 1")
        expect(page.locator("#plot-window canvas")).to_have_count(1)
        expect(page.locator("td", has_text="spec-5")).to_have_count(1)
        # Hovering the plot shows the wavelength and flux under the cursor.
        over = page.locator("#plot-window .u-over")
        box = over.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        expect(page.locator("#plot-window .u-legend .u-value").first).to_have_text(
            re.compile(r"^66\d\d\.\d\d$"))

        page.keyboard.press("2")  # emission, saved at once, then the next spectrum
        expect(page.locator("#toast")).to_contain_text("✓ emission: spec-5")
        expect(heading).to_contain_text("rank 2")
        assert labels.current()[5] == "emission"

        page.keyboard.press("1")  # row 0: other
        expect(heading).to_contain_text("rank 3")
        assert labels.current()[0] == "other"

        page.keyboard.press("z")  # undo: back on row 0, unlabelled again
        expect(page.locator("#toast")).to_contain_text("undone: spec-0")
        expect(page.locator("#my-label")).to_have_text("none")
        assert 0 not in labels.current()

        page.keyboard.press("u")  # unsure: skipped, comes round again
        expect(heading).to_contain_text("rank 3")
        page.keyboard.press("3")  # row 2: double-peak; then row 0 again (skipped)
        expect(heading).to_contain_text("rank 2")
        assert labels.current()[2] == "double-peak"

        page.keyboard.press("c")  # a comment, saved with the current label
        page.locator("#comment-text").fill("broad wings, check the red side")
        page.keyboard.press("Control+Enter")
        expect(page.locator("#toast")).to_contain_text("spec-0")
        assert labels.history(0)[-1]["comment"] == "broad wings, check the red side"

        page.keyboard.press("p")  # previous: row 5, with its label shown
        expect(page.locator("#my-label")).to_have_text("emission")
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTEFACTS / "labelling.png"), full_page=True)

        page.reload()  # what was saved is what the page shows after a reload
        expect(heading).to_contain_text("rank 2")  # row 0, the only one left
        page.goto(f"{server.url}/#/spectrum/2")
        expect(page.locator("#my-label")).to_have_text("double-peak")
        page.goto(f"{server.url}/#/progress")
        expect(page.locator("main")).to_contain_text("2 of 3 labelled")
        expect(page.locator("#curves .uplot")).to_have_count(2)  # labels, predictions

        # The audit sample: labelled blind (no model output), stored apart.
        labels.audit_samples.add(1, [6], ["spec-6"], ["rest:q<0.01"], [5])
        page.goto(f"{server.url}/#/audit")
        expect(heading).to_contain_text("Audit sample")
        expect(page.locator("main")).to_contain_text("Labelled blind")
        page.keyboard.press("2")
        expect(heading).to_contain_text("all labelled")
        assert labels.current(audit=True) == {6: "emission"} and 6 not in labels.current()
        page.locator("tr.link").first.click()  # back to it, still on the audit page
        expect(heading).to_contain_text("Audit sample")
        expect(page.locator("#my-label")).to_have_text("emission")
    assert not problems, problems
