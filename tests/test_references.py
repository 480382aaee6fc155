"""Reference catalogues: files matched in memory and HATS catalogues matched with LSDB give
the same answers (left join, radius edges, RA wrap-around, the poles), proper motion, and the
commands end to end (catalogue import, candidates, report, the app)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from specscout.catalogue.objects import unit_vectors
from specscout.catalogue.references import crossmatch, reference
from specscout.cli import main
from specscout.errors import SpecscoutError

pytest.importorskip("lsdb", reason="the HATS path needs LSDB (pip install 'specscout[hats]')")

ARCSEC = 1 / 3600


def _reference_rows(rng: np.random.Generator, n: int = 3000) -> dict[str, np.ndarray]:
    """A generated reference list over the whole sky, with entries at the edges that matter:
    across RA 0/360, beside both poles, and on partition borders wherever they fall."""
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    ra = np.r_[ra, 0.0002, 359.9999, 12.0, 192.0, 77.0, 257.0]
    dec = np.r_[dec, 1.0, -2.0, 89.9998, 89.9998, -89.9997, -89.9997]
    m = len(ra)
    return {"ra": ra, "dec": dec, "otype": rng.choice(["Be*", "Em*", "YSO", "CV*"], m),
            "gmag": np.round(rng.uniform(8, 20, m), 3)}


def _queries(ref: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Positions near entries (0.5-6 arcsec away, so some are inside 3 arcsec and some not),
    positions near nothing, and ones across the wrap-around and the poles."""
    pick = rng.choice(len(ref["ra"]) - 6, 400, replace=False)
    offset = rng.uniform(0.5, 6.0, 400) * ARCSEC
    angle = rng.uniform(0, 2 * np.pi, 400)
    dec = np.clip(ref["dec"][pick] + offset * np.sin(angle), -90, 90)
    ra = (ref["ra"][pick] + offset * np.cos(angle) / np.cos(np.radians(dec))) % 360
    extra_ra = [359.9998, 0.0001, 12.0 + 180.0, 192.0 + 180.0, 77.0, 33.3, 100.0]
    extra_dec = [1.0, -2.0, 89.9998, 89.9999, -89.9996, -45.0, np.nan]
    return np.r_[ra, extra_ra], np.r_[dec, extra_dec]


@pytest.fixture(scope="module")
def scheduler():
    """The address of one local cluster for the module's commands, as a user's running
    cluster would be: its worker compiles HATS's numba kernels once, not once a command."""
    from specscout.archive.cluster import dask_client

    with dask_client(1) as client:
        yield client.scheduler.address


@pytest.fixture(scope="module")
def catalogues(tmp_path_factory, scheduler):
    """The same reference list as a CSV file and as a HATS catalogue made by
    'specscout catalogue import'."""
    base = tmp_path_factory.mktemp("refs")
    rng = np.random.default_rng(3)
    ref = _reference_rows(rng)
    csv = base / "known.csv"
    with csv.open("w") as fh:
        fh.write("ra,dec,otype,gmag\n")
        for row in zip(*ref.values(), strict=True):
            fh.write(",".join(map(str, row)) + "\n")
    hats = base / "known_hats"
    assert main(["catalogue", "import", str(csv), str(hats), "--scheduler", scheduler]) == 0
    return ref, csv, hats


def test_a_hats_catalogue_matches_as_the_file_does(catalogues):
    ref, csv, hats = catalogues
    ra, dec = _queries(ref, np.random.default_rng(4))
    a = crossmatch(ra, dec, [csv], 3.0, columns=("gmag", "nothing"))
    b = crossmatch(ra, dec, [hats], 3.0, columns=("gmag", "nothing"), threads=True)
    assert len(a.known) == len(ra) == len(b.known)  # a left join: every position stays
    assert 100 < a.known.sum() < len(ra) - 50  # both matched and unmatched positions
    assert np.array_equal(a.known, b.known)
    np.testing.assert_allclose(a.separation, b.separation, rtol=0, atol=1e-6, equal_nan=True)
    assert a.kind == b.kind
    assert all(k == "" for k, m in zip(a.kind, a.known, strict=True) if not m)
    np.testing.assert_array_equal(a.columns["known_gmag"], b.columns["known_hats_gmag"])
    assert "known_nothing" not in a.columns and "known_hats_nothing" not in b.columns
    assert np.isnan(a.separation[~a.known]).all()
    # the separation is the true distance to the nearest entry, and within the radius
    chords = cdist(unit_vectors(ra, dec), unit_vectors(ref["ra"], ref["dec"]))  # brute force
    nearest = np.degrees(2 * np.arcsin(np.minimum(chords.min(1) / 2, 1))) * 3600
    nearest[~np.isfinite(nearest)] = np.inf
    assert np.array_equal(a.known, nearest <= 3.0)
    np.testing.assert_allclose(a.separation[a.known], nearest[a.known], atol=1e-6)
    # across RA 0/360 and across each pole (the last positions); NaN is never known
    assert a.known[-7:].tolist() == [True, True, True, True, True, False, False]


