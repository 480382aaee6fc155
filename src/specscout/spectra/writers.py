"""Write spectra in real survey layouts (the inverse of :mod:`specscout.spectra.readers`).

Used by the survey simulator and by the tests: every file written here follows the layout
that the matching reader documents, with the header keys real archive files carry. The FITS
bytes are formatted directly (:mod:`specscout.spectra.readers.fitsbytes`); the tests verify every
layout with astropy.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np

from specscout.spectra.fitswrite import Card, gzip_bytes, image_hdu, table_hdu
from specscout.spectra.spectrum import Meta

LAMOST_LAYOUTS = ("dr1", "dr2", "dr9")
#: log10 wavelength of the first pixel and the step of every LAMOST LRS spectrum.
LAMOST_COEFF0, LAMOST_COEFF1 = 3.5682, 1e-4


def lamost_wavelength(n: int = 3909) -> np.ndarray:
    """The vacuum wavelengths of a LAMOST LRS spectrum of ``n`` pixels."""
    return 10.0 ** (LAMOST_COEFF0 + LAMOST_COEFF1 * np.arange(n))


def _lamost_cards(meta: Meta, layout: str) -> list[Card]:
    cards: list[Card] = [
        ("TELESCOP", "LAMOST", "GuoShouJing Telescope"),
        ("ORIGIN", "NAOC-LAMOST", "Organization responsible for creating this file"),
        ("AUTHOR", "LAMOST Pipeline", "Who compiled the information"),
        ("FILENAME", Path(meta.path).name.removesuffix(".gz") if meta.path
         else f"{meta.id}.fits", ""),
    ]
    if layout == "dr1":
        cards.append(("EXTEN0", "Flux Inverse Subcontinuum Andmask Ormask", ""))
    elif layout == "dr2":
        cards.append(("EXTEN0", "Flux Inverse Wavelength Andmask Ormask", ""))
    if meta.obsid is not None:
        cards.append(("OBSID", int(meta.obsid), "Unique number ID of this spectrum"))
    if meta.release and layout != "dr1":
        cards.append(("DATA_V", f"LAMOST {meta.release}", "Data release version"))
    snr = meta.snr if math.isfinite(meta.snr) else 0.0
    cards += [
        ("RA", float(meta.ra), "[deg] Right ascension of object"),
        ("DEC", float(meta.dec), "[deg] Declination of object"),
        ("DESIG", meta.designation, "Designation of LAMOST target"),
        ("VACUUM", True, "Wavelengths are in vacuum"),
        ("HELIO", True, "Heliocentric correction"),
        ("WFITTYPE", "LOG-LINEAR", ""),
        ("COEFF0", LAMOST_COEFF0, "Center wavelength (log10) of first pixel"),
        ("COEFF1", LAMOST_COEFF1, "Log10 dispersion per pixel"),
        ("CRVAL1", LAMOST_COEFF0, ""), ("CD1_1", LAMOST_COEFF1, ""), ("CRPIX1", 1, ""),
        ("CTYPE1", "LINEAR", ""), ("DC-FLAG", 1, ""),
        ("VERSPIPE", {"dr1": "v2.6.4", "dr2": "v2.7.5"}.get(layout, "v2.9.8"), ""),
        ("CLASS", meta.survey_class or "STAR", "Class of object"),
        ("SUBCLASS", meta.survey_subclass or "Non", "Subclass of object"),
    ]
    for band, factor in zip("UGRIZ", (0.2, 0.7, 1.0, 1.1, 0.8), strict=True):
        key = f"SN_{band}" if layout in ("dr1", "dr2") else f"SNR{band}"
        cards.append((key, round(snr * factor, 2), f"SNR of {band.lower()} band"))
    return cards


def write_lamost(
    path: str | Path,
    flux: np.ndarray,
    ivar: np.ndarray,
    meta: Meta,
    layout: str = "dr2",
    andmask: np.ndarray | None = None,
    compress: bool | None = None,
) -> Path:
    """Write a LAMOST LRS file on the standard log-linear grid (``len(flux)`` pixels).

    layout: ``dr1`` (row 2 sub-continuum), ``dr2`` (DR2-DR8 primary image, row 2 wavelength)
    or ``dr9`` (DR9+ ``COADD`` table). ``compress`` defaults to the path ending in ``.gz``.
    """
    if layout not in LAMOST_LAYOUTS:
        raise ValueError(f"layout must be one of {LAMOST_LAYOUTS}, not {layout!r}")
    path = Path(path)
    n = len(flux)
    wave = lamost_wavelength(n)
    andmask = np.zeros(n, np.float32) if andmask is None else np.asarray(andmask, np.float32)
    flux32, ivar32 = np.asarray(flux, np.float32), np.asarray(ivar, np.float32)
    cards = _lamost_cards(meta, layout)
    if layout == "dr9":
        columns = {"FLUX": flux32, "IVAR": ivar32, "WAVELENGTH": wave.astype(np.float32),
                   "ANDMASK": andmask, "ORMASK": andmask,
                   "NORMALIZATION": np.ones(n, np.float32)}
        data = (image_hdu(None, cards)
                + table_hdu(columns, [("EXTNAME", "COADD", "coadded spectrum")]))
    else:
        # DR1 row 2 is the sub-continuum; DR2-DR8 files store float64 with the wavelength.
        third = np.ones(n) if layout == "dr1" else wave
        dtype = np.float32 if layout == "dr1" else np.float64
        image = np.vstack([flux32, ivar32, third, andmask, andmask]).astype(dtype)
        data = image_hdu(image, cards)
    return _write(data, path, compress)


#: log10 wavelength of the first pixel, and the pixels, of each LAMOST MRS arm (step 1e-5).
MRS_ARMS = {"B": (3.6902, 3815), "R": (3.79992, 3726)}
MRS_LOG_STEP = 1e-5


def mrs_wavelength(arm: str) -> np.ndarray:
    """The vacuum wavelengths of a LAMOST MRS arm (``B`` ~4900-5350 A, ``R`` ~6308-6873 A)."""
    start, n = MRS_ARMS[arm]
    return 10.0 ** (start + MRS_LOG_STEP * np.arange(n))


Arms = dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # arm -> (flux, ivar, mask bits)


def write_lamost_mrs(path: str | Path, coadd: Arms, exposures: list[tuple[int, Arms]],
                     meta: Meta, compress: bool | None = None) -> Path:
    """Write a LAMOST MRS file: the ``Information`` header, ``COADD_B``/``COADD_R`` and one
    ``B-<lmjm>``/``R-<lmjm>`` pair per exposure (``lmjm``: local Modified Julian Minute),
    tables of one row per pixel on :func:`mrs_wavelength`; the exposures' LOGLAM runs
    downwards, as in real files."""
    start = min(m for m, _ in exposures) if exposures else 0
    cards: list[Card] = [
        ("EXTNAME", "Information", "The extension name"),
        ("FILENAME", Path(path).name.removesuffix(".gz"), ""),
        ("OBSID", int(meta.obsid or 0), "Unique number ID of this spectrum"),
        ("AUTHOR", "LAMOST Pipeline", "Who compiled the information"),
        ("DATA_V", f"LAMOST {meta.release or 'DR7'}", "Data release version"),
        ("N_EXTEN", 3 + 2 * len(exposures), "The extension number"),
        ("ORIGIN", "NAOC-LAMOST", "Organization responsible for creating this file"),
        ("TELESCOP", "LAMOST", "GuoShouJing Telescope"),
        ("LMJD", int(start // 1440), "Local Modified Julian Day"),
        ("MJD", int((start / 1440) - 8 / 24), "Modified Julian Day"),
        ("DATE-OBS", (dt.datetime(1858, 11, 17) + dt.timedelta(minutes=start - 8 * 60))
         .isoformat(timespec="seconds"), "The observation median UTC"),
        ("RA", float(meta.ra), "[deg] Right ascension of object"),
        ("DEC", float(meta.dec), "[deg] Declination of object"),
        ("DESIG", meta.designation, "Designation of LAMOST target"),
        ("OBJTYPE", meta.survey_class or "STAR", "Object type from input catalog"),
        ("NEXP_B", len(exposures), ""), ("COMBIN_B", "B" in coadd, ""),
        ("NEXP_R", len(exposures), ""), ("COMBIN_R", "R" in coadd, ""),
        ("HELIO", True, "Heliocentric correction"),
        ("VACUUM", True, "Wavelengths are in vacuum"),
    ]
    times = "-".join(str(m) for m, _ in exposures)
    data = image_hdu(None, cards)
    snr = meta.snr if math.isfinite(meta.snr) else 0.0
    for arm, (flux, ivar, bits) in coadd.items():
        loglam = np.log10(mrs_wavelength(arm)).astype(np.float32)
        data += table_hdu(
            {"FLUX": np.asarray(flux, np.float32), "IVAR": np.asarray(ivar, np.float32),
             "LOGLAM": loglam, "ANDMASK": np.asarray(bits, np.int16),
             "ORMASK": np.asarray(bits, np.int16)},
            [("EXTNAME", f"COADD_{arm}", "The extension name"), ("LMJMLIS0", times, ""),
             ("SNR", round(snr, 2), "Signal to noise ratio")], one_row=False)
    for arm in ("B", "R"):
        for lmjm, arms in exposures:
            if arm not in arms:
                continue
            flux, ivar, bits = (np.asarray(a)[::-1] for a in arms[arm])  # LOGLAM downwards
            data += table_hdu(
                {"FLUX": flux.astype(np.float32), "IVAR": ivar.astype(np.float32),
                 "LOGLAM": np.log10(mrs_wavelength(arm))[::-1].astype(np.float32),
                 "PIXMASK": bits.astype(np.int16)},
                [("EXTNAME", f"{arm}-{lmjm}", "The extension name"),
                 ("LMJM", str(lmjm), "Local Modified Julian Minute"),
                 ("EXPTIME", 600, "[s] Exposure duration time"),
                 ("SNR", round(snr / math.sqrt(max(len(exposures), 1)), 2), "")],
                one_row=False)
    return _write(data, Path(path), compress)


def write_ondrejov_raw(path: str | Path, wavelength_air: np.ndarray, flux: np.ndarray,
                       obj: str = "", ra: str = "", dec: str = "",
                       compress: bool | None = None) -> Path:
    """Write an Ondrejov CCD700 raw archive file: 1-D image with a linear WCS (air)."""
    wave = np.asarray(wavelength_air, dtype=np.float64)
    step = (wave[-1] - wave[0]) / (wave.size - 1)
    if not np.allclose(np.diff(wave), step, rtol=1e-6, atol=1e-9):
        raise ValueError("the raw Ondrejov layout needs a linear wavelength grid")
    cards: list[Card] = [
        ("ORIGIN", "NOAO-IRAF FITS Image Kernel July 2003", "FITS file originator"),
        ("OBJECT", obj, "Title of observation"),
        ("OBSERVAT", "ONDREJOV", "Name of observatory (IRAF style)"),
        ("TELESCOP", "ZEISS-2m", "2m Ondrejov observatory telescope"),
        ("INSTRUME", "COUDE700", "Coude spectrograph setup - 1400/700mm focus"),
        ("FILENAME", Path(path).name.removesuffix(".gz").removesuffix(".fits") + ".fit", ""),
        ("RA", ra, ""), ("DEC", dec, ""),
        ("CRVAL1", float(wave[0]), ""), ("CDELT1", float(step), ""), ("CD1_1", float(step), ""),
        ("CRPIX1", 1.0, ""), ("CTYPE1", "LINEAR", ""), ("DC-FLAG", 0, ""),
    ]
    return _write(image_hdu(np.asarray(flux, np.float32), cards), Path(path), compress)


def _write(data: bytes, path: Path, compress: bool | None) -> Path:
    if compress is None:
        compress = path.suffix == ".gz"
    path.write_bytes(gzip_bytes(data) if compress else data)
    return path
