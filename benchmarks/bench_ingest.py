"""Ingest throughput and driver memory, against a plain single-process astropy loop.

The corpus: N LAMOST gzip files (default 5,000) made from the real LAMOST spectra of
../shared/data (every layout), copied under distinct names into a temporary directory.
The baseline reads each file with astropy.io.fits and puts it on the same grid by linear
interpolation with min-max normalisation (what the reference paper did), in one process.
specscout ingests the same files into a fresh store with 1 and then 2 local Dask worker
processes; the cluster is started before the clock starts and its start-up is printed apart.
Then the peak memory of the ingest driver is measured for two corpus sizes.

    python benchmarks/bench_ingest.py [--files 5000] [--memory 5000 50000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_readers import astropy_read

from specscout.archive.ingest import ingest
from specscout.archive.store import Store
from specscout.spectra.grid import Grid
from specscout.spectra.preprocess import PreprocessConfig

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def make_corpus(data: Path, directory: Path, n: int) -> list[Path]:
    sources = sorted((data / "lamost").rglob("*.fits*")) + sorted(
        (data / "pairs" / "lamost").glob("*.fits"))
    if not sources:
        raise SystemExit(f"no LAMOST files under {data}")
    blobs = [p.read_bytes() if p.suffix == ".gz" else gzip.compress(p.read_bytes(), 6)
             for p in sources]
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = directory / f"{i // 1000:03d}" / f"spec-{i:07d}.fits.gz"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(blobs[i % len(blobs)])
        paths.append(path)
    return paths


def baseline(paths: list[Path], grid: Grid) -> float:
    """Files per second of the plain loop: astropy read, linear interpolation, min-max."""
    start = time.perf_counter()
    for p in paths:
        wave, flux, *_ = astropy_read(p)
        f = np.interp(grid.wavelength, wave, flux)
        lo, hi = f.min(), f.max()
        _ = 2 * (f - lo) / (hi - lo) - 1 if hi > lo else f
    return len(paths) / (time.perf_counter() - start)


def specscout_rate(paths_dir: Path, store_dir: Path, workers: int) -> tuple[float, float, int]:
    """(files per second, cluster start-up seconds, files processed)."""
    from distributed import LocalCluster

    t0 = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, host="127.0.0.1") as cluster:
        startup = time.perf_counter() - t0
        store = Store.open_or_create(store_dir, points=140)
        summary = ingest(store, [paths_dir], PreprocessConfig(),
                         scheduler=cluster.scheduler_address, progress=False)
    return summary.processed / summary.seconds, startup, summary.processed


def driver_memory(data: Path, n: int, workers: int) -> dict:
    """Run in a child process: make n files, ingest them, report the driver's peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        make_corpus(data, Path(tmp) / "files", n)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        store = Store.open_or_create(Path(tmp) / "store", points=140)
        summary = ingest(store, [Path(tmp) / "files"], PreprocessConfig(), workers=workers,
                         progress=False)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"files": summary.processed, "rate": summary.processed / summary.seconds,
            "peak_mb": peak / 1024, "before_mb": before / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--memory", type=int, nargs="*", default=[5000, 50000],
                        help="corpus sizes for the driver memory measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child-memory", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_memory:
        print(json.dumps(driver_memory(args.data, args.child_memory, workers=2)))
        return

    if args.files:
        throughput(args.data, args.files, args.rounds)
    for n in args.memory:
        if n == args.memory[0]:
            print(f"\n{'files':>8}{'driver peak RSS':>18}{'files/s':>10}  (2 workers, whole run)")
        out = subprocess.run([sys.executable, __file__, "--data", str(args.data),
                              "--child-memory", str(n)], check=True, capture_output=True,
                             text=True).stdout
        m = json.loads(out.strip().splitlines()[-1])
        print(f"{m['files']:>8}{m['peak_mb']:>15.0f} MB{m['rate']:>10.0f}")


def throughput(data: Path, files: int, rounds: int) -> None:
    """The three measurements, interleaved over ``rounds`` rounds. Ratios are taken within a
    round (the same machine conditions), and their median is reported."""
    rates: dict[str, list[float]] = {"base": [], "one": [], "two": []}
    startups = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = make_corpus(data, tmp / "files", files)
        print(f"{len(paths)} LAMOST gzip files made from the real spectra of {data}, "
              f"{rounds} rounds")
        for r in range(rounds):
            rates["base"].append(baseline(paths, Grid()))
            for key, workers in (("one", 1), ("two", 2)):
                rate, startup, n = specscout_rate(tmp / "files", tmp / f"store-{key}-{r}",
                                                  workers)
                assert n == len(paths)
                rates[key].append(rate)
                startups.append(startup)
    print(f"{'round':<7}{'astropy loop':>14}{'1 worker':>10}{'2 workers':>11}"
          f"{'2 workers vs astropy':>22}{'1 -> 2 workers':>16}   (files/s)")
    vs, scale = [], []
    for r in range(rounds):
        base, one, two = rates["base"][r], rates["one"][r], rates["two"][r]
        vs.append(two / base)
        scale.append(two / one)
        print(f"{r + 1:<7}{base:>14.0f}{one:>10.0f}{two:>11.0f}{vs[-1]:>21.1f}x{scale[-1]:>15.2f}x")
    print(f"{'median':<42}{np.median(vs):>21.1f}x{np.median(scale):>15.2f}x")
    one_vs = np.median(np.divide(rates["one"], rates["base"]))
    print(f"1 worker vs astropy loop (median): {one_vs:.1f}x; cluster start-up, not timed "
          f"above: {min(startups):.1f}-{max(startups):.1f} s")

if __name__ == "__main__":
    main()
