"""Label efficiency with a simulated annotator: random sampling against entropy and `rare`.

The survey of README's figure: 50,000 simulated LAMOST-like spectra (seed 11) and the
2,000-spectrum Ondrejov-like labelled set (seed 12, resolution matched), made and ingested as a
user does (``specscout simulate``, ``init``, ``ingest``) in WORKDIR unless already there. Then
``specscout experiment`` with the same seeds (hence the same start and test sets): random
sampling for ``--random-rounds`` rounds, entropy and `rare` for ``--rounds``; 100 queries a
round, the small CNN fine-tuned each round, training as the project's defaults say except the
domain (``--domain on``; ``--domain both`` runs the active strategies without and with it, the
baseline of the domain's figure). Prints, for each strategy, the labels needed to reach the
target macro error (per seed and median), the error at 1,000 and 2,000 labels and the lowest
error, with the baseline of the same run; writes the curves of all together.

    python benchmarks/bench_experiment.py [--workdir /tmp/exp] [--quick]
    python benchmarks/bench_experiment.py --strategies rare --random-rounds 0 --domain both
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

from specscout.cli import main as cli
from specscout.learn.experiment import labels_to_reach, plot


def build(workdir: Path, n: int) -> Path:
    project = workdir / "p"
    if (project / "specscout.toml").exists():
        return project
    steps = [["simulate", str(workdir / "survey"), "--n", str(n), "--seed", "11", "--quiet"],
             ["simulate", str(workdir / "ondrejov"), "--kind", "labelled", "--n", "2000",
              "--seed", "12", "--quiet"],
             ["init", str(project)],
             ["ingest", str(project), str(workdir / "survey"), "--quiet"],
             ["ingest", str(project), str(workdir / "ondrejov"), "--labels",
              str(workdir / "ondrejov" / "labels.csv"), "--degrade-to", "1531", "--quiet"]]
    for step in steps:
        if cli(step) != 0:
            raise SystemExit(f"failed: specscout {' '.join(step)}")
    return project


def curves(out: Path) -> list[dict]:
    import csv

    with (out / "curves.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    return [{**r, "seed": int(r["seed"]), "round": int(r["round"]), "labels": int(r["labels"]),
             **{k: float(v) for k, v in r.items() if k.startswith(("macro", "recall",
                                                                      "precision"))}}
            for r in rows]


def at(rows: list[dict], strategy: str, labels: int) -> float | None:
    found = [r["macro_error"] for r in rows if r["strategy"] == strategy
             and r["labels"] == labels]
    return float(np.median(found)) if found else None


#: The sizes of README's figure, and of ``--quick``; a size given on the command line wins.
SIZES = {"spectra": 50_000, "seeds": 3, "rounds": 20, "random_rounds": 45}
QUICK = {"spectra": 10_000, "seeds": 1, "rounds": 5, "random_rounds": 10}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/exp")
    for name, value in SIZES.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, help=f"default {value}")
    parser.add_argument("--target", type=float, default=0.065)
    parser.add_argument("--strategies", default="entropy,rare",
                        help="the active strategies, run for --rounds")
    parser.add_argument("--domain", choices=("off", "on", "both"), default="off",
                        help="train in the survey's domain; both: run the active strategies "
                             "without and with it (named STRATEGY+domain)")
    parser.add_argument("--average-epochs", type=float,
                        help="moving average of the weights over this many epochs (0: none; "
                             "default: the training's)")
    parser.add_argument("--quick", action="store_true",
                        help="a laptop's minutes: 10,000 spectra, 1 seed, 5 and 10 rounds "
                             "(unless given)")
    args = parser.parse_args()
    for name, value in (QUICK if args.quick else SIZES).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if "random" in args.strategies.split(","):
        parser.error("random is the baseline run (--random-rounds), not an active strategy")
    workdir = Path(args.workdir)
    project = build(workdir, args.spectra)
    common = ["--truth", str(workdir / "survey" / "truth.parquet"), "--seeds", str(args.seeds),
              "--batch", "100", "--target-error", str(args.target), "--quiet"]
    if args.average_epochs is not None:
        common += ["--average-epochs", str(args.average_epochs)]
    domains = {"off": [False], "on": [True], "both": [False, True]}[args.domain]
    runs = [("random", "random", args.random_rounds, domains[0])] if args.random_rounds else []
    runs += [(f"active{'-domain' if d else ''}", args.strategies, args.rounds, d)
             for d in domains]
    seconds, rows = {}, []
    for name, strategies, rounds, domain in runs:
        out = workdir / f"exp-{name}"
        t0 = time.perf_counter()
        if cli(["experiment", str(project), "--out", str(out), "--strategies", strategies,
                "--iterations", str(rounds), "--domain" if domain else "--no-domain",
                *common]) != 0:
            raise SystemExit(f"experiment {name} failed")
        seconds[name] = time.perf_counter() - t0
        suffix = "+domain" if domain and args.domain == "both" else ""
        rows += [{**r, "strategy": r["strategy"] + suffix} for r in curves(out)]
    classes = tuple(json.loads((workdir / f"exp-{runs[-1][0]}" / "summary.json").read_text())
                    ["pool_classes"])
    plot(rows, classes, workdir / "curves.png", args.target)
    reach = labels_to_reach(rows, args.target)
    times = ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
    print(f"\n{args.spectra} spectra, {args.seeds} seeds, 100 labels a round; target macro "
          f"error {args.target}; wall time: {times}")
    print(f"{'strategy':<15} {'labels to target (per seed)':<30} {'median':>7} "
          f"{'err@1000':>9} {'err@2000':>9}   lowest (per seed)")
    for strategy in dict.fromkeys(r["strategy"] for r in rows):
        r = reach[strategy]
        per_seed = ", ".join("-" if v is None else str(v) for v in r["per_seed"].values())
        errors = {s: [x["macro_error"] for x in rows
                      if x["strategy"] == strategy and x["seed"] == s] for s in r["per_seed"]}
        lowest = ", ".join(f"{min(e):.3f}" for e in errors.values())
        median = "-" if r["median"] is None else f"{r['median']:.0f}"
        e1, e2 = (at(rows, strategy, n) for n in (1000, 2000))
        print(f"{strategy:<15} {per_seed:<30} {median:>7} "
              f"{'-' if e1 is None else f'{e1:.3f}':>9} {'-' if e2 is None else f'{e2:.3f}':>9}"
              f"   {lowest}")
    baselines = (["random"] if args.random_rounds else []) + (
        ["each strategy without the domain"] if args.domain == "both" else [])
    baseline = " and ".join(baselines) or "none"
    print(f"baseline: {baseline}, in the same run; curves in {workdir / 'curves.png'}; peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
