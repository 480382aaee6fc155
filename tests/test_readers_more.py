"""More of the sky: LAMOST MRS (a coadd and every exposure), real SDSS and BOSS, more real
LAMOST, DESI coadds (many targets a file), and every real file of ../shared/data read."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from specscout.spectra.readers import read, read_all
from specscout.spectra.spectrum import Meta
from specscout.spectra.writers import mrs_wavelength, write_lamost_mrs


def test_lamost_mrs_coadd_and_every_exposure_match_the_file(shared_data):
    files = sorted((shared_data / "lamost-mrs").iterdir())
    assert len(files) == 4
    for path in files:
        spectra = read_all(path)
        with fits.open(path) as hdul:
            h = hdul[0].header
            names = [x.name for x in hdul]
            times = list(dict.fromkeys(n[2:] for n in names if n[:2] in ("B-", "R-")))
            assert [s.meta.exposure for s in spectra] == ["coadd", *times]
            for s in spectra:
                assert s.meta.instrument == "LAMOST MRS" and s.medium == "vacuum"
                assert s.meta.designation == h["DESIG"] and s.meta.obsid == h["OBSID"]
                assert s.meta.ra == h["RA"] and s.meta.resolving_power == 7500
                assert np.all(np.diff(s.wavelength) > 0)
                assert s.meta.id == path.name.split(".")[0] + "#" + s.meta.exposure
                arms = (["COADD_B", "COADD_R"] if s.meta.exposure == "coadd"
                        else [f"B-{s.meta.exposure}", f"R-{s.meta.exposure}"])
                tables = [hdul[a].data for a in arms if a in names]
                wave = np.concatenate([10.0 ** t["LOGLAM"].astype(float) for t in tables])
                flux = np.concatenate([t["FLUX"] for t in tables])
                order = np.argsort(wave, kind="stable")  # exposures' LOGLAM runs downwards
                np.testing.assert_allclose(s.wavelength, wave[order])
                np.testing.assert_array_equal(s.flux, flux[order])
                # Each arm in its range; H-alpha in the red one.
                assert s.wavelength[0] < 5000 and s.wavelength[-1] > 6800
            # Exposures in time order, ten minutes or so apart, UTC = local - 8 h.
            mjd = [s.meta.mjd for s in spectra[1:]]
            assert np.all(np.diff(mjd) > 0)
            assert mjd[0] == pytest.approx(int(times[0]) / 1440 - 8 / 24)
    # Three files are one star on three nights.
    stars = {read(p).meta.designation for p in files}
    assert len(stars) == 2


def test_mrs_written_by_the_simulator_layout_reads_back(tmp_path):
    n = {arm: mrs_wavelength(arm).size for arm in "BR"}

    def arms(level):
        return {a: (np.full(n[a], level + (a == "R")), np.ones(n[a]), np.zeros(n[a], int))
                for a in "BR"}

    meta = Meta(id="x", path="", instrument="", layout="", ra=10.0, dec=20.0,
                designation="LAMOST J004000.00+200000.0", obsid=5, snr=30.0)
    path = write_lamost_mrs(tmp_path / "med-1.fits.gz", arms(10), [(83906016, arms(20)),
                                                                   (83906030, arms(30))], meta)
    with fits.open(path) as hdul:
        hdul.verify("exception")
    spectra = read_all(path)
    assert [s.meta.id for s in spectra] == ["med-1#coadd", "med-1#83906016", "med-1#83906030"]
    assert [float(s.flux[-1]) for s in spectra] == [11.0, 21.0, 31.0]
    assert np.isfinite(spectra[0].meta.mjd)


def test_real_sdss_and_boss_files_match_astropy(shared_data):
    files = sorted((shared_data / "sdss").glob("spec-*.fits"))
    assert len(files) == 3
    for path in files:
        s = read(path)
        with fits.open(path) as hdul:
            coadd, h = hdul[1].data, hdul[0].header
            specobj = hdul[2].data
        np.testing.assert_allclose(s.wavelength, 10.0 ** coadd["loglam"].astype(float))
        np.testing.assert_array_equal(s.flux, coadd["flux"])
        np.testing.assert_array_equal(s.ivar, coadd["ivar"])
        np.testing.assert_array_equal(s.mask, (coadd["and_mask"] != 0) | ~(coadd["ivar"] > 0))
        assert s.meta.ra == h["PLUG_RA"] and s.meta.mjd == h["MJD"]
        assert s.meta.survey_class == specobj["CLASS"][0].strip()
        assert s.meta.snr == pytest.approx(float(specobj["SN_MEDIAN_ALL"][0]))
        assert s.meta.id == path.name.removesuffix(".fits")
        assert s.meta.designation.startswith("SDSS J")


def test_more_real_lamost_read(shared_data):
    files = sorted((shared_data / "lamost-extra").rglob("*.fits*"))
    assert len(files) == 32
    releases = {read(p).meta.release for p in files}
    assert {"DR3", "DR5"} <= releases
    active = read(shared_data / "lamost-extra" / "dr5" / "spec-55862-B6212_sp01-006.fits.gz")
    assert active.meta.survey_subclass.startswith("M")


def test_dr1_and_dr5_share_the_grid_of_one_plan_and_night(shared_data):
    """The DR1 (v2.6.4) and DR5 pipelines reduced plan B6212 of local night 55862; no fibre is
    in both sets here, so what is compared is what they share: the log-linear grid, which
    DR1 gives by coefficients and DR5 as a row of the image."""
    dr1 = read(shared_data / "lamost" / "dr1" / "spec-55862-B6212_sp06-003.fits")
    dr5 = read(shared_data / "lamost-extra" / "dr5" / "spec-55862-B6212_sp01-001.fits.gz")
    assert (dr1.meta.layout, dr5.meta.layout) == ("lamost-dr1", "lamost-image")
    n = min(len(dr1), len(dr5))
    np.testing.assert_allclose(dr1.wavelength[:n], dr5.wavelength[:n], rtol=1e-6)
    same = [(a, b) for a in (shared_data / "lamost" / "dr1").iterdir()
            for b in (shared_data / "lamost-extra" / "dr5").iterdir()
            if a.name.split(".")[0] == b.name.split(".")[0]]
    assert same == []  # were one here, its two reductions would be compared spectrum-wise


def _desi_file(path, targets=3, seed=0, without: tuple[str, ...] = ()):
    """A DESI coadd written from the data model (DESI DR1 documentation): FIBERMAP, and per
    arm B/R/Z the WAVELENGTH, FLUX, IVAR and MASK HDUs."""
    rng = np.random.default_rng(seed)
    grids = {"B": np.arange(3600.0, 5930.0, 0.8), "R": np.arange(5660.0, 7720.0, 0.8),
             "Z": np.arange(7470.0, 9824.0, 0.8)}
    hdus = [fits.PrimaryHDU(header=fits.Header([("SPECPROD", "iron"), ("SURVEY", "main")]))]
    fibermap = fits.BinTableHDU.from_columns([
        fits.Column("TARGETID", "K", array=np.arange(targets) + 39627000000000000),
        fits.Column("TARGET_RA", "D", array=rng.uniform(0, 360, targets)),
        fits.Column("TARGET_DEC", "D", array=rng.uniform(-10, 60, targets)),
        fits.Column("COADD_FIBERSTATUS", "J", array=np.zeros(targets, int))], name="FIBERMAP")
    hdus.append(fibermap)
    for arm, wave in grids.items():
        flux = rng.normal(10, 1, (targets, wave.size)).astype(np.float32)
        flux[:, (wave > 6560) & (wave < 6570)] += 30  # a line at H-alpha
        hdus += [h for h in (fits.ImageHDU(wave, name=f"{arm}_WAVELENGTH"),
                             fits.ImageHDU(flux, name=f"{arm}_FLUX"),
                             fits.ImageHDU(np.ones_like(flux), name=f"{arm}_IVAR"),
                             fits.ImageHDU(np.zeros(flux.shape, np.int32), name=f"{arm}_MASK"))
                 if h.name not in without]
    fits.HDUList(hdus).writeto(path)
    return grids


def test_desi_coadd_one_spectrum_per_target(tmp_path):
    grids = _desi_file(tmp_path / "coadd-main-dark-10032.fits", targets=4)
    spectra = read_all(tmp_path / "coadd-main-dark-10032.fits")
    assert len(spectra) == 4
    with fits.open(tmp_path / "coadd-main-dark-10032.fits") as hdul:
        fm = hdul["FIBERMAP"].data
        for k, s in enumerate(spectra):
            assert s.meta.id == f"coadd-main-dark-10032#{fm['TARGETID'][k]}"
            assert s.meta.ra == fm["TARGET_RA"][k] and s.meta.instrument == "DESI"
            assert np.all(np.diff(s.wavelength) > 0)
            assert s.wavelength[0] == grids["B"][0] and s.wavelength[-1] == grids["Z"][-1]
            # H-alpha comes from the R arm, with its flux.
            at = np.searchsorted(s.wavelength, 6565.0)
            r = np.searchsorted(grids["R"], s.wavelength[at])
            assert s.flux[at] == hdul["R_FLUX"].data[k][r]


def test_desi_without_an_inverse_variance_has_none_not_an_invented_one(tmp_path):
    _desi_file(tmp_path / "coadd.fits", targets=2, without=("R_IVAR",))
    spectra = read_all(tmp_path / "coadd.fits")
    assert len(spectra) == 2 and all(s.ivar is None for s in spectra)
    _desi_file(tmp_path / "whole.fits", targets=2)
    assert all(s.ivar is not None for s in read_all(tmp_path / "whole.fits"))


def test_every_real_file_reads(shared_data):
    """Every spectrum file under ../shared/data: a spectrum (or several), or a clear reason."""
    files = sorted(p for p in shared_data.rglob("*.fits*") if "miles" not in p.parts)
    assert len(files) > 250
    for path in files:
        spectra = read_all(path)
        assert spectra and all(len(s) > 100 for s in spectra), path
