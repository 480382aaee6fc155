"""Reading spectrum files: specscout's readers against a plain astropy.io.fits loop.

Both extract the same thing from every file (flux, inverse variance, wavelength, mask and the
header metadata) in one process, on the same files, in the same run; the time to read and
gunzip the bytes alone is printed as the floor. The files are the real LAMOST low-resolution
spectra of ../shared/data (every layout), plain, and gzip-compressed copies of them made in a
temporary directory (plus the real gzip files); then the real LAMOST MRS files (a coadd and
every exposure, both arms: several spectra per file), counted in spectra per second.

    python benchmarks/bench_readers.py [--data ../shared/data] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from astropy.io import fits

from specscout.spectra.readers import read, read_all
from specscout.spectra.readers.fitsbytes import load_bytes

META_KEYS = ("OBSID", "DESIG", "RA", "DEC", "CLASS", "SUBCLASS", "SNRR", "SN_R", "DATA_V",
             "VERSPIPE")


def astropy_read(path: Path) -> tuple:
    """The same extraction as specscout's LAMOST reader, written plainly with astropy."""
    with fits.open(path) as hdul:
        h = hdul[0].header
        if hdul[0].data is not None:
            data = hdul[0].data
            flux, ivar, andmask = data[0], data[1], data[3]
            if "SUBCONTINUUM" in str(h.get("EXTEN0", "")).upper():
                wave = 10.0 ** (h["COEFF0"] + h["COEFF1"] * np.arange(data.shape[1]))
            else:
                wave = data[2]
        else:
            row = hdul["COADD"].data[0]
            flux, ivar, wave, andmask = row["FLUX"], row["IVAR"], row["WAVELENGTH"], row["ANDMASK"]
        meta = {k: h.get(k) for k in META_KEYS}
        flux = np.asarray(flux, dtype=np.float32)
        ivar = np.asarray(ivar, dtype=np.float32)
        wave = np.asarray(wave, dtype=np.float64)
        mask = (np.asarray(andmask) != 0) | ~(ivar > 0)
    return wave, flux, ivar, mask, meta


def astropy_read_mrs(path: Path) -> list[tuple]:
    """Every epoch of an MRS file (coadd, then each exposure; blue and red arm joined, sorted
    by wavelength), written plainly with astropy."""
    out = []
    with fits.open(path) as hdul:
        h = hdul[0].header
        meta = {k: h.get(k) for k in ("OBSID", "DESIG", "RA", "DEC", "DATA_V", "DATE-OBS")}
        names = [x.name for x in hdul]
        epochs = [("COADD_B", "COADD_R")] + [
            (f"B-{t}", f"R-{t}") for t in dict.fromkeys(n[2:] for n in names if n[:2] in
                                                         ("B-", "R-"))]
        for arms in epochs:
            parts = []
            for arm in arms:
                if arm not in names:
                    continue
                t = hdul[arm].data
                mask = "ANDMASK" if "ANDMASK" in t.names else "PIXMASK"
                wave = 10.0 ** t["LOGLAM"].astype(np.float64)
                order = np.argsort(wave, kind="stable")
                ivar = t["IVAR"].astype(np.float32)[order]
                parts.append((wave[order], t["FLUX"].astype(np.float32)[order], ivar,
                              (t[mask][order] != 0) | ~(ivar > 0)))
            out.append((*(np.concatenate(c) for c in zip(*parts, strict=True)), meta))
    return out


def rate(func: Callable[[Path], object], files: list[Path], repeat: int) -> float:
    """Files per second (best of ``repeat`` passes), one process."""
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        for path in files:
            func(path)
        best = min(best, time.perf_counter() - start)
    return len(files) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    lamost = sorted(p for p in (args.data / "lamost").rglob("*.fits*"))
    lamost += sorted((args.data / "pairs" / "lamost").glob("*.fits"))
    if not lamost:
        raise SystemExit(f"no LAMOST files under {args.data}")
    plain = [p for p in lamost if p.suffix == ".fits"]
    with tempfile.TemporaryDirectory() as tmp:
        packed = [p for p in lamost if p.suffix == ".gz"]
        for p in plain:
            out = Path(tmp) / (p.name + ".gz")
            with p.open("rb") as a, gzip.open(out, "wb", compresslevel=6) as b:
                shutil.copyfileobj(a, b)
            packed.append(out)
        for p in lamost:  # both readers agree before anything is timed
            ours, theirs = read(p), astropy_read(p)
            assert np.array_equal(ours.flux, theirs[1]) and np.allclose(ours.wavelength, theirs[0])

        print(f"LAMOST files of {args.data}: {len(plain)} plain, {len(packed)} gzip "
              f"(best of {args.repeat} passes, one process)")
        print(f"{'files':<7}{'bytes only':>14}{'specscout':>14}{'astropy loop':>14}"
              f"{'speed-up':>10}")
        for name, files in (("plain", plain), ("gzip", packed)):
            floor = rate(load_bytes, files, args.repeat)
            ours = rate(read, files, args.repeat)
            base = rate(astropy_read, files, args.repeat)
            print(f"{name:<7}{floor:>10.0f} f/s{ours:>10.0f} f/s{base:>10.0f} f/s"
                  f"{ours / base:>9.1f}x")

    mrs = sorted((args.data / "lamost-mrs").glob("med-*.fits*"))
    if not mrs:
        print(f"no LAMOST MRS files under {args.data}: skipped")
        return
    spectra = 0
    for p in mrs:  # the same epochs, the same pixels
        ours, theirs = read_all(p), astropy_read_mrs(p)
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            assert np.array_equal(a.flux, b[1]) and np.allclose(a.wavelength, b[0])
        spectra += len(ours)
    floor = rate(load_bytes, mrs, args.repeat)
    ours = rate(read_all, mrs, args.repeat)
    base = rate(astropy_read_mrs, mrs, args.repeat)
    per = spectra / len(mrs)
    print(f"\nLAMOST MRS: {len(mrs)} files, {spectra} spectra (coadd + exposures, both arms)")
    print(f"{'':<7}{'bytes only':>14}{'specscout':>14}{'astropy loop':>14}{'speed-up':>10}")
    print(f"{'MRS':<7}{floor * per:>10.0f} s/s{ours * per:>10.0f} s/s{base * per:>10.0f} s/s"
          f"{ours / base:>9.1f}x   (s/s: spectra per second)")


if __name__ == "__main__":
    main()
