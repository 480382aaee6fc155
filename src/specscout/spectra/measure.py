"""Line measurement on a spectrum's own pixels: H-alpha and its neighbours ([N II] 6548/6583,
He I 6678, [S II] 6716/6731), with errors, as an astronomer reads them.

One spectrum in, one row of columns out (:data:`COLUMNS`); pure numpy and scipy. The steps
(docs/lines.md says them in full):

1. the **noise**: the file's inverse variance (without one, the scatter of second differences
   of the pixels, DER_SNR, Stoehr et al. 2008);
2. the **continuum**: a straight line through the sidebands 25-60 A either side of H-alpha
   (vacuum, rest), weighted by the noise, clipped at 3 sigma; its covariance is propagated;
3. the **absorption profile** under the line: the mean of the best of the shipped MILES
   photospheres (:mod:`.templates`) at the instrument's resolution, shifted in velocity and
   scaled in depth, fitted to the line's flanks outside its core; the noise is raised where
   the residuals from it scatter far more than the file says;
4. **artefacts** the pixels show: runs of zeros, spikes narrower than the line spread
   (cosmic rays: left out of what follows), residuals of sky subtraction;
5. the **net equivalent width** of H-alpha within +-15 A (negative for emission), and the
   **emission** above the absorption profile: its equivalent width, its amplitude at the
   instrument's resolution and significance, FWHM, centroid velocity;
6. **peaks**: local maxima of the observed flux (lightly smoothed) within the emission, of 3
   sigma prominence (scipy's ``find_peaks``): their number, separation and V/R, whether the
   emission sits in absorption or has a P Cygni trough beside it (:mod:`.shape`);
7. the **neighbouring lines**: the amplitude of a Gaussian at the instrument's resolution on a
   local quadratic, by linear least squares, at the lines' wavelengths shifted with H-alpha's
   emission.

:mod:`.kinds` turns the row into a kind. Where something cannot be measured the value is NaN
and ``status`` or ``notes`` says why; no number is made up.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from specscout.spectra.artefacts import (
    MAX_SPIKES,
    SKY,
    SPIKE,
    find_spikes,
    longest_run,
    sky_explains,
    sky_residual,
)
from specscout.spectra.lines import (
    C_KMS,
    DETECTION,
    HALF_WIDTH,
    HALPHA_VACUUM,
    NEIGHBOURS,
    PEAK_REACH,
    gauss,
)
from specscout.spectra.photosphere import PROFILE_REACH, photosphere, sidebands
from specscout.spectra.preprocess import FWHM_PER_SIGMA, air_to_vacuum
from specscout.spectra.shape import shape, span
from specscout.spectra.spectrum import Spectrum

#: The resolving power of a line as the survey's pixels record it. LAMOST LRS: the effective
#: R that ``specscout calibrate`` fits on the real same-star pairs (pixelisation included),
#: below the nominal 1800 of its files; other instruments: their files' nominal R.
EFFECTIVE_R = {"LAMOST LRS": 1531.0}

REGION = (6470.0, 6790.0)  # what is measured (vacuum, rest)
VELOCITY_MAX = 300.0  # the emission's centre is looked for within this (km/s)
NOISE_WRONG = 1.5  # residuals this much wider than the file's noise say the noise is wrong
MIN_NET_EW = 1.0  # A: net emission, as the training's positives

#: The measurement's version: kept measurements of another version are made again.
VERSION = 11

#: The columns of a measurement: (unit, UCD, description). EWs are negative for emission.
COLUMNS: dict[str, tuple[str | None, str, str]] = {
    "status": (None, "meta.code.qual", "'ok', or why nothing could be measured"),
    "notes": (None, "meta.note", "lines that could not be measured, and why"),
    "kind": (None, "src.class", "stellar, nebular, core, artefact, none or unknown"),
    "kind_reason": (None, "meta.note", "what decided the kind"),
    "artefacts": (None, "meta.note",
                  "artefacts the pixels show: zero-run, spike (left out), sky residuals"),
    "profile": (None, "src.class", "H-alpha profile class (Hou et al. 2016)"),
    "nebular": (None, "meta.code", "[N II] 6583 in emission at 3 sigma"),
    "resolving_power": (None, "instr.spect.resolution", "resolving power used"),
    "photosphere": (None, "meta.id", "MILES star fitted as the absorption profile"),
    "photosphere_velocity": ("km/s", "spect.dopplerVeloc",
                             "its velocity (25 km/s steps, the mean of the best fits)"),
    "photosphere_velocity_err": ("km/s", "stat.error",
                                 "its 1-sigma error (inf: the flanks do not bound it)"),
    "photosphere_depth": (None, "spect.line.intensity",
                          "depth of its H-alpha absorption at the line's centre (0-1)"),
    "photosphere_snr": (None, "stat.snr",
                        "significance of that absorption on the flanks, against none"),
    "ha_ew": ("Angstrom", "spect.line.eqWidth", "H-alpha net equivalent width (+-15 A)"),
    "ha_ew_err": ("Angstrom", "stat.error", "its 1-sigma error"),
    "ha_emission_ew": ("Angstrom", "spect.line.eqWidth",
                       "equivalent width of the emission above the absorption profile"),
    "ha_emission_ew_err": ("Angstrom", "stat.error", "its 1-sigma error"),
    "ha_peak": (None, "spect.line.intensity",
                "emission amplitude above the absorption profile (continuum units)"),
    "ha_peak_snr": (None, "stat.snr", "its significance"),
    "ha_fwhm": ("km/s", "spect.line.width", "FWHM of the emission"),
    "ha_fwhm_instrument": ("km/s", "instr.spect.resolution", "instrumental FWHM"),
    "ha_resolved": (None, "meta.code", "emission broader than 1.25 instrumental FWHM"),
    "ha_peaks": (None, "meta.number", "peaks of H-alpha (3-sigma prominence)"),
    "ha_peak_separation": ("km/s", "spect.line;arith.diff", "separation of the two peaks"),
    "ha_vr": (None, "arith.ratio", "violet / red peak height above the absorption profile"),
    "ha_velocity": ("km/s", "spect.dopplerVeloc", "centroid velocity of the emission"),
    "ha_absorption": (None, "meta.code",
                      "where the flux beside the emission lies in absorption (10 % and 3 "
                      "sigma below the continuum): both, blue, red or none"),
    "ha_pcygni": (None, "meta.code",
                  "a trough below the absorption profile on one side of the emission only: "
                  "blue (P Cygni), red (inverse P Cygni) or empty"),
    **{f"{name}_ew": ("Angstrom", "spect.line.eqWidth", f"{label} equivalent width")
       for name, label in (("nii_6548", "[N II] 6548"), ("nii_6583", "[N II] 6583"),
                           ("hei_6678", "He I 6678"), ("sii_6716", "[S II] 6716"),
                           ("sii_6731", "[S II] 6731"))},
    **{f"{name}_ew_err": ("Angstrom", "stat.error", "its 1-sigma error") for name in
       ("nii_6548", "nii_6583", "hei_6678", "sii_6716", "sii_6731")},
    "nii_ha": (None, "arith.ratio", "[N II] 6583 / H-alpha emission flux ratio"),
    "nii_ha_err": (None, "stat.error", "its 1-sigma error"),
    "line_snr": (None, "stat.snr", "median signal-to-noise of the continuum near H-alpha"),
    "noise_scale": (None, "arith.factor",
                    "the file's noise raised by this (the photosphere's residuals scatter "
                    "more), 1 if not"),
}
_TEXT = {"status", "notes", "kind", "kind_reason", "artefacts", "profile", "photosphere",
         "ha_absorption", "ha_pcygni"}
_BOOL = {"nebular", "ha_resolved"}
_INT = {"ha_peaks"}


def peak_threshold(resolving: float) -> float:
    """The significance an emission's amplitude must reach (in sigma) for the matched filter,
    which tries every position within +-VELOCITY_MAX: DETECTION's false-alarm chance (one-
    sided, 0.135 %) shared among the independent positions (one per instrumental FWHM)."""
    from scipy.stats import norm

    tries = max(1.0, 2 * VELOCITY_MAX / (C_KMS / resolving))
    return float(norm.isf(norm.sf(DETECTION) / tries))


def empty_row() -> dict:
    """A row of :data:`COLUMNS` with nothing measured."""
    return {k: ("" if k in _TEXT else False if k in _BOOL else 0 if k in _INT else math.nan)
            for k in COLUMNS}


def resolving_power(spectrum: Spectrum) -> float:
    """The resolving power of a spectrum's lines (:data:`EFFECTIVE_R`, else its file's)."""
    return float(EFFECTIVE_R.get(spectrum.meta.instrument, spectrum.meta.resolving_power))


class _Fail(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def measure(spectrum: Spectrum, resolving: float | None = None) -> dict:
    """The row of :data:`COLUMNS` of ``spectrum``; ``resolving``: its resolving power
    (default: :func:`resolving_power`). The kind is left to :func:`.kinds.classify`."""
    row = empty_row()
    try:
        _measure(_Pixels(spectrum, resolving or resolving_power(spectrum)), row)
        row["status"] = "ok"
    except _Fail as exc:
        row["status"] = exc.reason
    except Exception as exc:  # one odd spectrum must not stop a run over thousands
        row = {**empty_row(), "status": "error", "notes": f"{type(exc).__name__}: {exc}"}
    return row


def screen(spectrum: Spectrum, resolving: float | None = None) -> tuple[str, float]:
    """A quick look (a fifth of :func:`measure`'s time) at whether the spectrum can show
    H-alpha emission, and its net equivalent width: "net" (in net emission, as
    :func:`.kinds.net_emission` says), "no" (no net emission, no peak of 2 sigma near
    H-alpha, no [N II] 6583 of 2 sigma: no kind of emission the full measurement could
    find but a filling without a peak, which is not taught (:func:`~specscout.simulate.
    inject.emission_kind`)), or "maybe" (measure it)."""
    try:
        px = _Pixels(spectrum, resolving or resolving_power(spectrum))
    except _Fail:
        return "maybe", math.nan  # the measurement will say why
    ew, err = px.net()
    if ew <= -MIN_NET_EW and -ew >= DETECTION * err:
        return "net", ew
    near = np.nonzero(px.win & (np.abs(px.w - HALPHA_VACUUM) <= PEAK_REACH))[0]
    smooth, smooth_sigma = px.smoothed(px.filled)
    peaks, props = find_peaks(smooth[near], prominence=0)
    if np.any(props["prominences"] >= 2 * smooth_sigma[near][peaks]):
        return "maybe", ew
    a, e = _amplitude(px.w, px.filled - 1, px.rel_sigma, px.good, NEIGHBOURS["nii_6583"],
                      px.sigma_inst, px.fwhm, None)
    return ("maybe" if math.isfinite(a) and a >= 2 * e else "no"), ew


class _Pixels:
    """A spectrum's pixels around H-alpha made ready for measuring: vacuum wavelengths, the
    continuum (with its covariance), the noise, the flux relative to the continuum with bad
    pixels filled, and the artefacts the pixels show by themselves."""

    def __init__(self, spectrum: Spectrum, r: float) -> None:
        if not (math.isfinite(r) and r > 0):
            raise _Fail("no-resolution")
        self.r = r
        wave = spectrum.wavelength
        if spectrum.medium == "air":
            wave = air_to_vacuum(wave)
        lo, hi = np.searchsorted(wave, [REGION[0], REGION[1]])
        w = self.w = np.asarray(wave[lo:hi], np.float64)
        if w.size < 20 or w[0] > HALPHA_VACUUM - 40 or w[-1] < HALPHA_VACUUM + 40:
            raise _Fail("off-range")
        f = self.f = np.asarray(spectrum.flux[lo:hi], np.float64)
        good = np.isfinite(f) & ~spectrum.mask[lo:hi]
        ivar = None if spectrum.ivar is None else np.asarray(spectrum.ivar[lo:hi], np.float64)
        if ivar is not None:
            good &= np.isfinite(ivar) & (ivar > 0)
        self.good = good
        self.fwhm = HALPHA_VACUUM / r  # instrumental FWHM at H-alpha, A
        self.sigma_inst = self.fwhm / FWHM_PER_SIGMA
        # artefacts the pixels show by themselves: runs of zeros or non-finite values, left
        # out (a pipeline that did not mask them leaves them "good")
        zero = ~np.isfinite(f) | (f == 0)
        run = longest_run(zero & (w > 6490) & (w < 6760))
        self.artefacts = ([f"zero-run:{w[run[0]]:.0f}-{w[run[1]]:.0f}"]
                          if run[1] - run[0] >= 2 else [])
        good &= ~zero
        sigma = _noise(w, f, ivar, good)
        self.file_noise = ivar is not None
        self.cont, self.cont_cov, self.design = _continuum(w, f, sigma, good)
        near = np.abs(w - HALPHA_VACUUM) < 60
        if np.any(~(self.cont[near] > 0)):
            raise _Fail("no-continuum")
        self.rel_sigma = sigma / self.cont
        self.snr = (float(np.nanmedian(1 / self.rel_sigma[near & good]))
                    if (near & good).any() else math.nan)
        self.step = np.gradient(w)
        self.win = np.abs(w - HALPHA_VACUUM) <= HALF_WIDTH
        if good[self.win].mean() < 0.8:
            raise _Fail("masked")
        self.filled = _fill(w, np.where(good, f / self.cont, np.nan), good)
        self.smooth_px = max(self.sigma_inst / 2 / float(np.median(self.step[self.win])), 0.5)

    def rescale(self, scale: float) -> float:
        """Scale the noise by ``scale``, the residuals' scatter in its units. The file's
        noise is raised only where ``scale`` is over :data:`NOISE_WRONG` (clearly too low;
        below, the photosphere's mismatch is as likely a cause) and never lowered (a
        pipeline that overstates its noise only makes the measurement cautious); a noise
        estimated from the pixels themselves takes the residuals' scatter as it is (the
        photosphere took the star's lines out). Returns the scale applied."""
        if not math.isfinite(scale) or scale <= 0:
            scale = 1.0
        elif self.file_noise:
            scale = scale if scale > NOISE_WRONG else 1.0
        self.rel_sigma = self.rel_sigma * scale
        self.cont_cov = self.cont_cov * scale**2
        return scale

    def leave_out(self, pixels: np.ndarray) -> None:
        """Treat ``pixels`` as bad from now on (a spike's), and fill them."""
        pixels = pixels[(pixels >= 0) & (pixels < self.w.size)]
        self.good = self.good.copy()
        self.good[pixels] = False
        self.filled = _fill(self.w, np.where(self.good, self.f / self.cont, np.nan), self.good)

    def net(self, leak: np.ndarray | None = None) -> tuple[float, float]:
        """(net equivalent width within the window, its error): the noise and the
        continuum's covariance propagated; ``leak``: a neighbour's light taken out."""
        win, good, step = self.win, self.good, self.step
        excess = 1 - self.filled if leak is None else 1 - self.filled + leak
        ew = float(np.sum(excess[win] * step[win]))
        use = win & good
        # a filled pixel is as uncertain as its good neighbours (an upper bound: it is
        # their interpolation)
        sigma = np.where(good, self.rel_sigma, float(np.median(self.rel_sigma[use])))
        noise_var = float(np.sum((sigma[win] * step[win]) ** 2))
        grad = (self.f / self.cont**2 * step)[use] @ self.design[use]
        return ew, math.sqrt(noise_var + float(grad @ self.cont_cov @ grad))

    def smoothed(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``values`` lightly smoothed (a Gaussian of half the instrument's sigma), and the
        noise of the smoothed pixels."""
        kernel = np.exp(-0.5 * (np.arange(-4, 5) / self.smooth_px) ** 2)
        factor = math.sqrt(float(np.sum((kernel / kernel.sum()) ** 2)))
        return (gaussian_filter1d(values, self.smooth_px, mode="nearest"),
                self.rel_sigma * factor)


def _measure(px: _Pixels, row: dict) -> None:
    r, w, fwhm, sigma_inst = px.r, px.w, px.fwhm, px.sigma_inst
    row["resolving_power"] = r
    row["ha_fwhm_instrument"] = C_KMS / r
    row["line_snr"] = px.snr
    notes: list[str] = []
    artefacts = list(px.artefacts)
    rel_sigma, step, win = px.rel_sigma, px.step, px.win

    # the noise: the file's, raised where the photosphere's residuals scatter more
    profile = photosphere(w, px.filled, rel_sigma, px.good, r, fwhm).profile
    row["noise_scale"] = px.rescale(_scatter(w, px.filled - profile, rel_sigma, px.good, fwhm))
    rel_sigma = px.rel_sigma

    # spikes narrower than the line spread (cosmic rays) are no light of the star: left out,
    # but on the line itself (there nothing would be left to measure: the kind says it)
    spikes = find_spikes(w, px.filled, rel_sigma, px.good, fwhm)
    if len(spikes) > MAX_SPIKES:  # not cosmic rays: features no photosphere explains
        artefacts.append(f"narrow-features:{len(spikes)}")
        spikes = []
    on_line = [i for i in spikes if abs(w[i] - HALPHA_VACUUM) <= 1.5 * fwhm]
    artefacts += [f"spike-on-line:{w[i]:.0f}" for i in on_line]
    spikes = [i for i in spikes if i not in on_line]
    if spikes:
        artefacts += [f"spike:{w[i]:.0f}" for i in spikes]
        px.leave_out(np.concatenate([np.arange(i - 1, i + 2) for i in spikes]))
        if px.good[win].mean() < 0.8:
            raise _Fail("masked")
    good, filled = px.good, px.filled
    # a line whose own pixels are missing cannot be measured: interpolation would make it up
    if not good[np.abs(w - HALPHA_VACUUM) <= 1.5 * fwhm].all():
        raise _Fail("masked")
    filled_in = int((win & ~good).sum())
    if filled_in:
        notes.append(f"halpha:{filled_in}-pixels-interpolated")

    # the photosphere under the line, and the emission above it
    # the emission: where a Gaussian at the instrument's resolution fits the excess over the
    # photosphere best; seen, the photosphere is fitted again without the emission's pixels
    smooth, smooth_sigma = px.smoothed(filled)
    region = None
    for _ in range(2):
        fit = photosphere(w, filled, rel_sigma, good, r, fwhm, region, win)
        profile, velocity = fit.profile, fit.velocity
        excess = filled - profile
        smooth_excess = gaussian_filter1d(excess, px.smooth_px, mode="nearest")
        centre, peak, snr = _matched(w, excess, rel_sigma, good, sigma_inst)
        seen = snr >= DETECTION
        if not seen:
            region = None
            break
        wider = span(w, smooth_excess, smooth_sigma, centre, fwhm)
        if region is not None and not (wider & ~region).any():
            break
        region = wider
    row["photosphere"], row["photosphere_velocity"] = fit.name, velocity
    row["photosphere_velocity_err"] = fit.velocity_err
    row["photosphere_snr"] = fit.significance
    line_centre = HALPHA_VACUUM * (1 + (velocity if math.isfinite(velocity) else 0) / C_KMS)
    row["photosphere_depth"] = float(1 - np.interp(line_centre, w, profile))
    row["ha_peak"], row["ha_peak_snr"] = peak, snr
    velocity0 = (centre / HALPHA_VACUUM - 1) * C_KMS if seen else 0.0

    # neighbours first: [N II] 6548 sits at the window's edge and is taken out of the sums;
    # H-alpha's core is kept out of their fits (a broad line's wings are the local quadratic)
    lines = {}
    core = np.abs(w - centre) < 1.5 * fwhm if seen else None
    for name_, rest in NEIGHBOURS.items():
        lines[name_] = _narrow_line(w, excess, rel_sigma, good, rest * (1 + velocity0 / C_KMS),
                                    sigma_inst, fwhm, core)
        ew, err, why = lines[name_]
        row[f"{name_}_ew"], row[f"{name_}_ew_err"] = ew, err
        if why:
            notes.append(f"{name_}:{why}")
    nii48 = lines["nii_6548"]
    leak = np.zeros(w.size)
    if math.isfinite(nii48[0]) and -nii48[0] >= DETECTION * nii48[1]:
        leak = -nii48[0] / (sigma_inst * math.sqrt(2 * math.pi)) * gauss(
            w, NEIGHBOURS["nii_6548"] * (1 + velocity0 / C_KMS), sigma_inst)

    # the net line and the emission above the photosphere
    row["ha_ew"], row["ha_ew_err"] = px.net(leak)
    row["ha_emission_ew"] = float(np.sum((leak - excess)[win] * step[win]))
    # the noise's error, and the spread of the best photospheres' own lines
    row["ha_emission_ew_err"] = math.hypot(row["ha_ew_err"], fit.spread)

    # shape: peaks of the observed flux within the emission, its width and centroid
    if region is not None:
        shape(w, smooth, smooth_excess, smooth_sigma, win, step, fwhm,
               FWHM_PER_SIGMA * px.smooth_px * float(np.median(step[win])), region, row)

    # features at sky lines
    lines_near = np.zeros(w.size, bool)  # the lines' own pixels: no sky residual there
    for rest in NEIGHBOURS.values():
        lines_near |= np.abs(w - rest * (1 + velocity0 / C_KMS)) < 1.5 * fwhm
    if region is not None:
        lines_near |= region
    residuals = [sky for sky in SKY
                 if sky_residual(w, excess, rel_sigma, good, sky, sigma_inst, fwhm,
                                  lines_near) >= SPIKE**2]
    if len(residuals) >= 2:  # one could be a star's own line; two are the sky's
        artefacts.append("sky:" + ",".join(f"{v:.0f}" for v in residuals))
    if seen:  # an emission next to a sky line that the line's residual explains better
        for sky in SKY:
            if abs(sky - centre) < 1.5 * fwhm and sky_explains(
                    w, excess, rel_sigma, good, centre, sky, sigma_inst, fwhm):
                artefacts.append(f"sky:{sky:.0f}")
    row["artefacts"] = ";".join(artefacts)  # kinds.classify decides what they mean

    # [N II] / H-alpha, as flux ratio of the emission
    nii, nii_err, _ = lines["nii_6583"]
    ha, ha_err = row["ha_emission_ew"], row["ha_emission_ew_err"]
    if math.isfinite(nii) and ha < 0 and -ha >= DETECTION * ha_err:
        ratio = nii / ha
        row["nii_ha"] = ratio
        row["nii_ha_err"] = abs(ratio) * math.hypot(nii_err / nii if nii else math.inf,
                                                   ha_err / ha)
    row["notes"] = ";".join(notes + ([row["notes"]] if row["notes"] else []))


def _continuum(w, f, sigma, good) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(continuum, covariance of its coefficients, the design matrix) of a straight line
    through the sidebands of H-alpha, weighted by the noise ``sigma``, clipped at 3 sigma.
    The covariance is the noise's: the truth the measurement errs from is the same
    spectrum without noise, whose sidebands hold the same stellar lines."""
    use = good & sidebands(w)
    if (use & (w < HALPHA_VACUUM)).sum() < 6 or (use & (w > HALPHA_VACUUM)).sum() < 6:
        raise _Fail("no-continuum")
    x = (w - HALPHA_VACUUM) / 100.0
    design = np.stack([np.ones_like(x), x], axis=1)
    weight = np.where(good, 1 / sigma**2, 0.0)
    keep = use.copy()
    for _ in range(5):
        a, wt = design[keep], weight[keep]
        cov = np.linalg.inv(a.T @ (a * wt[:, None]))
        coef = cov @ (a.T @ (wt * f[keep]))
        resid = np.where(good, (f - design @ coef) * np.sqrt(weight), np.nan)
        scale = 1.4826 * float(np.median(np.abs(resid[keep]))) or 1.0
        new = use & (np.abs(resid) < 3 * scale)
        if np.array_equal(new, keep) or new.sum() < 8:
            break
        keep = new
    return design @ coef, cov, design


def _noise(w, f, ivar, good) -> np.ndarray:
    """1-sigma noise of every pixel (infinite where the pixel is bad): the file's inverse
    variance; without one, the scatter of 2 f_i - f_{i-2} - f_{i+2} away from H-alpha
    (DER_SNR, Stoehr et al. 2008), which :meth:`_Pixels.rescale` refines on the residuals
    from the photosphere (a cool star's crowd of lines widens it here)."""
    if ivar is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(good, 1 / np.sqrt(np.where(good, ivar, 1.0)), np.inf)
    use = good & (np.abs(w - HALPHA_VACUUM) > HALF_WIDTH)
    idx = np.nonzero(use[2:-2] & use[:-4] & use[4:])[0] + 2
    if idx.size < 10:
        raise _Fail("no-noise")
    second = 2 * f[idx] - f[idx - 2] - f[idx + 2]
    sigma = 1.4826 * float(np.median(np.abs(second))) / math.sqrt(6)
    if not sigma > 0:
        raise _Fail("no-noise")
    return np.where(good, sigma, np.inf)


def _scatter(w, excess, sigma, good, fwhm) -> float:
    """The scatter of the residuals from the photosphere in the line's flanks (15-40 A from
    H-alpha, away from [N II]) in units of their noise: DER_SNR's second differences, which
    a slow mismatch hardly touches; 1 for a noise that is what the file says. NaN with too
    few pixels."""
    dist = np.abs(w - HALPHA_VACUUM)
    use = good & (dist > HALF_WIDTH) & (dist < PROFILE_REACH)
    for rest in NEIGHBOURS.values():
        use &= np.abs(w - rest) > 1.5 * fwhm
    idx = np.nonzero(use[2:-2] & use[:-4] & use[4:])[0] + 2
    if idx.size < 10:
        return math.nan
    second = 2 * excess[idx] - excess[idx - 2] - excess[idx + 2]
    expected = np.sqrt(4 * sigma[idx] ** 2 + sigma[idx - 2] ** 2 + sigma[idx + 2] ** 2)
    return 1.4826 * float(np.median(np.abs(second) / expected))


def _fill(w: np.ndarray, values: np.ndarray, good: np.ndarray) -> np.ndarray:
    """``values`` with bad pixels interpolated from their good neighbours."""
    if good.all():
        return values
    return np.interp(w, w[good], values[good])


def _amplitude(w, values, sigma, good, centre, sigma_inst, fwhm, exclude
               ) -> tuple[float, float]:
    """(amplitude, its error) of a Gaussian of width ``sigma_inst`` at ``centre`` on a local
    quadratic, fitted within +-2.5 FWHM by weighted linear least squares; ``exclude``:
    pixels left out (another line's core)."""
    use = good & (np.abs(w - centre) < 2.5 * fwhm)
    if exclude is not None:
        use &= ~exclude
    core = use & (np.abs(w - centre) < fwhm / 2)
    if use.sum() < 5 or not core.any():
        return math.nan, math.nan
    x = (w[use] - centre) / fwhm
    a = np.stack([gauss(w[use], centre, sigma_inst), np.ones_like(x), x, x * x], axis=1)
    wt = 1 / sigma[use] ** 2
    normal = a.T @ (a * wt[:, None])
    try:
        cov = np.linalg.inv(normal)
    except np.linalg.LinAlgError:
        return math.nan, math.nan
    coef = cov @ (a.T @ (wt * values[use]))
    return float(coef[0]), float(math.sqrt(cov[0, 0]))


def _narrow_line(w, excess, sigma, good, centre, sigma_inst, fwhm, exclude
                 ) -> tuple[float, float, str]:
    """(equivalent width, error, why not measured) of an unresolved line at ``centre``."""
    if not (w[0] < centre - 2.5 * fwhm and w[-1] > centre + 2.5 * fwhm):
        return math.nan, math.nan, "off-range"
    if exclude is not None and exclude[int(np.argmin(np.abs(w - centre)))]:
        return math.nan, math.nan, "blended-with-halpha"
    a, e = _amplitude(w, excess, sigma, good, centre, sigma_inst, fwhm, exclude)
    if not math.isfinite(a):
        return math.nan, math.nan, "masked"
    norm = sigma_inst * math.sqrt(2 * math.pi)
    return -a * norm, e * norm, ""


def _matched(w, excess, sigma, good, sigma_inst) -> tuple[float, float, float]:
    """(centre, amplitude, significance) of the emission above the photosphere: a Gaussian
    at the instrument's resolution slid within +-VELOCITY_MAX of H-alpha (a matched
    filter), where it is most significant."""
    reach = HALPHA_VACUUM * VELOCITY_MAX / C_KMS
    centres = w[np.abs(w - HALPHA_VACUUM) < reach]
    near = np.nonzero(np.abs(w - HALPHA_VACUUM) < reach + 4 * sigma_inst)[0]
    g = gauss(w[near][None, :], centres[:, None], sigma_inst) * good[near]
    wt = 1 / sigma[near] ** 2
    den = g**2 @ wt
    ok = den > 0
    amp = np.where(ok, (g * excess[near]) @ wt / np.where(ok, den, 1), 0.0)
    snr = np.where(ok, amp * np.sqrt(den), 0.0)
    k = int(np.argmax(snr))
    return float(centres[k]), float(amp[k]), float(snr[k])