def test_radius_edges_and_a_radius_of_its_own(catalogues):
    ref, csv, hats = catalogues
    ra0, dec0 = ref["ra"][10], ref["dec"][10]
    cos = np.cos(np.radians(dec0))
    ra = ra0 + np.array([2.999, 3.001, 4.9]) * ARCSEC / cos
    dec = np.full(3, dec0)
    for path in (csv, hats):
        m = crossmatch(ra, dec, [path], 3.0, threads=True)
        assert m.known.tolist() == [True, False, False], path
        m = crossmatch(ra, dec, [f"{path}@5"], 3.0, threads=True)
        assert m.known.tolist() == [True, True, True], path
    assert reference(f"{csv}@5").radius == 5.0 and reference(csv).radius is None
    with pytest.raises(SpecscoutError, match="positive"):
        reference(f"{csv}@0")


def test_several_catalogues_each_say_what_they_know(catalogues, tmp_path):
    ref, _, hats = catalogues
    other = tmp_path / "vsx.csv"
    other.write_text(f"RAJ2000,DEJ2000,Type\n{ref['ra'][0]},{ref['dec'][0]},UGSS\n")
    ra = np.array([ref["ra"][0], ref["ra"][1], 100.0])
    dec = np.array([ref["dec"][0], ref["dec"][1], -60.0])
    m = crossmatch(ra, dec, [other, hats], 3.0, columns=("gmag",), threads=True)
    assert m.catalogue == ["vsx,known_hats", "known_hats", ""]
    assert m.kind == ["UGSS", str(ref["otype"][1]), ""]  # the first catalogue that has it
    assert m.known.tolist() == [True, True, False]
    assert m.rows == {"vsx": 1, "known_hats": len(ref["ra"])}
    assert np.isnan(m.columns["vsx_separation"][1]) and np.isnan(m.columns["known_hats_gmag"][2])
    assert all("positions as listed" in n for n in m.notes)


def test_proper_motion_moves_entries_to_the_epoch_of_the_spectra(tmp_path):
    # an entry listed at epoch 2016.0 moving 0.5"/yr north; a spectrum taken in 2026.0
    # sees it 5" from its listed position
    mjd_2026 = 51544.5 + 26 * 365.25
    listed = tmp_path / "gaia.csv"
    listed.write_text("ra,dec,pmra,pmdec,ref_epoch\n150.0,10.0,0.0,500.0,2016.0\n")
    still = tmp_path / "still.csv"
    still.write_text("ra,dec\n150.0,10.0\n")
    ra, dec = np.array([150.0]), np.array([10.0 + 5 * ARCSEC])
    moved = crossmatch(ra, dec, [listed], 1.0, mjd=np.array([mjd_2026]))
    assert moved.known.tolist() == [True] and moved.separation[0] < 0.01
    assert "proper motion applied" in moved.notes[0]
    assert not crossmatch(ra, dec, [still], 1.0, mjd=np.array([mjd_2026])).known[0]
    # without an epoch for the spectrum, the entry stays where it is listed
    assert not crossmatch(ra, dec, [listed], 1.0).known[0]


