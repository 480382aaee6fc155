"""The default training, stage by stage: the labelled set and the survey's domain (two
cross-fitted networks), on the real pool of ``../shared/data`` with the 300-spectrum simulated
labelled set of ``bench_real.py``, as ``specscout train`` runs it.

Timed per stage: the examples of each fold (reading the hosts' files, measuring them,
injecting the lines and artefacts), the epochs of each network, and the rest of ``fit``
(the temperature's calibration, the best epoch's weights). The baseline, in the same run on
the same examples: the epochs with Adam as it ran before (``foreach``, one kernel per
parameter group step) instead of fused.

    python benchmarks/bench_train.py [--seed 0] [--no-baseline]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_real import DATA, make_project

from specscout.learn.domain import DomainConfig, sky_cells
from specscout.learn.iterate import training_set
from specscout.learn.train import TrainConfig, fit

ADAM = torch.optim.Adam


def foreach(params, **kw):
    """Adam as it ran before: not fused."""
    return ADAM(params, **{**kw, "fused": False})


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
        began = time.perf_counter()
        cells = sky_cells(project.store("pool"))
        rows = []
        for fold in (0, 1):
            t = time.perf_counter()
            examples, _ = training_set(project, DomainConfig(
                c.injected, c.negatives, c.artefacts, config.seed, c.targets), fold, cells)
            made = time.perf_counter() - t
            epochs, rest, n = timed_fit(examples, c.classes, config)
            base = None
            if not args.no_baseline:
                torch.optim.Adam = foreach
                try:
                    base = timed_fit(examples, c.classes, replace(config))
                finally:
                    torch.optim.Adam = ADAM
            rows.append((fold, len(examples), made, epochs, rest, n, base))
        total = time.perf_counter() - began
    print(f"default training on the real pool + 300 labelled (seed {args.seed}), 2 networks:")
    print(f"{'fold':>4} {'examples':>9} {'examples s':>11} {'epochs':>7} {'epochs s':>9} "
          f"{'s/epoch':>8} {'rest s':>7} {'baseline (foreach Adam): epochs s, s/epoch':>44}")
    for fold, n_ex, made, epochs, rest, n, base in rows:
        b = (f"{base[0]:.1f} s over {base[2]} epochs, {base[0] / base[2]:.2f}"
             if base else "-")
        print(f"{fold:>4} {n_ex:>9} {made:>11.1f} {n:>7} {epochs:>9.1f} {epochs / n:>8.2f} "
              f"{rest:>7.1f} {b:>44}")
    own = sum(r[2] + r[3] + r[4] for r in rows)
    print(f"the training itself (examples + fits, no baseline): {own:.0f} s; the whole run "
          f"{total:.0f} s; target < 180 s; peak memory "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
