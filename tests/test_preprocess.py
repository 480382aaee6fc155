"""Preprocessing: wavelengths, resolution matching, resampling, normalisation, flags."""

from __future__ import annotations

import math

import numpy as np
import pytest

from specscout.spectra.grid import Grid
from specscout.spectra.preprocess import (
    FWHM_PER_SIGMA,
    Flag,
    PreprocessConfig,
    air_to_vacuum,
    describe,
    kernel_sigma,
    match_resolution,
    normalise_continuum,
    normalise_minmax,
    prepare,
    resample,
    vacuum_to_air,
)
from specscout.spectra.spectrum import Spectrum

from conftest import lamost_meta


def test_air_to_vacuum_vald_halpha():
    assert air_to_vacuum(np.array([6562.801]))[0] == pytest.approx(6564.614, abs=5e-4)


def test_vacuum_to_air_inverts():
    air = np.linspace(3500, 9500, 50)
    np.testing.assert_allclose(vacuum_to_air(air_to_vacuum(air)), air, atol=1e-9)


def test_kernel_sigma_formula():
    # FWHM_target^2 = FWHM_source^2 + FWHM_kernel^2 with FWHM = lambda / R.
    lam = 6563.0
    sigma = kernel_sigma(np.array([lam]), 13000, 1800)[0]
    expected = math.sqrt((lam / 1800) ** 2 - (lam / 13000) ** 2) / 2.354820045
    assert sigma == pytest.approx(expected)
    with pytest.raises(ValueError, match="sharpen"):
        kernel_sigma(np.array([lam]), 1800, 13000)


def _fwhm(wave, flux):
    """FWHM of an emission peak, by linear interpolation of the half-maximum crossings."""
    half = flux.max() / 2
    above = np.nonzero(flux >= half)[0]
    i, j = above[0], above[-1]
    left = np.interp(half, [flux[i - 1], flux[i]], [wave[i - 1], wave[i]])
    right = np.interp(half, [flux[j + 1], flux[j]], [wave[j + 1], wave[j]])
    return right - left