def test_bad_catalogues_are_named(tmp_path, scheduler):
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(SpecscoutError, match="no such catalogue"):
        crossmatch([1.0], [1.0], [tmp_path / "empty_dir"], 3.0)
    (tmp_path / "nopos.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SpecscoutError, match="no RA/Dec columns"):
        crossmatch([1.0], [1.0], [tmp_path / "nopos.csv"], 3.0)
    assert main(["catalogue", "import", str(tmp_path / "nopos.csv"), str(tmp_path / "h"),
                 "--scheduler", scheduler]) == 2
    assert not (tmp_path / "h").exists()


def test_candidates_report_and_the_app_with_a_hats_catalogue(catalogues, tmp_path, capsys,
                                                            scheduler):
    """The commands end to end: candidates (and the report's table) take the HATS catalogue (with a
    radius of its own and a column brought over), and the app's candidate page marks the
    same objects known."""
    from fastapi.testclient import TestClient
    from test_candidates import make_project
    from test_web import BASE

    from specscout.catalogue.candidates import build
    from specscout.web import AppConfig, create_app

    from conftest import log_in

    ref, _, _ = catalogues
    project = make_project(tmp_path)
    # a HATS catalogue listing the double-peak star (row 2, at 150, -5) 2" away
    csv = tmp_path / "stars.csv"
    csv.write_text(f"ra,dec,otype,gmag\n{150 + 2 * ARCSEC / np.cos(np.radians(5))},-5.0,Be*,"
                   f"11.5\n{ref['ra'][5]},{ref['dec'][5]},YSO,14.0\n")
    hats = tmp_path / "stars_hats"
    assert main(["catalogue", "import", str(csv), str(hats), "--scheduler", scheduler]) == 0
    assert "2 rows" in capsys.readouterr().out
    assert main(["candidates", str(project.path), "--catalogue", f"{hats}@2.5", "--columns",
                 "gmag", "--scheduler", scheduler, "--out", str(tmp_path / "c.xml")]) == 0
    out = capsys.readouterr().out
    assert "matched stars_hats: 2 rows" in out and "radius 2.5 arcsec" in out
    from astropy.table import Table

    objects = Table.read(tmp_path / "c.xml")
    star = objects[objects["ra"] == 150.0][0]
    assert star["known"] and star["catalogue"] == "stars_hats" and star["stars_hats_gmag"] == 11.5
    assert abs(star["separation"] - 2.0) < 0.01 and star["catalogue_type"] == "Be*"
    assert sum(objects["known"]) == 1
    assert main(["candidates", str(project.path), "--catalogue", f"{hats}@1.5",
                 "--scheduler", scheduler]) == 0
    assert "0 known" in capsys.readouterr().out.split("double-peak")[1].splitlines()[0]
    cat = build(project, references=(hats,))
    from specscout.catalogue.report import _catalogue_table  # the report's part of it

    page = _catalogue_table(cat)
    assert "<td>stars_hats</td><td>1</td>" in page and "positions as listed" in page
    app = TestClient(create_app(project, AppConfig(annotator="ana", samp=False,
                                                   catalogues=(str(hats),))), base_url=BASE)
    items = log_in(app).get("/api/candidates").json()["items"]
    known = {i["row"]: (i["known"], i["catalogue"]) for i in items}
    expected = {int(r): (bool(k), str(c)) for r, k, c in zip(
        cat.spectra["row"], cat.spectra["known"], cat.spectra["catalogue"], strict=True)}
    assert known == {r: expected[r] for r in known} and any(k for k, _ in known.values())
    star = next(i for i in items if i["row"] == 2)
    assert star["catalogue"] == "stars_hats" and star["catalogue_type"] == "Be*"


def test_gaps_narrow_margins_and_names_alike(tmp_path, scheduler):
    """A HATS catalogue with an empty type and proper motions, whose margin cache (5")
    is narrower than a moving entry's search: gaps read as empty, the search stops at the
    margin (said so), a radius beyond the margin is refused, and two catalogues of one name
    are refused rather than confused."""
    mjd_2026 = 51544.5 + 26 * 365.25
    csv = tmp_path / "moving.csv"
    csv.write_text("ra,dec,otype,pmra,pmdec,ref_epoch\n"
                   "150.0,10.0,,0.0,200.0,2016.0\n"  # moves 2" north by 2026; no type
                   "151.0,11.0,Be*,0.0,0.0,2016.0\n")
    hats = tmp_path / "moving_hats"
    assert main(["catalogue", "import", str(csv), str(hats), "--margin", "5",
                 "--scheduler", scheduler]) == 0
    ra, dec = np.array([150.0, 151.0]), np.array([10.0 + 2 * ARCSEC, 11.0])
    for path in (csv, hats):
        m = crossmatch(ra, dec, [path], 1.0, mjd=np.full(2, mjd_2026), threads=True)
        assert m.known.tolist() == [True, True] and m.kind == ["", "Be*"], path
        assert m.separation[0] < 0.01, path
    assert "stops at the margin cache (5 arcsec)" in m.notes[0]
    with pytest.raises(SpecscoutError, match="up to 5 arcsec"):
        crossmatch(ra, dec, [f"{hats}@6"], 1.0, threads=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "moving.csv").write_text(csv.read_text())
    with pytest.raises(SpecscoutError, match="named alike"):
        crossmatch(ra, dec, [csv, tmp_path / "other" / "moving.csv"], 1.0)


def test_a_catalogue_of_another_part_of_the_sky_matches_nothing(tmp_path):
    """Objects where a HATS catalogue has no partition: no matches and a note, not LSDB's
    "Catalogs do not overlap"."""
    csv = tmp_path / "north.csv"
    csv.write_text("ra,dec,otype,gmag\n10.0,80.0,Be*,9.0\n10.1,80.1,Em*,10.0\n")
    hats = tmp_path / "north_hats"  # on a local cluster of its own, as by default
    assert main(["catalogue", "import", str(csv), str(hats), "--workers", "1"]) == 0
    ra, dec = np.array([200.0, 201.0]), np.array([-60.0, -61.0])
    m = crossmatch(ra, dec, [hats], 3.0, columns=("gmag",), threads=True)
    assert m.known.tolist() == [False, False] and m.catalogue == ["", ""]
    assert np.isnan(m.columns["north_hats_gmag"]).all()
    assert "does not cover the sky of these objects" in m.notes[0]
