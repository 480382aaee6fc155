"""Line measurement against known truth, side by side with specutils.

Two sets of spectra with lines of known truth:

1. **Simulated LAMOST spectra**: real MILES photospheres at LAMOST's resolution and pixels
   (``specscout.simulate.render``, no cosmic ray, sky residual or bad pixel), a line of every
   kind (stellar families, nebular, an emission core on A/B/F stars), artefacts, and nothing;
   Gaussian noise at a signal-to-noise of 10-100 with its inverse variance. The truth of the
   net equivalent width is the measurement of the same spectrum without noise.
2. **Real LAMOST spectra** of ``../shared/data`` (the normal stars) with the same lines and
   artefacts injected (``specscout.simulate.inject``, ``.artefacts``), seeds apart.

Printed, per kind: the bias of the emission's equivalent width against the injected one
(lines of EW >= 2 A), how often the kind comes out as injected, and (simulated) as the same
spectrum without noise shows it, for lines the noise leaves clear (the emission at 10 sigma of
its quoted error, a nebula's [N II] 6583 at 5) and faint ones; the bias of the net
equivalent width against the truth and the spread of (measured - true) / quoted error (1 if
the errors are right); for the same simulated spectra, specutils' net equivalent width
(``fit_generic_continuum``, ``equivalent_width``) and ours, bias and scatter against the
truth, and the time of each.

    python benchmarks/bench_lines.py [--n 600] [--real 3] [--seed 11]
"""

from __future__ import annotations

import argparse
import math
import resource
import time
import warnings
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from specscout.simulate import LAMOST, SurveyConfig, load_templates, render
from specscout.simulate.artefacts import add_artefact, draw_artefact
from specscout.simulate.inject import draw_injection, inject
from specscout.spectra.kinds import classify
from specscout.spectra.lines import HALPHA_VACUUM
from specscout.spectra.measure import measure
from specscout.spectra.readers import read_all
from specscout.spectra.spectrum import Meta, Spectrum
from specscout.spectra.writers import lamost_wavelength

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL = ("lamost", "lamost-extra", "pairs/lamost")
#: The real emission-line stars there (bench_real.py): not hosts.
EMISSION_STARS = {"bt-cmi", "spec-56265-VB069N07V2_sp04-027",
                  "spec-55959-GAC_094N27_V3_sp16-125", "spec-55862-B6212_sp01-006"}
KINDS = ("stellar", "nebular", "core", "artefact", "none")


def draw_case(rng: np.random.Generator, deep: bool) -> tuple[str, dict | None]:
    """(the kind to inject, its line or artefact); a core only on a deep absorption line."""
    kind = str(rng.choice(KINDS, p=[0.3, 0.25, 0.2, 0.15, 0.1]))
    if kind == "core" and not deep:
        kind = "stellar"
    if kind == "none":
        return kind, None
    if kind == "artefact":
        return kind, draw_artefact(rng)
    cls = str(rng.choice(["emission", "double-peak"], p=[0.8, 0.2])) if kind == "stellar" \
        else "emission"
    return kind, draw_injection(rng, cls, 1531.0, kind)


