"""Fit the effective resolving power of a survey from spectra of the same stars.

A high-resolution spectrum (e.g. Ondrejov CCD700, R ~ 13000, air) of a star, converted to
vacuum, degraded to a trial resolving power R and shifted by a velocity, should look like the
survey's spectrum (e.g. LAMOST) of the same star. For each pair the model is

    survey(lambda) = P(lambda) * degraded(lambda / (1 + v/c))

with P a low-order polynomial absorbing the differences in flux calibration; the residual is
the RMS of survey - model over the window divided by the survey's mean flux. R is shared by all
pairs (fitted on the absorption-line stars, whose profiles do not vary between epochs); v is
fitted per pair.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar

from specscout.spectra.grid import Grid
from specscout.spectra.lines import C_KMS
from specscout.spectra.preprocess import air_to_vacuum, blur_pixels, match_resolution, resample
from specscout.spectra.readers import read
from specscout.spectra.spectrum import Spectrum


@dataclass(frozen=True)
class Pair:
    name: str
    label: str
    source: Spectrum  # high resolution
    target: Spectrum  # the survey's


@dataclass(frozen=True)
class PairFit:
    name: str
    label: str
    velocity: float  # km/s, applied to the source
    residual: float  # normalised RMS after matching with the fitted R
    resolving_power: float  # the best R for this pair alone
    residual_fixed_blur: float  # normalised RMS after the fixed pixel blur instead


@dataclass(frozen=True)
class Calibration:
    resolving_power: float
    r_source: float
    fixed_blur_pixels: float
    pairs: list[PairFit]

    @property
    def median_residual(self) -> float:
        return float(np.median([p.residual for p in self.pairs]))

    @property
    def median_residual_fixed_blur(self) -> float:
        return float(np.median([p.residual_fixed_blur for p in self.pairs]))


def load_pairs(csv_path: str | Path) -> list[Pair]:
    """Pairs from a CSV whose first two columns are the source and target files (paths relative
    to the CSV) and whose optional third column is a label."""
    csv_path = Path(csv_path)
    pairs = []
    with csv_path.open(newline="") as fh:
        for row in csv.reader(fh):
            if not row or row[0].strip().lower() in ("ondrejov", "source"):
                continue
            source, target = (csv_path.parent / row[0].strip(), csv_path.parent / row[1].strip())
            label = row[2].strip() if len(row) > 2 else ""
            pairs.append(Pair(Path(source).stem, label, read(source), read(target)))
    return pairs


def _on_grid(spec: Spectrum, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    flux, _, mask = resample(spec.wavelength, spec.flux, grid.wavelength, spec.ivar, spec.mask)
    return flux.astype(np.float64), ~mask & np.isfinite(flux)


def _residual(model: np.ndarray, model_ok: np.ndarray, target: np.ndarray, target_ok: np.ndarray,
              x: np.ndarray, degree: int) -> float:
    ok = model_ok & target_ok
    if ok.sum() < 3 * (degree + 1):
        return math.inf
    design = model[ok, None] * x[ok, None] ** np.arange(degree + 1)[None, :]
    coef, *_ = np.linalg.lstsq(design, target[ok], rcond=None)
    resid = target[ok] - design @ coef
    return float(np.sqrt(np.mean(resid**2)) / np.mean(target[ok]))


def _best_velocity(vacuum: np.ndarray, flux: np.ndarray, target: Spectrum, grid: Grid,
                   degree: int, max_velocity: float) -> tuple[float, float]:
    """(residual, velocity) minimising the residual over velocity: a coarse scan, then Brent."""
    t_flux, t_ok = _on_grid(target, grid)
    x = (grid.wavelength - grid.wavelength.mean()) / (grid.stop - grid.start)

    def cost(v: float) -> float:
        m, _, m_mask = resample(vacuum * (1 + v / C_KMS), flux, grid.wavelength)
        return _residual(m.astype(np.float64), ~m_mask, t_flux, t_ok, x, degree)

    scan = np.arange(-max_velocity, max_velocity + 1e-9, 10.0)
    v0 = float(scan[int(np.argmin([cost(v) for v in scan]))])
    res = minimize_scalar(cost, bounds=(v0 - 10.0, v0 + 10.0), method="bounded",
                          options={"xatol": 0.1})
    return float(res.fun), float(res.x)


def _source_vacuum(pair: Pair) -> np.ndarray:
    s = pair.source
    return air_to_vacuum(s.wavelength) if s.medium == "air" else s.wavelength


def pair_residual(pair: Pair, resolving_power: float, grid: Grid, r_source: float,
                  degree: int = 2, max_velocity: float = 200.0) -> tuple[float, float]:
    """(residual, velocity) of one pair after matching the source to ``resolving_power``."""
    s = pair.source
    flux, _, _ = match_resolution(s.wavelength, s.flux, r_source, resolving_power, s.ivar, s.mask)
    return _best_velocity(_source_vacuum(pair), flux, pair.target, grid, degree, max_velocity)


def _minimise_r(cost: Callable[[float], float], bounds: tuple[float, float]) -> float:
    # Scan in log R first: the cost is smooth but can be flat far from the minimum.
    trial = np.geomspace(*bounds, 12)
    i = int(np.argmin([cost(r) for r in trial]))
    lo, hi = trial[max(i - 1, 0)], trial[min(i + 1, len(trial) - 1)]
    return float(minimize_scalar(cost, bounds=(lo, hi), method="bounded",
                                 options={"xatol": 5.0}).x)


def calibrate_resolution(
    pairs: Sequence[Pair],
    grid: Grid | None = None,
    r_source: float | None = None,
    bounds: tuple[float, float] = (600.0, 8000.0),
    fit_labels: Sequence[str] = ("absorption",),
    fixed_blur_pixels: float = 7.0,
    degree: int = 2,
) -> Calibration:
    """Fit the survey's effective resolving power near the grid's window.

    ``r_source`` defaults to the source reader's resolving power. The pairs whose label is in
    ``fit_labels`` (all pairs when none is) determine R; every pair gets its own residual, and
    the residual after the reference paper's fixed blur of ``fixed_blur_pixels`` native pixels.
    """
    grid = grid or Grid()
    if not pairs:
        raise ValueError("no pairs to calibrate on")
    r_source = r_source or pairs[0].source.meta.resolving_power
    fitting = [p for p in pairs if p.label in fit_labels] or list(pairs)

    def total(r: float) -> float:
        return float(np.mean([pair_residual(p, r, grid, r_source, degree)[0] ** 2
                              for p in fitting]))

    r_fit = _minimise_r(total, bounds)
    fits = []
    for p in pairs:
        residual, velocity = pair_residual(p, r_fit, grid, r_source, degree)
        own_r = _minimise_r(lambda r, p=p: pair_residual(p, r, grid, r_source, degree)[0],
                            bounds)
        blurred = blur_pixels(p.source.flux, fixed_blur_pixels)
        fixed, _ = _best_velocity(_source_vacuum(p), blurred, p.target, grid, degree, 200.0)
        fits.append(PairFit(p.name, p.label, velocity, residual, own_r, fixed))
    return Calibration(r_fit, r_source, fixed_blur_pixels, fits)
