"""SDSS / BOSS ``spec-PLATE-MJD-FIBER.fits`` files (DR8 and later data model).

HDU 1 ``COADD``: one row per pixel with columns ``flux``, ``loglam`` (log10 vacuum Angstrom),
``ivar``, ``and_mask``, ``or_mask``, ``wdisp``, ``sky``, ``model``. HDU 2 ``SPECOBJ`` (SDSS) or
``SPALL`` (BOSS) holds the pipeline's CLASS, SUBCLASS, Z and signal-to-noise; its cells may be
arrays (TDIMn). Primary header: PLATEID, MJD, FIBERID, PLUG_RA, PLUG_DEC, RUN2D. The
designation is built as SDSS does: "SDSS Jhhmmss.ss+ddmmss.s", truncated.
"""

from __future__ import annotations

import numpy as np

from specscout.errors import ReadError
from specscout.spectra.readers import register
from specscout.spectra.readers._common import checked_wavelength, number, stem, text
from specscout.spectra.readers.fitsbytes import FitsBytes
from specscout.spectra.spectrum import Meta, Spectrum

RESOLVING_POWER = 2000.0


def _identify(fits: FitsBytes) -> bool:
    if "SDSS" not in text(fits.hdu(0).header, "TELESCOP").upper():
        return False
    coadd = fits.hdu(1)
    return coadd is not None and coadd.is_table


def _specobj_field(fits: FitsBytes, name: str) -> object:
    hdu = fits.find("SPECOBJ") or fits.find("SPALL")  # SDSS / BOSS
    if hdu is None:
        return None
    table = fits.table(hdu)
    if len(table) == 0 or name not in (table.dtype.names or ()):
        return None
    value = table[name][0]
    return value.decode("ascii", errors="replace").strip() if isinstance(value, bytes) else value


def designation(ra: float, dec: float) -> str:
    """The IAU-style SDSS designation of a position (digits truncated, not rounded)."""
    if not (np.isfinite(ra) and np.isfinite(dec)):
        return ""
    centi = int(ra / 15 * 360000)  # hundredths of a second of time
    deci = int(abs(dec) * 36000)  # tenths of an arcsecond
    return (f"SDSS J{centi // 360000:02d}{centi // 6000 % 60:02d}{centi % 6000 / 100:05.2f}"
            f"{'-' if dec < 0 else '+'}{deci // 36000:02d}{deci // 600 % 60:02d}"
            f"{deci % 600 / 10:04.1f}")


@register("sdss", _identify, priority=10)
def read(fits: FitsBytes, path: str) -> Spectrum:
    h = fits.hdu(0).header
    table = fits.table(fits.hdu(1))
    names = {n.lower(): n for n in table.dtype.names or ()}
    if "flux" not in names or "loglam" not in names:
        raise ReadError(path, "no-flux", f"COADD table has columns {sorted(names)}")
    wave = checked_wavelength(10.0 ** np.asarray(table[names["loglam"]], dtype=np.float64), path)
    flux = np.asarray(table[names["flux"]], dtype=np.float32)
    ivar = np.asarray(table[names["ivar"]], dtype=np.float32) if "ivar" in names else None
    mask = np.asarray(table[names["and_mask"]]) != 0 if "and_mask" in names else np.zeros(
        flux.size, dtype=bool)
    if ivar is not None:
        mask |= ~(ivar > 0)
    plate, mjd, fiber = h.get("PLATEID", h.get("PLATE")), h.get("MJD"), h.get("FIBERID")
    ident = (f"spec-{plate:04d}-{mjd:05d}-{fiber:04d}"
             if all(isinstance(v, int) for v in (plate, mjd, fiber)) else stem(path))
    snr = _specobj_field(fits, "SN_MEDIAN_ALL")
    ra, dec = number(h, "PLUG_RA", "RA"), number(h, "PLUG_DEC", "DEC")
    meta = Meta(
        id=ident,
        path=path,
        instrument="SDSS",
        layout="sdss-coadd",
        release=text(h, "RUN2D") or str(_specobj_field(fits, "RUN2D") or ""),
        ra=ra,
        dec=dec,
        designation=designation(ra, dec),
        mjd=number(h, "MJD"),
        snr=float(snr) if isinstance(snr, int | float | np.number) else np.nan,
        survey_class=str(_specobj_field(fits, "CLASS") or ""),
        survey_subclass=str(_specobj_field(fits, "SUBCLASS") or ""),
        resolving_power=RESOLVING_POWER,
    )
    return Spectrum(wave, flux, ivar, mask, "vacuum", meta)
