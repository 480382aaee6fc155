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
from specscout.learn.domain import CORE_HOST_EW, fold_of, sky_cells
from specscout.learn.iterate import members_of, query_step, score_step, train_step
from specscout.learn.iterations import iteration_path, load_scores
from specscout.learn.priors import em_priors, in_chunks, shift
from specscout.learn.score import predict_rows
from specscout.learn.train import TrainConfig
from specscout.simulate import PAPER_MIX, SurveyConfig, simulate_labelled
from specscout.simulate.artefacts import add_artefact, draw_artefact
from specscout.simulate.inject import draw_injection, effective_resolution, inject
from specscout.spectra.kinds import EMISSION, classify
from specscout.spectra.measure import measure
from specscout.spectra.preprocess import prepare
from specscout.spectra.readers import read_all

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SOURCES = ("lamost", "lamost-extra", "pairs/lamost")
#: The real emission-line stars among them (store ids) and their classes.
TARGETS = {"bt-cmi": "emission", "spec-56265-VB069N07V2_sp04-027": "emission",
           "spec-55959-GAC_094N27_V3_sp16-125": "double-peak",
           "spec-55862-B6212_sp01-006": "emission"}


def make_project(path: Path, data: Path, labelled: int) -> Project:
    """The real pool as a user ingests it; with ``labelled`` > 0, a simulated Ondrejov-like
    labelled set of that many spectra (300: seed 7, as this benchmark always had; otherwise
    seed 0, as ``specscout simulate`` draws by default), resolution matched."""
    project = Project.init(path)
    ingest(project.store("pool"), [data / s for s in SOURCES], project.config.preprocess(),
           workers=2, progress=False)
    if labelled:
        ond = path.parent / f"ondrejov-{labelled}"
        if not ond.exists():
            simulate_labelled(ond, SurveyConfig(n=labelled, seed=7 if labelled == 300 else 0,
                                                fractions=PAPER_MIX), workers=2)
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


def first_network(project: Project, config: TrainConfig, domain: bool, y: np.ndarray,
                  networks: int = 1, per_star: int = 0) -> dict:
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
    print("    the four: " + ", ".join(shown(project, r, q[r]) for r in np.nonzero(y > 0)[0]))
    normal = [(r, shown(project, r, q[r])) for r in np.nonzero((q > 0.5) & (y == 0))[0]]
    print("    normal stars listed by the network: "
          + (", ".join(text for _, text in normal) or "none"))
    # the catalogue lists a model candidate when its measured kind is emission, not "other"
    settings = project.config.targets
    kinds = {r: classify(measure(spectrum_of(project, r)))["kind"] for r, _ in normal}
    in_catalogue = sum(k in EMISSION and settings.get(k) != "other" for k in kinds.values())
    held = held_out(project, number, y, per_star, config.seed) if per_star else {}
    return {"found": found, "fp": fp, "found_shift": found_s, "fp_shift": fp_s,
            "fp_catalogue": in_catalogue, "above_weakest": above_weakest(q, y),
            "target_prior": float(priors[1:].sum()), "seconds": seconds, "held_out": held}


def spectrum_of(project: Project, row: int):
    meta = project.store("pool").records(np.array([row]), columns=["id", "path"]).to_pylist()[0]
    return {s.meta.id: s for s in read_all(meta["path"])}[meta["id"]]


def shown(project: Project, row: int, p: float) -> str:
    """A pool spectrum's id, P(target), H-alpha net equivalent width and kind, measured on
    its file."""
    spectrum = spectrum_of(project, row)
    m = classify(measure(spectrum))
    return (f"{spectrum.meta.id} (P {p:.3f}, net EW {m['ha_ew']:+.2f} +- {m['ha_ew_err']:.2f}"
            f" A, {m['kind']} {m['kind_reason']})")


#: Kinds of the held-out test, and injections of each per normal star.
TEST_KINDS = ("stellar", "nebular", "core", "artefact")


