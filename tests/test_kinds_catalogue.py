"""Kinds in the candidate catalogue: every candidate measured on its file, listed by its kind
as the project's [targets] says, the measurements as columns with units and UCDs, kept in the
project; `specscout measure`; the unusual first."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io.votable import parse
from test_lines import _template, star

from specscout.archive.ingest import ingest
from specscout.archive.project import Project, ProjectConfig
from specscout.catalogue.candidates import build, listed_kinds, write
from specscout.catalogue.lines import DIRECTORY
from specscout.cli import main
from specscout.errors import SpecscoutError
from specscout.learn.strategies import query_unusual
from specscout.simulate.artefacts import add_artefact
from specscout.simulate.inject import inject
from specscout.spectra.writers import write_lamost

from conftest import lamost_meta, scored_iteration

#: What each file of the pool holds, in row order (a spike is no line; a quiet star none).
POOL = ("stellar", "nebular", "core", "spike", "none")


def _spectra():
    a_star, k_star = _template("A", deep=True), _template("K", deep=False)
    rng = np.random.default_rng(1)
    lines = {"stellar": (k_star, {"family": "single", "ew": -10.0, "sigma": 100.0}),
             "nebular": (a_star, {"family": "nebular", "ew": -6.0, "sigma": 10.0,
                                  "nii_ratio": 0.6, "sii_ratio": 0.0, "sii_doublet": 1.0}),
             "core": (a_star, {"family": "core", "ew": -3.0, "sigma": 30.0}),
             "spike": (k_star, None), "none": (a_star, None)}
    out = []
    for name in POOL:
        template, line = lines[name]
        _, noisy = star(template, None, snr=100, seed=len(out))
        if line:
            noisy = inject(noisy, line, 0.0, rng)
        if name == "spike":
            noisy = add_artefact(noisy, {"family": "spike", "at": 6620.0, "pixels": 1,
                                         "height": 1.5})
        out.append(noisy)
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("files")
    for i, (name, s) in enumerate(zip(POOL, _spectra(), strict=True)):
        meta = lamost_meta(id=f"spec-{name}", ra=10.0 + i, dec=20.0, obsid=100 + i,
                           designation=f"J{i}")
        write_lamost(folder / f"spec-{name}.fits", s.flux, s.ivar, meta)
    return folder


@pytest.fixture
def project(tmp_path, files):
    p = Project.init(tmp_path / "p")
    ingest(p.store("pool"), [files], p.config.preprocess(), workers=None, progress=False)
    ids = p.store("pool").meta(columns=["row", "id"]).sort_by("row")["id"].to_pylist()
    assert sorted(ids) == sorted(f"spec-{n}" for n in POOL)
    # the model proposes every spectrum as emission
    scored_iteration(p, 1, np.tile([0.05, 0.9, 0.05], (len(ids), 1)))
    return p


def _kinds(cat) -> dict[str, str]:
    return {str(i).removeprefix("spec-"): str(k)
            for i, k in zip(cat.spectra["id"], cat.spectra["kind"], strict=True)}


def test_candidates_are_listed_by_their_measured_kind(project, tmp_path):
    cat = build(project)
    assert _kinds(cat) == {"stellar": "stellar", "nebular": "nebular", "core": "core"}
    assert cat.set_aside == {"artefact": 1, "none": 1}
    flagged = dict(zip(cat.spectra["id"], cat.spectra["flagged"], strict=True))
    assert flagged == {"spec-stellar": False, "spec-nebular": True, "spec-core": False}
    s = {str(r["id"]): r for r in cat.spectra}
    assert s["spec-stellar"]["ha_emission_ew"] == pytest.approx(-10, rel=0.1)
    assert 0.4 < s["spec-nebular"]["nii_ha"] < 0.8 and s["spec-core"]["ha_ew"] > 0
    # the objects carry their lead spectrum's measurement and their kinds
    assert sorted(cat.objects["kinds"]) == ["core", "nebular", "stellar"]
    # the measurements are kept: a second catalogue reads them, measures nothing
    parts = sorted((project.path / DIRECTORY).glob("part-*.parquet"))
    assert len(parts) == 1
    build(project)
    assert sorted((project.path / DIRECTORY).glob("part-*.parquet")) == parts
    # VOTable columns with units and UCDs
    write(cat.spectra, tmp_path / "c.xml")
    fields = {f.name: f for f in parse(tmp_path / "c.xml").get_first_table().fields}
    assert str(fields["ha_ew"].unit) == "Angstrom" and fields["ha_ew"].ucd == \
        "spect.line.eqWidth"
    assert fields["kind"].ucd == "src.class" and str(fields["ha_fwhm"].unit) == "km / s"


def test_kinds_asked_for_flagged_ones_left_out_and_nebulae_set_to_other(project):
    assert set(_kinds(build(project, kinds=("all",)))) == set(POOL)
    assert _kinds(build(project, kinds=("artefact",))) == {"spike": "artefact"}
    assert set(_kinds(build(project, flagged=False))) == {"stellar", "core"}
    text = (project.path / "specscout.toml").read_text()
    (project.path / "specscout.toml").write_text(text.replace('nebular = "flag"',
                                                              'nebular = "other"'))
    p = Project(project.path)
    assert p.config.targets["nebular"] == "other"
    assert set(_kinds(build(p))) == {"stellar", "core"}
    with pytest.raises(SpecscoutError, match="unknown kind 'be-star'"):
        listed_kinds(p, ("be-star",))


def test_a_human_label_lists_a_spectrum_whatever_its_kind(project):
    from specscout.labels import label_store

    ids = project.store("pool").meta(columns=["row", "id"]).sort_by("row")["id"].to_pylist()
    row = ids.index("spec-none")
    label_store(project).add("spec-none", row, "emission", "ana")
    assert "none" in _kinds(build(project))
    assert "none" not in _kinds(build(project, kinds=("stellar",)))


def test_unmeasured_or_unreadable_candidates_are_unknown_and_listed(project, files, tmp_path):
    cat = build(project, lines=False)
    assert set(_kinds(cat).values()) == {"unknown"} and len(cat.spectra) == len(POOL)
    assert set(cat.spectra["lines_status"]) == {"not measured"}
    moved = tmp_path / "elsewhere"
    files.rename(moved)  # the files are on another machine now
    try:
        cat = build(project)
    finally:
        moved.rename(files)
    assert set(_kinds(cat).values()) == {"unknown"}
    assert set(cat.spectra["lines_status"]) == {"unreadable"}
    assert np.all(np.isnan(cat.spectra["ha_ew"]))
    assert not (project.path / DIRECTORY).exists()  # nothing kept: tried again next time
    assert _kinds(build(project))["stellar"] == "stellar"


def test_the_targets_config_is_checked():
    text = ProjectConfig().to_toml()
    assert '[targets]' in text and 'nebular = "flag"' in text
    assert ProjectConfig.from_toml(text).targets == {"stellar": "target", "nebular": "flag",
                                                    "core": "target"}
    with pytest.raises(SpecscoutError, match=r"targets\.nebular must be one of"):
        ProjectConfig.from_toml(text.replace('nebular = "flag"', 'nebular = "maybe"'))
    with pytest.raises(SpecscoutError, match=r"unknown key targets\.stelar"):
        ProjectConfig.from_toml(text.replace('core = "target"',
                                             'core = "target"\nstelar = "other"'))


def test_candidates_command_says_what_it_set_aside(project, capsys, tmp_path):
    assert main(["candidates", str(project.path), "--out", str(tmp_path / "c.csv")]) == 0
    out = capsys.readouterr().out
    assert "by kind (spectra): core 1, nebular (flagged) 1, stellar 1" in out
    assert "set aside" in out and "artefact 1" in out and "none 1" in out
    assert main(["candidates", str(project.path), "--kind", "stellar,none"]) == 0
    assert "by kind (spectra): none 1, stellar 1" in capsys.readouterr().out
    assert main(["candidates", str(project.path), "--kind", "quasar"]) == 2
    assert "unknown kind 'quasar'" in capsys.readouterr().err


def test_measure_command(files, tmp_path, capsys):
    assert main(["measure", str(files / "spec-nebular.fits"), str(files / "spec-spike.fits"),
                 "--out", str(tmp_path / "m.xml")]) == 0
    out = capsys.readouterr().out
    assert "spec-nebular: nebular" in out and "[N II]/H-alpha 0." in out
    assert "spec-spike: artefact, spike:66" in out
    table = parse(tmp_path / "m.xml").get_first_table().to_table()
    assert list(table["kind"]) == ["nebular", "artefact"]
    assert main(["measure", str(tmp_path / "missing.fits")]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_the_unusual_strategy_asks_first_about_the_oddest_likely_target():
    rng = np.random.default_rng(0)
    n = 400
    p = np.zeros((n, 3))
    p[:, 1] = rng.uniform(0, 1, n)
    p[:, 0] = 1 - p[:, 1]
    features = rng.normal(0, 1, (n, 8))
    odd = int(np.argsort(-p[:, 1])[30])  # a likely target, among the top 40 but not first
    features[odd] += 12.0
    unlikely = int(np.argmin(p[:, 1]))
    features[unlikely] += 30.0  # odder still, but nobody thinks it a target
    rows, scores = query_unusual(p, 2, embeddings=features, target=(1, 2), pool_factor=20)
    assert rows[0] == odd and unlikely not in rows and scores[0] == 1.0
    again, _ = query_unusual(p, 2, embeddings=lambda r: features[r], target=(1, 2))
    np.testing.assert_array_equal(rows, again)


def test_the_app_lists_candidates_with_their_kind_and_measures_a_spectrum(project):
    from test_web import client_for

    client = client_for(project)
    c = client.get("/api/candidates").json()
    items = {it["id"]: it for it in c["items"]}
    assert set(items) == {f"spec-{n}" for n in POOL}  # the app lists what the model says
    assert items["spec-nebular"]["kind"] == "nebular" and items["spec-nebular"]["flagged"]
    assert items["spec-spike"]["kind"] == "artefact"
    assert c["measured"] == len(POOL) and len(items["spec-core"]["thumb"]) == 70
    assert c["listed_kinds"] == ["core", "nebular", "stellar", "unknown", "unmeasured"]
    assert min(items["spec-core"]["thumb"]) == 0 and max(items["spec-core"]["thumb"]) == 100
    assert items["spec-stellar"]["ha_ew"] < -5 and items["spec-stellar"]["ha_ew_err"] > 0
    row = items["spec-nebular"]["row"]
    m = client.get(f"/api/spectrum/{row}/lines").json()
    assert m["kind"] == "nebular" and 0.3 < m["nii_ha"] < 0.9 and m["status"] == "ok"
    assert client.get("/api/spectrum/999/lines").status_code == 404
    assert client.get("/api/spectrum/-1/lines").status_code == 404


def test_the_candidate_table_sorts_and_filters_by_kind_in_a_browser(project):
    from test_browser import FLAGS, chromium, sync_api

    from specscout.web import AppConfig, create_app

    from conftest import LiveServer

    problems: list[str] = []
    with LiveServer(create_app(project, AppConfig(annotator="ana", samp=False))) as server, \
            sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(server.launch_url)
        expect = sync_api.expect
        expect(page.locator("#who")).to_contain_text("labelling as")  # the link traded
        page.goto(f"{server.url}/#/candidates")
        rows = page.locator("#candidates tr.link")
        expect(rows).to_have_count(3)  # as the catalogue lists them: no spike, no quiet star
        expect(page.locator("#candidates canvas")).to_have_count(3)
        page.select_option("#kind-filter", "")  # all the model proposes
        expect(rows).to_have_count(len(POOL))
        page.select_option("#kind-filter", "nebular")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("nebular")
        page.select_option("#kind-filter", "")
        page.locator("#show-flagged").uncheck()  # the flagged (nebular) one goes
        expect(rows).to_have_count(len(POOL) - 1)
        page.locator("#show-flagged").check()
        page.locator("th.sort[data-key='ha_ew']").click()  # largest first: absorption
        expect(rows.last).to_contain_text("stellar")  # the most negative: in emission
        page.locator("th.sort[data-key='ha_ew']").click()  # and the other way round
        expect(rows.first).to_contain_text("stellar")
        rows.filter(has_text="nebular").first.click()  # the spectrum, with its lines
        expect(page.locator("#lines")).to_contain_text("nebular")
        expect(page.locator("#lines")).to_contain_text("[N II]/Hα")
        browser.close()
    assert not problems, problems


def test_a_project_from_before_kinds_still_loads_scores_and_lists(project):
    """A project made before kinds existed: its config without [targets] nor artefacts, its
    network saved without the folds' cells, no lines/ folder. It loads, scores, and lists its
    candidates, measured now."""
    import re

    import torch

    from specscout.learn.iterate import score_step
    from specscout.learn.iterations import iteration_path
    from specscout.learn.train import Fitted

    config = project.path / "specscout.toml"
    text = config.read_text().split("[targets]")[0]
    text = re.sub(r"\n# Pool spectra with an artefact.*?\nartefacts = \d+\n", "\n", text,
                  flags=re.S)
    assert "artefacts" not in text and "targets" not in text
    config.write_text(text)
    path = iteration_path(project, 1) / "model.pt"
    saved = torch.load(path, weights_only=True)
    del saved["fold_nside"]
    torch.save(saved, path)
    old = Project(project.path)
    assert old.config.artefacts == 500 and old.config.targets["nebular"] == "flag"
    assert Fitted.load(path).fold_nside == 256
    assert not (project.path / DIRECTORY).exists()
    assert set(_kinds(build(old))) == {"stellar", "nebular", "core"}
    scores = score_step(old, 1)  # its network, loaded as it was saved, scores the pool
    assert len(scores.probabilities) == len(POOL)


def test_the_app_measures_its_candidates_at_start_up_in_its_worker(project):
    """At start-up the candidates' lines are measured, and kept in the project, by the
    app's worker process: the server's own interpreter stays free for the annotators."""
    import os

    from specscout.catalogue.lines import cached
    from specscout.web import AppConfig, create_app
    from specscout.web.app import warm

    state = create_app(project, AppConfig(annotator="ana", samp=False)).state.specscout
    try:
        warm(state)
        kept = cached(project, np.arange(len(POOL)))
        assert sorted(kept["id"].to_pylist()) == sorted(f"spec-{n}" for n in POOL)
        assert dict(zip(kept["id"].to_pylist(), kept["kind"].to_pylist(), strict=True))[
            "spec-nebular"] == "nebular"
        assert state.worker.pid() not in (None, os.getpid())
        # and handed to the server, which holds them without keeping them again
        assert sorted(state.lines._held) == list(range(len(POOL))) and not state.lines._unsaved
    finally:
        state.worker.close()
