"""Artefacts a spectrum's pixels show near H-alpha, which are no light of the star: runs of
zeros, spikes narrower than the instrument's line spread (cosmic rays), and residuals of sky
subtraction at the night-sky lines. :mod:`.measure` looks for them and :mod:`.kinds` says
what they mean."""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import find_peaks

from specscout.spectra.lines import gauss
from specscout.spectra.preprocess import FWHM_PER_SIGMA, air_to_vacuum

#: Night-sky lines near H-alpha (OH, air wavelengths of Osterbrock et al. 1996, in vacuum),
#: where sky subtraction leaves residuals: bumps, dips, or both side by side where the
#: sky's wavelengths and the star's differ a little.
SKY = tuple(float(v) for v in air_to_vacuum(np.array([6533.04, 6553.62, 6568.78, 6577.18,
                                                      6596.64])))
SPIKE = 5.0  # sigma of a feature whose width is judged
MAX_SPIKES = 3  # spikes left out of a spectrum at most: more are no cosmic rays
SPIKE_MARGIN = 16.0  # chi-square by which one or two pixels alone must beat a line


def longest_run(mask: np.ndarray) -> tuple[int, int]:
    """(first, last) index of the longest run of True (last < first when none)."""
    if not mask.any():
        return 0, -1
    edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
    starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
    k = int(np.argmax(ends - starts))
    return int(starts[k]), int(ends[k] - 1)


def sky_residual(w, excess, sigma, good, centre, sigma_inst, fwhm, exclude) -> float:
    """The chi-square by which a sky line's residual (a Gaussian and its derivative at the
    instrument's resolution, on a local straight line) improves on none; 0 when the line's
    pixels are missing or are H-alpha's emission (``exclude``)."""
    use = good & (np.abs(w - centre) < 2.5 * fwhm)
    if exclude is not None:
        use &= ~exclude
    if use.sum() < 6 or not (use & (np.abs(w - centre) < fwhm / 2)).any():
        return 0.0
    x = w[use] - centre
    g = gauss(w[use], centre, sigma_inst)
    a = np.stack([g, g * x / sigma_inst, np.ones_like(x), x], axis=1)
    wt = 1 / sigma[use] ** 2
    try:
        cov = np.linalg.inv(a.T @ (a * wt[:, None]))
    except np.linalg.LinAlgError:
        return 0.0
    coef = cov @ (a.T @ (wt * excess[use]))
    both = coef[:2]
    return float(both @ np.linalg.solve(cov[:2, :2], both))


def sky_explains(w, excess, sigma, good, centre: float, sky: float, sigma_inst, fwhm
                  ) -> bool:
    """Whether the excess near an emission at ``centre`` is fitted at least as well by the
    residual of the sky line at ``sky`` (a Gaussian and its derivative, side by side bumps
    and dips) as by a line at ``centre``; both on a local straight line."""
    mid = 0.5 * (centre + sky)
    use = good & (np.abs(w - mid) < 0.5 * abs(sky - centre) + 2 * fwhm)
    if use.sum() < 8:
        return False
    x, y, wt = w[use] - mid, excess[use], 1 / sigma[use] ** 2
    g = gauss(w[use], sky, sigma_inst)
    chi2 = []
    for model in ([gauss(w[use], centre, sigma_inst)], [g, g * (w[use] - sky) / sigma_inst]):
        a = np.stack([*model, np.ones_like(x), x], axis=1)
        coef, *_ = np.linalg.lstsq(a * np.sqrt(wt)[:, None], y * np.sqrt(wt), rcond=None)
        chi2.append(float(np.sum(wt * (y - a @ coef) ** 2)))
    return chi2[1] <= chi2[0]


def find_spikes(w, filled, sigma, good, fwhm) -> list[int]:
    """The pixels of spikes (cosmic rays): features of at least SPIKE sigma above the local
    running median whose pixels are fitted better by one or two pixels standing alone than
    by a line at the instrument's resolution (both on a local quadratic, weighted least
    squares; the spike by :data:`SPIKE_MARGIN` in chi-square at least, so that a line whose
    shape the noise hides is never taken for one)."""
    from scipy.ndimage import median_filter

    step = float(np.median(np.diff(w)))
    per_fwhm = fwhm / step
    resid = filled - median_filter(filled, size=max(5, int(3 * per_fwhm) | 1), mode="nearest")
    z = np.where(good, resid / sigma, 0.0)
    region = np.nonzero((w > 6500) & (w < 6740))[0]
    peaks, _ = find_peaks(z[region], height=SPIKE)
    reach = max(3, math.ceil(1.5 * per_fwhm))
    sigma_inst = fwhm / FWHM_PER_SIGMA
    found = []
    for p in region[peaks]:
        lo, hi = p - reach, p + reach + 1
        if lo < 0 or hi > w.size or not good[lo:hi].all():
            continue
        x, y, wt = (w[lo:hi] - w[p]) / fwhm, filled[lo:hi], 1 / sigma[lo:hi] ** 2
        base = [np.ones_like(x), x, x * x]
        line = min(_chi2([gauss(w[lo:hi], w[p] + d * step, sigma_inst), *base], y, wt)
                   for d in (-0.5, 0.0, 0.5))
        side = p + (1 if filled[p + 1] >= filled[p - 1] else -1)
        alone = [(np.arange(lo, hi) == i).astype(float) for i in (p, side)]
        if _chi2([*alone, *base], y, wt) + SPIKE_MARGIN < line:
            found.append(int(p))
    return found


def _chi2(columns: list[np.ndarray], y: np.ndarray, wt: np.ndarray) -> float:
    """The weighted least-squares chi-square of ``y`` on ``columns``."""
    a = np.stack(columns, axis=1) * np.sqrt(wt)[:, None]
    coef, *_ = np.linalg.lstsq(a, y * np.sqrt(wt), rcond=None)
    return float(np.sum((y * np.sqrt(wt) - a @ coef) ** 2))
