"""A corpus of bad files: each yields its named reason, with the path, and nothing is zeroed."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from astropy.io import fits

from specscout import ReadError, read
from specscout.spectra.preprocess import Flag, prepare
from specscout.spectra.writers import write_lamost

from conftest import lamost_meta, star_flux


@pytest.fixture
def good(tmp_path):
    flux, ivar = star_flux()
    return write_lamost(tmp_path / "good.fits", flux, ivar, lamost_meta(), layout="dr2")


def _expect(path, reason):
    with pytest.raises(ReadError) as info:
        read(path)
    assert info.value.reason == reason
    assert str(path) in str(info.value)
    return info.value


def test_truncated(good, tmp_path):
    bad = tmp_path / "truncated.fits"
    bad.write_bytes(good.read_bytes()[: 2880 * 10])
    _expect(bad, "truncated")


def test_header_without_end(good, tmp_path):
    bad = tmp_path / "no-end.fits"
    bad.write_bytes(good.read_bytes()[:2880])
    _expect(bad, "truncated")


def test_corrupt_gzip(good, tmp_path):
    packed = bytearray(gzip.compress(good.read_bytes()))
    packed[len(packed) // 2 : len(packed) // 2 + 64] = b"\xff" * 64
    bad = tmp_path / "corrupt.fits.gz"
    bad.write_bytes(bytes(packed))
    _expect(bad, "bad-gzip")


def test_truncated_gzip(good, tmp_path):
    bad = tmp_path / "cut.fits.gz"
    bad.write_bytes(gzip.compress(good.read_bytes())[:5000])
    _expect(bad, "bad-gzip")


@pytest.mark.parametrize("content", [b"", b"SIMPLE but not really\n", b"\x00" * 3000])
def test_not_fits(tmp_path, content):
    bad = tmp_path / "notfits.fits"
    bad.write_bytes(content)
    _expect(bad, "not-fits")


def test_missing_file(tmp_path):
    _expect(tmp_path / "nowhere.fits", "io")


def test_empty_hdu(tmp_path):
    bad = tmp_path / "empty.fits"
    hdu = fits.PrimaryHDU()
    hdu.header["TELESCOP"] = "LAMOST"
    hdu.writeto(bad)
    _expect(bad, "no-flux")


def test_unknown_layout(tmp_path):
    bad = tmp_path / "other.fits"
    fits.PrimaryHDU(np.zeros((3, 3))).writeto(bad)
    err = _expect(bad, "unknown-layout")
    assert "no specscout reader" in err.detail


def test_missing_keyword(tmp_path):
    flux, ivar = star_flux()
    path = write_lamost(tmp_path / "dr1.fits", flux, ivar, lamost_meta(), layout="dr1")
    with fits.open(path) as hdul:
        del hdul[0].header["COEFF0"]
        hdul.writeto(tmp_path / "nocoeff.fits")
    err = _expect(tmp_path / "nocoeff.fits", "missing-keyword")
    assert "COEFF0" in err.detail


def test_bad_wavelength(tmp_path):
    flux, ivar = star_flux()
    path = write_lamost(tmp_path / "dr2.fits", flux, ivar, lamost_meta(), layout="dr2")
    with fits.open(path) as hdul:
        hdul[0].data[2] = hdul[0].data[2][::-1]
        hdul.writeto(tmp_path / "reversed.fits")
    _expect(tmp_path / "reversed.fits", "bad-wavelength")


def _flags(tmp_path, flux, ivar, n=3909):
    path = write_lamost(tmp_path / "x.fits", flux, ivar, lamost_meta(), layout="dr2")
    return prepare(read(path)).flags


def test_nan_flux_is_flagged(tmp_path):
    flux, ivar = star_flux()
    flux[2500:2600] = np.nan
    assert _flags(tmp_path, flux, ivar) & Flag.NONFINITE


def test_zero_flux_is_flagged_not_stored(tmp_path):
    flux, ivar = star_flux()
    prepared_flags = _flags(tmp_path, np.zeros_like(flux), np.zeros_like(ivar))
    assert prepared_flags & Flag.ZERO_FLUX


def test_constant_flux_is_flagged(tmp_path):
    flux, ivar = star_flux()
    assert _flags(tmp_path, np.full_like(flux, 5.0), ivar) & Flag.CONSTANT_FLUX


def test_window_not_covered(tmp_path):
    flux, ivar = star_flux(2300)  # 3700 - 6540 A: stops inside the H-alpha window
    assert _flags(tmp_path, flux, ivar) & Flag.WINDOW_NOT_COVERED


def test_masked_window_is_flagged(tmp_path):
    flux, ivar = star_flux()
    ivar[2400:2600] = 0
    assert _flags(tmp_path, flux, ivar) & Flag.MASKED_PIXELS


def test_low_snr_is_flagged(tmp_path):
    flux, ivar = star_flux()
    assert _flags(tmp_path, flux, ivar * 1e-6) & Flag.LOW_SNR