@pytest.mark.parametrize("grid", ["linear", "loglinear"])
def test_match_resolution_gives_the_target_fwhm_on_any_grid(grid):
    lam0, r_source, r_target = 6564.6, 13000.0, 1800.0
    if grid == "linear":
        wave = np.arange(6300, 6800, 0.25)
    else:
        wave = 10 ** (np.log10(6300) + 1e-5 * np.arange(int(np.log10(6800 / 6300) / 1e-5)))
    sigma_source = lam0 / r_source / FWHM_PER_SIGMA
    line = np.exp(-0.5 * ((wave - lam0) / sigma_source) ** 2)
    out, _, mask = match_resolution(wave, line, r_source, r_target)
    assert _fwhm(wave, out) == pytest.approx(lam0 / r_target, rel=0.01)
    # The blur conserves the line's flux.
    assert np.trapezoid(out, wave) == pytest.approx(np.trapezoid(line, wave), rel=1e-3)
    assert mask[0] and mask[-1] and not mask[len(wave) // 2]


def test_match_resolution_ignores_bad_pixels_and_propagates_ivar():
    wave = np.arange(6400, 6700, 0.25)
    flux = np.ones_like(wave)
    flux[600] = 1e6
    mask = np.zeros(wave.size, bool)
    mask[600] = True
    ivar = np.full(wave.size, 4.0)
    out, out_ivar, out_mask = match_resolution(wave, flux, 13000, 1800, ivar, mask)
    np.testing.assert_allclose(out[~out_mask], 1.0, rtol=1e-6)
    # Averaging many independent pixels shrinks the variance.
    assert np.all(out_ivar[~out_mask] > 4.0)


def test_resample_conserves_flux_and_follows_linear_flux():
    wave = np.arange(6400, 6800, 0.37)
    grid = Grid().wavelength
    out, _, mask = resample(wave, 3.0 + 0.01 * (wave - 6500), grid)
    assert not mask.any()
    # Exact up to the piecewise-constant pixel model (slope x pixel / 2 at the bin ends).
    np.testing.assert_allclose(out, 3.0 + 0.01 * (grid - 6500), rtol=3e-5)
    # A line's integral is conserved from fine to coarse pixels.
    line = np.exp(-0.5 * ((wave - 6600) / 2.0) ** 2)
    out, _, _ = resample(wave, line, grid)
    assert out.sum() * Grid().step == pytest.approx(line.sum() * 0.37, rel=1e-4)


def test_resample_propagates_ivar():
    wave = np.arange(0.5, 100.5, 1.0)  # unit pixels, edges at integers
    grid = np.arange(1.0, 100.0, 2.0)  # pixels of width 2: each the mean of two input pixels
    _, ivar, _ = resample(wave, np.ones(100), grid, ivar=np.full(100, 1.0))
    np.testing.assert_allclose(ivar[1:-1], 2.0)


def test_resample_masks_uncovered_and_bad_pixels():
    wave = np.arange(6500, 6620, 0.5)  # covers only part of the window
    flux = np.ones_like(wave)
    bad = np.zeros(wave.size, bool)
    bad[100:120] = True  # 6550-6560 A
    flux[100:120] = np.nan
    out, _, mask = resample(wave, flux, Grid().wavelength, mask=bad)
    g = Grid().wavelength
    assert mask[g > 6625].all() and np.isnan(out[g > 6625]).all()
    assert mask[(g > 6551.5) & (g < 6558.5)].all()
    np.testing.assert_allclose(out[~mask], 1.0)


def test_minmax():
    flux = np.array([2.0, 4.0, 3.0])
    out, scale = normalise_minmax(np.arange(3.0), flux)
    np.testing.assert_allclose(out, [-1, 1, 0])
    np.testing.assert_allclose(scale, 1.0)


def test_continuum_ignores_lines():
    wave = Grid().wavelength
    continuum = 100 + 0.05 * (wave - 6600)
    flux = continuum * (1 + 2 * np.exp(-0.5 * ((wave - 6564.6) / 3) ** 2))
    out, _ = normalise_continuum(wave, flux)
    far = np.abs(wave - 6564.6) > 15
    np.testing.assert_allclose(out[far], 1.0, atol=1e-5)
    assert out.max() == pytest.approx(3.0, rel=0.02)


def _spectrum(flux, ivar=None, wave=None, medium="vacuum"):
    wave = np.arange(6400, 6800, 1.5) if wave is None else wave
    return Spectrum(wave, np.asarray(flux, np.float32),
                    None if ivar is None else np.asarray(ivar, np.float32),
                    np.zeros(wave.size, bool), medium, lamost_meta(resolving_power=1800.0))


def test_prepare_gives_the_network_vector():
    wave = np.arange(6400, 6800, 1.5)
    s = _spectrum(100 + 50 * np.exp(-0.5 * ((wave - 6564.6) / 3) ** 2), np.full(wave.size, 1.0))
    p = prepare(s)
    assert p.ok and p.flux.dtype == np.float32 and p.flux.shape == (140,)
    assert p.flux.min() == pytest.approx(-1) and p.flux.max() == pytest.approx(1)
    assert Grid().wavelength[np.argmax(p.flux)] == pytest.approx(6564.6, abs=1.6)
    assert p.snr == pytest.approx(100, rel=0.05)
    assert np.all(p.ivar > 0)


def test_prepare_converts_air_and_matches_resolution():
    wave_air = np.arange(6300, 6800, 0.25)
    line_air = 6562.801
    sigma = line_air / 13000 / FWHM_PER_SIGMA
    s = _spectrum(1 + np.exp(-0.5 * ((wave_air - line_air) / sigma) ** 2), wave=wave_air,
                  medium="air")
    p = prepare(s, PreprocessConfig(degrade_from=13000, degrade_to=1800,
                                    grid=Grid(6540, 6590, 400)))
    g = Grid(6540, 6590, 400).wavelength
    assert g[np.argmax(p.flux)] == pytest.approx(6564.614, abs=0.1)
    assert p.ok


@pytest.mark.parametrize("flux, flag", [
    (np.full(267, np.nan), Flag.NONFINITE),
    (np.zeros(267), Flag.ZERO_FLUX),
    (np.full(267, 3.0), Flag.CONSTANT_FLUX),
])
def test_prepare_flags(flux, flag):
    p = prepare(_spectrum(flux))
    assert p.flags & flag
    assert describe(p.flags)


def test_not_covered():
    s = _spectrum(np.ones(100), wave=np.arange(6000, 6150, 1.5))
    p = prepare(s)
    assert p.flags & Flag.WINDOW_NOT_COVERED and np.all(np.isnan(p.flux))


def test_unknown_normalisation():
    with pytest.raises(ValueError, match="unknown normalisation"):
        PreprocessConfig(normalisation="zscore")
