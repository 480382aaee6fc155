"""Training in the survey's own domain: injection into real spectra, the pool's folds, the
fixed validation split, and probabilities relative to the pool's class mix."""

from __future__ import annotations

import numpy as np
import pytest

from specscout.learn.domain import fold_of, ranked_rows
from specscout.learn.priors import em_priors, in_chunks, shift
from specscout.learn.train import split_by_key
from specscout.simulate.inject import InjectionError, emission_kind, inject, shown
from specscout.spectra.lines import HALPHA_VACUUM, equivalent_width
from specscout.spectra.spectrum import Spectrum

from conftest import lamost_meta


def _flat(level: float = 250.0, noise: float = 0.0, seed: int = 0) -> Spectrum:
    wave = np.arange(6400.0, 6750.0, 1.4)
    rng = np.random.default_rng(seed)
    flux = level + noise * rng.standard_normal(wave.size)
    ivar = np.full(wave.size, 1 / noise**2, np.float32) if noise else None
    return Spectrum(wave, flux.astype(np.float32), ivar, np.zeros(wave.size, bool), "vacuum",
                    lamost_meta(instrument="LAMOST LRS"))


@pytest.mark.parametrize("level", [1.0, 250.0, 3e4])
def test_an_injected_line_has_its_equivalent_width_in_any_flux_scale(level):
    line = {"family": "single", "ew": -12.0, "sigma": 80.0}
    s = inject(_flat(level), line, 0.0, np.random.default_rng(0))
    assert equivalent_width(s.wavelength, s.flux, HALPHA_VACUUM) == pytest.approx(-12.0, rel=0.03)


def test_the_added_light_brings_its_photon_noise():
    base = _flat(200.0, noise=2.0)
    line = {"family": "single", "ew": -40.0, "sigma": 60.0}
    s = inject(base, line, 0.0, np.random.default_rng(1))
    peak = np.abs(s.wavelength - HALPHA_VACUUM) < 3
    far = np.abs(s.wavelength - HALPHA_VACUUM) > 100
    assert np.all(s.ivar[peak] < base.ivar[peak])  # more light, more variance
    np.testing.assert_array_equal(s.ivar[far], base.ivar[far])
    np.testing.assert_array_equal(s.flux[far], base.flux[far])


def test_a_spectrum_without_continuum_at_halpha_cannot_take_a_line():
    s = _flat()
    s.mask[np.abs(s.wavelength - HALPHA_VACUUM) < 70] = True
    with pytest.raises(InjectionError):
        inject(s, {"family": "single", "ew": -5.0, "sigma": 50.0}, 0.0,
               np.random.default_rng(0))


def _absorbing(ew: float, noise: float = 0.0, seed: int = 0) -> Spectrum:
    """A flat spectrum with an H-alpha absorption line of equivalent width ``ew`` (A), at
    the instrument's resolution (sigma 1.8 A, R 1531)."""
    s = _flat(250.0, noise, seed)
    line = 250.0 * ew / (1.8 * np.sqrt(2 * np.pi)) * np.exp(
        -0.5 * ((s.wavelength - HALPHA_VACUUM) / 1.8) ** 2)
    s.flux[:] -= line.astype(np.float32)
    return s


def test_a_line_is_a_positive_only_where_the_spectrum_then_shows_it():
    rng = np.random.default_rng(0)
    weak = {"family": "weak", "ew": -1.5, "sigma": 60.0}
    # a K star's absorption (EW 1.2 A) filled in part by a line as narrow: still a net
    # absorption, no peak: nothing an observer would call emission
    filled = inject(_absorbing(1.2, noise=0.5), {"family": "weak", "ew": -0.8, "sigma": 5.0},
                    0.0, rng)
    m = shown(filled)
    assert 0.2 < m["ha_ew"] < 0.6 and m["ha_peaks"] == 0 and m["kind"] == "none"
    assert emission_kind(filled)[0] == ""
    # the same line on a featureless photosphere: net -1.5 A at high signal to noise
    clear = inject(_flat(250.0, noise=0.5), weak, 0.0, rng)
    m = shown(clear)
    assert m["ha_ew"] == pytest.approx(-1.5, abs=0.1) and m["kind"] == "stellar"
    assert emission_kind(clear)[0] in ("emission", "stellar")
    # a line of 1.5 A in noise of 20 %: no observer would call it one
    noisy = inject(_flat(250.0, noise=50.0), weak, 0.0, rng)
    assert shown(noisy)["ha_ew_err"] > 0.5 and emission_kind(noisy)[0] == ""


