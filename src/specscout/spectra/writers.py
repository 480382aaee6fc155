"""Write spectra in real survey layouts (the inverse of :mod:`specscout.spectra.readers`).

Used by the survey simulator and by the tests: every file written here follows the layout
that the matching reader documents, with the header keys real archive files carry. The FITS
bytes are formatted directly (:mod:`specscout.spectra.readers.fitsbytes`); the tests verify every
layout with astropy.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from specscout.spectra.readers.fitsbytes import Card, gzip_bytes, image_hdu, table_hdu
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
