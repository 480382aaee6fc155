"""Write spectra in real survey layouts (the inverse of :mod:`specscout.readers`).

Used by the survey simulator and by the tests: every file written here follows the layout
that the matching reader documents, with the header keys real archive files carry.
"""

from __future__ import annotations

import gzip
import io
import math
from pathlib import Path

import numpy as np
from astropy.io import fits

from specscout.spectrum import Meta

LAMOST_LAYOUTS = ("dr1", "dr2", "dr9")
#: log10 wavelength of the first pixel and the step of every LAMOST LRS spectrum.
LAMOST_COEFF0, LAMOST_COEFF1 = 3.5682, 1e-4


def lamost_wavelength(n: int = 3909) -> np.ndarray:
    """The vacuum wavelengths of a LAMOST LRS spectrum of ``n`` pixels."""
    return 10.0 ** (LAMOST_COEFF0 + LAMOST_COEFF1 * np.arange(n))


def _lamost_header(meta: Meta, layout: str) -> fits.Header:
    h = fits.Header()
    h["TELESCOP"] = ("LAMOST", "GuoShouJing Telescope")
    h["ORIGIN"] = ("NAOC-LAMOST", "Organization responsible for creating this file")
    h["AUTHOR"] = "LAMOST Pipeline"
    h["FILENAME"] = Path(meta.path).name.removesuffix(".gz") if meta.path else f"{meta.id}.fits"
    if layout == "dr1":
        h["EXTEN0"] = "Flux Inverse Subcontinuum Andmask Ormask"
    elif layout == "dr2":
        h["EXTEN0"] = "Flux Inverse Wavelength Andmask Ormask"
    if meta.obsid is not None:
        h["OBSID"] = (meta.obsid, "Unique number ID of this spectrum")
    if meta.release and layout != "dr1":
        h["DATA_V"] = (f"LAMOST {meta.release}", "Data release version")
    h["RA"] = (meta.ra, "[deg] Right ascension of object")
    h["DEC"] = (meta.dec, "[deg] Declination of object")
    h["DESIG"] = (meta.designation, "Designation of LAMOST target")
    h["VACUUM"] = (True, "Wavelengths are in vacuum")
    h["HELIO"] = (True, "Heliocentric correction")
    h["WFITTYPE"] = "LOG-LINEAR"
    h["COEFF0"] = (LAMOST_COEFF0, "Center wavelength (log10) of first pixel")
    h["COEFF1"] = (LAMOST_COEFF1, "Log10 dispersion per pixel")
    h["CRVAL1"] = LAMOST_COEFF0
    h["CD1_1"] = LAMOST_COEFF1
    h["CRPIX1"] = 1
    h["CTYPE1"] = "LINEAR"
    h["DC-FLAG"] = 1
    h["VERSPIPE"] = {"dr1": "v2.6.4", "dr2": "v2.7.5"}.get(layout, "v2.9.8")
    h["CLASS"] = (meta.survey_class or "STAR", "Class of object")
    h["SUBCLASS"] = (meta.survey_subclass or "Non", "Subclass of object")
    snr = meta.snr if math.isfinite(meta.snr) else 0.0
    for band, factor in zip("UGRIZ", (0.2, 0.7, 1.0, 1.1, 0.8), strict=True):
        key = f"SN_{band}" if layout in ("dr1", "dr2") else f"SNR{band}"
        h[key] = (round(snr * factor, 2), f"SNR of {band.lower()} band")
    return h


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
    header = _lamost_header(meta, layout)
    if layout == "dr9":
        primary = fits.PrimaryHDU(header=header)
        cols = [fits.Column(name=name, format=f"{n}E", array=values[None, :])
                for name, values in (("FLUX", flux32), ("IVAR", ivar32),
                                     ("WAVELENGTH", wave.astype(np.float32)),
                                     ("ANDMASK", andmask), ("ORMASK", andmask),
                                     ("NORMALIZATION", np.ones(n, np.float32)))]
        hdus = fits.HDUList([primary, fits.BinTableHDU.from_columns(cols, name="COADD")])
    else:
        # DR1 row 2 is the sub-continuum; DR2-DR8 files store float64 with the wavelength.
        third = np.ones(n) if layout == "dr1" else wave
        dtype = np.float32 if layout == "dr1" else np.float64
        image = np.vstack([flux32, ivar32, third, andmask, andmask]).astype(dtype)
        hdus = fits.HDUList([fits.PrimaryHDU(image, header=header)])
    return _write(hdus, path, compress)


def write_ondrejov_raw(path: str | Path, wavelength_air: np.ndarray, flux: np.ndarray,
                       obj: str = "", ra: str = "", dec: str = "",
                       compress: bool | None = None) -> Path:
    """Write an Ondrejov CCD700 raw archive file: 1-D image with a linear WCS (air)."""
    wave = np.asarray(wavelength_air, dtype=np.float64)
    step = (wave[-1] - wave[0]) / (wave.size - 1)
    if not np.allclose(np.diff(wave), step, rtol=1e-6, atol=1e-9):
        raise ValueError("the raw Ondrejov layout needs a linear wavelength grid")
    h = fits.Header()
    h["ORIGIN"] = "NOAO-IRAF FITS Image Kernel July 2003"
    h["OBJECT"] = obj
    h["OBSERVAT"] = "ONDREJOV"
    h["TELESCOP"] = "ZEISS-2m"
    h["INSTRUME"] = "COUDE700"
    h["FILENAME"] = Path(path).name.removesuffix(".gz").removesuffix(".fits") + ".fit"
    h["RA"] = ra
    h["DEC"] = dec
    h["CRVAL1"] = float(wave[0])
    h["CDELT1"] = float(step)
    h["CD1_1"] = float(step)
    h["CRPIX1"] = 1.0
    h["CTYPE1"] = "LINEAR"
    h["DC-FLAG"] = 0
    return _write(fits.HDUList([fits.PrimaryHDU(np.asarray(flux, np.float32), header=h)]),
                  Path(path), compress)


def _write(hdus: fits.HDUList, path: Path, compress: bool | None) -> Path:
    if compress is None:
        compress = path.suffix == ".gz"
    buf = io.BytesIO()
    hdus.writeto(buf, output_verify="silentfix")
    data = buf.getvalue()
    path.write_bytes(gzip.compress(data, compresslevel=6, mtime=0) if compress else data)
    return path
