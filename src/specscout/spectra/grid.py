"""The common wavelength grid every spectrum is resampled onto."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class Grid:
    """``points`` uniform vacuum wavelengths from ``start`` to ``stop`` (Angstrom, inclusive).

    The default is the window of Skoda, Podsztavek & Tvrdik (2020) around H-alpha.
    """

    start: float = 6519.0
    stop: float = 6732.0
    points: int = 140

    def __post_init__(self) -> None:
        if not (self.stop > self.start and self.points >= 2):
            raise ValueError(
                f"bad grid: start={self.start}, stop={self.stop}, points={self.points}")

    @cached_property
    def wavelength(self) -> np.ndarray:
        return np.linspace(self.start, self.stop, self.points)

    @property
    def step(self) -> float:
        return (self.stop - self.start) / (self.points - 1)
