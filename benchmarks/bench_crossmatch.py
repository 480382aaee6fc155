"""Known or new at survey scale: candidates cross-matched with reference catalogues of 10 and
100 million rows in HATS form (LSDB on Dask, 1 and 2 workers), against the in-memory path
(the same catalogue as a FITS table, a k-d tree) up to where it still runs.

Nothing is downloaded. Each reference catalogue is generated here (uniform over the sky, a
type and a magnitude per row), written as Parquet chunks, and turned into a HATS collection
with its margin cache by hats-import, as ``specscout catalogue import`` does; the in-memory
path reads the same rows from a FITS file. The candidates (``--candidates``, default 100,000)
are half within 1 arcsec of a catalogue row and half anywhere. Every match runs in a process
of its own (``specscout.catalogue.references.crossmatch``, radius 3 arcsec, one column
brought over); printed: wall time, peak RSS of the process and its workers, and the number
of candidates found known, which every path must agree on.

    python benchmarks/bench_crossmatch.py [--rows 10000000,100000000] [--candidates 100000]
        [--in-memory-up-to 100000000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from bench_archive import run

CHUNK = 5_000_000


def generate(base: Path, rows: int, seed: int = 0) -> list[Path]:
    """``rows`` catalogue rows over the whole sky as Parquet chunks (ra, dec, otype, gmag)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = base / f"input-{rows}"
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for k, start in enumerate(range(0, rows, CHUNK)):
        path = out / f"part-{k:04d}.parquet"
        files.append(path)
        if path.exists():
            continue
        n = min(CHUNK, rows - start)
        rng = np.random.default_rng([seed, k])
        table = pa.table({
            "id": np.arange(start, start + n, dtype=np.int64),
            "ra": rng.uniform(0, 360, n),
            "dec": np.degrees(np.arcsin(rng.uniform(-1, 1, n))),
            "otype": rng.choice(np.array(["Be*", "Em*", "YSO", "CV*", "*"]), n),
            "gmag": rng.uniform(8, 21, n).astype(np.float32)})
        pq.write_table(table, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").rename(path)
    return files


def hats_catalogue(base: Path, rows: int, files: list[Path], workers: int) -> tuple[Path, dict]:
    """The HATS collection of the generated rows (made once; its import measured)."""
    out = base / f"ref{rows}"
    if out.exists():
        return out, {}
    r = run([sys.executable, __file__, "--import", str(out), str(workers),
             *map(str, files)])
    return out, {"seconds": r["seconds"], "rss_mb": (r["rss"] + r["worker_rss"]) / 2**20}


def fits_catalogue(base: Path, rows: int, files: list[Path]) -> Path:
    """The same rows as one FITS binary table (what the in-memory path reads)."""
    import pyarrow.parquet as pq
    from astropy.table import Table, vstack

    out = base / f"ref{rows}.fits"
    if not out.exists():  # column by column as arrays: 100 M rows as Python objects would not fit
        table = vstack([Table({c: (col.to_numpy(zero_copy_only=False).astype("S3")
                                   if c == "otype" else col.to_numpy())
                               for c, col in zip(t.column_names, t.columns, strict=True)})
                        for t in (pq.read_table(f, columns=["ra", "dec", "otype", "gmag"])
                                  for f in files)])
        table.write(out.with_suffix(".tmp.fits"))
        out.with_suffix(".tmp.fits").rename(out)
    return out


def candidates(base: Path, files: list[Path], n: int, seed: int = 1) -> Path:
    """``n`` positions: half within 1 arcsec of catalogue rows, half anywhere."""
    import pyarrow.parquet as pq

    out = base / f"candidates-{n}-{len(files)}.npy"
    if not out.exists():
        rng = np.random.default_rng(seed)
        first = pq.read_table(files[0], columns=["ra", "dec"])
        pick = rng.choice(len(first), n // 2, replace=False)
        dec = first["dec"].to_numpy()[pick]
        off = rng.uniform(0, 1, n // 2) / 3600
        angle = rng.uniform(0, 2 * np.pi, n // 2)
        near_dec = np.clip(dec + off * np.sin(angle), -90, 90)
        near_ra = (first["ra"].to_numpy()[pick] + off * np.cos(angle)
                   / np.cos(np.radians(near_dec))) % 360
        m = n - n // 2
        ra = np.r_[near_ra, rng.uniform(0, 360, m)]
        dec = np.r_[near_dec, np.degrees(np.arcsin(rng.uniform(-1, 1, m)))]
        np.save(out, np.stack([ra, dec]))
    return out


def match(reference: str, positions: str, workers: int) -> None:
    """In a process of its own: the cross-match, and what it found, as JSON."""
    from specscout.catalogue.references import crossmatch

    ra, dec = np.load(positions)
    t = time.perf_counter()
    m = crossmatch(ra, dec, [reference], 3.0, columns=("gmag",), workers=workers or None)
    print(json.dumps({"seconds": time.perf_counter() - t, "known": int(m.known.sum())}))


def import_(out: str, workers: int, files: list[str]) -> None:
    from hats_import import CollectionArguments, pipeline_with_client

    from specscout.archive.cluster import dask_client

    with dask_client(workers) as client:
        args = (CollectionArguments(output_artifact_name=Path(out).name,
                                    output_path=Path(out).parent, progress_bar=False,
                                    resume=False)
                .catalog(input_file_list=files, file_reader="parquet", ra_column="ra",
                         dec_column="dec")
                .add_margin(margin_threshold=60.0, is_default=True))
        pipeline_with_client(args, client)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="10000000,100000000")
    parser.add_argument("--candidates", type=int, default=100_000)
    parser.add_argument("--in-memory-up-to", type=int, default=100_000_000,
                        help="largest catalogue to try with the in-memory path")
    parser.add_argument("--dir", default=None, help="work directory (kept for a rerun)")
    parser.add_argument("--match", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--import", dest="import_", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.match:
        return match(args.match[0], args.match[1], int(args.match[2]))
    if args.import_:
        return import_(args.import_[0], int(args.import_[1]), args.import_[2:])
    base = Path(args.dir or f"/tmp/bench-crossmatch-{os.getpid()}")
    base.mkdir(parents=True, exist_ok=True)
    rows_list = sorted(int(r) for r in args.rows.split(","))
    print(f"{'catalogue rows':>14} {'path':<28} {'wall s':>8} {'match s':>8} "
          f"{'peak RSS MB':>12} {'known':>8}", flush=True)
    for rows in rows_list:
        files = generate(base, rows)
        positions = candidates(base, files, args.candidates)
        hats, made = hats_catalogue(base, rows, files, 2)
        if made:
            print(f"{rows:>14,} {'hats-import (2 workers)':<28} {made['seconds']:>8.1f} "
                  f"{'':>8} {made['rss_mb']:>12,.0f}", flush=True)
        paths = [(f"HATS, LSDB, {w} worker{'s' * (w > 1)}", str(hats), w) for w in (1, 2)]
        if rows <= args.in_memory_up_to:
            paths.append(("FITS, in memory (k-d tree)", str(fits_catalogue(base, rows, files)),
                          0))
        for name, reference, workers in paths:
            try:
                r = run([sys.executable, __file__, "--match", reference, str(positions),
                         str(workers)])
            except RuntimeError as exc:
                print(f"{rows:>14,} {name:<28} failed: {str(exc).splitlines()[-1][:80]}",
                      flush=True)
                continue
            found = json.loads(r["out"].strip().splitlines()[-1])
            print(f"{rows:>14,} {name:<28} {r['seconds']:>8.1f} {found['seconds']:>8.1f} "
                  f"{(r['rss'] + r['worker_rss'] * max(workers, 1)) / 2**20:>12,.0f} "
                  f"{found['known']:>8,}", flush=True)
    print(f"\n{args.candidates:,} candidates, radius 3 arcsec; peak RSS: the process, plus "
          f"its largest worker times the workers; work directory {base}")


if __name__ == "__main__":
    main()
