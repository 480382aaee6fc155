"""How often one nebula's stars fall in both folds of the cross-fitting, for sky cells of
every size: the stars that Hou et al. (2016) found seen through H II regions
(``../shared/data/catalogs/hou2016-emission-line-stars-subset.csv``, type ``HII-region``),
grouped into nebulae by friends of friends at a linking length of 0.5, 1 and 2 degrees; the
folds of 5 seeds.

A nebula in both folds means that the network scoring some of its stars was taught others
of them as "other" (when they are among its negatives): what the vetting of the negatives
(a negative whose own spectrum shows emission is dropped, ``docs/training.md``) is for.

    python benchmarks/bench_folds.py
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy_healpix import HEALPix

from specscout.catalogue.objects import group
from specscout.learn.domain import CELL_NSIDE, FOLD_NSIDE, fold_of

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CATALOGUE = DATA / "catalogs" / "hou2016-emission-line-stars-subset.csv"


def main() -> None:
    if not CATALOGUE.exists():
        raise SystemExit(f"{CATALOGUE}: not here (../shared/data)")
    with CATALOGUE.open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["objtype_hou"] == "HII-region"]
    ra = np.array([float(r["ra"]) for r in rows])
    dec = np.array([float(r["dec"]) for r in rows])
    cells = HEALPix(CELL_NSIDE, order="nested").lonlat_to_healpix(
        ra * u.deg, dec * u.deg).astype(np.uint64)
    sizes = (256, 64, 16, 8, 4)
    print(f"{len(rows)} stars seen through H II regions (Hou et al. 2016); share of the nebulae "
          f"with stars in both folds (5 seeds), by the folds' cells (nside, size); the "
          f"default is nside {FOLD_NSIDE}")
    print(f"{'linking':>8s} {'nebulae (>= 2 stars)':>21s} "
          + " ".join(f"{f'{n} ({58.6 / n * 60:.0f}′)':>12s}" for n in sizes))
    for link in (0.5, 1.0, 2.0):
        nebula = group(ra, dec, link * 3600)
        members = np.bincount(nebula)
        many = np.nonzero(members >= 2)[0]
        shares = []
        for nside in sizes:
            both = [np.mean([len(set(fold_of(cells[nebula == k], seed, nside))) == 2
                             for k in many]) for seed in range(5)]
            shares.append(float(np.mean(both)))
        print(f"{link:6.1f} ° {len(many):21d} " + " ".join(f"{s:12.0%}" for s in shares))


if __name__ == "__main__":
    main()
