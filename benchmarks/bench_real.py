"""The first model on the real sky: every real LAMOST LRS spectrum of ``../shared/data`` as the
pool, no human label on a real spectrum, and three ways to train the first network.

The pool: ``lamost/``, ``lamost-extra/`` and ``pairs/lamost/`` ingested as a user would (about
240 spectra). Among them four real emission-line stars: BT CMi, the LAMOST halves of the
emission and double-peak pairs, and the active M dwarf of ``lamost-extra/dr5`` (weak line, EW
about -2.5 A); the rest are normal stars. Trained on

  (a) the labelled set alone: 300 simulated Ondrejov-like spectra, resolution matched (the
      paper's method, as ``specscout train --no-domain``);
  (b) the survey's own domain alone: lines injected into the pool's spectra and pool negatives,
      cross-fitted (a project with no labelled set, ``--domain``);
  (c) both (``--domain`` with the labelled set),

each over the seeds given. A spectrum is listed when its probability of being a target is
> 0.5, as ``candidates`` does, before and after the prior-shift correction of ``score``.
Printed: the four found, the normal stars listed (false positives), training time, peak
memory. Then, with ``--rounds``, the learning curve of the best option with the truth as
annotator (``--per-round`` labels a round, entropy sampling).

    python benchmarks/bench_real.py [--seeds 0 1 2] [--model paper-cnn] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from specscout.archive.ingest import ingest, load_labels
from specscout.archive.project import Project
from specscout.labels import label_store
from specscout.learn.iterate import members_of, query_step, score_step, train_step
from specscout.learn.iterations import iteration_path, load_scores
from specscout.learn.priors import em_priors, in_chunks, shift
from specscout.learn.train import TrainConfig
from specscout.simulate import PAPER_MIX, SurveyConfig, simulate_labelled
from specscout.simulate.inject import net_line
from specscout.spectra.readers import read_all

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SOURCES = ("lamost", "lamost-extra", "pairs/lamost")
#: The real emission-line stars among them (store ids) and their classes.
TARGETS = {"bt-cmi": "emission", "spec-56265-VB069N07V2_sp04-027": "emission",
           "spec-55959-GAC_094N27_V3_sp16-125": "double-peak",
           "spec-55862-B6212_sp01-006": "emission"}


def make_project(path: Path, data: Path, labelled: bool) -> Project:
    project = Project.init(path)
    ingest(project.store("pool"), [data / s for s in SOURCES], project.config.preprocess(),
           workers=2, progress=False)
    if labelled:
        ond = path.parent / "ondrejov"
        if not ond.exists():
            simulate_labelled(ond, SurveyConfig(n=300, seed=7, fractions=PAPER_MIX), workers=2)
        ingest(project.store("labelled"), [ond], project.config.preprocess(degrade_to=1531),
               workers=2, labels=load_labels(ond / "labels.csv", project.config.classes),
               progress=False)
    return project


def truth(project: Project) -> tuple[np.ndarray, np.ndarray]:
    """(class index of each pool row, rows of the four)."""
    meta = project.store("pool").meta(columns=["row", "id"]).sort_by("row").to_pydict()
    classes = project.config.classes
    y = np.array([classes.index(TARGETS.get(i, "other")) for i in meta["id"]])
    found = sorted(i for i in meta["id"] if i in TARGETS)
    if len(found) != len(TARGETS):
        raise SystemExit(f"the pool lacks {sorted(set(TARGETS) - set(found))}")
    return y, np.nonzero(y > 0)[0]


def listed(p: np.ndarray, y: np.ndarray) -> tuple[int, int]:
    """(targets listed, normal stars listed) at P(target) > 0.5."""
    cand = p[:, 1:].sum(1) > 0.5
    return int((cand & (y > 0)).sum()), int((cand & (y == 0)).sum())


def above_weakest(q: np.ndarray, y: np.ndarray) -> int:
    """Normal stars whose P(target) ``q`` is at least the weakest of the four's."""
    return int((q[y == 0] >= q[y > 0].min()).sum())


def measure(project: Project, config: TrainConfig, domain: bool, y: np.ndarray,
            networks: int = 1) -> dict:
    shutil.rmtree(project.path / "iterations", ignore_errors=True)
    start = time.perf_counter()
    number = train_step(project, config, domain=domain, networks=networks)
    seconds = time.perf_counter() - start
    raw = score_step(project, number, prior_shift=False).probabilities.astype(np.float32)
    members = members_of(iteration_path(project, number))
    trained = np.asarray(members[0].priors)
    priors, _ = em_priors(lambda: in_chunks(raw), trained)
    found, fp = listed(raw, y)
    shifted = shift(raw, trained, priors)
    found_s, fp_s = listed(shifted, y)
    for name, p in (("raw", raw), ("after the shift", shifted)):
        q = p[:, 1:].sum(1)
        print(f"    P(target) of the four, {name}: "
              + ", ".join(f"{q[r]:.3f}" for r in np.nonzero(y > 0)[0])
              + f"; normal stars above the weakest: {above_weakest(q, y)}")
    q = raw[:, 1:].sum(1)
    print("    normal stars listed: " + (", ".join(shown(project, r, q[r]) for r in
                                                np.nonzero((q > 0.5) & (y == 0))[0]) or "none"))
    return {"found": found, "fp": fp, "found_shift": found_s, "fp_shift": fp_s,
            "above_weakest": above_weakest(q, y),
            "target_prior": float(priors[1:].sum()), "seconds": seconds}