def simulated(n: int, seed: int) -> list[dict]:
    """``n`` simulated cases: the noisy spectrum, the noise-free one and the truth."""
    templates = load_templates()
    wave = lamost_wavelength()
    config = SurveyConfig(cosmic_rays=0.0, bad_pixel_rate=0.0, sky_residual_rate=0.0)
    rng = np.random.default_rng(seed)
    usable = templates.usable
    ew_of = dict(zip(usable, np.asarray(_template_ew(templates))[usable], strict=True))
    cases = []
    for i in range(n):
        t = int(rng.choice(usable))
        kind, line = draw_case(rng, ew_of[t] >= 2.0)
        truth = {"class": "other", "template": t, "rv": float(rng.normal(0, 30)),
                 "tilt": float(rng.normal(0.007, 0.006)), "snr": 1e9,
                 "amplitude": float(np.exp(rng.uniform(np.log(100), np.log(5000))))}
        if kind not in ("none", "artefact"):
            truth.update({f"line_{k}": v for k, v in line.items() if k != "rv"})
        flux, _, mask, _ = render(truth, templates, LAMOST, wave, rng, config)
        clean = _spectrum(wave, flux, mask, f"sim-{i}")
        snr = float(np.exp(rng.uniform(np.log(10), np.log(100))))
        sigma = float(np.median(clean.flux[~clean.mask])) / snr
        noisy_flux = clean.flux + rng.normal(0, sigma, wave.size).astype(np.float32)
        ivar = np.where(clean.mask, 0.0, sigma**-2).astype(np.float32)
        noisy = replace(clean, flux=np.where(clean.mask, 0, noisy_flux), ivar=ivar)
        if kind == "artefact":  # on the pixels as recorded, noise and all
            clean, noisy = add_artefact(clean, line), add_artefact(noisy, line)
        cases.append({"kind": kind, "line": line, "clean": clean, "noisy": noisy, "snr": snr})
    return cases


def _template_ew(templates) -> list[float]:
    from specscout.spectra.lines import HALPHA_AIR, equivalent_width

    return [equivalent_width(templates.wavelength_air, f, HALPHA_AIR) for f in templates.flux]


def _spectrum(wave, flux, mask, name: str) -> Spectrum:
    meta = Meta(id=name, path="", instrument="LAMOST LRS", layout="simulated")
    return Spectrum(wave, flux.astype(np.float32), None, mask.astype(bool), "vacuum", meta)


def real_cases(repeats: int, seed: int) -> list[dict]:
    """Lines and artefacts injected into the real normal stars, ``repeats`` times each."""
    rng = np.random.default_rng(seed)
    cases = []
    for source in REAL:
        for path in sorted((DATA / source).rglob("*.fits*")):
            for host in read_all(path):
                if host.meta.id in EMISSION_STARS:
                    continue
                base = classify(measure(host))
                if base["status"] != "ok":
                    continue
                for _ in range(repeats):
                    kind, line = draw_case(rng, base["ha_ew"] >= 2.0)
                    try:
                        if kind == "artefact":
                            changed = add_artefact(host, line)
                        elif kind == "none":
                            changed = host
                        else:
                            changed = inject(host, line, line["rv"], rng)
                    except ValueError:
                        continue
                    cases.append({"kind": kind, "line": line, "host": base,
                                  "noisy": changed})
    return cases


def specutils_ew(spectrum: Spectrum) -> float:
    """specutils' net equivalent width of H-alpha (+-15 A), its generic continuum fitted
    outside +-25 A within 6470-6790 A."""
    import astropy.units as u
    from specutils import SpectralRegion
    from specutils import Spectrum as SpectrumU
    from specutils.analysis import equivalent_width
    from specutils.fitting import fit_generic_continuum

    sel = (spectrum.wavelength > 6470) & (spectrum.wavelength < 6790) & ~spectrum.mask
    s = SpectrumU(flux=spectrum.flux[sel].astype(np.float64) * u.adu,
                  spectral_axis=spectrum.wavelength[sel] * u.AA)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_generic_continuum(
            s, exclude_regions=[SpectralRegion((HALPHA_VACUUM - 25) * u.AA,
                                               (HALPHA_VACUUM + 25) * u.AA)])
        normalised = s / fit(s.spectral_axis)
        ew = equivalent_width(normalised, regions=SpectralRegion(
            (HALPHA_VACUUM - 15) * u.AA, (HALPHA_VACUUM + 15) * u.AA))
    return float(ew.to_value(u.AA))


def robust_sd(x: np.ndarray) -> float:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    return float(1.4826 * np.median(np.abs(x - np.median(x)))) if x.size else math.nan


