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
from specscout.spectra.lines import (
    C_KMS,
    HALPHA_AIR,
    HALPHA_VACUUM,
    continuum,
    equivalent_width,
    sideband_noise,
)
from specscout.spectra.spectrum import Spectrum

#: The resolving power of a line as the survey's pixels record it. LAMOST LRS: the effective
#: R that ``specscout calibrate`` fits on the real same-star pairs (pixelisation included),
#: below the nominal 1800 of its files; other instruments: their files' nominal R.
EFFECTIVE_R = {"LAMOST LRS": 1531.0}
#: Radial velocities of the injected lines (km/s): the stars' spread in a Galactic survey.
RV_SIGMA = 30.0
#: An injected line makes a positive only where the spectrum then shows it as an observer
#: calls a line "in emission": a net equivalent width (the host's own absorption and the added
#: light together) of at least MIN_NET_EW A in emission, at MIN_SIGNIFICANCE times its noise.
#: A line that only fills a photosphere's absorption in part, or drowns in the noise, taught
#: as "emission" makes the network call quiet K and M stars (whose absorption is weak) and
#: noisy spectra candidates.
MIN_NET_EW = 1.0
MIN_SIGNIFICANCE = 3.0
#: Half-width (A) of the window in which the net line is measured: the widest double peaks
#: (700 km/s apart) and a single line's core fall within it.
LINE_HALF_WIDTH = 15.0


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


def net_line(spectrum: Spectrum, rv: float) -> tuple[float, float]:
    """(net equivalent width of H-alpha at radial velocity ``rv``, its 1-sigma noise), in A,
    negative for emission: what the spectrum shows, whatever was added to it."""
    wave, flux = spectrum.wavelength, spectrum.flux.astype(np.float64)
    centre = (HALPHA_AIR if spectrum.medium == "air" else HALPHA_VACUUM) * (1 + rv / C_KMS)
    good = ~spectrum.mask & np.isfinite(flux)
    if spectrum.ivar is not None:
        good &= spectrum.ivar > 0
    ew = equivalent_width(wave, flux, centre, LINE_HALF_WIDTH, good)
    line = good & (np.abs(wave - centre) < LINE_HALF_WIDTH)
    step = float(np.median(np.gradient(wave)[line])) if line.any() else float("nan")
    noise = sideband_noise(wave, flux, centre, good) * step * math.sqrt(line.sum())
    return ew, noise


def shows_emission(ew: float, noise: float) -> bool:
    """Whether a net line (:func:`net_line`) is H-alpha in emission (:data:`MIN_NET_EW`,
    :data:`MIN_SIGNIFICANCE`)."""
    return bool(ew <= -MIN_NET_EW and -ew >= MIN_SIGNIFICANCE * noise)


def draw_injection(rng: np.random.Generator, cls: str, resolving_power: float) -> dict:
    """A line of class ``cls`` (every family and the whole range of equivalent widths, V/R
    ratios and separations of the simulator) and its radial velocity."""
    return {"rv": float(rng.normal(0, RV_SIGMA)), **draw_profile(rng, cls, resolving_power)}
