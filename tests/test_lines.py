"""Line measurement and kinds: lines of known truth on real MILES photospheres at LAMOST's
resolution and pixels, with noise of known variance; every kind's rule; and the reasons where
nothing can be measured."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from specscout.simulate import LAMOST, SurveyConfig, load_templates, render
from specscout.simulate.artefacts import add_artefact
from specscout.simulate.inject import emission_kind, inject
from specscout.spectra.kinds import EMISSION, classify, profile
from specscout.spectra.lines import HALPHA_VACUUM
from specscout.spectra.measure import COLUMNS, NEIGHBOURS, measure, screen
from specscout.spectra.spectrum import Spectrum
from specscout.spectra.writers import lamost_wavelength

from conftest import lamost_meta


def _template(spt_prefix: str, deep: bool | None = None) -> int:
    """A usable MILES star whose type starts with ``spt_prefix`` (with a deep H-alpha
    absorption line, or a shallow one)."""
    t = load_templates()
    for i in t.usable:
        if str(t.spt[i]).startswith(spt_prefix):
            ew = _ew(t, i)
            if deep is None or (ew > 4) == deep:
                return int(i)
    raise LookupError(spt_prefix)


def _ew(t, i) -> float:
    from specscout.spectra.lines import HALPHA_AIR, equivalent_width

    return equivalent_width(t.wavelength_air, t.flux[i], HALPHA_AIR)


def star(template: int, line: dict | None = None, snr: float = 80.0, seed: int = 0,
         rv: float = 0.0) -> tuple[Spectrum, Spectrum]:
    """(noise-free, noisy) LAMOST spectra of MILES star ``template`` with ``line``."""
    wave = lamost_wavelength()
    truth = {"template": template, "rv": rv, "tilt": 0.0, "snr": 1e9, "amplitude": 1000.0,
             **{f"line_{k}": v for k, v in (line or {}).items()}}
    rng = np.random.default_rng(seed)
    config = SurveyConfig(cosmic_rays=0.0, bad_pixel_rate=0.0, sky_residual_rate=0.0)
    flux, _, mask, _ = render(truth, load_templates(), LAMOST, wave, rng, config)
    sigma = float(np.median(flux[~mask.astype(bool)])) / snr
    clean = Spectrum(wave, flux.astype(np.float32), np.where(mask, 0, sigma**-2).astype(
        np.float32), mask.astype(bool), "vacuum", lamost_meta())
    noisy = replace(clean, flux=(flux + rng.normal(0, sigma, wave.size)).astype(np.float32))
    return clean, noisy


A_STAR = 0  # set by the fixture below
K_STAR = 0


@pytest.fixture(scope="module", autouse=True)
def _stars():
    global A_STAR, K_STAR
    A_STAR, K_STAR = _template("A", deep=True), _template("K", deep=False)


def test_a_stellar_line_is_measured_with_its_equivalent_width_and_kind():
    line = {"family": "single", "ew": -12.0, "sigma": 120.0}
    clean, noisy = star(K_STAR, line)
    m = classify(measure(noisy))
    assert m["status"] == "ok" and m["kind"] == "stellar" and m["kind_reason"] == "net"
    assert m["ha_emission_ew"] == pytest.approx(-12.0, rel=0.05)
    assert m["ha_resolved"] and m["ha_fwhm"] > m["ha_fwhm_instrument"]
    assert abs(m["ha_velocity"]) < 30 and m["ha_peaks"] == 1 and m["profile"] == "single"
    # the noise-free spectrum measures the same within the quoted error
    truth = measure(clean)["ha_ew"]
    assert abs(m["ha_ew"] - truth) < 4 * m["ha_ew_err"]


def test_quoted_errors_are_the_scatter_of_the_measurement():
    """Over 120 noise draws of one spectrum, (measured - true) / quoted error has a standard
    deviation of 1 (within the 0.85-1.15 that 120 draws allow)."""
    line = {"family": "single", "ew": -4.0, "sigma": 80.0}
    clean, _ = star(K_STAR, line, snr=30)
    truth = measure(clean)["ha_ew"]
    pulls = []
    for seed in range(120):
        _, noisy = star(K_STAR, line, snr=30, seed=seed)
        m = measure(noisy)
        pulls.append((m["ha_ew"] - truth) / m["ha_ew_err"])
    assert abs(np.mean(pulls)) < 0.25 and 0.85 < np.std(pulls) < 1.15


def test_a_star_behind_an_h_ii_region_is_nebular_with_its_nii_ratio():
    line = {"family": "nebular", "ew": -6.0, "sigma": 10.0, "nii_ratio": 0.5, "sii_ratio": 0.3,
            "sii_doublet": 1.0}
    _, noisy = star(A_STAR, line, snr=100)
    m = classify(measure(noisy))
    assert m["kind"] == "nebular" and m["nebular"] and not m["ha_resolved"]
    assert m["nii_ha"] == pytest.approx(0.5, abs=0.12)
    assert m["nii_6548_ew"] == pytest.approx(m["nii_6583_ew"] / 3, abs=3 * m["nii_6548_ew_err"])
    assert m["sii_6716_ew"] < 0 and m["sii_6731_ew"] < 0
    assert m["profile"] == "single-in-absorption"  # narrow H-alpha in the star's own line


def test_an_emission_core_inside_an_absorption_line_is_a_core():
    line = {"family": "core", "ew": -2.5, "sigma": 30.0}
    _, noisy = star(A_STAR, line, snr=100)
    m = classify(measure(noisy))
    assert m["ha_ew"] > 0  # the net line is still in absorption
    assert m["kind"] == "core" and m["profile"] == "single-in-absorption"
    assert m["ha_emission_ew"] == pytest.approx(-2.5, rel=0.25)


def test_the_star_velocity_has_an_error_and_a_core_is_on_the_line_within_it():
    _, sharp = star(A_STAR, {"family": "core", "ew": -2.5, "sigma": 30.0}, snr=100, rv=50.0)
    m = measure(sharp)
    assert abs(m["photosphere_velocity"] - 50.0) <= 25.0
    assert 12.5 <= m["photosphere_velocity_err"] <= 40.0
    # a peak 150 km/s from the star's line: beside it when the star's velocity is known to
    # 12.5 km/s, on it when the flanks leave that velocity uncertain by 100 km/s
    row = {**classify(m), "ha_velocity": m["photosphere_velocity"] + 150.0}
    assert classify({**row, "photosphere_velocity_err": 12.5})["kind_reason"] == \
        "peak-beside-the-line"
    assert classify({**row, "photosphere_velocity_err": 100.0})["kind"] == "core"
    assert classify({**row, "photosphere_velocity_err": math.inf})["kind"] == "core"
    # a measurement kept from before the error existed is classified as it was
    old = {k: v for k, v in row.items() if k != "photosphere_velocity_err"}
    assert classify(old)["kind_reason"] == "peak-beside-the-line"


def test_the_velocity_error_is_where_the_chi_square_rises_by_one():
    from specscout.spectra.photosphere import SHIFTS, _half_width

    for sigma in (30.0, 60.0):  # a parabola of 1-sigma half width sigma, between grid steps
        assert _half_width(((SHIFTS - 10.0) / sigma) ** 2) == pytest.approx(sigma, rel=0.1)
    assert _half_width((SHIFTS / 5.0) ** 2) == 12.5  # sharper than the grid: half a step
    assert _half_width(np.zeros(SHIFTS.size)) == math.inf  # flat: the flanks say nothing
    assert _half_width(((SHIFTS - 150.0) / 10.0) ** 2) == math.inf  # its least at an end
    assert _half_width(np.where(SHIFTS == 0, np.nan, SHIFTS**2)) == math.inf


def test_an_absorption_line_filled_in_without_a_peak_is_a_core():
    line = {"family": "core", "ew": -2.0, "sigma": 100.0}
    _, noisy = star(A_STAR, line, snr=100)
    m = classify(measure(noisy))
    assert m["ha_ew"] > 0 and m["ha_peaks"] == 0  # still an absorption line, no peak
    assert (m["kind"], m["kind_reason"], m["profile"]) == ("core", "filled", "filled-in")
    assert m["ha_emission_ew"] == pytest.approx(-2.0, rel=0.2)
    # not taught as emission (taught so, the network listed normal stars whose cores the
    # photospheres miss): the catalogue calls it a core, the training leaves it out
    assert emission_kind(noisy)[0] == ""
    # a profile pinned at the end of the velocities tried: its "emission" is its own error
    assert classify({**m, "photosphere_velocity": 150.0})["kind"] == "none"
    # less than 1 A, or less than 3 sigma, above the profile: no filling
    assert classify({**m, "ha_emission_ew": -0.9})["kind"] == "none"
    assert classify({**m, "ha_emission_ew_err": 0.8})["kind"] == "none"
    # 1.2 A at 3.1 sigma of the noise above a 4.9 A profile (a real B star's core that its
    # photospheres miss): within 5 % of the profile, no filling
    star_ = {**m, "ha_ew": 3.64, "ha_emission_ew": -1.21, "ha_emission_ew_err": 0.39}
    assert classify(star_)["kind"] == "none"
    assert classify({**star_, "ha_ew": 1.0, "ha_emission_ew": -1.5})["kind"] == "core"
    # a filling away from the star's line (known to 12.5 km/s) is no core of it
    aside = {**m, "ha_velocity": m["photosphere_velocity"] + 300.0,
             "photosphere_velocity_err": 12.5}
    assert (classify(aside)["kind"], classify(aside)["kind_reason"]) == (
        "none", "filling-beside-the-line")


def test_a_broad_line_lifting_the_absorption_is_no_core():
    # a broad line (FWHM 700 km/s) lifts the flanks as much as the core and pulls the
    # absorption profile's fitted velocity aside: no filling of the star's own line
    line = {"family": "single", "ew": -2.0, "sigma": 300.0}
    _, noisy = star(A_STAR, line, snr=100)
    m = classify(measure(noisy))
    assert m["ha_ew"] > 0 and m["ha_peaks"] == 0 and m["kind"] == "none"


def test_double_peaks_their_separation_and_v_over_r():
    line = {"family": "double", "ew": -20.0, "sigma": 50.0, "separation": 600.0,
            "vr_ratio": 1.6}
    _, noisy = star(K_STAR, line, snr=150)
    m = classify(measure(noisy))
    assert m["kind"] == "stellar" and m["ha_peaks"] == 2 and m["profile"] == "double"
    assert m["ha_peak_separation"] == pytest.approx(600, rel=0.2)
    assert m["ha_vr"] > 1.15


def test_p_cygni_has_its_trough_on_the_blue_side():
    line = {"family": "p-cygni", "ew": -15.0, "sigma": 60.0, "absorption_ew": 3.0,
            "absorption_velocity": -350.0, "absorption_sigma": 60.0}
    _, noisy = star(K_STAR, line, snr=150)
    m = classify(measure(noisy))
    assert m["kind"] == "stellar" and m["ha_pcygni"] == "blue" and m["profile"] == "p-cygni"


@pytest.mark.parametrize(("artefact", "reason"), [
    ({"family": "spike", "at": 6610.0, "pixels": 1, "height": 1.0}, "spike:"),
    ({"family": "spike", "at": NEIGHBOURS["nii_6583"], "pixels": 1, "height": 1.0}, "spike:"),
    ({"family": "zero-run", "at": 6515.0, "pixels": 12, "masked": False}, "zero-run:"),
])
def test_artefacts_are_told_apart_from_lines(artefact, reason):
    _, noisy = star(K_STAR, None, snr=80)
    m = classify(measure(add_artefact(noisy, artefact)))
    assert m["kind"] == "artefact" and m["kind_reason"].startswith(reason)


def test_a_normal_star_shows_no_emission_and_the_screen_agrees():
    for template in (A_STAR, K_STAR):
        _, noisy = star(template, None, snr=60, seed=3)
        m = classify(measure(noisy))
        assert m["kind"] == "none" and m["kind"] not in EMISSION
        assert screen(noisy)[0] in ("no", "maybe")


def test_the_screen_never_hides_emission_the_measurement_finds():
    """Whatever the screen calls "no", the full measurement does not call emission (but a
    filling, which is not taught): over lines of every family and strength, and none."""
    rng = np.random.default_rng(4)
    lines = [None, {"family": "single", "ew": -1.5, "sigma": 80.0},
             {"family": "core", "ew": -1.0, "sigma": 30.0},
             {"family": "nebular", "ew": -1.0, "sigma": 10.0, "nii_ratio": 1.0,
              "sii_ratio": 0.0, "sii_doublet": 1.0},
             {"family": "single", "ew": -6.0, "sigma": 80.0}]
    seen = set()
    for k in range(50):
        _, noisy = star([A_STAR, K_STAR][k % 2], lines[k % 5], snr=float(rng.uniform(15, 80)),
                        seed=k)
        verdict, _ = screen(noisy)
        m = classify(measure(noisy))
        seen.add(verdict)
        if verdict == "no":  # a filling without a peak is not taught: the screen may miss it
            assert m["kind"] not in EMISSION or m["kind_reason"] == "filled", (k, m["kind"])
            assert emission_kind(noisy)[0] == ""
        if verdict == "net":
            assert m["kind"] in EMISSION
    assert seen == {"no", "maybe", "net"}


def test_nothing_is_made_up_where_a_line_cannot_be_measured():
    _, noisy = star(K_STAR, None)
    masked = noisy.mask.copy()
    masked[np.abs(noisy.wavelength - HALPHA_VACUUM) < 10] = True
    m = classify(measure(replace(noisy, mask=masked)))
    assert m["status"] == "masked" and m["kind"] == "unknown"
    assert all(math.isnan(m[k]) for k in COLUMNS if k.endswith("_ew"))
    short = np.abs(noisy.wavelength - HALPHA_VACUUM) < 100  # ends before [S II] and He I
    cut = Spectrum(noisy.wavelength[short], noisy.flux[short], noisy.ivar[short],
                   noisy.mask[short], "vacuum", noisy.meta)
    m = measure(cut)
    assert m["status"] == "ok" and math.isnan(m["sii_6731_ew"]) and "sii_6731:off-range" in \
        m["notes"] and math.isfinite(m["nii_6583_ew"])
    blue = noisy.wavelength < 6400
    off = Spectrum(noisy.wavelength[blue], noisy.flux[blue], noisy.ivar[blue], noisy.mask[blue],
                   "vacuum", noisy.meta)
    assert classify(measure(off))["kind_reason"] == "off-range"
    unknown = replace(noisy, meta=lamost_meta(instrument="somewhere"))
    assert measure(unknown)["status"] == "no-resolution"
    assert measure(unknown, 2000.0)["status"] == "ok"


def test_an_injected_nebula_on_a_real_lamost_star_keeps_its_kind(shared_data):
    from specscout.spectra.readers import read_all

    host = read_all(sorted((shared_data / "lamost" / "dr2").glob("*.fits*"))[0])[0]
    line = {"family": "nebular", "ew": -5.0, "sigma": 10.0, "nii_ratio": 0.6, "sii_ratio": 0.0,
            "sii_doublet": 1.0}
    base = classify(measure(host))
    changed = classify(measure(inject(host, line, 0.0, np.random.default_rng(0))))
    assert base["kind"] == "none" and changed["kind"] == "nebular"
    assert changed["ha_emission_ew"] - base["ha_emission_ew"] == pytest.approx(-5.0, rel=0.15)


def test_profile_classes_follow_the_rule():
    row = {"ha_peaks": 2, "ha_absorption": "both", "ha_pcygni": ""}
    assert profile(row) == "double-in-absorption"
    assert profile({**row, "ha_peaks": 1, "ha_absorption": "none"}) == "single"
    assert profile({**row, "ha_pcygni": "red"}) == "inverse-p-cygni"


def test_a_two_pixel_cosmic_ray_on_the_line_is_an_artefact_and_elsewhere_left_out():
    for template in (A_STAR, K_STAR):
        _, quiet = star(template, None, snr=60, seed=5)
        for pixels in (1, 2):
            hit = add_artefact(quiet, {"family": "spike", "at": HALPHA_VACUUM, "pixels": pixels,
                                       "height": 1.0})
            m = classify(measure(hit))
            assert m["kind"] == "artefact" and m["kind_reason"].startswith("spike-on-line")
    # a cosmic ray beside a real line is left out: the line keeps its kind and its width
    line = {"family": "single", "ew": -8.0, "sigma": 100.0}
    _, noisy = star(K_STAR, line, snr=80)
    clean = classify(measure(noisy))
    hit = classify(measure(add_artefact(noisy, {"family": "spike", "at": 6575.0, "pixels": 2,
                                                "height": 3.0})))
    assert hit["kind"] == "stellar" and "spike:6575" in hit["artefacts"]
    assert hit["ha_ew"] == pytest.approx(clean["ha_ew"], abs=3 * clean["ha_ew_err"])


def test_quiet_stars_of_every_type_show_no_spike():
    """A cool star's crowd of lines is no cosmic ray: 6 seeds of A, F, K and M stars at S/N
    50 and 150 are all 'none'."""
    kinds = set()
    for spt in ("A", "F", "K", "M"):
        template = _template(spt)
        for snr in (50, 150):
            for seed in range(3):
                _, noisy = star(template, None, snr=snr, seed=seed)
                m = classify(measure(noisy))
                kinds.add((m["kind"], m["artefacts"]))
    assert kinds == {("none", "")}


def test_masked_or_odd_pixels_are_said_or_refused_never_made_up():
    line = {"family": "single", "ew": -8.0, "sigma": 100.0}
    _, noisy = star(K_STAR, line, snr=80)
    good = classify(measure(noisy))
    at_line = noisy.mask.copy()
    at_line[np.argmin(np.abs(noisy.wavelength - HALPHA_VACUUM))] = True
    m = classify(measure(replace(noisy, mask=at_line)))
    assert m["status"] == "masked" and m["kind"] == "unknown" and math.isnan(m["ha_ew"])
    aside = noisy.mask.copy()
    aside[np.argmin(np.abs(noisy.wavelength - 6576.0))] = True  # in the window, off the line
    m = classify(measure(replace(noisy, mask=aside)))
    assert m["status"] == "ok" and "halpha:1-pixels-interpolated" in m["notes"]
    assert m["ha_ew_err"] > 0.9 * good["ha_ew_err"]  # the filled pixel brings its noise
    ivar = noisy.ivar.copy()
    ivar[np.argmin(np.abs(noisy.wavelength - 6600.0))] = np.inf  # a pipeline's odd pixel
    m = classify(measure(replace(noisy, ivar=ivar)))
    assert m["kind"] == "stellar" and m["ha_peak_snr"] == pytest.approx(good["ha_peak_snr"],
                                                                       rel=0.1)


def test_without_an_inverse_variance_the_noise_comes_from_the_pixels():
    line = {"family": "single", "ew": -5.0, "sigma": 100.0}
    _, noisy = star(K_STAR, line, snr=60)
    with_ivar = measure(noisy)
    m = classify(measure(replace(noisy, ivar=None)))
    assert m["kind"] == "stellar"
    assert 0.7 < m["ha_ew_err"] / with_ivar["ha_ew_err"] < 1.4


def test_air_wavelengths_and_the_resolution_of_lamost_mrs():
    from specscout.simulate import MRS
    from specscout.spectra.preprocess import vacuum_to_air
    from specscout.spectra.writers import mrs_wavelength

    line = {"family": "nebular", "ew": -4.0, "sigma": 10.0, "nii_ratio": 0.7, "sii_ratio": 0.0,
            "sii_doublet": 1.0}
    _, noisy = star(K_STAR, line, snr=100)
    air = replace(noisy, wavelength=vacuum_to_air(noisy.wavelength), medium="air")
    assert classify(measure(air))["kind"] == classify(measure(noisy))["kind"] == "nebular"
    wave = mrs_wavelength("R")
    truth = {"template": K_STAR, "rv": 0.0, "tilt": 0.0, "snr": 1e9, "amplitude": 1000.0,
             **{f"line_{k}": v for k, v in line.items()}}
    config = SurveyConfig(cosmic_rays=0.0, bad_pixel_rate=0.0, sky_residual_rate=0.0)
    flux, _, mask, _ = render(truth, load_templates(), MRS, wave, np.random.default_rng(0),
                              config)
    sigma = float(np.median(flux[~mask.astype(bool)])) / 60
    flux = flux + np.random.default_rng(1).normal(0, sigma, wave.size)
    mrs = Spectrum(wave, flux.astype(np.float32), np.full(wave.size, sigma**-2, np.float32),
                   mask.astype(bool), "vacuum", lamost_meta(instrument="LAMOST MRS",
                                                             resolving_power=7500.0))
    m = classify(measure(mrs))
    assert m["resolving_power"] == 7500 and m["kind"] == "nebular"
    assert m["ha_fwhm"] < 1.3 * m["ha_fwhm_instrument"] and m["nii_ha"] == pytest.approx(
        0.7, abs=0.2)
