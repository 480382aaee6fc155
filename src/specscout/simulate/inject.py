"""Injection into real spectra: an H-alpha profile of the simulator's families added to a real
survey spectrum on its own pixels, in its own flux scale, with the photon noise of the added
light drawn from the spectrum's own inverse variance.

This is the injection-recovery method applied to training: the result is a spectrum of the
survey (its photosphere, its noise, its pipeline's artefacts) with a line of known truth, which
then goes through the same preprocessing as every pool spectrum.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from specscout.simulate.profiles import draw_profile, line_profile
from specscout.spectra.lines import C_KMS, HALPHA_AIR, HALPHA_VACUUM, continuum
from specscout.spectra.spectrum import Spectrum

#: The resolving power of a line as the survey's pixels record it. LAMOST LRS: the effective
#: R that ``specscout calibrate`` fits on the real same-star pairs (pixelisation included),
#: below the nominal 1800 of its files; other instruments: their files' nominal R.
EFFECTIVE_R = {"LAMOST LRS": 1531.0}
#: Radial velocities of the injected lines (km/s): the stars' spread in a Galactic survey.
RV_SIGMA = 30.0


class InjectionError(ValueError):
    """A spectrum that cannot take a line; ``reason``: ``no-continuum`` (none around H-alpha)
    or ``no-resolution`` (its resolving power unknown)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def effective_resolution(spectrum: Spectrum) -> float:
    r = EFFECTIVE_R.get(spectrum.meta.instrument, spectrum.meta.resolving_power)
    if not math.isfinite(r) or r <= 0:
        raise InjectionError(f"{spectrum.meta.id}: resolving power unknown", "no-resolution")
    return float(r)


def inject(spectrum: Spectrum, profile: dict, rv: float,
           rng: np.random.Generator) -> Spectrum:
    """``spectrum`` with the line ``profile`` (:func:`draw_profile`'s parameters) added at
    radial velocity ``rv``. The line is scaled to the spectrum's continuum (a straight line
    through the sidebands of H-alpha), so an equivalent width means what it says in any flux
    unit. Where the file gives an inverse variance, the added light brings its photon noise:
    the variance of a pixel grows by ``var * added / continuum`` (the noise there being
    mostly the photon noise of the continuum), drawn and added, and the ivar says so."""
    wave, flux = spectrum.wavelength, spectrum.flux.astype(np.float64)
    ivar = spectrum.ivar
    centre = (HALPHA_AIR if spectrum.medium == "air" else HALPHA_VACUUM) * (1 + rv / C_KMS)
    good = ~spectrum.mask & np.isfinite(flux)
    if ivar is not None:
        good &= ivar > 0
    cont = continuum(wave, flux, centre, good)
    near = np.abs(wave - centre) < 60
    if not near.any() or not np.all(np.isfinite(cont[near])) or np.any(cont[near] <= 0):
        raise InjectionError(f"{spectrum.meta.id}: no positive continuum around H-alpha",
                             "no-continuum")
    added = cont * line_profile(wave, profile, centre, effective_resolution(spectrum))
    out = flux + added
    new_ivar = ivar
    if ivar is not None:
        with np.errstate(divide="ignore"):
            var = np.where(ivar > 0, 1.0 / ivar.astype(np.float64), 0.0)
        extra = var * np.clip(added, 0, None) / cont
        out += rng.standard_normal(out.size) * np.sqrt(extra)
        with np.errstate(divide="ignore"):
            new_ivar = np.where(ivar > 0, 1.0 / (var + extra), 0.0).astype(np.float32)
    return replace(spectrum, flux=out.astype(np.float32), ivar=new_ivar)


def draw_injection(rng: np.random.Generator, cls: str, resolving_power: float) -> dict:
    """A line of class ``cls`` (every family and the whole range of equivalent widths, V/R
    ratios and separations of the simulator) and its radial velocity."""
    return {"rv": float(rng.normal(0, RV_SIGMA)), **draw_profile(rng, cls, resolving_power)}