def test_rows_keep_their_order_and_fold_as_the_pool_grows():
    small, large = ranked_rows(1000, 3), ranked_rows(5000, 3)
    assert list(large[large < 1000]) == list(small)
    rows = np.arange(5000)
    assert np.array_equal(fold_of(rows[:1000], 3), fold_of(rows, 3)[:1000])
    assert 0.45 < fold_of(rows, 3).mean() < 0.55
    assert not np.array_equal(fold_of(rows, 3), fold_of(rows, 4))


def test_folds_of_coarser_cells_keep_every_finer_cell_of_one_in_one_fold():
    cells = np.arange(256 * 40, dtype=np.uint64)  # nested nside-256 ids of 40 nside-16 cells
    folds = fold_of(cells, 0, nside=16)
    for parent in range(40):  # 256 children of nside 256 in every nside-16 cell
        assert len(set(folds[parent * 256 : (parent + 1) * 256])) == 1
    assert 0 < folds.mean() < 1
    files = np.array([1 << 63 | 12345, 1 << 63 | 999], np.uint64)  # a file's hash, no position
    np.testing.assert_array_equal(fold_of(files, 0, nside=16), fold_of(files, 0))


def test_a_key_stays_on_its_side_of_the_split_whatever_joins_it():
    keys = [f"pool:{i}" for i in range(2000)]
    train, val = split_by_key(keys, 0.2)
    assert 0.17 < len(val) / len(keys) < 0.23
    more = keys + [f"labelled:{i}" for i in range(500)]
    train2, val2 = split_by_key(more, 0.2)
    assert set(val2[val2 < 2000]) == set(val) and set(train2[train2 < 2000]) == set(train)


def test_shift_to_the_training_priors_changes_nothing_and_bayes_otherwise():
    p = np.array([[0.5, 0.3, 0.2], [0.1, 0.8, 0.1]], np.float32)
    trained = np.full(3, 1 / 3)
    np.testing.assert_allclose(shift(p, trained, trained), p, rtol=1e-6)
    q = shift(p, trained, np.array([0.98, 0.01, 0.01]))
    expected = p * [0.98, 0.01, 0.01]
    np.testing.assert_allclose(q, expected / expected.sum(1, keepdims=True), rtol=1e-5)


def test_em_recovers_the_pool_priors_from_calibrated_posteriors():
    """Posteriors of a calibrated classifier (Gaussian scores, balanced training) on a pool
    of 2 % targets: EM finds the 2 %, and the shifted posteriors are calibrated on the pool."""
    rng = np.random.default_rng(0)
    n, pi = 200_000, 0.02
    y = rng.random(n) < pi
    score = rng.normal(np.where(y, 2.0, 0.0), 1.0)
    like1, like0 = np.exp(-0.5 * (score - 2) ** 2), np.exp(-0.5 * score**2)
    post = like1 / (like1 + like0)  # under equal priors
    p = np.stack([1 - post, post], 1).astype(np.float32)
    priors, steps = em_priors(lambda: in_chunks(p, 30_000), np.array([0.5, 0.5]))
    assert priors[1] == pytest.approx(pi, rel=0.08) and steps < 200
    shifted = shift(p, np.array([0.5, 0.5]), priors)[:, 1]
    high = shifted > 0.5
    assert y[high].mean() > 0.5 > y[~high].mean()  # a cut at 0.5 means "more likely than not"
