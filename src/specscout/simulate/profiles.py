"""H-alpha profiles of the rare classes: their families, drawn parameters and rendering.

An emission-line star's H-alpha is drawn from one of six families (single Gaussian, weak,
filled-in absorption core, P Cygni, broad wings, double-peaked with a V/R ratio) and rendered in
continuum units at the instrument's resolution, to be added to a photosphere (the simulator) or
to a real survey spectrum (injection).
"""

from __future__ import annotations

import math

import numpy as np

from specscout.spectra.lines import C_KMS
from specscout.spectra.preprocess import FWHM_PER_SIGMA

CLASSES = ("other", "emission", "double-peak")
#: Profile families, and the class each belongs to.
FAMILIES = {"single": "emission", "weak": "emission", "filled-core": "emission",
            "p-cygni": "emission", "broad-wings": "emission", "double": "double-peak",
            "nebular": "emission", "core": "emission"}
#: The kind of emission (:mod:`specscout.spectra.kinds`) each family is.
KIND_OF = {"single": "stellar", "weak": "stellar", "filled-core": "core",
           "p-cygni": "stellar", "broad-wings": "stellar", "double": "stellar",
           "nebular": "nebular", "core": "core"}
#: Nebular lines beside H-alpha: (vacuum wavelength / H-alpha's, flux relative to its
#: group's): [N II] 6583 and 6548 at their fixed 3:1, [S II] 6716 and 6731.
NII = ((6585.27 / 6564.614, 1.0), (6549.86 / 6564.614, 1 / 3))
SII = ((6718.29 / 6564.614, 1.0), (6732.67 / 6564.614, 1.0))


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def draw_profile(rng: np.random.Generator, cls: str, resolvable_at: float) -> dict:
    """Parameters of an injected H-alpha profile of class ``cls`` (velocities in km/s,
    equivalent widths in A, negative for emission)."""
    if cls == "other":
        return {"family": "", "ew": 0.0}
    if cls == "double-peak":
        sigma = rng.uniform(40, 120)
        instrument = C_KMS / resolvable_at / FWHM_PER_SIGMA
        min_sep = 2.4 * math.hypot(sigma, instrument)  # a dip between the peaks survives
        return {"family": "double", "ew": -log_uniform(rng, 3, 60), "sigma": sigma,
                "separation": rng.uniform(min_sep, max(min_sep * 1.05, 700.0)),
                "vr_ratio": log_uniform(rng, 0.5, 2.0)}
    family = rng.choice(["single", "weak", "filled-core", "p-cygni", "broad-wings"],
                        p=[0.4, 0.15, 0.15, 0.1, 0.2])
    if family == "single":
        return {"family": family, "ew": -log_uniform(rng, 3, 100), "sigma": rng.uniform(50, 200)}
    if family == "weak":
        return {"family": family, "ew": -rng.uniform(1, 3), "sigma": rng.uniform(40, 150)}
    if family == "filled-core":
        return {"family": family, "ew": -rng.uniform(1, 8), "sigma": rng.uniform(25, 60)}
    if family == "p-cygni":
        return {"family": family, "ew": -log_uniform(rng, 3, 60), "sigma": rng.uniform(50, 150),
                "absorption_ew": rng.uniform(0.5, 3.0), "absorption_velocity": -rng.uniform(
                    150, 500), "absorption_sigma": rng.uniform(40, 100)}
    return {"family": family, "ew": -log_uniform(rng, 5, 100), "sigma": rng.uniform(60, 150),
            "wing_fraction": rng.uniform(0.3, 0.6), "wing_sigma": rng.uniform(500, 1500)}


def draw_nebular(rng: np.random.Generator) -> dict:
    """A star seen through an H II region: narrow H-alpha (intrinsic sigma 5-25 km/s,
    unresolved at low resolution) with [N II] 6548/6583 (6583/H-alpha 0.05-1.5) and, half
    the time, [S II] 6716/6731 (together 0.05-0.6 of H-alpha, 6716/6731 0.45-1.45)."""
    sii = log_uniform(rng, 0.05, 0.6) if rng.uniform() < 0.5 else 0.0
    return {"family": "nebular", "ew": -log_uniform(rng, 0.5, 40), "sigma": rng.uniform(5, 25),
            "nii_ratio": log_uniform(rng, 0.05, 1.5), "sii_ratio": sii,
            "sii_doublet": rng.uniform(0.45, 1.45)}


def draw_core(rng: np.random.Generator) -> dict:
    """A narrow emission core for a star's own absorption line (shell stars, weak Ae,
    chromospheres): 0.5-5 A, intrinsic sigma 15-70 km/s."""
    return {"family": "core", "ew": -log_uniform(rng, 0.5, 5), "sigma": rng.uniform(15, 70)}


def _gauss(wave: np.ndarray, centre: float, sigma: float, ew: float) -> np.ndarray:
    """A Gaussian of equivalent width ``ew`` (A; negative = emission) in continuum units."""
    return -ew / (sigma * math.sqrt(2 * math.pi)) * np.exp(-0.5 * ((wave - centre) / sigma) ** 2)


def line_profile(wave: np.ndarray, p: dict, centre: float, resolving_power: float) -> np.ndarray:
    """The injected profile (continuum units, to be added to 1) at the instrument's resolution:
    each Gaussian's intrinsic width is combined in quadrature with the instrumental one."""
    if not p.get("family"):
        return np.zeros_like(wave)
    instrument = centre / resolving_power / FWHM_PER_SIGMA

    def width(v: float) -> float:
        return math.hypot(centre * v / C_KMS, instrument)

    if p["family"] == "double":
        ratio = p["vr_ratio"]  # violet / red peak heights
        half = centre * p["separation"] / 2 / C_KMS
        violet, red = p["ew"] * ratio / (1 + ratio), p["ew"] / (1 + ratio)
        s = width(p["sigma"])
        return _gauss(wave, centre - half, s, violet) + _gauss(wave, centre + half, s, red)
    if p["family"] == "nebular":
        s = width(p["sigma"])
        out = _gauss(wave, centre, s, p["ew"])
        for ratio, share in NII:
            out += _gauss(wave, centre * ratio, s * ratio, p["ew"] * p["nii_ratio"] * share)
        if p.get("sii_ratio"):
            total = p["ew"] * p["sii_ratio"]
            d = p["sii_doublet"]  # 6716 / 6731
            for (ratio, _), part in zip(SII, (d / (1 + d), 1 / (1 + d)), strict=True):
                out += _gauss(wave, centre * ratio, s * ratio, total * part)
        return out
    if p["family"] == "broad-wings":
        wing = p["ew"] * p["wing_fraction"]
        return (_gauss(wave, centre, width(p["sigma"]), p["ew"] - wing)
                + _gauss(wave, centre, width(p["wing_sigma"]), wing))
    profile = _gauss(wave, centre, width(p["sigma"]), p["ew"])
    if p["family"] == "p-cygni":
        shifted = centre * (1 + p["absorption_velocity"] / C_KMS)
        profile += _gauss(wave, shifted, width(p["absorption_sigma"]), p["absorption_ew"])
    return profile
