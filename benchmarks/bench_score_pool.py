"""Peak memory and rate of ``specscout score`` on a pool of millions of rows.

Builds a project whose pool has N rows (default 4,000,000; synthetic rows: 4,000 simulated
LAMOST spectra through the real preprocessing, each row a copy with fresh noise) and a model
trained on 2,000 simulated Ondrejov-like spectra, then runs ``specscout score PROJECT`` in a
fresh process and reports that process's peak resident memory (the figure), its rate, and for
comparison the size of the pool's spectra as one float32 array (what a copy would cost).

    python benchmarks/bench_score_pool.py [--rows 4000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_iteration import base_spectra

from specscout.archive.ingest import ingest, load_labels
from specscout.archive.project import Project
from specscout.learn.iterate import train_step
from specscout.learn.train import TrainConfig
from specscout.simulate import PAPER_MIX, SurveyConfig, simulate_labelled


def build(path: Path, rows: int) -> Project:
    project = Project.init(path)
    base = base_spectra(4000)
    rng = np.random.default_rng(1)
    store = project.store()
    part = 65536
    for start in range(0, rows, part):
        n = min(part, rows - start)
        x = base[rng.integers(0, len(base), n)] + rng.normal(0, 0.02, (n, base.shape[1]))
        store.commit(x.astype(np.float32), [
            {"path": f"synthetic/{start + i}", "id": f"syn-{start + i}", "status": "ok",
             "flags": 0, "reason": "", "detail": ""} for i in range(n)])
    simulate_labelled(path / "ond", SurveyConfig(n=2000, seed=3, fractions=PAPER_MIX))
    labels = load_labels(path / "ond" / "labels.csv", project.config.classes)
    ingest(project.store("labelled"), [path / "ond"], project.config.preprocess(None, 1531),
           labels=labels, progress=False)
    # scoring is what is measured: one network (cross-fitted ones cost the same per row)
    train_step(project, TrainConfig(model="paper-cnn", max_epochs=20), domain=False)
    return project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--keep", default=None, help="build the project here and keep it")
    args = parser.parse_args()
    tmp = None
    if args.keep:
        path = Path(args.keep)
    else:
        tmp = tempfile.TemporaryDirectory()
        path = Path(tmp.name) / "p"
    t = time.perf_counter()
    if not (path / "iterations").is_dir():
        build(path, args.rows)
    print(f"pool of {args.rows:,} rows ready ({time.perf_counter() - t:.0f} s); "
          f"as one float32 array it would take {args.rows * 140 * 4 / 2**30:.2f} GiB")
    # A fresh process runs the command and reports its own peak (the build above had children
    # of its own, the Dask workers that simulated the labelled set).
    code = ("import resource, sys; from specscout.cli import main; rc = main(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, "score", os.fspath(path), "--quiet"],
                         check=True, capture_output=True, text=True).stdout
    seconds = time.perf_counter() - t
    peak = int(out.split()[-1]) / 1024
    print(f"specscout score: {seconds:.0f} s ({args.rows / seconds:,.0f} spectra/s), "
          f"peak RSS {peak:,.0f} MB (target < 2,048 MB)")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
