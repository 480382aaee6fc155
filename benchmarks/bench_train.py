"""The default training, stage by stage: the labelled set and the survey's domain (two
cross-fitted networks), on the real pool of ``../shared/data`` with the 300-spectrum simulated
labelled set of ``bench_real.py``, as ``specscout train`` runs it.

Timed per stage: the examples of both folds (reading the hosts' files, measuring them,
injecting the lines and artefacts; the second fold in another process meanwhile), the epochs
of each network, and the rest of ``fit`` (the temperature's calibration, the best epoch's
weights). The baselines, in the same run: the examples made one fold after the other in one
process (and checked equal), and the epochs on the same examples as they ran before: Adam
not fused (``foreach``), and the convolutions by oneDNN rather than as matrix products
(:func:`specscout.learn.model.as_products`).

    python benchmarks/bench_train.py [--seed 0] [--no-baseline]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_real import DATA, make_project

from specscout.learn import folds as dom
from specscout.learn.domain import DomainConfig, sky_cells
from specscout.learn.iterate import training_sets
from specscout.learn.model import PaperCNN
from specscout.learn.train import TrainConfig, fit

ADAM = torch.optim.Adam


def foreach(params, **kw):
    """Adam as it ran before: not fused."""
    return ADAM(params, **{**kw, "fused": False})


def convolutions(self, x):
    """The network's training pass as it ran before: oneDNN's convolutions."""
    return self.head(self.features(x.unsqueeze(1)))


@contextmanager
def as_before():
    """Training as it ran before: Adam not fused, the convolutions not as products."""
    embed = PaperCNN.embed
    torch.optim.Adam, PaperCNN.embed = foreach, convolutions
    try:
        yield
    finally:
        torch.optim.Adam, PaperCNN.embed = ADAM, embed


def timed_fit(examples, classes, config: TrainConfig) -> tuple[float, float, int]:
    """(seconds of the epochs, seconds of the rest of fit, epochs)."""
    start = time.perf_counter()
    fitted = fit(examples.x, examples.y, classes, config, keys=examples.key,
                 weight=examples.weight)
    total = time.perf_counter() - start
    epochs = sum(h["seconds"] for h in fitted.history)
    return epochs, total - epochs, fitted.history[-1]["epoch"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    if not (DATA / "README.md").exists():
        sys.exit(f"the real data is not at {DATA}")
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(Path(tmp) / "p", DATA, 300)
        c = project.config
        config = TrainConfig(seed=args.seed)
        domain = DomainConfig(c.injected, c.negatives, c.artefacts, config.seed, c.targets)
        began = time.perf_counter()
        cells = sky_cells(project.store("pool"))
        t = time.perf_counter()
        sets = training_sets(project, domain, (0, 1), cells)
        made = time.perf_counter() - t
        alone = None
        if not args.no_baseline:  # the folds' examples one after the other, as before
            saved, dom.PARALLEL_FROM = dom.PARALLEL_FROM, 10**12
            try:
                t = time.perf_counter()
                again = training_sets(project, domain, (0, 1), cells)
                alone = time.perf_counter() - t
            finally:
                dom.PARALLEL_FROM = saved
            assert all(np.array_equal(a.x, b.x) and a.key == b.key
                       for (a, _), (b, _) in zip(sets, again, strict=True))
        rows = []
        for fold, (examples, _) in enumerate(sets):
            epochs, rest, n = timed_fit(examples, c.classes, config)
            base = None
            if not args.no_baseline:
                with as_before():
                    base = timed_fit(examples, c.classes, replace(config))
            rows.append((fold, len(examples), epochs, rest, n, base))
        total = time.perf_counter() - began
    print(f"default training on the real pool + 300 labelled (seed {args.seed}), 2 networks:")
    print(f"examples of both folds: {made:.1f} s" + (
        f" (baseline, one fold after the other in one process: {alone:.1f} s)"
        if alone is not None else ""))
    print(f"{'fold':>4} {'examples':>9} {'epochs':>7} {'epochs s':>9} "
          f"{'s/epoch':>8} {'rest s':>7} {'baseline (as before): epochs s, s/epoch':>44}")
    for fold, n_ex, epochs, rest, n, base in rows:
        b = (f"{base[0]:.1f} s over {base[2]} epochs, {base[0] / base[2]:.2f}"
             if base else "-")
        print(f"{fold:>4} {n_ex:>9} {n:>7} {epochs:>9.1f} {epochs / n:>8.2f} "
              f"{rest:>7.1f} {b:>44}")
    own = made + sum(r[2] + r[3] for r in rows)
    print(f"the training itself (examples + fits, no baseline): {own:.0f} s; the whole run "
          f"{total:.0f} s; target < 180 s; peak memory "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB (this process; "
          f"a fold's examples process: "
          f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
