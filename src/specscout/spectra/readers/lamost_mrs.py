"""LAMOST medium-resolution (MRS) spectra: one star, its coadd and every exposure.

Data model (LAMOST DR7+ ``med-MJD-PLANID_spSS-FFF.fits``, read off the real files):
- primary HDU ``Information``: header only (DESIG, RA, DEC, OBSID, DATA_V, DATE-OBS,
  NEXP_B/NEXP_R, COMBIN_B/COMBIN_R, VACUUM = T, HELIO);
- ``COADD_B`` and ``COADD_R``: binary tables with one row per pixel, columns FLUX, IVAR,
  LOGLAM (log10 vacuum Angstrom), ANDMASK, ORMASK; SNR and the exposures' times (LMJMLIS*)
  in the header; blue arm ~4950-5350 A, red arm ~6300-6870 A (H-alpha);
- one ``B-<lmjm>`` and one ``R-<lmjm>`` table per exposure (FLUX, IVAR, LOGLAM, PIXMASK),
  ``lmjm`` the exposure's start in local (Beijing, UTC+8) Modified Julian Minutes; their LOGLAM
  may run downwards.
R ~ 7500. Each epoch (the coadd, then each exposure) is one spectrum holding both arms, with
the id ``<file>#coadd`` or ``<file>#<lmjm>``.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from specscout.errors import PartError, ReadError
from specscout.spectra.readers import register
from specscout.spectra.readers._common import checked_wavelength, number, stem, text
from specscout.spectra.readers.fitsbytes import FitsBytes, FitsError, Header
from specscout.spectra.readers.lamost import fill_clipped_ivar
from specscout.spectra.spectrum import Meta, Spectrum

RESOLVING_POWER = 7500.0
_MJD0 = dt.datetime(1858, 11, 17)


def _identify(fits: FitsBytes) -> bool:
    h = fits.hdu(0).header
    lamost = text(h, "TELESCOP").upper().startswith("LAMOST") or \
        text(h, "ORIGIN") == "NAOC-LAMOST"
    return lamost and (fits.find("COADD_R") is not None or fits.find("COADD_B") is not None)


def _mjd(date: str) -> float:
    try:
        when = dt.datetime.fromisoformat(date.strip().rstrip("Z"))
    except ValueError:
        return float("nan")
    return (when - _MJD0).total_seconds() / 86400


def _arm(fits: FitsBytes, name: str, path: str) -> tuple | None:
    """(wavelength, flux, ivar, mask, header) of the table HDU ``name``, or None."""
    hdu = fits.find(name)
    if hdu is None:
        return None
    table = fits.table(hdu)
    names = set(table.dtype.names or ())
    if not {"FLUX", "IVAR", "LOGLAM"} <= names:
        raise ReadError(path, "no-flux", f"{name} has columns {sorted(names)}")
    mask_column = "ANDMASK" if "ANDMASK" in names else "PIXMASK" if "PIXMASK" in names else None
    bits = (np.asarray(table[mask_column]) if mask_column
            else np.zeros(len(table), dtype=np.int16))
    wave = 10.0 ** np.asarray(table["LOGLAM"], dtype=np.float64)
    order = np.argsort(wave, kind="stable")
    flux = np.asarray(table["FLUX"], dtype=np.float32)[order]
    ivar = fill_clipped_ivar(flux, np.array(table["IVAR"], dtype=np.float32)[order],
                             bits[order])
    return wave[order], flux, ivar, (bits[order] != 0) | ~(ivar > 0), hdu.header


def _epoch(arms: list[tuple], path: str, meta: Meta) -> Spectrum:
    wave = checked_wavelength(np.concatenate([a[0] for a in arms]), path)
    return Spectrum(wave, np.concatenate([a[1] for a in arms]),
                    np.concatenate([a[2] for a in arms]), np.concatenate([a[3] for a in arms]),
                    "vacuum", meta)


@register("lamost-mrs", _identify, priority=20)
def read(fits: FitsBytes, path: str) -> list[Spectrum]:
    h: Header = fits.hdu(0).header
    if h.get("VACUUM") is False:
        raise ReadError(path, "unknown-layout", "an MRS file with air wavelengths")
    obsid = h.get("OBSID")
    base = dict(path=path, instrument="LAMOST MRS",
                release=text(h, "DATA_V").removeprefix("LAMOST").strip(), ra=number(h, "RA"),
                dec=number(h, "DEC"), designation=text(h, "DESIG"),
                obsid=obsid if isinstance(obsid, int) and not isinstance(obsid, bool) else None,
                survey_class=text(h, "CLASS") or text(h, "OBJTYPE"),
                survey_subclass=text(h, "SUBCLASS"), resolving_power=RESOLVING_POWER)
    name = stem(path)
    spectra: list = []

    def epoch(spectrum_id: str, arm_names: tuple[str, str], **meta) -> None:
        """The spectrum of two arm tables; one that cannot be read is a PartError in its
        place, so that the file's other spectra are still had."""
        try:
            arms = [a for a in (_arm(fits, n, path) for n in arm_names) if a]
            if not arms:
                return
            spectra.append(_epoch(arms, path, Meta(id=spectrum_id, snr=number(arms[-1][4],
                                                                             "SNR"),
                                                   **meta, **base)))
        except (ReadError, FitsError) as exc:
            spectra.append(PartError(path, spectrum_id, exc.reason, exc.detail))
        except (ValueError, TypeError, IndexError, KeyError, OverflowError) as exc:
            spectra.append(PartError(path, spectrum_id, "malformed",
                                     f"{type(exc).__name__}: {exc}"))

    epoch(f"{name}#coadd", ("COADD_B", "COADD_R"), layout="lamost-mrs-coadd",
          exposure="coadd", mjd=_mjd(text(h, "DATE-OBS")))
    times = list(dict.fromkeys(n[2:] for n in fits.extnames() if n[:2] in ("B-", "R-")))
    for lmjm in times:
        minutes = float(lmjm) if lmjm.isdigit() else float("nan")
        epoch(f"{name}#{lmjm}", (f"B-{lmjm}", f"R-{lmjm}"), layout="lamost-mrs-exposure",
              exposure=lmjm, mjd=minutes / 1440 - 8 / 24)
    if not spectra:
        raise ReadError(path, "no-flux", "no COADD_B/COADD_R or exposure tables")
    return spectra
