"""The shape of H-alpha's emission on a spectrum's pixels (:mod:`.measure`'s step 6): the
pixels it spans, the peaks of the observed flux within it, its FWHM, centroid and V/R, and
whether it sits in absorption or beside a P Cygni trough."""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import find_peaks

from specscout.spectra.lines import C_KMS, DETECTION, HALF_WIDTH, HALPHA_VACUUM, PEAK_REACH


def span(w, smooth_excess, smooth_sigma, centre: float, fwhm: float) -> np.ndarray:
    """The pixels of the emission centred at ``centre``: outwards while the smoothed excess
    stays above half its noise, across a dip of up to one FWHM where it rises again to 2
    sigma (the two peaks of a line), at most PEAK_REACH away; widened by half a FWHM."""
    i = int(np.argmin(np.abs(w - centre)))
    above = smooth_excess > 0.5 * smooth_sigma
    strong = smooth_excess > 2 * smooth_sigma
    bounds = []
    for direction in (-1, 1):
        j = i
        while True:
            k = j + direction
            if not (0 <= k < w.size) or abs(w[k] - centre) > PEAK_REACH:
                break
            if above[k]:
                j = k
                continue
            ahead = np.nonzero((np.abs(w - w[k]) <= fwhm) & (np.sign(w - w[k]) == direction)
                               & (np.abs(w - centre) <= PEAK_REACH) & strong)[0]
            if not ahead.size:
                break
            j = int(ahead.min() if direction > 0 else ahead.max())
        bounds.append(w[j])
    return (w >= bounds[0] - fwhm / 2) & (w <= bounds[1] + fwhm / 2)


def shape(w, smooth, smooth_excess, smooth_sigma, win, step, fwhm, smoothing: float,
           region: np.ndarray, row: dict) -> None:
    """Peaks of the observed flux within the emission's pixels ``region`` (3-sigma
    prominence), the emission's FWHM and centroid, V/R, and absorption beside the emission
    (into ``row``); ``smoothing``: the FWHM (A) of the smoothing of ``smooth``."""
    at = np.nonzero(win)[0]
    peaks, props = find_peaks(smooth[at], prominence=DETECTION * float(smooth_sigma[at].min()))
    peaks, prominence = at[peaks], props["prominences"]
    # prominent against the noise where they are (a pipeline's variance may rise at the line)
    keep = region[peaks] & (prominence >= DETECTION * smooth_sigma[peaks])
    peaks, prominence = peaks[keep], prominence[keep]
    row["ha_peaks"] = int(peaks.size)
    if peaks.size >= 2:  # the two most prominent, in wavelength order
        v, r_ = np.sort(peaks[np.argsort(-prominence)[:2]])
        row["ha_peak_separation"] = float((w[r_] - w[v]) / HALPHA_VACUUM * C_KMS)
        hv, hr = smooth_excess[v], smooth_excess[r_]
        row["ha_vr"] = float(hv / hr) if hr > 0 and hv > 0 else math.nan
    span = np.nonzero(region & win)[0]
    top = int(span[np.argmax(smooth_excess[span])])
    height = smooth_excess[top]
    # the outermost half heights within the emission (both peaks of a double line)
    half = span[smooth_excess[span] >= height / 2]
    left = _crossing(w, smooth_excess, int(half.min()), -1, height / 2)
    right = _crossing(w, smooth_excess, int(half.max()), 1, height / 2)
    if math.isfinite(left) and math.isfinite(right):
        # the light smoothing taken out, in quadrature
        width = math.sqrt(max((right - left) ** 2 - smoothing**2, 0.0))
        row["ha_fwhm"] = width / HALPHA_VACUUM * C_KMS
        row["ha_resolved"] = bool(width > 1.25 * fwhm)
    else:  # half its height lies beyond the window: far broader than the instrument
        row["ha_resolved"] = True
        row["notes"] = "ha_fwhm:wider-than-the-window"
    e = np.clip(smooth_excess[span], 0, None)
    if e.sum() > 0:
        centroid = float(np.sum(w[span] * e * step[span]) / np.sum(e * step[span]))
        row["ha_velocity"] = (centroid / HALPHA_VACUUM - 1) * C_KMS
    # absorption beside the emission, within 2 FWHM of its half height, blue and red of it
    lo = left if math.isfinite(left) else w[span[0]]
    hi = right if math.isfinite(right) else w[span[-1]]
    blue = at[(w[at] < lo) & (w[at] > lo - 2 * fwhm)]
    red = at[(w[at] > hi) & (w[at] < hi + 2 * fwhm)]
    below = tuple(_absorbed(smooth[side], smooth_sigma[side]) for side in (blue, red))
    row["ha_absorption"] = {(True, True): "both", (True, False): "blue",
                            (False, True): "red", (False, False): "none"}[below]
    # a P Cygni trough: below the absorption profile by 3 sigma within 2 FWHM of the
    # emission, on one side only
    trough = []
    for side in (blue, red):
        trough.append(bool(side.size and np.any(smooth_excess[side]
                                                  < -DETECTION * smooth_sigma[side])))
    row["ha_pcygni"] = {(True, False): "blue", (False, True): "red"}.get(tuple(trough), "")


#: The mean depth below the continuum that makes the flux beside an emission "in
#: absorption": a line's own absorption (an A star's H-alpha), not a cool star's metal lines.
ABSORBED = 0.1


def _absorbed(flux: np.ndarray, sigma: np.ndarray) -> bool:
    """Whether the (smoothed) ``flux`` beside an emission lies in an absorption line: its
    mean at least :data:`ABSORBED` below the continuum, and 3 sigma below it."""
    if not flux.size:
        return False
    deficit = 1 - float(np.mean(flux))
    return deficit >= ABSORBED and deficit >= DETECTION * float(np.sqrt(np.mean(sigma**2)))


def _crossing(w, values, start: int, direction: int, level: float) -> float:
    """Where ``values`` falls below ``level`` going from ``start`` in ``direction``,
    interpolated; NaN if it does not within the window."""
    i = start
    while 0 <= i + direction < w.size and abs(w[i + direction] - HALPHA_VACUUM) <= HALF_WIDTH:
        j = i + direction
        if values[j] < level:
            t = (values[i] - level) / (values[i] - values[j])
            return float(w[i] + t * (w[j] - w[i]))
        i = j
    return math.nan