def report(cases: list[dict], title: str, with_truth: bool) -> None:
    rows = []
    for c in cases:
        m = classify(measure(c["noisy"]))
        if with_truth:
            m0 = classify(measure(c["clean"]))
            c["truth_net"], c["truth_shown"], c["clean_m"] = m0["ha_ew"], m0["kind"], m0
        else:
            c["truth_net"], c["truth_shown"] = math.nan, None
        c["m"] = m
        rows.append(c)
    print(f"\n{title}: {len(rows)} spectra")
    print(f"{'kind':10s} {'n':>5s} {'EW>=2: n':>9s} {'EW bias':>8s} {'EW scatter':>10s} "
          f"{'kind right (EW>=2)':>19s} {'kind right (1-2 A)':>19s}")
    for kind in KINDS:
        mine = [c for c in rows if c["kind"] == kind]
        if not mine:
            continue
        strong = [c for c in mine if c["line"] is None or "ew" not in c["line"]
                  or -c["line"]["ew"] >= 2]
        middle = [c for c in mine if c["line"] and "ew" in c["line"]
                  and 1 <= -c["line"]["ew"] < 2]
        rel = []
        for c in strong:
            if kind in ("stellar", "nebular", "core"):
                measured = c["m"]["ha_emission_ew"]
                if not with_truth:  # on a real host: the host's own measurement subtracted
                    measured -= c["host"]["ha_emission_ew"]
                rel.append((measured - c["line"]["ew"]) / abs(c["line"]["ew"]))
        right = np.mean([c["m"]["kind"] == kind for c in strong]) if strong else math.nan
        right_mid = np.mean([c["m"]["kind"] == kind for c in middle]) if middle else math.nan
        bias = f"{np.median(rel):+7.1%}" if rel else "      -"
        scatter = f"{robust_sd(rel):9.1%}" if rel else "        -"
        print(f"{kind:10s} {len(mine):5d} {len(strong):9d} {bias:>8s} {scatter:>10s} "
              f"{right:18.1%} {right_mid:18.1%} (n {len(middle)})")
    wrong = Counter((c["kind"], c["m"]["kind"]) for c in rows
                    if c["m"]["kind"] != c["kind"] and (c["line"] is None or "ew" not in
                                                        c["line"] or -c["line"]["ew"] >= 2))
    print("  confusions at EW >= 2 A (injected -> measured): "
          + (", ".join(f"{a}->{b} {n}" for (a, b), n in wrong.most_common(8)) or "none"))
    if with_truth:
        # the kind the spectrum shows without noise: what the rule can see at all
        shown = [c for c in rows if c["kind"] != "artefact" and c["truth_shown"] != "unknown"]
        same = np.mean([c["m"]["kind"] == c["truth_shown"] for c in shown])
        strong = [c for c in shown if c["line"] and -c["line"]["ew"] >= 2]
        print(f"  kind as the same spectrum without noise shows it: {same:.1%} of "
              f"{len(shown)} (lines of EW >= 2 A: "
              f"{np.mean([c['m']['kind'] == c['truth_shown'] for c in strong]):.1%} of "
              f"{len(strong)})")
        for kind in ("stellar", "nebular", "core"):
            mine = [c for c in strong if c["truth_shown"] == kind]
            if not mine:
                continue
            by_snr = []
            for lo, hi in ((10, 30), (30, 101)):
                sub = [c for c in mine if lo <= c["snr"] < hi]
                if sub:
                    by_snr.append(f"S/N {lo}-{min(hi, 100)}: "
                                  f"{np.mean([c['m']['kind'] == kind for c in sub]):.1%} "
                                  f"of {len(sub)}")
            print(f"    shown as {kind:8s} without noise: measured so with noise "
                  f"{np.mean([c['m']['kind'] == kind for c in mine]):.1%} of {len(mine)} "
                  f"({'; '.join(by_snr)})")
            # by what the noise lets one see: the emission (and, nebular, [N II] 6583) over
            # its quoted error in the noisy spectrum
            seen = [_clear(c, kind) for c in mine]
            for label, sub in (("clear", [c for c, s in zip(mine, seen, strict=True) if s]),
                               ("faint", [c for c, s in zip(mine, seen, strict=True)
                                          if not s])):
                if sub:
                    print(f"      {label}: {np.mean([c['m']['kind'] == kind for c in sub]):.1%}"
                          f" of {len(sub)}")
        # the statistical error of the net EW, on lines (an artefact is left out or not by
        # the noise, and the two spectra are then measured on other pixels)
        pull = np.array([(c["m"]["ha_ew"] - c["truth_net"]) / c["m"]["ha_ew_err"]
                         for c in rows if c["m"]["status"] == "ok" and c["kind"] != "artefact"])
        pull = pull[np.isfinite(pull)]
        truth = np.array([c["truth_net"] for c in rows
                          if c["m"]["status"] == "ok" and c["kind"] != "artefact"])
        measured = np.array([c["m"]["ha_ew"] for c in rows
                             if c["m"]["status"] == "ok" and c["kind"] != "artefact"])
        big = np.abs(truth) >= 2
        bias = np.median((measured[big] - truth[big]) / np.abs(truth[big]))
        print(f"  net EW, (measured - true) / quoted error: median {np.median(pull):+.3f}, "
              f"robust spread {robust_sd(pull):.3f}, standard deviation {np.std(pull):.3f} "
              f"({pull.size} spectra); bias where |EW| >= 2 A {bias:+.2%}")


