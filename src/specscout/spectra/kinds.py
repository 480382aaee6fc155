"""The kind of a spectrum's H-alpha emission, and its profile class, from its line
measurement (:func:`specscout.spectra.measure.measure`). The rule, in order:

1. ``unknown``: nothing could be measured (the measurement's ``status`` says why).
2. H-alpha is **in emission** when the spectrum shows it as an observer would call it:
   - a net equivalent width of at least 1 A in emission at 3 sigma ("net"), or
   - a peak of the observed flux within 12 A of H-alpha (3-sigma prominence) where the
     emission above the absorption profile is at least 0.5 A and significant at 3 sigma,
     counting the positions the search tried (:func:`~.measure.peak_threshold`: 3.3 sigma
     at LAMOST LRS's resolution, 3.7 at MRS's) ("peak"), or
   - an absorption line filled in by emission with no peak of its own: at least 1 A above
     the absorption profile at 3 sigma (counting 5 % of the profile's own equivalent width
     in the error: a real star's core differs that much from its best photospheres), its
     emission seen by the same search, and the profile's velocity not at the end of the
     velocities tried (one pinned there is a profile the flanks do not bound, whose
     "emission" is its own error) ("filled"), or
   - that emission together with nebular lines.
   Spikes narrower than the instrument's line spread (cosmic rays) and runs of zeros are
   left out of the measurement first, but on the line itself.
3. In emission:
   - ``artefact`` if a spike sits on the line (``spike-on-line``), or if the emission is
     only a peak (not net emission, no nebular lines) that a residual of sky subtraction
     explains as well, or in a spectrum whose sky subtraction left residuals at two
     night-sky lines or more;
   - ``nebular`` if [N II] 6583 is in emission at 3 sigma and H-alpha is not resolved (FWHM
     within 1.25 of the instrument's): a star seen through an H II region or a planetary
     nebula ([S II] is measured and shown, but alone it may be a cool star's lines: Ca I
     6718 sits beside [S II] 6716);
   - ``stellar`` if in net emission (resolved or not, single or double peaked, P Cygni ...);
     a resolved line in net emission with [N II] too is stellar, flagged ``nebular``;
   - ``core`` otherwise (not in net emission; resolved or not, [N II] or not): a peak or
     a filling inside an absorption line (shell stars, weak Ae stars, chromospheres) at
     least 10 % deep at its centre and seen on the line's flanks at 2 sigma (against no
     absorption at all), at the line's own velocity (within half the instrument's FWHM,
     75 km/s, or twice the error of the absorption profile's velocity, of that velocity);
     a peak elsewhere is ``none`` (``peak-without-absorption``, ``peak-beside-the-line``;
     ``filling-...`` for a filling): without net emission it is no line an observer would
     call one.
4. Not in emission: ``artefact`` if the pixels show a run of zeros or non-finite values, a
   spike narrower than the line spread, or residuals of 5 sigma at two night-sky lines or
   more; ``none`` otherwise (``nebular-lines-without-halpha`` where [N II] alone is seen).

The profile classes of Hou et al. (2016) for the emission kinds: ``single``,
``single-in-absorption``, ``double``, ``double-in-absorption`` (two peaks; "in absorption" where
the flux on both sides of the emission lies 10 % and 3 sigma below the continuum on average:
the emission sits in the star's own line), ``p-cygni`` (a trough below
the absorption profile within 2 FWHM on the blue side of the emission only), and
``inverse-p-cygni`` (red side only); and ``filled-in`` for an absorption line filled in with
no peak (not one of Hou et al.'s classes, which need a peak).
"""

from __future__ import annotations

import math

from specscout.spectra.measure import DETECTION, MIN_NET_EW, peak_threshold
from specscout.spectra.photosphere import SHIFTS

#: The least emission above the absorption profile (A) that a peak must bring.
MIN_EMISSION_EW = 0.5
#: km/s: an emission core is on its star's line within half the instrument's FWHM, or this
#: (the absorption profile's velocity is known to about 25-50 km/s).
ON_THE_LINE = 75.0
#: The significance (sigma) at which the flanks must show that absorption against none: a
#: fit of the photospheres to noise alone finds depths of 0.3 (its flanks say 1.4-1.7 sigma)
ABSORPTION_SEEN = 2.0
#: A real star's H-alpha core differs from its best photospheres by this fraction of their
#: equivalent width (a B6 III star at S/N 254 showed 1.2 A "filled" of a 4.9 A profile at 3.1
#: sigma of the noise alone): counted in the error of a filling.
PROFILE_SYSTEMATIC = 0.05
#: The least depth of the star's own H-alpha absorption (its absorption profile at the line's
#: centre) that an emission core sits in.
CORE_DEPTH = 0.1

KINDS = ("stellar", "nebular", "core", "artefact", "none", "unknown")
#: The kinds that are H-alpha emission.
EMISSION = ("stellar", "nebular", "core")
PROFILES = ("single", "single-in-absorption", "double", "double-in-absorption", "p-cygni",
            "inverse-p-cygni", "filled-in")


