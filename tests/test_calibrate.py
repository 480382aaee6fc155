"""Fitting the survey's resolving power from pairs of spectra of the same star."""

from __future__ import annotations

import numpy as np
import pytest

from specscout.spectra.calibrate import Pair, calibrate_resolution, load_pairs
from specscout.spectra.preprocess import FWHM_PER_SIGMA
from specscout.spectra.writers import write_lamost, write_ondrejov_raw

from conftest import R_TRUE, VELOCITY, lamost_meta, synthetic_pair


def test_recovers_resolving_power_and_velocity():
    pairs = [Pair(f"p{i}", "absorption", *synthetic_pair(i)) for i in range(3)]
    cal = calibrate_resolution(pairs)
    # The fitted R is the pipeline's effective one: it includes the survey's pixels, whose
    # piecewise-constant representation adds a variance of (pixel width)^2 / 12.
    lam = 6564.6
    pixel = lam * np.log(10) * 1e-4
    sigma = np.hypot(lam / R_TRUE / FWHM_PER_SIGMA, pixel / np.sqrt(12))
    assert cal.resolving_power == pytest.approx(lam / (FWHM_PER_SIGMA * sigma), rel=0.03)
    for p in cal.pairs:
        assert p.velocity == pytest.approx(VELOCITY, abs=2.0)
    # The right R matches better than a blur of the wrong width.
    assert cal.median_residual < cal.median_residual_fixed_blur


def test_real_pairs(shared_data):
    pairs = [p for p in load_pairs(shared_data / "pairs" / "pairs.csv")
             if p.label == "absorption"][:5]
    assert len(pairs) == 5
    cal = calibrate_resolution(pairs)
    # LAMOST's nominal R is ~1800 at H-alpha; the fit must land in the physical range.
    assert 1000 < cal.resolving_power < 2500
    assert 0 < cal.median_residual < 0.05
    assert all(abs(p.velocity) < 200 for p in cal.pairs)


def test_pairs_csv_round_trip(tmp_path):
    source, target = synthetic_pair(0)
    write_ondrejov_raw(tmp_path / "ua000001.fits", source.wavelength, source.flux, obj="S")
    write_lamost(tmp_path / "spec-1.fits", target.flux, target.ivar, lamost_meta())
    (tmp_path / "pairs.csv").write_text(
        "ondrejov,lamost,ondrejov_label\nua000001.fits,spec-1.fits,absorption\n")
    (pair,) = load_pairs(tmp_path / "pairs.csv")
    assert pair.label == "absorption" and pair.source.medium == "air"
