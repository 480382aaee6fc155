"""Readers: every real layout, values checked against what the FITS files say."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
from astropy.io import fits

from specscout import ReadError, read
from specscout.spectra.readers import identify
from specscout.spectra.writers import lamost_wavelength, write_lamost, write_ondrejov_raw

from conftest import lamost_meta, star_flux


def _lamost(shared_data, release):
    files = sorted((shared_data / "lamost" / release).iterdir())
    assert files
    return files


def test_lamost_dr1_wavelength_comes_from_coefficients_not_row_2(shared_data):
    for path in _lamost(shared_data, "dr1"):
        s = read(path)
        with fits.open(path) as hdul:
            h, data = hdul[0].header, hdul[0].data
        n = h["NAXIS1"]
        assert s.meta.layout == "lamost-dr1"
        np.testing.assert_allclose(s.wavelength, 10 ** (h["COEFF0"] + h["COEFF1"] * np.arange(n)))
        assert not np.allclose(s.wavelength, data[2])  # row 2 is the sub-continuum
        np.testing.assert_array_equal(s.flux, data[0])
        good = data[1] > 0
        np.testing.assert_array_equal(s.ivar[good], data[1][good])
        # Only zero-ivar pixels with a clean andmask and real flux (a clipped strong line)
        # get an ivar; the mask is the andmask and whatever ivar is still zero.
        filled = s.ivar != data[1]
        assert np.all(~good[filled] & (data[3][filled] == 0) & (data[0][filled] != 0))
        np.testing.assert_array_equal(s.mask, (data[3] != 0) | ~(s.ivar > 0))
        assert s.medium == "vacuum"
        assert s.meta.designation == h["DESIG"]
        assert s.meta.ra == h["RA"] and s.meta.dec == h["DEC"]
        assert s.meta.snr == h["SN_R"]
        assert s.meta.release == "DR1"
        assert s.meta.id == path.name.removesuffix(".fits")


@pytest.mark.parametrize("release", ["dr2", "dr7"])
def test_lamost_image_layout(shared_data, release):
    for path in _lamost(shared_data, release):
        s = read(path)
        with fits.open(path) as hdul:
            h, data = hdul[0].header, hdul[0].data
        assert s.meta.layout == "lamost-image"
        np.testing.assert_array_equal(s.wavelength, data[2])
        # Row 2 is the log-linear grid the header describes.
        np.testing.assert_allclose(s.wavelength, 10 ** (h["COEFF0"] + h["COEFF1"]
                                                       * np.arange(h["NAXIS1"])), rtol=1e-6)
        np.testing.assert_array_equal(s.flux, data[0].astype(np.float32))
        assert s.meta.release == release.upper()
        assert s.meta.obsid == h.get("OBSID")
        assert s.meta.snr == h.get("SNRR", h.get("SN_R"))
        assert s.meta.survey_class == h["CLASS"] and s.meta.survey_subclass == h["SUBCLASS"]


def test_lamost_dr9_coadd_table(shared_data):
    (path,) = _lamost(shared_data, "dr9")
    s = read(path)
    with fits.open(path) as hdul:
        h, row = hdul[0].header, hdul["COADD"].data[0]
    assert s.meta.layout == "lamost-coadd"
    np.testing.assert_array_equal(s.wavelength, row["WAVELENGTH"])
    np.testing.assert_array_equal(s.flux, row["FLUX"])
    np.testing.assert_array_equal(s.ivar, row["IVAR"])
    assert s.meta.obsid == h["OBSID"] == 101013
    assert s.meta.release == "DR9"
    assert s.meta.snr == h["SNRR"]


def test_ondrejov_raw_layout(shared_data):
    for name in ("ua280060.fits", "oe270005.fits"):
        path = shared_data / "ondrejov" / name
        s = read(path)
        h = fits.getheader(path)
        assert s.meta.layout == "ondrejov-raw" and s.medium == "air" and s.ivar is None
        assert s.wavelength[0] == pytest.approx(h["CRVAL1"])
        assert np.diff(s.wavelength) == pytest.approx(h["CDELT1"])
        assert len(s) == h["NAXIS1"]
        np.testing.assert_array_equal(s.flux, fits.getdata(path))
        assert s.meta.designation == h["OBJECT"]
        assert s.meta.id == "ivo://asu.cas.cz/stel/ccd700/" + name.removesuffix(".fits")
    s = read(shared_data / "ondrejov" / "ua280060.fits")  # RA '10:10:07.540' DEC '-08:24:29.40'
    assert s.meta.ra == pytest.approx((10 + 10 / 60 + 7.54 / 3600) * 15)
    assert s.meta.dec == pytest.approx(-(8 + 24 / 60 + 29.4 / 3600))


def test_ondrejov_votable_layout(shared_data):
    paths = [shared_data / "ondrejov" / n for n in ("gamma-cas.fits", "alpha-lyr.fits")]
    paths += sorted((shared_data / "pairs" / "ondrejov").iterdir())
    for path in paths:
        s = read(path)
        with fits.open(path) as hdul:
            h, table = hdul[1].header, hdul[1].data
        assert s.meta.layout == "ondrejov-votable" and s.medium == "air"
        np.testing.assert_array_equal(s.wavelength, table["spectral"])
        np.testing.assert_array_equal(s.flux, table["flux"].astype(np.float32))
        assert s.meta.id == h["DS_IDPUB"]
        assert s.meta.ra == h["RA"]
        assert s.meta.resolving_power == 13000


def test_gzip_reads_like_plain(shared_data, tmp_path):
    src = _lamost(shared_data, "dr2")[0]
    gz = tmp_path / (src.name + ".gz")
    with src.open("rb") as a, gzip.open(gz, "wb") as b:
        shutil.copyfileobj(a, b)
    plain, packed = read(src), read(gz)
    np.testing.assert_array_equal(plain.flux, packed.flux)
    np.testing.assert_array_equal(plain.wavelength, packed.wavelength)
    assert plain.meta.id == packed.meta.id


@pytest.mark.parametrize("layout, name", [("dr1", "lamost-dr1"), ("dr2", "lamost-image"),
                                          ("dr9", "lamost-coadd")])
@pytest.mark.parametrize("suffix", [".fits", ".fits.gz"])
def test_written_lamost_files_read_back(tmp_path, layout, name, suffix):
    flux, ivar = star_flux(3905)
    path = write_lamost(tmp_path / f"spec-1{suffix}", flux, ivar, lamost_meta(), layout=layout)
    s = read(path)
    assert s.meta.layout == name and identify(path) == "lamost"
    np.testing.assert_allclose(s.wavelength, lamost_wavelength(3905), rtol=1e-7)
    np.testing.assert_array_equal(s.flux, flux.astype(np.float32))
    assert s.meta.designation == "LAMOST J220848.54-020324.3"
    assert s.meta.snr == pytest.approx(27.16)
    with fits.open(path) as hdul:  # and astropy reads them too
        hdul.verify("exception")


def test_written_ondrejov_raw_reads_back(tmp_path):
    wave = 6250.0 + 0.2567 * np.arange(1997)
    flux = np.linspace(1.0, 2.0, 1997)
    path = write_ondrejov_raw(tmp_path / "ua010001.fits", wave, flux, obj="HD 1",
                              ra="01:00:00", dec="+10:30:00")
    s = read(path)
    np.testing.assert_allclose(s.wavelength, wave)
    assert s.meta.ra == pytest.approx(15.0) and s.meta.dec == pytest.approx(10.5)


def _write_sdss(path, n=4000):
    """A small file following the SDSS DR8+ spec-PLATE-MJD-FIBER data model."""
    loglam = 3.5523 + 1e-4 * np.arange(n)
    rng = np.random.default_rng(1)
    flux = 20 + rng.normal(0, 1, n)
    ivar = np.ones(n)
    and_mask = np.zeros(n, np.int32)
    and_mask[100] = 1 << 24
    primary = fits.PrimaryHDU()
    h = primary.header
    h["TELESCOP"] = "SDSS 2.5-M"
    h["PLATEID"], h["MJD"], h["FIBERID"] = 1234, 56789, 42
    h["PLUG_RA"], h["PLUG_DEC"] = 150.25, 2.5
    h["RUN2D"] = "v5_13_2"
    coadd = fits.BinTableHDU.from_columns([
        fits.Column(name="flux", format="E", array=flux),
        fits.Column(name="loglam", format="E", array=loglam),
        fits.Column(name="ivar", format="E", array=ivar),
        fits.Column(name="and_mask", format="J", array=and_mask),
        fits.Column(name="or_mask", format="J", array=and_mask),
        fits.Column(name="wdisp", format="E", array=np.ones(n)),
        fits.Column(name="sky", format="E", array=np.zeros(n)),
        fits.Column(name="model", format="E", array=flux),
    ], name="COADD")
    specobj = fits.BinTableHDU.from_columns([
        fits.Column(name="CLASS", format="6A", array=["STAR"]),
        fits.Column(name="SUBCLASS", format="21A", array=["B6"]),
        fits.Column(name="SN_MEDIAN_ALL", format="E", array=[17.5]),
        fits.Column(name="Z", format="E", array=[0.0001]),
    ], name="SPECOBJ")
    fits.HDUList([primary, coadd, specobj]).writeto(path)
    return loglam, flux


def test_sdss_layout(tmp_path):
    path = tmp_path / "spec-1234-56789-0042.fits"
    loglam, flux = _write_sdss(path)
    s = read(path)
    assert s.meta.layout == "sdss-coadd" and s.medium == "vacuum"
    np.testing.assert_allclose(s.wavelength, 10 ** loglam.astype(np.float32).astype(float),
                               rtol=1e-12)
    np.testing.assert_allclose(s.flux, flux.astype(np.float32))
    assert s.mask[100] and s.mask.sum() == 1
    assert s.meta.id == "spec-1234-56789-0042"
    assert (s.meta.ra, s.meta.dec) == (150.25, 2.5)
    assert (s.meta.survey_class, s.meta.survey_subclass) == ("STAR", "B6")
    assert s.meta.snr == pytest.approx(17.5)


def test_unknown_layout_falls_back_to_specutils(tmp_path):
    pytest.importorskip("specutils")
    import astropy.units as u
    from astropy.table import QTable

    wave = np.linspace(6000, 7000, 500) * u.AA
    flux = np.linspace(1, 2, 500) * u.Jy
    path = tmp_path / "table.fits"
    QTable([wave, flux], names=["wavelength", "flux"]).write(path, format="fits")
    assert identify(path) == "specutils"
    s = read(path)
    assert s.meta.layout == "specutils"
    np.testing.assert_allclose(s.wavelength, wave.value)
    np.testing.assert_allclose(s.flux, flux.value)


def test_text_files_go_to_specutils_binary_garbage_does_not(tmp_path):
    pytest.importorskip("specutils")
    import astropy.units as u
    from astropy.table import QTable

    wave = np.linspace(6500, 6600, 50) * u.AA
    path = tmp_path / "spectrum.ecsv"  # a text format specscout has no reader of
    QTable({"wavelength": wave, "flux": np.ones(50) * u.Jy}).write(path)
    s = read(path)
    assert s.meta.layout == "specutils"
    np.testing.assert_allclose(s.wavelength, wave.value)
    # A damaged FITS file (its first card broken) and binary noise are not text: refused at
    # once as not-fits, without specutils' format guessing (tens of seconds on such files).
    header = b"".join(c.ljust(80) for c in (b"RIMPLE  =                    T",
                                            b"NAXIS   =                    0", b"END"))
    rng = np.random.default_rng(0)
    for name, data in (("damaged.fits", header.ljust(2880) + rng.bytes(500_000)),
                       ("noise.bin", rng.bytes(500_000))):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ReadError) as err:
            read(tmp_path / name)
        assert err.value.reason == "not-fits" and "specutils" not in err.value.detail


def test_the_real_emission_lines_survive_the_reader_and_preprocessing(shared_data):
    """LAMOST zeroes the ivar over strong lines; the three real emission-line stars of the
    test data must keep their H-alpha peak (not be bridged by interpolation)."""
    from specscout.spectra.preprocess import PreprocessConfig, prepare

    grid = PreprocessConfig().grid.wavelength
    for name in ("bt-cmi.fits", "spec-56265-VB069N07V2_sp04-027.fits",
                 "spec-55959-GAC_094N27_V3_sp16-125.fits"):
        p = prepare(read(shared_data / "pairs" / "lamost" / name), PreprocessConfig())
        assert p.ok and not p.mask.any(), name
        peak = grid[np.argmax(p.flux)]
        assert abs(peak - 6564.6) < 6, (name, peak)
        assert p.flux.max() == 1.0  # min-max: the line is the maximum of the window
