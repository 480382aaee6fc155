"""The one in-memory record of a spectrum, as every reader returns it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MEDIA = ("vacuum", "air", "unknown")


@dataclass(frozen=True, slots=True)
class Meta:
    """What is known about a spectrum besides its pixels.

    ``survey_class`` / ``survey_subclass`` are the archive pipeline's own classification
    (e.g. ``STAR`` / ``K5``), not specscout's labels. A file that holds several spectra (the
    coadd and the exposures of a LAMOST MRS file, the targets of a DESI file) gives each an
    ``id`` of its own and says which it is in ``exposure`` ("coadd", an exposure's time, a
    target id); ``mjd`` is when it was observed (UTC Modified Julian Date).
    """

    id: str
    path: str
    instrument: str
    layout: str
    release: str = ""
    ra: float = math.nan
    dec: float = math.nan
    designation: str = ""
    obsid: int | None = None
    snr: float = math.nan
    survey_class: str = ""
    survey_subclass: str = ""
    resolving_power: float = math.nan
    exposure: str = ""
    mjd: float = math.nan


@dataclass(slots=True)
class Spectrum:
    """A 1-D spectrum on its native pixels.

    wavelength: Angstrom, float64, increasing, in ``medium`` (vacuum or air).
    flux: float32. ivar: inverse variance of flux (float32), or None when the file has none.
    mask: bool, True marks a bad pixel (numpy.ma convention).
    """

    wavelength: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray | None
    mask: np.ndarray
    medium: str
    meta: Meta

    def __post_init__(self) -> None:
        if self.medium not in MEDIA:
            raise ValueError(f"medium must be one of {MEDIA}, not {self.medium!r}")
        n = self.wavelength.shape[0]
        for name in ("flux", "ivar", "mask"):
            arr = getattr(self, name)
            if arr is not None and arr.shape != (n,):
                raise ValueError(f"{name} has shape {arr.shape}, wavelength has ({n},)")

    def __len__(self) -> int:
        return self.wavelength.shape[0]
