"""Real photospheres around H-alpha: the MILES stars specscout ships.

The simulator builds its spectra on them; the line measurement fits them as the absorption
profile under an emission line (:mod:`.lines`). Made by ``scripts/build_templates.py`` from the
MILES library (Sanchez-Blazquez et al. 2006, MNRAS 371, 703; Falcon-Barroso et al. 2011, A&A
532, A95): 984 stars, 6240-6790 A in air, 0.9 A a pixel, FWHM 2.5 A, each divided by its
median there.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np


@dataclass(frozen=True)
class Templates:
    wavelength_air: np.ndarray  # (pixels,)
    flux: np.ndarray  # (templates, pixels), median 1
    fwhm: float  # Angstrom
    miles_id: np.ndarray
    name: np.ndarray
    spt: np.ndarray
    teff: np.ndarray
    logg: np.ndarray
    feh: np.ndarray
    emission: np.ndarray  # measured H-alpha emission: excluded from photospheres

    @property
    def usable(self) -> np.ndarray:
        return np.nonzero(~self.emission)[0]


@lru_cache(maxsize=1)
def load_templates() -> Templates:
    """The MILES H-alpha templates shipped with specscout."""
    with (resources.files("specscout.spectra") / "data" / "miles_halpha.npz").open("rb") as fh:
        d = np.load(fh)
        n = d["flux"].shape[1]
        return Templates(
            wavelength_air=float(d["start"]) + float(d["step"]) * np.arange(n),
            flux=d["flux"].astype(np.float64), fwhm=float(d["fwhm"]), miles_id=d["miles_id"],
            name=d["name"], spt=d["spt"], teff=d["teff"], logg=d["logg"], feh=d["feh"],
            emission=d["emission"])
