"""The absorption profile under H-alpha: the MILES photospheres, at the instrument's
resolution and shifted in velocity, fitted to a spectrum's flanks (:func:`photosphere`), so
that the measurement (:mod:`.measure`) sees the emission above the star's own absorption."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from specscout.spectra.lines import C_KMS, HALPHA_VACUUM, NEIGHBOURS
from specscout.spectra.preprocess import air_to_vacuum, match_resolution

CONTINUUM_GAP, CONTINUUM_REACH = 25.0, 60.0  # the continuum's sidebands, from H-alpha (A)
PROFILE_REACH = 40.0  # the absorption profile is fitted within this of H-alpha (A)
SHIFTS = np.arange(-150.0, 151.0, 25.0)  # velocities of the photospheres tried (km/s)


def sidebands(w: np.ndarray) -> np.ndarray:
    """The continuum's pixels: 25-60 A either side of H-alpha."""
    dist = np.abs(w - HALPHA_VACUUM)
    return (dist > CONTINUUM_GAP) & (dist < CONTINUUM_REACH)


@lru_cache(maxsize=8)
def _photospheres(resolving: float) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(vacuum wavelengths, relative flux, names) of the emission-free MILES photospheres at
    resolving power ``resolving`` (kept at MILES's 2.5 A where the instrument is sharper),
    each divided by its continuum, a straight line through the sidebands (as a spectrum's)."""
    from specscout.spectra.templates import load_templates

    t = load_templates()
    keep = t.usable
    w = air_to_vacuum(t.wavelength_air)
    flux = t.flux[keep]
    r_miles = HALPHA_VACUUM / t.fwhm
    if resolving < r_miles:
        flux = np.stack([match_resolution(w, f, r_miles, resolving)[0] for f in flux])
    use = sidebands(w)
    x = (w - HALPHA_VACUUM) / 100.0
    design = np.stack([np.ones_like(x), x], axis=1)
    coef, *_ = np.linalg.lstsq(design[use], flux[:, use].T, rcond=None)
    rel = flux / (design @ coef).T
    names = tuple(f"{n} ({s})" for n, s in zip(t.name[keep], t.spt[keep], strict=True))
    return w, rel.astype(np.float64), names


#: At most this many pixels of the flanks take part in choosing the photosphere (a sharper
#: instrument's pixels are thinned): the choice needs the profile's shape, not every pixel.
FIT_PIXELS = 160
#: The photospheres' depth may be scaled by this much (rotation, metallicity), and the
#: profile is the mean of this many best fits (one star's own features averaged out).
DEPTH_SCALE = (0.85, 1.15)
BEST = 5


@lru_cache(maxsize=8)
def _depths(resolving: float, wave: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(depth 1 - T, its square) of every photosphere at every velocity of :data:`SHIFTS`
    on the pixels ``wave`` (float64 bytes), as (templates x shifts, pixels): computed once
    per pixel grid, which survey files share."""
    tw, trel, _ = _photospheres(resolving)
    w = np.frombuffer(wave)
    depth = 1 - _shifted(tw, trel, w[None, :] / (1 + SHIFTS[:, None] / C_KMS))
    # 2-D, float32: one BLAS call a product, at half the memory traffic
    depth = np.ascontiguousarray(depth.reshape(-1, w.size), dtype=np.float32)
    square = depth**2
    depth.flags.writeable = square.flags.writeable = False
    return depth, square


def _shifted(tw: np.ndarray, trel: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The photospheres ``trel`` (on ``tw``) interpolated at the wavelengths ``at``."""
    pos = np.interp(at, tw, np.arange(tw.size))
    i0 = np.clip(pos.astype(np.int64), 0, tw.size - 2)
    frac = pos - i0
    return trel[:, i0] * (1 - frac) + trel[:, i0 + 1] * frac


class Photosphere(NamedTuple):
    """The absorption profile fitted under H-alpha."""

    profile: np.ndarray  # relative flux on the spectrum's pixels
    name: str  # the best MILES star
    velocity: float  # km/s: the mean of the best fits'
    velocity_err: float  # km/s, 1 sigma; inf where the flanks do not bound it
    spread: float  # A: the standard deviation of the best fits' EWs within the window
    significance: float  # sigma: the best fit against no absorption at all, on the flanks


def photosphere(w, rel, rel_sigma, good, resolving, fwhm, emission=None, window=None
                 ) -> Photosphere:
    """The absorption profile under H-alpha (relative flux on the pixels ``w``): the mean of
    the :data:`BEST` MILES photospheres, velocity shifts and depth scales
    (1 - s (1 - T), s in :data:`DEPTH_SCALE`) that fit the flanks best; the core (+-1 FWHM, at
    least 3 A), the pixels ``emission`` and what rises 3 sigma above a first fit left out.
    The velocity's error is the wider of the best fits' scatter and the half width of the
    best star's chi-square curve over velocity where it lies within 1 of its least (the
    flanks alone may hardly bound it: the core is left out)."""
    resolving = round(resolving, 1)
    dist = np.abs(w - HALPHA_VACUUM)
    reach = np.nonzero(dist < PROFILE_REACH)[0]
    at = reach[:: max(1, -(-reach.size // FIT_PIXELS))]
    use = good[at] & (dist[at] > max(fwhm, 3.0))
    if emission is not None:
        use &= ~emission[at]
    for rest in NEIGHBOURS.values():
        use &= np.abs(w[at] - rest) > 1.5 * fwhm
    if use.sum() < 8:
        return Photosphere(np.ones_like(w), "", math.nan, math.inf, 0.0, 0.0)
    depth, depth2 = _depths(resolving, w[at].tobytes())
    target = 1 - rel[at]
    inv = np.where(use, 1 / rel_sigma[at] ** 2, 0.0)
    for _ in range(2):
        wt = np.where(use, inv, 0.0)
        num = (depth @ (wt * target).astype(np.float32)).reshape(-1, SHIFTS.size)
        den = (depth2 @ wt.astype(np.float32)).reshape(-1, SHIFTS.size)
        num, den = num.astype(np.float64), den.astype(np.float64)  # (templates, shifts)
        scale = np.clip(num / np.where(den > 0, den, 1), *DEPTH_SCALE)
        # chi2 = sum wt (target - s d)^2, expanded: no (templates, shifts, pixels) temporary
        chi2 = float(wt @ target**2) - 2 * scale * num + scale**2 * den
        t, s = np.unravel_index(int(np.argmin(chi2)), chi2.shape)
        # emission in the flanks (a broad line) would pull the profile up: left out, refitted
        model = scale[t, s] * depth[t * SHIFTS.size + s].astype(np.float64)
        rises = (target - model) * np.sqrt(inv) < -3
        if not (use & rises).any() or (use & ~rises).sum() < 8:
            break
        use &= ~rises
    tw, trel, names = _photospheres(resolving)
    near = dist < PROFILE_REACH + 5
    profile = np.ones_like(w)
    best = np.argpartition(chi2, BEST, axis=None)[:BEST]
    fits, velocities = [], []
    for k in best:
        tk, sk = np.unravel_index(int(k), chi2.shape)
        shifted = w[near] / (1 + SHIFTS[sk] / C_KMS)
        fits.append(1 - scale[tk, sk] * (1 - _shifted(tw, trel[tk : tk + 1], shifted)[0]))
        velocities.append(SHIFTS[sk])
    profile[near] = np.mean(fits, axis=0)
    velocity_err = max(float(np.std(velocities)), _half_width(chi2[t]))
    spread = 0.0
    if window is not None:
        step = np.gradient(w)
        inside = window[near]
        spread = float(np.std([np.sum((1 - f[inside]) * step[near][inside]) for f in fits]))
    # chi2 of the flat continuum (no absorption) less the best fit's, on the same pixels
    gain = float(wt @ target**2) - float(chi2.min())
    return Photosphere(profile, names[t], float(np.mean(velocities)), velocity_err, spread,
                       math.sqrt(max(gain, 0.0)))


def _half_width(chi2: np.ndarray) -> float:
    """Half the width (km/s) of the velocities of :data:`SHIFTS` where ``chi2`` lies within
    1 of its least (interpolated between the grid's steps; inf where it stays within 1 at
    an end of the grid, or where it is not finite), at least half a step."""
    if not np.isfinite(chi2).all():
        return math.inf
    level = float(chi2.min()) + 1.0
    k = int(np.argmin(chi2))
    ends = []
    for direction in (-1, 1):
        i = k
        while 0 <= i + direction < chi2.size and chi2[i + direction] <= level:
            i += direction
        j = i + direction
        if not 0 <= j < chi2.size:
            return math.inf
        t = (level - chi2[i]) / (chi2[j] - chi2[i])
        ends.append(SHIFTS[i] + t * (SHIFTS[j] - SHIFTS[i]))
    step = float(SHIFTS[1] - SHIFTS[0])
    return float(max(0.5 * abs(ends[1] - ends[0]), 0.5 * step))
