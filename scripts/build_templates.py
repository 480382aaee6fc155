"""Build the photosphere templates specscout ships (the simulator's photospheres, the line
measurement's absorption profiles), from the MILES stellar library.

Source: ../shared/data/miles/miles-stars.fits.gz, the MILES library (Sanchez-Blazquez et al.
2006, MNRAS 371, 703; Falcon-Barroso et al. 2011, A&A 532, A95), as shipped by the PyPI package
sdss-mangadap 4.5.0 (BSD-3): 984 stars, 3540.5-7409.6 A in air, 0.9 A/px, FWHM 2.5 A.

Kept: the range the simulator needs around H-alpha (air), each spectrum divided by its median
there and stored as float16, with the stars' parameters and two measurements of H-alpha: the
equivalent width and the core excess (see specscout.spectra.lines). A star is marked as an
emission-line object when its H-alpha is in net emission (EW < 0) or its core rises more than
3 % above its flanks; the type string is not trusted ("we" in MILES means weak lines, not
emission).

    python scripts/build_templates.py [--miles PATH]
        [--out src/specscout/spectra/data/miles_halpha.npz]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from astropy.io import fits

from specscout.spectra.lines import HALPHA_AIR, core_excess, equivalent_width

START, STOP = 6240.0, 6790.0  # air; the window, radial velocities and the Ondrejov range
ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--miles", type=Path,
                        default=ROOT.parent / "shared" / "data" / "miles" / "miles-stars.fits.gz")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "src" / "specscout" / "spectra" / "data"
                        / "miles_halpha.npz")
    args = parser.parse_args()
    with fits.open(args.miles) as hdul:
        h, flux, params = hdul[0].header, hdul[0].data.astype(np.float64), hdul["PARAMS"].data
        wave = h["CRVAL1"] + h["CDELT1"] * (np.arange(flux.shape[1]) + 1 - h["CRPIX1"])
        fwhm = float(h["FWHM"])
    keep = (wave >= START) & (wave <= STOP)
    wave, flux = wave[keep], flux[:, keep]
    if not np.all(np.isfinite(flux)) or np.any(flux <= 0):
        raise SystemExit("MILES spectra with non-positive or non-finite flux in the range")
    flux /= np.median(flux, axis=1, keepdims=True)
    ew = np.array([equivalent_width(wave, f, HALPHA_AIR) for f in flux])
    excess = np.array([core_excess(wave, f, HALPHA_AIR) for f in flux])
    emission = (ew < 0) | (excess > 0.03)
    names = np.array([s.strip() for s in params["name"]])
    spt = np.array([s.strip() for s in params["spt"]])
    np.savez_compressed(
        args.out, flux=flux.astype(np.float16), start=wave[0], step=wave[1] - wave[0],
        fwhm=fwhm, miles_id=np.array([s.strip() for s in params["miles_id"]]), name=names,
        spt=spt, teff=params["teff"], logg=params["logg"], feh=params["feh"],
        halpha_ew=ew.astype(np.float32), core_excess=excess.astype(np.float32),
        emission=emission)
    print(f"{args.out}: {flux.shape[0]} templates x {flux.shape[1]} pixels "
          f"({wave[0]:.1f}-{wave[-1]:.1f} A air), {args.out.stat().st_size / 1e6:.2f} MB; "
          f"{emission.sum()} marked as H-alpha emission:")
    for i in np.nonzero(emission)[0]:
        print(f"  {names[i]:<22}{spt[i]:<14}EW {ew[i]:6.2f} A  core excess {excess[i]:+.3f}")


if __name__ == "__main__":
    main()
