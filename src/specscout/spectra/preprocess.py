"""From a spectrum on its native pixels to the vector the network sees. Pure numpy.

The steps, in the order :func:`prepare` applies them:
air -> vacuum wavelengths, resolution matching, flux-conserving resampling onto the grid,
quality flags, filling of masked grid pixels, normalisation.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from specscout.spectra.grid import Grid
from specscout.spectra.spectrum import Spectrum

#: FWHM of a Gaussian in units of its sigma, 2 sqrt(2 ln 2).
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


# --- wavelengths --------------------------------------------------------------------------


def _vald_index(air: np.ndarray) -> np.ndarray:
    """Refractive index of air at an air wavelength (VALD's formula, N. Piskunov)."""
    s2 = (1e4 / air) ** 2
    return (1.0 + 8.336624212083e-5 + 2.408926869968e-2 / (1.301065924522e2 - s2)
            + 1.599740894897e-4 / (3.892568793293e1 - s2))


def air_to_vacuum(wavelength: np.ndarray) -> np.ndarray:
    """Vacuum wavelengths (Angstrom) of air wavelengths, VALD formula: 6562.801 -> 6564.614."""
    air = np.asarray(wavelength, dtype=np.float64)
    return air * _vald_index(air)


def vacuum_to_air(wavelength: np.ndarray) -> np.ndarray:
    """The inverse of :func:`air_to_vacuum`, solved by fixed-point iteration (exact to 1e-9 A)."""
    vac = np.asarray(wavelength, dtype=np.float64)
    air = vac / 1.00029
    for _ in range(4):  # n - 1 ~ 3e-4 varies slowly: each step gains ~7 digits
        air = vac / _vald_index(air)
    return air


# --- resolution ---------------------------------------------------------------------------


def kernel_sigma(wavelength: np.ndarray, r_source: float, r_target: float) -> np.ndarray:
    """Sigma (Angstrom) of the Gaussian taking resolving power ``r_source`` to ``r_target``.

    FWHM = lambda / R for each, and Gaussians add in quadrature:
    sigma = lambda * sqrt(1/R_target^2 - 1/R_source^2) / 2.3548.
    """
    if not r_target < r_source:
        raise ValueError(f"cannot sharpen a spectrum: R_target {r_target} >= R_source {r_source}")
    return np.asarray(wavelength) * math.sqrt(r_target**-2 - r_source**-2) / FWHM_PER_SIGMA


def _valid(flux: np.ndarray, ivar: np.ndarray | None, mask: np.ndarray | None) -> np.ndarray:
    good = np.isfinite(flux)
    if mask is not None:
        good &= ~mask
    if ivar is not None:
        good &= ivar > 0
    return good


def match_resolution(
    wavelength: np.ndarray,
    flux: np.ndarray,
    r_source: float,
    r_target: float,
    ivar: np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Degrade a spectrum from resolving power ``r_source`` to ``r_target``.

    A Gaussian of wavelength-dependent width (:func:`kernel_sigma`) is integrated over the
    native pixels, whatever their spacing (linear, log-linear or irregular), so the result is
    the same physical blur on any grid. Bad pixels get no weight; output pixels whose kernel
    lost more than 10 % of its weight (to bad pixels or the ends of the spectrum) are masked.
    Returns ``(flux, ivar, mask)``; ivar propagates the variance (correlations are ignored).
    """
    wave = np.asarray(wavelength, dtype=np.float64)
    flux = np.asarray(flux, dtype=np.float64)
    n = wave.size
    good = _valid(flux, ivar, mask)
    sigma = kernel_sigma(wave, r_source, r_target)
    width = np.gradient(wave)  # pixel widths
    half = math.ceil(4.0 * float(np.max(sigma / width)))
    idx = np.arange(n)[:, None] + np.arange(-half, half + 1)[None, :]
    inside = (idx >= 0) & (idx < n)
    idx = np.clip(idx, 0, n - 1)
    z = (wave[idx] - wave[:, None]) / sigma[:, None]
    kernel = np.exp(-0.5 * z * z) * width[idx] * inside
    full = sigma * math.sqrt(2.0 * math.pi)  # the kernel's integral on an infinite grid
    weight = kernel * good[idx]
    total = weight.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (weight * np.where(good, flux, 0.0)[idx]).sum(axis=1) / total
        out_mask = total < 0.9 * full
        out_ivar = None
        if ivar is not None:
            var = np.where(good, 1.0 / np.where(good, ivar, 1.0), 0.0)
            out_var = (weight**2 * var[idx]).sum(axis=1) / total**2
            out_ivar = np.where(out_mask | ~(out_var > 0), 0.0, 1.0 / out_var).astype(np.float32)
    out[total == 0] = np.nan
    return out.astype(np.float32), out_ivar, out_mask


def blur_pixels(flux: np.ndarray, sigma: float) -> np.ndarray:
    """A fixed Gaussian blur of ``sigma`` pixels (the reference paper's method, for comparison)."""
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(np.asarray(flux, dtype=np.float64), sigma, mode="nearest")


# --- resampling ---------------------------------------------------------------------------


def pixel_edges(centres: np.ndarray) -> np.ndarray:
    """Edges of pixels around their centres (midpoints; the ends extrapolated)."""
    c = np.asarray(centres, dtype=np.float64)
    mid = 0.5 * (c[1:] + c[:-1])
    return np.concatenate(([2 * c[0] - mid[0]], mid, [2 * c[-1] - mid[-1]]))


@lru_cache(maxsize=256)
def _overlaps(in_edges: bytes, out_edges: bytes) -> tuple[np.ndarray, np.ndarray]:
    """For each output pixel, the input pixels it overlaps and by how much (Angstrom).

    Cached by the edges' bytes: survey files share a few native grids (all LAMOST files one
    log-linear grid), so the geometry is computed once per grid, not once per file.
    """
    edges, out = np.frombuffer(in_edges), np.frombuffer(out_edges)
    n = edges.size - 1
    first = np.searchsorted(edges, out[:-1], side="right") - 1
    last = np.searchsorted(edges, out[1:], side="left") - 1
    span = int(np.max(last - first)) + 1
    idx = first[:, None] + np.arange(span)[None, :]
    inside = (idx >= 0) & (idx < n)
    idx = np.clip(idx, 0, n - 1)
    overlap = np.minimum(out[1:, None], edges[idx + 1]) - np.maximum(out[:-1, None], edges[idx])
    overlap = np.clip(overlap, 0.0, None) * inside
    idx.flags.writeable = overlap.flags.writeable = False
    return idx, overlap


def resample(
    wavelength: np.ndarray,
    flux: np.ndarray,
    grid: np.ndarray,
    ivar: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    min_coverage: float = 0.5,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Flux-conserving rebinning onto ``grid`` (pixel centres, increasing).

    Each output pixel is the mean flux density of the good input pixels it overlaps, weighted
    by overlap. The variance is propagated with the same weights. Output pixels with less than
    ``min_coverage`` of their width covered by good input are masked (flux NaN where none).
    Returns ``(flux, ivar, mask)``.
    """
    wave = np.asarray(wavelength, dtype=np.float64)
    flux = np.asarray(flux, dtype=np.float64)
    good = _valid(flux, ivar, mask)
    out_edges, out_width = _grid_edges(np.asarray(grid, dtype=np.float64).tobytes())
    in_edges = pixel_edges(wave)
    # Only the input pixels that can overlap the grid.
    lo = max(int(np.searchsorted(in_edges, out_edges[0], side="right")) - 1, 0)
    hi = min(int(np.searchsorted(in_edges, out_edges[-1], side="left")) + 1, wave.size)
    n = out_width.size
    if hi <= lo:
        return (np.full(n, np.nan, dtype=np.float32),
                None if ivar is None else np.zeros(n, np.float32), np.ones(n, dtype=bool))
    f, g = flux[lo:hi], good[lo:hi]
    idx, overlap = _overlaps(in_edges[lo : hi + 1].tobytes(), out_edges.tobytes())
    weight = overlap * g[idx]
    total = weight.sum(axis=1)
    covered = total > 0
    out = np.divide((weight * np.where(g, f, 0.0)[idx]).sum(axis=1), total,
                    out=np.full(n, np.nan), where=covered)
    out_mask = total < min_coverage * out_width
    out_ivar = None
    if ivar is not None:
        iv = np.asarray(ivar, dtype=np.float64)[lo:hi]
        var = np.divide(1.0, iv, out=np.zeros(iv.size), where=g)
        out_var = (weight**2 * var[idx]).sum(axis=1)
        keep = ~out_mask & (out_var > 0)
        out_ivar = np.divide(total**2, out_var, out=np.zeros(n), where=keep).astype(np.float32)
    return out.astype(np.float32), out_ivar, out_mask


@lru_cache(maxsize=16)
def _grid_edges(grid: bytes) -> tuple[np.ndarray, np.ndarray]:
    edges = pixel_edges(np.frombuffer(grid))
    return edges, np.diff(edges)


# --- normalisation ------------------------------------------------------------------------


def normalise_minmax(wavelength: np.ndarray, flux: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min-max scaling to [-1, 1], as in the reference paper. Returns (flux, scale)."""
    lo, hi = flux.min(), flux.max()
    scale = 2.0 / (hi - lo) if hi > lo else np.nan
    return (flux - lo) * scale - 1.0, np.asarray(scale)


def normalise_continuum(
    wavelength: np.ndarray, flux: np.ndarray, degree: int = 2, clip: float = 2.5
) -> tuple[np.ndarray, np.ndarray]:
    """Division by a polynomial continuum fitted with iterative sigma clipping.

    Clipping is symmetric so that neither emission nor absorption lines pull the continuum.
    Returns (flux / continuum, 1 / continuum).
    """
    x = (wavelength - wavelength.mean()) / np.ptp(wavelength)
    keep = np.ones(flux.size, dtype=bool)
    for _ in range(8):
        coef = np.polynomial.polynomial.polyfit(x[keep], flux[keep], degree)
        resid = flux - np.polynomial.polynomial.polyval(x, coef)
        std = np.std(resid[keep])
        new = np.abs(resid) < clip * std if std > 0 else keep
        if np.array_equal(new, keep) or new.sum() <= degree + 1:
            break
        keep = new
    continuum = np.polynomial.polynomial.polyval(x, coef)
    with np.errstate(invalid="ignore", divide="ignore"):
        return flux / continuum, 1.0 / continuum


Normaliser = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

#: Normalisations by name: ``f(wavelength, flux) -> (normalised flux, factor)``, where the
#: factor multiplies flux (so ivar is divided by its square).
NORMALISATIONS: dict[str, Normaliser] = {
    "minmax": normalise_minmax,
    "continuum": normalise_continuum,
}


# --- quality ------------------------------------------------------------------------------


class Flag(enum.IntFlag):
    """Why a spectrum should not enter the pool. Stored as an integer bit field."""

    WINDOW_NOT_COVERED = 1
    NONFINITE = 2
    ZERO_FLUX = 4
    CONSTANT_FLUX = 8
    MASKED_PIXELS = 16
    LOW_SNR = 32
    NORMALISATION_FAILED = 64


def describe(flags: int) -> str:
    """Flag names, comma-separated, lower case (e.g. ``window_not_covered,low_snr``)."""
    return ",".join(f.name.lower() for f in Flag if f & flags and f.name)


def window_snr(flux: np.ndarray, ivar: np.ndarray | None, good: np.ndarray) -> float:
    """Median per-pixel signal-to-noise of the good pixels (NaN without ivar)."""
    if ivar is None or not good.any():
        return math.nan
    values = np.sort(np.abs(flux[good]) * np.sqrt(ivar[good]))
    mid = values.size // 2  # the median, without np.median's overhead on ~150 values
    return float(values[mid] if values.size % 2 else 0.5 * (values[mid - 1] + values[mid]))


# --- the whole step -----------------------------------------------------------------------


@dataclass(frozen=True)
class PreprocessConfig:
    """How spectra become network inputs.

    degrade_to: resolving power to degrade to (None: no resolution matching); spectra whose
    resolving power is already at or below it are left as they are.
    degrade_from: the source's resolving power; None takes the reader's (``meta``).
    """

    grid: Grid = field(default_factory=Grid)
    normalisation: str = "minmax"
    degrade_from: float | None = None
    degrade_to: float | None = None
    max_masked_fraction: float = 0.2
    min_snr: float = 2.0

    def __post_init__(self) -> None:
        if (self.degrade_from is not None and self.degrade_to is not None
                and self.degrade_from <= self.degrade_to):
            raise ValueError(f"degrade_from ({self.degrade_from}) must exceed degrade_to "
                             f"({self.degrade_to}): resolution can only be lowered")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"unknown normalisation {self.normalisation!r}; "
                             f"choose from {sorted(NORMALISATIONS)}")


@dataclass(frozen=True, slots=True)
class Prepared:
    """A spectrum on the grid: normalised flux (float32, masked pixels interpolated), its
    inverse variance in normalised units (zeros where unknown or masked), the mask, the quality
    flags and the window's median signal-to-noise."""

    flux: np.ndarray
    ivar: np.ndarray
    mask: np.ndarray
    flags: int
    snr: float

    @property
    def ok(self) -> bool:
        return self.flags == 0


def prepare(spectrum: Spectrum, config: PreprocessConfig | None = None) -> Prepared:
    """Bring ``spectrum`` onto the grid as the network's input, with its quality flags."""
    config = config or PreprocessConfig()
    grid = config.grid
    wave = spectrum.wavelength
    if spectrum.medium == "air":
        wave = air_to_vacuum(wave)
    flux, ivar, mask = spectrum.flux, spectrum.ivar, spectrum.mask

    # The native pixels that matter: the window plus room for the blur kernel.
    margin = 5 * grid.step
    if config.degrade_to is not None:
        margin += 5 * float(kernel_sigma(grid.stop, 1e12, config.degrade_to))
    a = int(np.searchsorted(wave, grid.start - margin))
    b = int(np.searchsorted(wave, grid.stop + margin))
    wave, flux, mask = wave[a:b], flux[a:b], mask[a:b]
    ivar = None if ivar is None else ivar[a:b]

    flags = 0
    half = 0.5 * grid.step
    if wave.size < 2 or wave[0] > grid.start + half or wave[-1] < grid.stop - half:
        flags |= Flag.WINDOW_NOT_COVERED
    if wave.size == 0:
        n = grid.points
        return Prepared(np.full(n, np.nan, np.float32), np.zeros(n, np.float32),
                        np.ones(n, bool), int(flags), math.nan)
    in_window = (wave >= grid.start - half) & (wave <= grid.stop + half)
    unmasked = ~mask & in_window
    if not np.all(np.isfinite(flux[unmasked])) or (
        ivar is not None and not np.all(np.isfinite(ivar[unmasked]))
    ):
        flags |= Flag.NONFINITE
    good = _valid(flux, ivar, mask) & in_window
    values = flux[good]
    if values.size == 0 or not np.any(values):
        flags |= Flag.ZERO_FLUX
    elif np.ptp(values) == 0:
        flags |= Flag.CONSTANT_FLUX
    snr = window_snr(flux, ivar, good)
    if snr < config.min_snr:
        flags |= Flag.LOW_SNR

    if config.degrade_to is not None:
        r_source = config.degrade_from or spectrum.meta.resolving_power
        if not math.isfinite(r_source):
            raise ValueError(f"{spectrum.meta.path}: resolving power unknown; set degrade_from")
        if r_source > config.degrade_to:  # spectra already at or below the target stay as they are
            flux, ivar, mask = match_resolution(wave, flux, r_source, config.degrade_to, ivar,
                                                mask)

    gflux, givar, gmask = resample(wave, flux, grid.wavelength, ivar, mask)
    if gmask.mean() > config.max_masked_fraction:
        flags |= Flag.MASKED_PIXELS
    if gmask.all():
        filled = np.full(grid.points, np.nan, dtype=np.float64)
    else:
        x = grid.wavelength
        filled = np.interp(x, x[~gmask], gflux[~gmask]).astype(np.float64)
    norm_flux, factor = NORMALISATIONS[config.normalisation](grid.wavelength, filled)
    if not np.all(np.isfinite(norm_flux)):
        flags |= Flag.NORMALISATION_FAILED
    norm_ivar = np.zeros(grid.points, dtype=np.float32)
    if givar is not None:
        f2 = np.broadcast_to(np.asarray(factor, dtype=np.float64) ** 2, norm_ivar.shape)
        np.divide(givar, f2, out=norm_ivar, where=~gmask & np.isfinite(f2) & (f2 > 0),
                  casting="unsafe")
    return Prepared(norm_flux.astype(np.float32), norm_ivar, gmask, int(flags), snr)
