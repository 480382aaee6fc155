"""Small helpers shared by the readers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from specscout.errors import ReadError
from specscout.spectra.readers.fitsbytes import Header


def stem(path: str) -> str:
    """File name without .gz/.fits/.fit: the natural id of a survey file."""
    name = Path(path).name
    for suffix in (".gz", ".fits", ".fit", ".fts"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name


def number(header: Header, *keys: str) -> float:
    """The first of ``keys`` present with a numeric value, else NaN."""
    for key in keys:
        value = header.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return math.nan


def text(header: Header, key: str) -> str:
    value = header.get(key)
    return "" if value is None else str(value).strip()


def required(header: Header, key: str, path: str, default: float | None = None) -> float:
    """A numeric keyword; ``default`` when absent, if given; else a ReadError."""
    value = header.get(key)
    if value is None and default is not None:
        return default
    if value is None:
        raise ReadError(path, "missing-keyword", f"{key} is absent")
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ReadError(path, "bad-keyword", f"{key} is {value!r}, not a number")
    return float(value)


def checked_wavelength(wave: np.ndarray, path: str) -> np.ndarray:
    """Wavelengths as float64, finite and strictly increasing, or a ReadError."""
    wave = np.asarray(wave, dtype=np.float64)
    if wave.size < 2 or not np.all(np.isfinite(wave)):
        raise ReadError(path, "bad-wavelength", "wavelength array is empty or not finite")
    if not np.all(np.diff(wave) > 0):
        raise ReadError(path, "bad-wavelength", "wavelengths are not strictly increasing")
    return wave