#: A line is "clear" where its emission stands this many sigma over the quoted error of the
#: noisy spectrum, and (nebular) [N II] 6583 :data:`CLEAR_NII`: the kind is then the data's
#: to tell; below, the noise decides as often as the star.
CLEAR, CLEAR_NII = 10.0, 5.0


def _clear(case: dict, kind: str) -> bool:
    m, m0 = case["m"], case["clean_m"]
    ok = -m0["ha_emission_ew"] >= CLEAR * m["ha_emission_ew_err"]
    if kind == "nebular":
        ok = ok and -m0["nii_6583_ew"] >= CLEAR_NII * m["nii_6583_ew_err"]
    return bool(ok)


def versus_specutils(cases: list[dict], k: int) -> None:
    """Net EW of ours and specutils' against the truth on ``k`` of the simulated spectra."""
    subset = [c for c in cases if c["m"]["status"] == "ok"][:k]
    ours, theirs, truth = [], [], []
    t0 = time.perf_counter()
    for c in subset:
        ours.append(measure(c["noisy"])["ha_ew"])
    t_ours = (time.perf_counter() - t0) / len(subset)
    t0 = time.perf_counter()
    for c in subset:
        theirs.append(specutils_ew(c["noisy"]))
    t_theirs = (time.perf_counter() - t0) / len(subset)
    truth = np.array([c["truth_net"] for c in subset])
    ours, theirs = np.array(ours), np.array(theirs)
    print(f"\nnet EW of H-alpha on {len(subset)} simulated spectra, against the truth:")
    print(f"{'':12s} {'median error (A)':>17s} {'robust scatter (A)':>19s} {'ms a spectrum':>14s}")
    for name, values, t in (("specscout", ours, t_ours), ("specutils", theirs, t_theirs)):
        d = values - truth
        print(f"{name:12s} {np.median(d):17.3f} {robust_sd(d):19.3f} {1000 * t:14.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600, help="simulated spectra")
    parser.add_argument("--real", type=int, default=3,
                        help="injections into each real spectrum (0: none)")
    parser.add_argument("--specutils", type=int, default=150,
                        help="simulated spectra measured by specutils too")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    start = time.perf_counter()
    cases = simulated(args.n, args.seed)
    report(cases, "simulated LAMOST spectra (MILES photospheres, S/N 10-100)", True)
    if args.specutils:
        versus_specutils(cases, args.specutils)
    if args.real:
        if not (DATA / "lamost").is_dir():
            print(f"\n{DATA}: no real spectra here; the real hosts are skipped")
        else:
            report(real_cases(args.real, args.seed + 1),
                   "real LAMOST spectra of ../shared/data with lines injected", False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n{time.perf_counter() - start:.0f} s; peak memory of this process: {peak:.0f} MB")


if __name__ == "__main__":
    main()
