"""LAMOST low-resolution (LRS) spectra, every released layout.

Data model: LAMOST DR1-DR9 data release documentation (``spec-*.fits``):
- DR1 (pipeline v2.6.x): primary image 5 x N, rows flux, inverse variance, sub-continuum,
  andmask, ormask (``EXTEN0 = 'Flux Inverse Subcontinuum Andmask Ormask'``). Row 2 is NOT the
  wavelength: it is 10**(COEFF0 + COEFF1 * i).
- DR2-DR8: primary image 5 x N (float64 or float32), rows flux, inverse variance, wavelength,
  andmask, ormask.
- DR9 and later: empty primary HDU; extension ``COADD``, a one-row binary table with vector
  columns FLUX, IVAR, WAVELENGTH, ANDMASK, ORMASK (and NORMALIZATION).
Wavelengths are vacuum, heliocentric, log-linear; N varies from file to file.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from specscout.errors import ReadError
from specscout.spectra.readers import register
from specscout.spectra.readers._common import checked_wavelength, number, required, stem, text
from specscout.spectra.readers.fitsbytes import FitsBytes, Header
from specscout.spectra.spectrum import Meta, Spectrum

#: Nominal resolving power of LAMOST LRS (the calibration command fits the effective one).
RESOLVING_POWER = 1800.0

# Pipeline versions seen in files without DATA_V, and the release they belong to.
_RELEASE_OF_PIPELINE = {"2.6.4": "DR1", "2.7.5": "DR2"}


def _identify(fits: FitsBytes) -> bool:
    h = fits.hdu(0).header
    return text(h, "TELESCOP").upper().startswith("LAMOST") or text(h, "ORIGIN") == "NAOC-LAMOST"


def _release(h: Header) -> str:
    data_v = text(h, "DATA_V")
    if data_v:
        return data_v.removeprefix("LAMOST").strip()
    pipeline = text(h, "VERSPIPE").lstrip("v")
    return _RELEASE_OF_PIPELINE.get(pipeline, f"pipeline {pipeline}" if pipeline else "")


def _log_linear(h: Header, n: int, path: str) -> np.ndarray:
    return _log_linear_grid(required(h, "COEFF0", path), required(h, "COEFF1", path), n)


@lru_cache(maxsize=64)
def _log_linear_grid(c0: float, c1: float, n: int) -> np.ndarray:
    # Nearly all LAMOST files share COEFF0/COEFF1, so the power is computed once per length.
    wave = 10.0 ** (c0 + c1 * np.arange(n))
    wave.flags.writeable = False
    return wave


#: The longest run of zero-ivar pixels taken as a clipped line (~35 A at 69 km/s per pixel).
MAX_CLIPPED_RUN = 24


def fill_clipped_ivar(flux: np.ndarray, ivar: np.ndarray, andmask: np.ndarray) -> np.ndarray:
    """LAMOST's pipeline sets the inverse variance to 0 over strong lines (the H-alpha core of
    deep absorption, the peak of emission) while the flux there is good and the andmask clean:
    12 of the 211 real files in the test data, among them all three emission-line stars.
    Taking those pixels as bad would erase the very profiles the method classifies, so they
    are kept with the ivar of their good neighbours scaled for photon noise (variance grows
    with the flux). Pixels with a set andmask, or no flux, or in a run longer than a line
    (MAX_CLIPPED_RUN pixels), stay bad."""
    good = ivar > 0
    clipped = ~good & (andmask == 0) & np.isfinite(flux) & (flux != 0)
    if clipped.any():  # leave out long runs: those are missing data, not a line
        edges = np.diff(np.concatenate([[0], clipped.astype(np.int8), [0]]))
        for start, stop in zip(np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0],
                               strict=True):
            if stop - start > MAX_CLIPPED_RUN:
                clipped[start:stop] = False
    if clipped.any() and good.sum() >= 2:
        idx = np.arange(len(flux))
        near_ivar = np.interp(idx[clipped], idx[good], ivar[good])
        near_flux = np.interp(idx[clipped], idx[good], np.abs(flux[good]))
        ratio = np.clip(near_flux / np.abs(flux[clipped]), 0.1, 10.0)
        ivar[clipped] = near_ivar * ratio
    return ivar


@register("lamost", _identify, priority=10)
def read(fits: FitsBytes, path: str) -> Spectrum:
    h = fits.hdu(0).header
    primary = fits.hdu(0)
    if not primary.is_empty:
        img = fits.image(primary)
        if img.ndim != 2 or img.shape[0] < 4:
            raise ReadError(path, "unknown-layout", f"LAMOST primary image of shape {img.shape}")
        flux, ivar, andmask = img[0], img[1], img[3]
        if "SUBCONTINUUM" in text(h, "EXTEN0").upper():
            layout, wave = "lamost-dr1", _log_linear(h, img.shape[1], path)
        else:
            layout, wave = "lamost-image", img[2]
    else:
        coadd = fits.find("COADD")
        if coadd is None:
            raise ReadError(path, "no-flux", "empty primary HDU and no COADD extension")
        table = fits.table(coadd)
        names = set(table.dtype.names or ())
        if len(table) < 1 or not {"FLUX", "IVAR", "WAVELENGTH"} <= names:
            raise ReadError(path, "no-flux", f"COADD table has columns {sorted(names)}")
        row = table[0]
        layout, flux, ivar, wave = "lamost-coadd", row["FLUX"], row["IVAR"], row["WAVELENGTH"]
        andmask = row["ANDMASK"] if "ANDMASK" in names else np.zeros_like(flux)

    flux = np.asarray(flux, dtype=np.float32)
    ivar = fill_clipped_ivar(flux, np.array(ivar, dtype=np.float32), np.asarray(andmask))
    mask = (np.asarray(andmask) != 0) | ~(ivar > 0)
    obsid = h.get("OBSID")
    meta = Meta(
        id=stem(path),
        path=path,
        instrument="LAMOST LRS",
        layout=layout,
        release=_release(h),
        ra=number(h, "RA"),
        dec=number(h, "DEC"),
        designation=text(h, "DESIG"),
        obsid=obsid if isinstance(obsid, int) and not isinstance(obsid, bool) else None,
        snr=number(h, "SNRR", "SN_R"),
        mjd=number(h, "MJD"),
        survey_class=text(h, "CLASS"),
        survey_subclass=text(h, "SUBCLASS"),
        resolving_power=RESOLVING_POWER,
    )
    medium = "air" if h.get("VACUUM") is False else "vacuum"
    return Spectrum(checked_wavelength(wave, path), flux, ivar, mask, medium, meta)
