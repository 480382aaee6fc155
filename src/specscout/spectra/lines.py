"""Simple measurements of a line and its continuum: equivalent width, slope, noise.

Used to vet templates, to check simulated spectra against real ones, and in reports. Wavelengths
in Angstrom, in whatever medium ``centre`` is given in. Emission has a negative equivalent width.
"""

from __future__ import annotations

import numpy as np

from specscout.spectra.preprocess import air_to_vacuum

#: H-alpha in vacuum and in air (Angstrom).
HALPHA_VACUUM = 6564.614
HALPHA_AIR = 6562.801
#: The speed of light (km/s), for Doppler shifts.
C_KMS = 299792.458
#: The line measurement's H-alpha window (+-A), the reach of its peaks (A), and the
#: significance (sigma) at which it calls something seen.
HALF_WIDTH = 15.0
PEAK_REACH = 12.0
DETECTION = 3.0
#: The neighbours of H-alpha, at their vacuum wavelengths (air values from NIST).
NEIGHBOURS = {name: float(air_to_vacuum(np.array(air)))
              for name, air in (("nii_6548", 6548.050), ("nii_6583", 6583.454),
                                ("hei_6678", 6678.151), ("sii_6716", 6716.440),
                                ("sii_6731", 6730.816))}


def _sidebands(wave: np.ndarray, centre: float) -> np.ndarray:
    return ((wave > centre - 60) & (wave < centre - 25)) | ((wave > centre + 25)
                                                           & (wave < centre + 60))


def continuum(wave: np.ndarray, flux: np.ndarray, centre: float = HALPHA_VACUUM,
              good: np.ndarray | None = None) -> np.ndarray:
    """A straight line through the sidebands 25-60 A either side of ``centre``."""
    sb = _sidebands(wave, centre) & (np.isfinite(flux) if good is None else good)
    if sb.sum() < 4:
        return np.full(wave.shape, np.nan)
    return np.polyval(np.polyfit(wave[sb], flux[sb], 1), wave)


def equivalent_width(wave: np.ndarray, flux: np.ndarray, centre: float = HALPHA_VACUUM,
                     half_width: float = 15.0, good: np.ndarray | None = None) -> float:
    """Equivalent width (A) within ``half_width`` of ``centre``; negative for emission."""
    cont = continuum(wave, flux, centre, good)
    line = np.abs(wave - centre) < half_width
    if good is not None:
        line &= good
    if line.sum() < 3:
        return float("nan")
    step = np.gradient(wave)
    return float(np.sum((1.0 - flux[line] / cont[line]) * step[line]))


def core_excess(wave: np.ndarray, flux: np.ndarray, centre: float = HALPHA_VACUUM) -> float:
    """Peak of the line core (+-2.5 A) relative to its flanks (8-13 A away), minus 1: above 0
    when the core rises over its immediate surroundings, as in emission or a filled core."""
    core = np.abs(wave - centre) < 2.5
    flank = (np.abs(wave - centre) > 8) & (np.abs(wave - centre) < 13)
    return float(np.max(flux[core]) / np.median(flux[flank]) - 1.0)


def continuum_slope(wave: np.ndarray, flux: np.ndarray, centre: float = HALPHA_VACUUM,
                    good: np.ndarray | None = None) -> float:
    """Fractional continuum slope across the window: d(continuum)/d(lambda) / continuum, per
    100 A."""
    cont = continuum(wave, flux, centre, good)
    i = int(np.argmin(np.abs(wave - centre)))
    return float((cont[i + 1] - cont[i - 1]) / (wave[i + 1] - wave[i - 1]) / cont[i] * 100)


def sideband_noise(wave: np.ndarray, flux: np.ndarray, centre: float = HALPHA_VACUUM,
                   good: np.ndarray | None = None) -> float:
    """Scatter about the continuum in the sidebands, relative to the continuum (1 / SNR)."""
    cont = continuum(wave, flux, centre, good)
    sb = _sidebands(wave, centre) & (np.isfinite(flux) if good is None else good)
    resid = flux[sb] / cont[sb] - 1.0
    return float(1.4826 * np.median(np.abs(resid - np.median(resid))))


def gauss(w: np.ndarray, centre: float, sigma: float) -> np.ndarray:
    """A Gaussian of height 1 at ``centre``, of standard deviation ``sigma``."""
    return np.exp(-0.5 * ((w - centre) / sigma) ** 2)