def shown(project: Project, row: int, p: float) -> str:
    """A pool spectrum's id, P(target) and H-alpha net equivalent width, read from its file."""
    meta = project.store("pool").records(np.array([row]), columns=["id", "path"]).to_pylist()[0]
    spectrum = {s.meta.id: s for s in read_all(meta["path"])}[meta["id"]]
    ew, noise = net_line(spectrum, 0.0)
    return f"{meta['id']} (P {p:.3f}, net EW {ew:+.2f} +- {noise:.2f} A)"


def learning_curve(project: Project, config: TrainConfig, domain: bool, y: np.ndarray,
                   rounds: int, per_round: int, networks: int = 1) -> list[dict]:
    shutil.rmtree(project.path / "iterations", ignore_errors=True)
    labels = label_store(project)
    classes = project.config.classes
    ids = project.store("pool").meta(columns=["row", "id"]).sort_by("row")["id"].to_pylist()
    out = []
    for r in range(rounds + 1):
        number = train_step(project, config, warm_start=False, domain=domain,
                            networks=networks)
        score_step(project, number)
        _, p = load_scores(project, number)
        found, fp = listed(np.asarray(p, np.float32), y)
        churn = json.loads((iteration_path(project, number) / "iteration.json")
                           .read_text())["score"]["churn"]
        out.append({"round": r, "labels": r * per_round, "found": found, "fp": fp,
                    "added": churn["added"], "dropped": churn["dropped"]})
        print(f"  round {r}: {r * per_round:3d} labels, found {found} of 4, "
              f"normal stars listed {fp}; candidates added {churn['added']}, "
              f"dropped {churn['dropped']}", flush=True)
        if r == rounds:
            break
        batch = query_step(project, "entropy", per_round, number, seed=config.seed)
        labels.add_many([{"spectrum": ids[b["row"]], "row": b["row"], "label": classes[y[b["row"]]],
                          "annotator": "truth", "iteration": number} for b in batch])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--model", default="paper-cnn")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--options", nargs="+", default=["a", "b", "c"])
    parser.add_argument("--curve", default="b", help="the option of the learning curve")
    parser.add_argument("--networks", type=int, default=1,
                        help="networks per fold for (b) and (c), averaged")
    parser.add_argument("--average-epochs", type=float, default=TrainConfig.average_epochs,
                        help="moving average of the weights over this many epochs (0: none)")
    args = parser.parse_args()
    if not (args.data / "lamost").is_dir():
        raise SystemExit(f"{args.data}: no real LAMOST files here (../shared/data)")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with_set = make_project(tmp / "with-set", args.data, labelled=True)
        without = make_project(tmp / "without-set", args.data, labelled=False)
        y, _ = truth(with_set)
        n_normal = int((y == 0).sum())
        print(f"pool: {len(y)} real LAMOST spectra, 4 emission-line stars, {n_normal} normal")
        options = {"a": ("labelled set alone", with_set, False),
                   "b": ("in-domain injection", without, True),
                   "c": ("both", with_set, True)}
        print(f"{'option':24s} {'seed':>4s} {'found':>5s} {'normal listed':>14s} "
              f"{'after prior shift':>18s} {'pool target prior':>17s} {'train s':>8s}")
        results = {}
        for key in args.options:
            name, project, domain = options[key]
            for seed in args.seeds:
                config = TrainConfig(model=args.model, max_epochs=args.epochs,
                                     patience=args.patience, seed=seed,
                                     average_epochs=args.average_epochs)
                m = measure(project, config, domain, truth(project)[0], args.networks)
                results.setdefault(key, []).append(m)
                print(f"({key}) {name:20s} {seed:4d} {m['found']:3d}/4 "
                      f"{m['fp']:6d} ({m['fp'] / n_normal:5.1%}) "
                      f"{m['found_shift']:3d}/4 {m['fp_shift']:4d} "
                      f"({m['fp_shift'] / n_normal:4.1%}) "
                      f"{m['target_prior']:17.4f} {m['seconds']:8.1f}", flush=True)
        print("\nmean over seeds: option, found of 4, normal stars listed (raw | prior shift)")
        for key, ms in results.items():
            print(f"({key}) {options[key][0]:20s} "
                  f"{np.mean([m['found'] for m in ms]):.2f} {np.mean([m['fp'] for m in ms]):6.1f}"
                  f" | {np.mean([m['found_shift'] for m in ms]):.2f} "
                  f"{np.mean([m['fp_shift'] for m in ms]):6.1f}")
        if args.rounds:
            name, project, domain = options[args.curve]
            print(f"\nlearning curve, {name}, the truth as annotator, {args.per_round} labels "
                  f"a round (entropy), seed {args.seeds[0]}:")
            learning_curve(project, TrainConfig(model=args.model, max_epochs=args.epochs,
                                                patience=args.patience, seed=args.seeds[0],
                                                average_epochs=args.average_epochs),
                           domain, truth(project)[0], args.rounds, args.per_round,
                           args.networks)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak memory of this process: {peak:.0f} MB")


if __name__ == "__main__":
    main()