def _emits(row: dict, name: str) -> bool:
    ew, err = row.get(f"{name}_ew", math.nan), row.get(f"{name}_ew_err", math.nan)
    return bool(math.isfinite(ew) and ew < 0 and -ew >= DETECTION * err)


def net_emission(row: dict) -> bool:
    """Whether H-alpha is in net emission: at least 1 A at 3 sigma."""
    ew, err = row["ha_ew"], row["ha_ew_err"]
    return bool(math.isfinite(ew) and ew <= -MIN_NET_EW and -ew >= DETECTION * err)


def filled_in(row: dict) -> bool:
    """Whether the absorption line is filled in by emission: at least 1 A above the
    absorption profile at 3 sigma (the measurement's error and :data:`PROFILE_SYSTEMATIC`
    of the profile's own equivalent width), its emission seen by the peak search, under a
    profile whose velocity is not at the end of the velocities tried."""
    ew, err = row["ha_emission_ew"], row["ha_emission_ew_err"]
    own = row["ha_ew"] - ew  # the absorption profile's equivalent width
    err = math.hypot(err, PROFILE_SYSTEMATIC * own) if math.isfinite(own) and own > 0 else err
    return bool(math.isfinite(ew) and ew <= -MIN_NET_EW and -ew >= DETECTION * err
                and math.isfinite(row["ha_peak_snr"])
                and row["ha_peak_snr"] >= peak_threshold(row["resolving_power"])
                and abs(row["photosphere_velocity"]) < SHIFTS.max())


def classify(row: dict) -> dict:
    """``row`` with ``kind``, ``kind_reason``, ``profile`` and ``nebular`` set by the rule of
    this module, from the measurement's columns (its ``artefacts`` among them): a kept
    measurement is classified again as the rule now stands."""
    seen = [r for r in str(row.get("artefacts") or "").split(";") if r]
    if row["status"] != "ok":
        return {**row, "kind": "unknown", "kind_reason": row["status"], "profile": "",
                "nebular": False}
    # [N II] 6583 is the nebula's mark next to H-alpha; [S II] alone may be a cool star's
    # crowd of lines (Ca I 6718 sits beside [S II] 6716)
    nebular = _emits(row, "nii_6583")
    above = (math.isfinite(row["ha_peak_snr"])
             and row["ha_peak_snr"] >= peak_threshold(row["resolving_power"])
             and row["ha_emission_ew"] <= -MIN_EMISSION_EW)
    net = net_emission(row)
    peak = row["ha_peaks"] >= 1 and above
    filled = not peak and filled_in(row)
    out = {**row, "nebular": bool(nebular), "profile": ""}
    if net or peak or filled or (above and nebular):
        why = ("net" if net else "peak" if peak else "filled" if filled
               else "nebular-lines")
        what = "filling" if filled else "peak"
        spike = [s for s in seen if s.startswith("spike-on-line:")]
        if spike:  # the emission is a cosmic ray on the line
            return {**out, "kind": "artefact", "kind_reason": spike[0]}
        sky = [s for s in seen if s.startswith("sky:")]
        if sky and not net and not nebular:  # a peak among the sky's residuals
            return {**out, "kind": "artefact", "kind_reason": sky[0]}
        if nebular and not row["ha_resolved"]:
            kind = "nebular"
        elif net:
            kind = "stellar"
        elif not (row["photosphere_depth"] >= CORE_DEPTH  # no absorption line to sit in
                  and row.get("photosphere_snr", math.inf) >= ABSORPTION_SEEN):
            return {**out, "kind": "none", "kind_reason": f"{what}-without-absorption"}
        elif _on_the_line(row):
            kind = "core"
        else:  # a peak beside the star's own line is no core of it
            return {**out, "kind": "none", "kind_reason": f"{what}-beside-the-line"}
        return {**out, "kind": kind, "kind_reason": why, "profile": profile(row)}
    if seen:
        return {**out, "kind": "artefact", "kind_reason": seen[0]}
    # nebular lines without H-alpha: a faint nebula on deep absorption, or a stray feature
    return {**out, "kind": "none",
            "kind_reason": "nebular-lines-without-halpha" if nebular else ""}


def _on_the_line(row: dict) -> bool:
    """Whether the emission sits on the star's own line: within half the instrument's FWHM
    (or :data:`ON_THE_LINE`) of the velocity of the absorption profile, or within twice
    that velocity's error (when both are known)."""
    v, star = row["ha_velocity"], row["photosphere_velocity"]
    err = row.get("photosphere_velocity_err", 0.0)
    if not (math.isfinite(v) and math.isfinite(star) and math.isfinite(err)):
        return True
    return abs(v - star) <= max(0.5 * row["ha_fwhm_instrument"], ON_THE_LINE, 2 * err)


def profile(row: dict) -> str:
    """The profile class (:data:`PROFILES`) of an emission line."""
    trough = row.get("ha_pcygni") or ""
    if row["ha_peaks"] == 0 and not net_emission(row) and filled_in(row):
        return "filled-in"
    if trough:
        return "p-cygni" if trough == "blue" else "inverse-p-cygni"
    base = "double" if row["ha_peaks"] >= 2 else "single"
    return base + ("-in-absorption" if row.get("ha_absorption") == "both" else "")
