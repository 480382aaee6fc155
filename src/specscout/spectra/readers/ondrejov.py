"""Ondrejov 2m Perek telescope, CCD700 coude spectrograph (R ~ 13000 around H-alpha).

Two layouts:
- the raw archive file (IRAF): primary 1-D image, linear WCS (CRVAL1, CDELT1 or CD1_1, CRPIX1;
  DC-FLAG = 1 would mean log10), air wavelengths, sexagesimal RA/DEC strings;
- the VO (SSA) table served by the Ondrejov archive: empty primary HDU, HDU 1 binary table with
  columns ``spectral`` (Angstrom, air) and ``flux``; ``DS_IDPUB`` is the IVOA id.
Neither carries an error spectrum, so ``ivar`` is None.
"""

from __future__ import annotations

import math

import numpy as np

from specscout.errors import ReadError
from specscout.spectra.readers import register
from specscout.spectra.readers._common import checked_wavelength, number, required, stem, text
from specscout.spectra.readers.fitsbytes import FitsBytes, Header
from specscout.spectra.spectrum import Meta, Spectrum

RESOLVING_POWER = 13000.0
IVOA_PREFIX = "ivo://asu.cas.cz/stel/ccd700/"


def _is_raw(fits: FitsBytes) -> bool:
    h = fits.hdu(0).header
    return (
        h.get("NAXIS") == 1
        and (text(h, "OBSERVAT").upper() == "ONDREJOV" or text(h, "TELESCOP") == "ZEISS-2m")
    )


def _is_votable(fits: FitsBytes) -> bool:
    hdu = fits.hdu(1)
    if hdu is None or not hdu.is_table:
        return False
    h = hdu.header
    n = h.get("TFIELDS")
    n = n if isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 999 else 0
    columns = {str(h.get(f"TTYPE{i}")) for i in range(1, n + 1)}
    return text(h, "DS_IDPUB").startswith(IVOA_PREFIX) and {"spectral", "flux"} <= columns


def _sexagesimal(value: object, hours: bool) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or not value.strip():
        return math.nan
    from astropy.coordinates import Angle

    try:
        return float(Angle(value, unit="hourangle" if hours else "deg").degree)
    except ValueError:
        return math.nan


def _meta(h: Header, path: str, layout: str, ident: str, ra: float, dec: float) -> Meta:
    return Meta(
        id=ident,
        path=path,
        instrument="Ondrejov CCD700",
        layout=layout,
        release="Ondrejov archive",
        ra=ra,
        dec=dec,
        designation=text(h, "OBJECT"),
        snr=number(h, "SNR"),
        resolving_power=RESOLVING_POWER,
    )


@register("ondrejov-raw", _is_raw, priority=5)
def read_raw(fits: FitsBytes, path: str) -> Spectrum:
    hdu = fits.hdu(0)
    h = hdu.header
    if hdu.is_empty:
        raise ReadError(path, "empty", "primary HDU has no data")
    flux = np.asarray(fits.image(hdu), dtype=np.float32)
    if "CDELT1" not in h and "CD1_1" not in h:
        raise ReadError(path, "missing-keyword", "neither CDELT1 nor CD1_1 is present")
    step = required(h, "CDELT1" if "CDELT1" in h else "CD1_1", path)
    pix = np.arange(flux.size) + 1.0 - required(h, "CRPIX1", path, default=1.0)
    wave = required(h, "CRVAL1", path) + step * pix
    if h.get("DC-FLAG") == 1:
        wave = 10.0**wave
    ident = IVOA_PREFIX + stem(text(h, "FILENAME") or path)
    meta = _meta(h, path, "ondrejov-raw", ident,
                 _sexagesimal(h.get("RA"), hours=True), _sexagesimal(h.get("DEC"), hours=False))
    mask = np.zeros(flux.size, dtype=bool)
    return Spectrum(checked_wavelength(wave, path), flux, None, mask, "air", meta)


@register("ondrejov-votable", _is_votable, priority=5)
def read_votable(fits: FitsBytes, path: str) -> Spectrum:
    hdu = fits.hdu(1)
    table = fits.table(hdu)
    if len(table) == 0:
        raise ReadError(path, "no-flux", "the spectrum table has no rows")
    h = hdu.header
    wave = checked_wavelength(table["spectral"], path)
    flux = np.asarray(table["flux"], dtype=np.float32)
    meta = _meta(h, path, "ondrejov-votable", text(h, "DS_IDPUB"),
                 number(h, "RA"), number(h, "DEC"))
    return Spectrum(wave, flux, None, np.zeros(flux.size, dtype=bool), "air", meta)
