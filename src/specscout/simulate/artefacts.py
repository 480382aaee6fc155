"""Artefacts added to real spectra, to be taught as "other": what a survey's pipeline leaves
that is not a line (:mod:`specscout.spectra.kinds`, "artefact").

- ``spike``: a cosmic ray, 1-2 pixels, narrower than the instrument's line spread, anywhere
  in the window but on H-alpha (a third of them on [N II] 6548/6583, where a spike without
  H-alpha is still no nebula);
- ``zero-run``: 3-30 pixels of zeros, with their inverse variance kept or zeroed (a
  pipeline that marks them and one that does not);
- ``bad-run``: 2-8 pixels of wild values, high or low;
- ``sky``: a residual of sky subtraction at a night-sky line near H-alpha: a bump or a dip, or
  both side by side (the sky's wavelengths a little off the star's), either way round.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from specscout.simulate.inject import effective_resolution
from specscout.simulate.profiles import NII
from specscout.spectra.artefacts import SKY
from specscout.spectra.lines import HALPHA_AIR, HALPHA_VACUUM
from specscout.spectra.preprocess import FWHM_PER_SIGMA, vacuum_to_air
from specscout.spectra.spectrum import Spectrum

FAMILIES = ("spike", "zero-run", "bad-run", "sky")
#: Where the artefacts go (vacuum A): the network's window and a little beyond.
SPAN = (6500.0, 6740.0)


def draw_artefact(rng: np.random.Generator) -> dict:
    """One artefact's parameters (wavelengths in vacuum)."""
    family = str(rng.choice(FAMILIES, p=[0.45, 0.2, 0.1, 0.25]))
    if family == "spike":
        at = (float(rng.choice([r for r, _ in NII])) * HALPHA_VACUUM if rng.uniform() < 1 / 3
              else float(rng.uniform(*SPAN)))
        return {"family": family, "at": at, "pixels": int(rng.integers(1, 3)),
                "height": float(np.exp(rng.uniform(np.log(0.15), np.log(5.0))))}
    if family == "zero-run":
        return {"family": family, "at": float(rng.uniform(*SPAN)),
                "pixels": int(rng.integers(3, 31)), "masked": bool(rng.uniform() < 0.5)}
    if family == "bad-run":
        return {"family": family, "at": float(rng.uniform(*SPAN)),
                "pixels": int(rng.integers(2, 9)),
                "value": float(rng.choice([-1.0, 1.0]) * rng.uniform(2, 30))}
    return {"family": family, "at": float(rng.choice(SKY)),
            "height": float(rng.choice([-1.0, 1.0]) * rng.uniform(0.05, 0.4)),
            "shape": str(rng.choice(["bump", "both"]))}


def add_artefact(spectrum: Spectrum, artefact: dict) -> Spectrum:
    """``spectrum`` with ``artefact`` (:func:`draw_artefact`) added on its own pixels, scaled
    to its flux near H-alpha."""
    wave = spectrum.wavelength
    at = artefact["at"]
    if spectrum.medium == "air":
        at = float(vacuum_to_air(np.array([at]))[0])
    flux = spectrum.flux.astype(np.float64).copy()
    ivar = None if spectrum.ivar is None else spectrum.ivar.copy()
    centre = HALPHA_AIR if spectrum.medium == "air" else HALPHA_VACUUM
    near = np.abs(wave - centre) < 60
    level = float(np.nanmedian(np.abs(flux[near]))) if near.any() else 1.0
    i = int(np.argmin(np.abs(wave - at)))
    family = artefact["family"]
    if family in ("spike", "zero-run", "bad-run"):
        span = slice(i, min(i + artefact["pixels"], wave.size))
        if family == "spike":
            flux[span] += level * artefact["height"]
        elif family == "zero-run":
            flux[span] = 0.0
            if ivar is not None and artefact["masked"]:
                ivar[span] = 0.0
        else:
            flux[span] = level * artefact["value"]
    else:
        sigma = at / effective_resolution(spectrum) / FWHM_PER_SIGMA
        x = (wave - at) / sigma
        bump = np.exp(-0.5 * x**2)
        shape = {"bump": bump, "both": x * bump * 1.65}[artefact["shape"]]
        flux += level * artefact["height"] * shape
    return replace(spectrum, flux=flux.astype(np.float32), ivar=ivar)