def held_out(project: Project, number: int, y: np.ndarray, per_star: int, seed: int) -> dict:
    """Lines of every kind and artefacts injected into the real normal stars with draws the
    training never makes (its seeds are (seed, 1); these (seed, 99, star)), preprocessed as
    at ingest, each scored by the network(s) of the other fold than its host's (as the pool
    is: the host's own fold trained on it as a negative and as a host). Per kind and EW
    range: found or listed at P(target) > 0.5 by the network, and by the catalogue (the
    network's candidates whose measured kind is an emission kind; a kind set to "other"
    or measured "none" or "artefact" is not listed)."""
    members = members_of(iteration_path(project, number))
    pool = project.store("pool")
    cells = sky_cells(pool)
    folds = fold_of(cells, members[0].fold_seed, members[0].fold_nside)
    config = project.config.preprocess()
    xs, host_fold, cases = [], [], []
    for row in np.nonzero(y == 0)[0]:
        host = spectrum_of(project, int(row))
        base = classify(measure(host))
        if base["kind"] in EMISSION:  # a star in emission of its own is no host
            continue
        rng = np.random.default_rng([seed, 99, int(row)])
        for k in range(per_star):
            kind = TEST_KINDS[k % len(TEST_KINDS)]
            if kind == "core" and base["ha_ew"] < CORE_HOST_EW:
                kind = "stellar"
            try:
                if kind == "artefact":
                    line = draw_artefact(rng)
                    changed = add_artefact(host, line)
                else:
                    line = draw_injection(rng, str(rng.choice(["emission", "double-peak"],
                                                              p=[0.8, 0.2]))
                                          if kind == "stellar" else "emission",
                                          effective_resolution(host), kind)
                    changed = inject(host, line, line["rv"], rng)
                prepared = prepare(changed, config)
            except ValueError:
                continue
            if not prepared.ok:
                continue
            m = classify(measure(changed))
            xs.append(prepared.flux)
            host_fold.append(int(folds[row]))
            cases.append({"kind": kind, "ew": -line.get("ew", 0.0), "measured": m["kind"],
                          "shows": m["kind"] in EMISSION})
    probs, _ = predict_rows(members, np.array(host_fold), np.array(xs, np.float32), 4096,
                            "cpu", "float32", 0)
    q = probs[:, 1:].sum(1)
    settings = project.config.targets
    out = {}
    print(f"    held-out injections into {int((y == 0).sum())} normal stars ({len(cases)} "
          f"spectra): found / listed at P(target) > 0.5, by the network | by the catalogue")
    for kind in TEST_KINDS:
        for lo, hi in ((2.0, np.inf), (1.0, 2.0)) if kind != "artefact" else ((0.0, np.inf),):
            sel = [i for i, c in enumerate(cases) if c["kind"] == kind and lo <= c["ew"] < hi]
            if not sel:
                continue
            net = q[sel] > 0.5
            listed = net & np.array([cases[i]["measured"] in EMISSION
                                     and settings.get(cases[i]["measured"]) != "other"
                                     for i in sel])
            shows = np.array([cases[i]["shows"] for i in sel])
            span = "all" if kind == "artefact" else f"EW {lo:g}-{hi:g} A"
            out[(kind, lo)] = {"n": len(sel), "network": float(net.mean()),
                               "catalogue": float(listed.mean()),
                               "network_shown": float(net[shows].mean()) if shows.any()
                               else float("nan"), "shown": int(shows.sum())}
            print(f"      {kind:9s} {span:14s} n {len(sel):4d}: network {net.mean():6.1%} | "
                  f"catalogue {listed.mean():6.1%}   (of the {int(shows.sum())} that show "
                  f"emission: network {out[(kind, lo)]['network_shown']:6.1%})")
    return out


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
    parser.add_argument("--patience", type=int, default=TrainConfig.patience)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--options", nargs="+", default=["a", "b", "c"])
    parser.add_argument("--curve", default="b", help="the option of the learning curve")
    parser.add_argument("--networks", type=int, default=1,
                        help="networks per fold for (b) and (c), averaged")
    parser.add_argument("--average-epochs", type=float, default=TrainConfig.average_epochs,
                        help="moving average of the weights over this many epochs (0: none)")
    parser.add_argument("--held-out", type=int, default=8, metavar="N",
                        help="held-out injections into each normal star, of every kind in "
                             "turn, for the networks trained in the domain (0: none)")
    parser.add_argument("--labelled", type=int, default=300, metavar="N",
                        help="spectra of the simulated labelled set (README's: 2000)")
    args = parser.parse_args()
    if not (args.data / "lamost").is_dir():
        raise SystemExit(f"{args.data}: no real LAMOST files here (../shared/data)")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with_set = make_project(tmp / "with-set", args.data, labelled=args.labelled)
        without = make_project(tmp / "without-set", args.data, labelled=0)
        y, _ = truth(with_set)
        n_normal = int((y == 0).sum())
        print(f"pool: {len(y)} real LAMOST spectra, 4 emission-line stars, {n_normal} normal")
        options = {"a": ("labelled set alone", with_set, False),
                   "b": ("in-domain injection", without, True),
                   "c": ("both", with_set, True)}
        print(f"{'option':24s} {'seed':>4s} {'found':>5s} {'normal listed':>14s} "
              f"{'of them in the catalogue':>25s} {'after prior shift':>18s} "
              f"{'pool target prior':>17s} {'train s':>8s}")
        results = {}
        for key in args.options:
            name, project, domain = options[key]
            for seed in args.seeds:
                config = TrainConfig(model=args.model, max_epochs=args.epochs,
                                     patience=args.patience, seed=seed,
                                     batch_size=args.batch_size,
                                     average_epochs=args.average_epochs)
                m = first_network(project, config, domain, truth(project)[0], args.networks,
                                  args.held_out if domain else 0)
                results.setdefault(key, []).append(m)
                print(f"({key}) {name:20s} {seed:4d} {m['found']:3d}/4 "
                      f"{m['fp']:6d} ({m['fp'] / n_normal:5.1%}) "
                      f"{m['fp_catalogue']:16d} ({m['fp_catalogue'] / n_normal:5.1%}) "
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
