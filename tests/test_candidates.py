"""The candidate catalogue: selection, human labels over the model, grouping by position,
cross-match by position, and every export format with its units and UCDs."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io.votable import parse
from astropy.table import Table

from specscout.archive.project import Project
from specscout.catalogue.candidates import build, write
from specscout.catalogue.objects import Grouping, group
from specscout.cli import main
from specscout.errors import SpecscoutError
from specscout.labels import label_store

from conftest import scored_iteration

ARCSEC = 1 / 3600
# (ra, dec, probabilities other/emission/double-peak)
ROWS = [
    (10.0, 20.0, (0.05, 0.90, 0.05)),  # 0: emission
    (10.0 + 1 * ARCSEC, 20.0, (0.10, 0.80, 0.10)),  # 1: the same star, 1" away
    (150.0, -5.0, (0.10, 0.20, 0.70)),  # 2: double-peak, in the reference list
    (200.0, 40.0, (0.90, 0.05, 0.05)),  # 3: the model says other, a human says emission
    (250.0, 60.0, (0.02, 0.95, 0.03)),  # 4: the model says emission, a human says other
    (300.0, 10.0, (0.45, 0.40, 0.15)),  # 5: below the threshold
    (10.0 + 10 * ARCSEC, 20.0, (0.60, 0.30, 0.10)),  # 6: other, 10" from 0
]


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path)


def make_project(tmp_path, folder: str = "") -> Project:
    """A pool of the ROWS (files ``folder``f0.fits ...), scores of iteration 1, two human
    labels, a reference list."""
    project = Project.init(tmp_path / "p")
    flux = np.random.default_rng(0).normal(size=(len(ROWS), 140)).astype(np.float32)
    project.store().commit(flux, [
        {"path": f"{folder}f{i}.fits", "id": f"spec-{i}", "obsid": 1000 + i, "ra": ra, "dec": dec,
         "designation": f"J{i}", "snr": 30.0 + i, "status": "ok", "flags": 0, "reason": "",
         "detail": ""} for i, (ra, dec, _) in enumerate(ROWS)])
    scored_iteration(project, 1, np.array([p for _, _, p in ROWS]))
    labels = label_store(project)
    labels.add("spec-3", 3, "emission", "ana")
    labels.add("spec-4", 4, "other", "ana")
    (tmp_path / "ref.csv").write_text(
        "name,RAJ2000,DEJ2000,objtype\nA,150.0003,-5.0,Be\nB,0.0,0.0,CV\n")
    return project


def test_selection_grouping_and_crossmatch(project, tmp_path):
    cat = build(project, references=(tmp_path / "ref.csv",))
    s = cat.spectra
    assert sorted(s["row"]) == [0, 1, 2, 3]
    by_row = {int(r["row"]): r for r in s}
    assert by_row[3]["class"] == "emission" and by_row[3]["source"] == "label"
    assert by_row[3]["annotators"] == "ana"
    assert by_row[0]["source"] == "model" and by_row[2]["class"] == "double-peak"
    assert by_row[0]["object"] == by_row[1]["object"] != by_row[3]["object"]
    o = cat.objects
    assert len(o) == 3
    pair = o[o["object"] == by_row[0]["object"]][0]
    assert pair["n_spectra"] == 2 and pair["spectra"] == "spec-0,spec-1"
    assert not pair["known"]
    dp = o[o["object"] == by_row[2]["object"]][0]
    assert dp["known"] and dp["catalogue"] == "ref" and dp["catalogue_type"] == "Be"
    assert dp["separation"] == pytest.approx(0.0003 * 3600 * np.cos(np.radians(5)), rel=1e-3)


def test_threshold_and_radius(project):
    assert len(build(project, threshold=0.85).spectra) == 2  # rows 0 and 3 (a label)
    # Rows 5 and 6 are never candidates: "other" is their most probable class.
    assert sorted(build(project, threshold=0.25).spectra["row"]) == [0, 1, 2, 3]
    assert len(build(project, radius_arcsec=0.5).objects) == 4  # rows 0 and 1 apart


def test_group_is_friends_of_friends():
    ra = np.array([0.0, 2 * ARCSEC, 4 * ARCSEC, 100.0])
    # 0-2 and 2-4 arcsec are links, 0-4 is not: still one object.
    assert group(ra, np.zeros(4), 2.5).tolist() == [0, 0, 0, 1]
    # Thousands of spectra at one position (one star, many visits) are one point to pair.
    many = np.r_[np.full(5000, 10.0), 10.0 + 2 * ARCSEC, np.nan, 200.0]
    assert np.bincount(group(many, np.zeros(len(many)), 2.5)).tolist() == [5001, 1, 1]


def test_regrouping_after_a_change_equals_grouping_afresh():
    rng = np.random.default_rng(3)
    n = 3000  # clumps, so that objects of several spectra are common
    ra = np.repeat(rng.uniform(0, 0.2, n // 3), 3) + rng.normal(0, 1.5 * ARCSEC, n)
    dec = np.repeat(rng.uniform(0, 0.2, n // 3), 3) + rng.normal(0, 1.5 * ARCSEC, n)
    rows = np.arange(n) * 2
    base = Grouping(rows, ra, dec, 3.0)
    for trial in range(20):
        removed = rng.choice(rows, 30, replace=False)
        added = np.arange(20) * 2 + 1 + 10_000 * trial
        add_ra, add_dec = rng.uniform(0, 0.2, 20), rng.uniform(0, 0.2, 20)
        got_rows, got = base.regroup(removed, added, add_ra, add_dec)
        keep = ~np.isin(rows, removed)
        all_rows = np.r_[rows[keep], added]
        order = np.argsort(all_rows)
        fresh = group(np.r_[ra[keep], add_ra][order], np.r_[dec[keep], add_dec][order], 3.0)
        np.testing.assert_array_equal(got_rows, all_rows[order])
        # The same partition, whatever the numbering.
        pairs = {(int(a), int(b)) for a, b in zip(got, fresh, strict=True)}
        assert len(pairs) == len(set(got.tolist())) == len(set(fresh.tolist()))


@pytest.mark.parametrize("suffix", [".xml", ".fits", ".csv", ".ecsv", ".parquet"])
def test_every_format_reads_back(project, tmp_path, suffix):
    cat = build(project)
    path = write(cat.objects, tmp_path / f"c{suffix}")
    if suffix == ".parquet":  # astropy reads Parquet through pandas; pyarrow needs nothing
        import pyarrow.parquet as pq

        back = Table(pq.read_table(path).to_pydict())
    else:
        back = Table.read(path, format="ascii.csv") if suffix == ".csv" else Table.read(path)
    assert len(back) == len(cat.objects)
    assert sorted(back["n_spectra"]) == sorted(cat.objects["n_spectra"])
    if suffix in (".xml", ".fits", ".ecsv"):
        assert str(back["ra"].unit) == "deg"


def test_votable_has_ucds(project, tmp_path):
    write(build(project).spectra, tmp_path / "c.xml")
    fields = {f.name: f for f in parse(tmp_path / "c.xml").get_first_table().fields}
    assert fields["ra"].ucd == "pos.eq.ra;meta.main" and str(fields["ra"].unit) == "deg"
    assert fields["p_emission"].ucd == "stat.probability"
    assert fields["id"].ucd == "meta.id;meta.main"


def test_candidates_command(project, tmp_path, capsys):
    out = tmp_path / "cands.xml"
    assert main(["candidates", str(project.path), "--catalogue", str(tmp_path / "ref.csv"),
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "4 candidate spectra of 3 objects" in text
    assert out.exists() and (tmp_path / "cands-spectra.xml").exists()
    assert main(["candidates", str(project.path), "--catalogue",
                 str(tmp_path / "nope.csv")]) == 2
    assert "no such catalogue" in capsys.readouterr().err


def test_a_reference_catalogue_without_positions_is_refused(project, tmp_path):
    (tmp_path / "names.csv").write_text("name,objtype\nA,Be\n")
    with pytest.raises(SpecscoutError, match="no RA/Dec columns"):
        build(project, references=(tmp_path / "names.csv",))
    (tmp_path / "junk.fits").write_bytes(b"not a table")
    with pytest.raises(SpecscoutError, match="cannot read it as a table"):
        build(project, references=(tmp_path / "junk.fits",))


def _stars_seen_four_times(tmp_path, rng, n: int):
    """A scored project of ``n`` spectra, four per star within a few arcsec: (project, ra,
    dec of the spectra, ra, dec of the stars)."""
    project = Project.init(tmp_path / "p")
    centre_ra, centre_dec = rng.uniform(0, 1, n // 4), rng.uniform(0, 1, n // 4)
    ra = np.repeat(centre_ra, 4) + rng.normal(0, 2 * ARCSEC, n)
    dec = np.repeat(centre_dec, 4) + rng.normal(0, 2 * ARCSEC, n)
    project.store().commit(np.zeros((n, 140), np.float32), [
        {"path": f"f{i}", "id": f"s{i}", "designation": f"J{i}", "ra": ra[i], "dec": dec[i],
         "snr": 10.0, "status": "ok", "flags": 0, "reason": "", "detail": ""}
        for i in range(n)])
    probs = rng.dirichlet([2, 1, 1], n)
    scored_iteration(project, 1, probs)
    return project, ra, dec, centre_ra, centre_dec


def test_the_live_list_follows_labels_as_a_rebuild_does(tmp_path):
    """The web app's list, kept and updated label by label, says what a catalogue built
    afresh says: the same spectra, objects, classes, sources, order and known objects."""
    from specscout.catalogue.live import LiveCandidates
    from specscout.catalogue.references import read_file

    rng = np.random.default_rng(7)
    n = 2000
    project, _, _, centre_ra, centre_dec = _stars_seen_four_times(tmp_path, rng, n)
    (tmp_path / "ref.csv").write_text("ra,dec,type\n" + "".join(
        f"{a},{d},Be\n" for a, d in zip(centre_ra[::5], centre_dec[::5], strict=True)))
    refs = (tmp_path / "ref.csv",)
    labels = label_store(project)
    names = project.config.classes
    for r in rng.choice(n, 100, replace=False):  # labels before the list is made
        labels.add(f"s{r}", int(r), str(rng.choice(names)), "ana")
    live = LiveCandidates(project.store(), np.load(
        project.path / "iterations" / "0001" / "scores.npy", mmap_mode="r"),
        labels.current(), names=names, threshold=0.4, targets=[1, 2], references=refs)
    assert read_file(refs[0]).tree is not None
    for step in range(6):
        for r in rng.choice(n, 30, replace=False):  # and after
            labels.add(f"s{r}", int(r), rng.choice([*names, None]), rng.choice(["ana", "bo"]))
        page = live.page(labels.current(), limit=50)
        cat = build(project, threshold=0.4, references=refs)
        s = cat.spectra
        assert page["spectra"] == len(s) and page["objects"] == len(cat.objects), step
        assert sorted(live.rows_now(labels.current()).tolist()) == sorted(s["row"].tolist())
        p_own = np.array([r[f"p_{r['class']}"] for r in s])
        order = np.lexsort((np.asarray(s["row"]), -p_own))[:50]
        expected = [(int(s["row"][i]), str(s["class"][i]), str(s["source"][i]),
                     bool(s["known"][i])) for i in order]
        got = [(i["row"], i["class"], i["source"], i["known"]) for i in page["items"]]
        assert got == expected, step


def test_hidden_rows_never_come_onto_the_live_list_whatever_their_labels(tmp_path):
    """An audit draw's rows, left out when the list is built, stay out of its spectra, its
    objects and its order as labels (some on them) arrive: the list is the catalogue built
    afresh less those rows, regrouped without them."""
    from specscout.catalogue.live import LiveCandidates

    rng = np.random.default_rng(11)
    n = 1200
    project, ra, dec, _, _ = _stars_seen_four_times(tmp_path, rng, n)
    labels = label_store(project)
    names = project.config.classes
    hidden = rng.choice(n, 60, replace=False)
    live = LiveCandidates(project.store(), np.load(
        project.path / "iterations" / "0001" / "scores.npy", mmap_mode="r"),
        labels.current(), names=names, threshold=0.4, targets=[1, 2], hidden=hidden)
    assert not set(hidden.tolist()) & set(live.rows.tolist())
    for step in range(4):
        for r in np.r_[rng.choice(hidden, 10), rng.choice(n, 20)]:  # some on hidden rows
            labels.add(f"s{r}", int(r), rng.choice([*names, None]), "ana")
        page = live.page(labels.current(), limit=50)
        s = build(project, threshold=0.4).spectra
        keep = ~np.isin(np.asarray(s["row"]), hidden)
        rows = np.asarray(s["row"])[keep]
        assert sorted(live.rows_now(labels.current()).tolist()) == sorted(rows.tolist()), step
        assert page["spectra"] == len(rows), step
        assert page["objects"] == len(set(group(ra[rows], dec[rows], 3.0).tolist())), step
        p_own = np.array([r[f"p_{r['class']}"] for r in s])[keep]
        order = np.lexsort((rows, -p_own))[:50]
        assert [i["row"] for i in page["items"]] == [int(rows[i]) for i in order], step
