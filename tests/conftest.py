"""Shared fixtures. Tests that need the real data of ../shared/data skip when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from specscout.spectrum import Meta

SHARED_DATA = Path(os.environ.get(
    "SPECSCOUT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "README.md").exists():
        pytest.skip(f"real data not found at {SHARED_DATA} (set SPECSCOUT_SHARED_DATA)")
    return SHARED_DATA


def lamost_meta(**kw) -> Meta:
    values = dict(id="spec-55859-F5902_sp01-001", path="", instrument="LAMOST LRS", layout="",
                  ra=332.202274, dec=-2.056767, designation="LAMOST J220848.54-020324.3",
                  obsid=101001, snr=27.16, survey_class="STAR", survey_subclass="G7",
                  release="DR7")
    values.update(kw)
    return Meta(**values)


def star_flux(n: int = 3909, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A continuum with an H-alpha absorption line on the LAMOST grid, and its ivar."""
    from specscout.writers import lamost_wavelength

    wave = lamost_wavelength(n)
    rng = np.random.default_rng(seed)
    flux = 1000.0 * (1 - 0.4 * np.exp(-0.5 * ((wave - 6564.61) / 3.0) ** 2))
    sigma = 10.0
    return flux + rng.normal(0, sigma, n), np.full(n, sigma**-2)
