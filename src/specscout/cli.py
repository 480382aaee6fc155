"""The ``specscout`` command: parses arguments, calls the library, prints."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from specscout import __version__
from specscout.errors import SpecscoutError
from specscout.grid import Grid


def _grid(args: argparse.Namespace) -> Grid:
    return Grid(args.window[0], args.window[1], args.points)


def _add_grid_options(p: argparse.ArgumentParser) -> None:
    default = Grid()
    p.add_argument("--window", nargs=2, type=float, metavar=("START", "STOP"),
                   default=(default.start, default.stop),
                   help="vacuum wavelength window in Angstrom (default: %(default)s)")
    p.add_argument("--points", type=int, default=default.points,
                   help="points of the grid (default: %(default)s)")


def cmd_inspect(args: argparse.Namespace) -> int:
    from specscout.preprocess import PreprocessConfig, describe, prepare
    from specscout.readers import read

    config = PreprocessConfig(grid=_grid(args), normalisation=args.normalisation,
                              degrade_to=args.degrade_to)
    failed = 0
    for path in args.files:
        try:
            s = read(path)
            prepared = prepare(s, config)
        except SpecscoutError as exc:
            print(f"FAILED  {exc}")
            failed += 1
            continue
        m = s.meta
        known = [f"designation {m.designation!r}" if m.designation else "",
                 f"ra {m.ra:.6f} dec {m.dec:.6f}" if np.isfinite(m.ra) else "",
                 f"obsid {m.obsid}" if m.obsid is not None else "",
                 f"snr {m.snr:.2f}" if np.isfinite(m.snr) else "",
                 f"class {m.survey_class} {m.survey_subclass}".rstrip() if m.survey_class else ""]
        snr = f"window snr {prepared.snr:.1f}, " if np.isfinite(prepared.snr) else ""
        print(f"{path}\n  layout {m.layout} ({m.instrument}, {m.release}), id {m.id}\n"
              f"  {len(s)} pixels, {s.wavelength[0]:.2f}-{s.wavelength[-1]:.2f} A "
              f"{s.medium}, {int(s.mask.sum())} masked\n"
              f"  {' '.join(k for k in known if k)}\n"
              f"  {snr}quality: {describe(prepared.flags) or 'ok'}")
    return 1 if failed else 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from specscout.calibrate import calibrate_resolution, load_pairs

    pairs = load_pairs(args.pairs)
    cal = calibrate_resolution(pairs, grid=_grid(args), r_source=args.r_source,
                               fixed_blur_pixels=args.fixed_blur)
    print(f"{'pair':<16}{'label':<13}{'v (km/s)':>9}{'R alone':>9}"
          f"{'resid(R)':>10}{f'resid({cal.fixed_blur_pixels:g}px)':>12}")
    for p in cal.pairs:
        print(f"{p.name:<16}{p.label or '-':<13}{p.velocity:>9.1f}{p.resolving_power:>9.0f}"
              f"{p.residual:>10.4f}{p.residual_fixed_blur:>12.4f}")
    own = np.array([p.resolving_power for p in cal.pairs])
    print(f"\nfitted resolving power R = {cal.resolving_power:.0f} "
          f"(source R = {cal.r_source:.0f}; per-pair R median {np.median(own):.0f}, "
          f"16-84% {np.percentile(own, 16):.0f}-{np.percentile(own, 84):.0f})")
    print(f"median normalised RMS residual: {cal.median_residual:.4f} with R = "
          f"{cal.resolving_power:.0f}; {cal.median_residual_fixed_blur:.4f} with the fixed "
          f"sigma = {cal.fixed_blur_pixels:g} px blur")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from specscout.project import Project, ProjectConfig

    config = ProjectConfig(grid=_grid(args), dtype=args.dtype,
                           classes=tuple(args.classes) if args.classes else ProjectConfig().classes)
    project = Project.init(args.project, config)
    print(f"created project {project.path} (edit {project.path / 'specscout.toml'} to change it)")
    return 0


def _parse_label_map(text: str | None) -> dict[str, str] | None:
    if not text:
        return None
    pairs = [item.split("=", 1) for item in text.split(",")]
    if any(len(p) != 2 for p in pairs):
        raise SpecscoutError(f"--label-map wants FROM=TO,FROM=TO..., got {text!r}")
    return {k.strip(): v.strip() for k, v in pairs}


def cmd_ingest(args: argparse.Namespace) -> int:
    from specscout.ingest import ingest, load_labels
    from specscout.project import Project

    project = Project(args.project)
    config = project.config.preprocess(args.degrade_from, args.degrade_to)
    labels = None
    if args.labels:
        labels = load_labels(args.labels, project.config.classes,
                             _parse_label_map(args.label_map))
    store = project.store("labelled" if labels is not None else "pool")
    summary = ingest(store, args.paths, config, workers=args.workers, scheduler=args.scheduler,
                     part_rows=project.config.part_rows, labels=labels,
                     progress=not args.quiet)
    print(f"{store.path}: {summary}")
    print(f"{store.path} now holds {len(store)} spectra from {store.files} files")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import pyarrow.compute as pc

    from specscout.project import Project

    project = Project(args.project)
    c = project.config
    print(f"project {project.path}\n  grid {c.grid.start:g}-{c.grid.stop:g} A, "
          f"{c.grid.points} points; normalisation {c.normalisation}; store {c.dtype}\n"
          f"  classes {', '.join(c.classes)}\n  labels {c.labels_url}")
    for name in ("pool", "labelled"):
        store = project.store(name)
        all_files = store.meta(columns=["status", "release", "label"], status=None)
        status = all_files["status"]
        counts = {s: pc.sum(pc.equal(status, s)).as_py() or 0 for s in ("ok", "flagged",
                                                                         "failed")}
        print(f"{name}: {len(store)} spectra; files {store.files}: ingested {counts['ok']}, "
              f"flagged {counts['flagged']}, failed {counts['failed']}")
        ok = all_files.filter(pc.equal(status, "ok"))
        if len(ok):
            by = "label" if name == "labelled" else "release"
            groups = ok.group_by(by).aggregate([(by, "count")]).to_pylist()
            print("  by " + by + ": " + ", ".join(f"{g[by] or '?'} {g[by + '_count']}"
                                                   for g in sorted(groups, key=lambda g:
                                                                   str(g[by]))))
        failures = store.failures()
        if len(failures):
            reasons = failures.group_by("reason").aggregate([("reason", "count")]).to_pylist()
            print("  not pooled: " + ", ".join(f"{r['reason']} {r['reason_count']}"
                                               for r in reasons))
            shown = failures if args.failures else failures.slice(0, 10)
            for r in shown.to_pylist():
                detail = f" ({r['detail']})" if r["detail"] else ""
                print(f"    {r['status']:<8}{r['path']}: {r['reason']}{detail}")
            if len(shown) < len(failures):
                print(f"    ... {len(failures) - len(shown)} more (--failures lists all)")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    import time

    import pyarrow.parquet as pq

    from specscout.simulate import PAPER_MIX, SurveyConfig, simulate_labelled, simulate_survey

    start = time.perf_counter()
    if args.kind == "survey":
        fractions = {"emission": args.emission if args.emission is not None else 0.01,
                     "double-peak": args.double_peak if args.double_peak is not None else 0.003}
    else:
        fractions = {"emission": args.emission if args.emission is not None
                     else PAPER_MIX["emission"],
                     "double-peak": args.double_peak if args.double_peak is not None
                     else PAPER_MIX["double-peak"]}
    config = SurveyConfig(n=args.n, seed=args.seed, fractions=fractions, snr_median=args.snr,
                          repeats=args.repeats if args.kind == "survey" else 0.0)
    if args.kind == "survey":
        truth = simulate_survey(args.out, config, layout=args.layout, compress=not args.no_gzip,
                                workers=args.workers, scheduler=args.scheduler,
                                progress=not args.quiet)
    else:
        truth = simulate_labelled(args.out, config, compress=args.gzip, workers=args.workers,
                                  scheduler=args.scheduler, progress=not args.quiet)
    classes = pq.read_table(truth, columns=["class"])["class"].value_counts().to_pylist()
    counts = ", ".join(f"{c['values']} {c['counts']}" for c in classes)
    print(f"wrote {args.n} spectra to {args.out} in {time.perf_counter() - start:.1f} s "
          f"({counts}); truth in {truth}")
    if args.kind == "labelled":
        print(f"labels in {Path(args.out) / 'labels.csv'}: ingest them with "
              f"'specscout ingest PROJECT {args.out} --labels {Path(args.out) / 'labels.csv'} "
              f"--degrade-to 1531'")
    return 0


def _train_config(args: argparse.Namespace):
    from specscout.train import TrainConfig

    return TrainConfig(model=args.model, max_epochs=args.epochs, patience=args.patience,
                       batch_size=args.batch_size, balance=args.balance, seed=args.seed,
                       device=args.device)


def _score_options(args: argparse.Namespace) -> dict:
    return {"batch": args.score_batch, "precision": args.precision,
            "mc_passes": args.mc_passes, "workers": args.workers, "scheduler": args.scheduler,
            "device": args.device, "progress": not args.quiet}


def _do_train(project, args) -> int:
    from specscout.iterate import status, train_step

    number = train_step(project, _train_config(args), warm_start=args.warm_start)
    t = status(project)[-1]["train"]
    print(f"iteration {number}: trained {args.model} on {sum(t['per_class'].values())} labels "
          f"({', '.join(f'{k} {v}' for k, v in t['per_class'].items())}); best epoch "
          f"{t['best_epoch']} of {t['epochs']}, validation loss {t['val_loss']:.4f}, "
          f"temperature {t['temperature']:.2f}, {t['seconds']:.1f} s")
    return number


def _do_score(project, args, number=None) -> None:
    from specscout.iterate import score_step

    scores = score_step(project, number, **_score_options(args))
    print(f"scored {len(scores.probabilities)} spectra in {scores.seconds:.1f} s "
          f"({scores.rate:.0f} spectra/s)")


def _do_query(project, args, number=None) -> None:
    from specscout.iterate import latest, query_step

    number = number or latest(project)
    batch = query_step(project, args.strategy, args.batch, number, seed=args.seed)
    print(f"queued {len(batch)} spectra by {args.strategy} for labelling "
          f"(listed in iterations/{number:04d}/query.csv; give their labels with "
          f"'specscout labels import PROJECT CSV')")


def cmd_train(args: argparse.Namespace) -> int:
    from specscout.project import Project

    _do_train(Project(args.project), args)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from specscout.project import Project

    _do_score(Project(args.project), args, args.iteration)
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from specscout.project import Project

    _do_query(Project(args.project), args, args.iteration)
    return 0


def cmd_iterate(args: argparse.Namespace) -> int:
    from specscout.project import Project

    project = Project(args.project)
    number = _do_train(project, args)
    _do_score(project, args, number)
    _do_query(project, args, number)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from specscout.iterate import label_store, status
    from specscout.project import Project

    project = Project(args.project)
    labels = label_store(project)
    print(f"project {project.path}: pool {len(project.store('pool'))} spectra, labelled set "
          f"{len(project.store('labelled'))}, pool labels {len(labels.current())} "
          f"({len(labels.disagreements())} disagreements)")
    for it in status(project):
        t, s, q = it.get("train", {}), it.get("score", {}), it.get("query", {})
        line = (f"  {it['iteration']:>4}  {t.get('config', {}).get('model', '?')}: "
                f"{sum(t.get('per_class', {}).values())} labels, val loss "
                f"{t.get('val_loss', float('nan')):.4f}, {t.get('seconds', 0):.0f} s")
        if s:
            line += (f" | scored {s['rows']} at {s['spectra_per_s']:.0f}/s; predicted "
                     + ", ".join(f"{k} {v}" for k, v in s["predicted"].items()))
        if q:
            line += f" | queried {q['queued']} by {q['strategy']}"
        print(line)
    return 0


def cmd_labels(args: argparse.Namespace) -> int:
    from specscout.iterate import label_store
    from specscout.project import Project

    project = Project(args.project)
    labels = label_store(project)
    if args.action == "import":
        n = labels.import_csv(args.csv, project.store("pool"), project.config.classes,
                              annotator=args.annotator, audit=args.audit)
        print(f"imported {n} labels from {args.csv}")
    else:
        n = labels.export_csv(args.csv)
        print(f"exported {n} label rows to {args.csv}")
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    from specscout.experiment import ExperimentConfig, run_project
    from specscout.project import Project
    from specscout.train import TrainConfig

    config = ExperimentConfig(
        strategies=tuple(args.strategies.split(",")), seeds=tuple(range(args.seeds)),
        iterations=args.iterations, batch=args.batch, initial=args.initial,
        use_labelled_set=not args.no_labelled_set, test_fraction=args.test_fraction,
        target_error=args.target_error, warm_start=not args.cold_start,
        train=TrainConfig(model=args.model, max_epochs=args.epochs, patience=args.patience,
                          batch_size=args.batch_size, device=args.device))

    def log(row: dict) -> None:
        if not args.quiet:
            print(f"  {row['strategy']:<16} seed {row['seed']} round {row['round']:>2}: "
                  f"{row['labels']:>5} labels, macro error {row['macro_error']:.3f} "
                  f"({row['seconds']:.0f} s)", flush=True)

    info = run_project(Project(args.project), args.truth, args.out, config, log)
    print(f"{len(config.strategies)} strategies x {len(config.seeds)} seeds in "
          f"{info['seconds']:.0f} s; curves in {args.out}/curves.csv and curves.png")
    print(f"pool labels needed to reach macro error <= {config.target_error} on the rare "
          f"classes (median over seeds; '-' = not reached within "
          f"{config.initial + config.iterations * config.batch}):")
    for strategy, reach in info["to_target"].items():
        median = reach["median"]
        print(f"  {strategy:<16} {'-' if median is None else f'{median:.0f}':>6}   final "
              f"error {info['final_error'][strategy]:.3f}")
    if "to_random_final" in info:
        print(f"labels needed to reach random's final error ({info['random_final_error']:.3f}):")
        for strategy, reach in info["to_random_final"].items():
            median = reach["median"]
            print(f"  {strategy:<16} {'-' if median is None else f'{median:.0f}':>6}")
    return 0


def cmd_candidates(args: argparse.Namespace) -> int:
    from specscout.candidates import build, write
    from specscout.project import Project

    project = Project(args.project)
    cat = build(project, threshold=args.threshold, radius_arcsec=args.radius,
                references=tuple(args.catalogue), iteration=args.iteration,
                classes=tuple(args.classes) if args.classes else None)
    objects, spectra = cat.objects, cat.spectra
    print(f"iteration {cat.iteration}, threshold {cat.threshold}: {len(spectra)} candidate "
          f"spectra of {len(objects)} objects")
    for cls in dict.fromkeys(objects["class"]):
        o = objects[objects["class"] == cls]
        n_spec = int(sum(o["n_spectra"]))
        known = int(sum(o["known"]))
        print(f"  {cls:<14} {n_spec} spectra of {len(o)} objects: {len(o) - known} new, "
              f"{known} known")
    for out in args.out:
        path = write(objects, out)
        stem = path.with_name(path.stem + "-spectra" + path.suffix)
        write(spectra, stem)
        print(f"wrote {path} (objects) and {stem} (spectra)")
    if args.samp:
        from specscout.samp import send_table

        votable = next((Path(o) for o in args.out if Path(o).suffix in (".xml", ".vot")),
                       None)
        if votable is None:
            votable = write(objects, project.path / "candidates.xml")
        sent = send_table(votable, name=f"specscout candidates ({project.path.name})")
        print(f"sent {votable} by SAMP to: {', '.join(sent) or 'no client that loads tables'}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from specscout import audit
    from specscout.project import Project

    project = Project(args.project)
    if args.coverage:
        return _audit_coverage(project, args)
    if args.draw:
        d = audit.draw(project, positives=args.positives, negatives=args.negatives,
                       threshold=args.threshold, iteration=args.iteration, seed=args.seed)
        print(f"audit draw {d['draw']} from iteration {d['iteration']}: {d['rows']} spectra "
              f"({', '.join(f'{k} {v}' for k, v in d['strata'].items())} rows per stratum)")
        print(f"fill in the label column of {d['csv']} and run "
              f"'specscout labels import {args.project} {d['csv']} --audit'")
        if not args.truth:
            return 0
    if args.truth:
        n = audit.label_from_truth(project, args.truth)
        print(f"labelled {n} audit spectra from {args.truth}")
    est = audit.estimate_project(project, level=args.level)
    print(f"audit draw {est['draw']} (iteration {est['iteration']}): {est['labelled']} of "
          f"{est['drawn']} labelled; {100 * est['level']:.0f} % intervals")
    for cls, e in est["classes"].items():
        print(f"  {cls:<14} precision {audit.show(e['precision'], e['precision_interval'])}  "
              f"recall {audit.show(e['recall'], e['recall_interval'])}  in the archive "
              f"{audit.show(e['count'], e['count_interval'], 0)}  ({e['listed']} listed)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from specscout.project import Project
    from specscout.report import write

    index = write(Project(args.project), args.out, threshold=args.threshold,
                  radius_arcsec=args.radius, references=tuple(args.catalogue))
    print(f"report: {index}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from specscout.demo import DemoConfig, run

    run(args.out, DemoConfig(survey=args.survey, labelled=args.labelled,
                             iterations=args.iterations, batch=args.batch,
                             strategy=args.strategy, model=args.model,
                             max_epochs=args.epochs, workers=args.workers, seed=args.seed))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from specscout.project import Project
    from specscout.web import serve

    serve(Project(args.project), host=args.host, port=args.port, annotator=args.annotator,
          require_login=args.require_login, samp=not args.no_samp,
          catalogues=tuple(args.catalogue))
    return 0


def cmd_user(args: argparse.Namespace) -> int:
    from specscout.iterate import label_store
    from specscout.project import Project

    labels = label_store(Project(args.project))
    if args.action == "list":
        print("\n".join(labels.users()) or "no users")
        return 0
    if not args.name:
        raise SpecscoutError(f"'user {args.action}' needs a NAME")
    if args.action == "add":
        token = labels.add_user(args.name)
        print(f"user {args.name} added; their token (shown only now, keep it secret):\n{token}")
    else:
        labels.remove_user(args.name)
        print(f"user {args.name} removed; their token no longer works")
    return 0


def _audit_coverage(project, args: argparse.Namespace) -> int:
    import numpy as np

    from specscout import audit
    from specscout.errors import SpecscoutError
    from specscout.experiment import truth_classes
    from specscout.iterate import label_store, load_scores

    if not args.truth:
        raise SpecscoutError("--coverage needs --truth: the true class of every pool spectrum")
    number, probs = load_scores(project, args.iteration)
    labelled = np.array(sorted(label_store(project).current()), dtype=np.int64)
    result = audit.coverage(probs, truth_classes(project, args.truth),
                            tuple(project.config.classes), labelled, threshold=args.threshold,
                            positives=args.positives, negatives=args.negatives,
                            repeats=args.coverage, level=args.level, seed=args.seed)
    print(f"{args.coverage} independent audits of iteration {number} "
          f"({args.positives} per candidate class, {args.negatives} others), labelled from "
          f"the truth: how often the {100 * args.level:.0f} % intervals hold the true value")
    print("  strata: " + ", ".join(f"{k} {v}" for k, v in result["strata"].items()))
    for cls in project.config.classes[1:]:
        r = result[cls]
        print(f"  {cls:<14} " + "   ".join(
            f"{m} {r[m]['coverage']:.3f} (true {r[m]['true']:.3g}, median width "
            f"{r[m]['median_width']:.3g})" for m in ("precision", "recall", "count")))
    return 0


def _add_engine_options(p: argparse.ArgumentParser, train: bool, score: bool,
                        query: bool) -> None:
    if train:
        from specscout.model import MODELS

        p.add_argument("--model", default="paper-cnn", choices=sorted(MODELS))
        p.add_argument("--epochs", type=int, default=200, help="at most (default %(default)s)")
        p.add_argument("--patience", type=int, default=10)
        p.add_argument("--batch-size", type=int, default=64)
        p.add_argument("--balance", default="weight", choices=("weight", "sample", "none"))
        p.add_argument("--warm-start", action="store_true",
                       help="start from the previous iteration's weights")
    if score:
        p.add_argument("--score-batch", type=int, default=4096)
        p.add_argument("--precision", default="float32", choices=("float32", "bfloat16"))
        p.add_argument("--mc-passes", type=int, default=0,
                       help="MC-dropout passes (needed by --strategy bald)")
        p.add_argument("--workers", type=int, default=None,
                       help="score on this many local Dask worker processes")
        p.add_argument("--scheduler", default=None, metavar="ADDRESS")
    if query:
        from specscout.strategies import STRATEGIES

        p.add_argument("--strategy", default="entropy", choices=sorted(STRATEGIES))
        p.add_argument("--batch", type=int, default=100, help="spectra to query")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="specscout",
        description="Find rare objects in survey archives of spectra by active deep learning.")
    parser.add_argument("--version", action="version", version=f"specscout {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("inspect", help="read spectrum files and show what specscout sees")
    p.add_argument("files", nargs="+")
    _add_grid_options(p)
    p.add_argument("--normalisation", default="minmax", choices=("minmax", "continuum"))
    p.add_argument("--degrade-to", type=float, default=None, metavar="R",
                   help="degrade to this resolving power before resampling")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("calibrate",
                       help="fit the survey's resolving power from pairs of spectra of one star")
    p.add_argument("pairs", help="CSV: source file, survey file[, label] (paths relative to it)")
    _add_grid_options(p)
    p.add_argument("--r-source", type=float, default=None,
                   help="resolving power of the source spectra (default: the reader's)")
    p.add_argument("--fixed-blur", type=float, default=7.0, metavar="PIXELS",
                   help="the fixed blur to compare with (default: the paper's %(default)s px)")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("init", help="create a discovery project directory")
    p.add_argument("project")
    _add_grid_options(p)
    p.add_argument("--classes", nargs="+", default=None,
                   help="class names, background first (default: other emission double-peak)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float16"))
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("ingest", help="read and preprocess spectrum files into the project")
    p.add_argument("project")
    p.add_argument("paths", nargs="+",
                   help="directories (recursive), glob patterns, lists of paths (.txt) or files")
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes (default: one per core)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="use an existing dask.distributed scheduler, e.g. tcp://host:8786")
    p.add_argument("--degrade-from", type=float, default=None, metavar="R",
                   help="resolving power of the files (default: the reader's)")
    p.add_argument("--degrade-to", type=float, default=None, metavar="R",
                   help="degrade to this resolving power (e.g. a labelled set to the survey's)")
    p.add_argument("--labels", default=None, metavar="CSV",
                   help="a labelled set: CSV with path or id, and label; goes to the labelled "
                        "store, apart from the pool")
    p.add_argument("--label-map", default=None, metavar="FROM=TO,...",
                   help="translate the CSV's labels to class names; TO empty drops the row")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("simulate", help="write a simulated survey or labelled set with its "
                                        "truth table (real MILES photospheres, injected H-alpha)")
    p.add_argument("out")
    p.add_argument("--n", type=int, default=1000, help="number of spectra (default %(default)s)")
    p.add_argument("--kind", choices=("survey", "labelled"), default="survey",
                   help="a LAMOST-like survey, or an Ondrejov-like labelled set (R 13000, air, "
                        "CCD700 raw layout, the paper's 47/41/12 %% class mix)")
    p.add_argument("--layout", choices=("dr1", "dr2", "dr9"), default="dr2",
                   help="LAMOST layout of the survey's files (default %(default)s)")
    p.add_argument("--no-gzip", action="store_true", help="survey files not gzipped")
    p.add_argument("--gzip", action="store_true", help="labelled-set files gzipped")
    p.add_argument("--emission", type=float, default=None,
                   help="fraction of emission spectra (survey default 0.01)")
    p.add_argument("--double-peak", type=float, default=None,
                   help="fraction of double-peak spectra (survey default 0.003)")
    p.add_argument("--snr", type=float, default=None, help="median signal-to-noise")
    p.add_argument("--repeats", type=float, default=0.0,
                   help="survey: chance that a spectrum revisits an earlier one's star")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--scheduler", default=None, metavar="ADDRESS")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_simulate)

    for name, func, flags, text in (
            ("train", cmd_train, (True, False, False), "train a new model on every label"),
            ("score", cmd_score, (False, True, False), "score the pool with the latest model"),
            ("query", cmd_query, (False, False, True), "choose the next spectra to label"),
            ("iterate", cmd_iterate, (True, True, True), "train, score and query")):
        p = sub.add_parser(name, help=text)
        p.add_argument("project")
        if name in ("score", "query"):
            p.add_argument("--iteration", type=int, default=None, help="default: the latest")
        _add_engine_options(p, *flags)
        p.set_defaults(func=func)

    p = sub.add_parser("experiment", help="run the loop with a truth table as the oracle, "
                       "for several strategies and seeds, and write learning curves")
    p.add_argument("project")
    p.add_argument("--truth", required=True,
                   help="truth table of the pool (id, class), e.g. a simulation's truth.parquet")
    p.add_argument("--out", required=True, help="directory for curves.csv/png, summary.json")
    p.add_argument("--strategies", default="random,entropy,rare",
                   help="comma-separated (default %(default)s)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--batch", type=int, default=100, help="spectra queried per iteration")
    p.add_argument("--initial", type=int, default=0,
                   help="random pool labels to start from, besides the labelled set")
    p.add_argument("--no-labelled-set", action="store_true",
                   help="start from --initial random pool labels only")
    p.add_argument("--test-fraction", type=float, default=0.3,
                   help="of the pool, held out for evaluation")
    p.add_argument("--target-error", type=float, default=0.065)
    p.add_argument("--model", default="small-cnn")
    p.add_argument("--epochs", type=int, default=40, help="at most, per training")
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--cold-start", action="store_true",
                   help="train a new network every round instead of fine-tuning")
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("candidates", help="the candidate catalogue: objects of the target "
                       "classes, cross-matched against reference catalogues")
    p.add_argument("project")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="least probability of a target class (default %(default)s)")
    p.add_argument("--radius", type=float, default=3.0,
                   help="arcsec: spectra this close are one object; cross-match radius")
    p.add_argument("--catalogue", action="append", default=[], metavar="FILE",
                   help="reference catalogue (CSV, VOTable, FITS with RA/Dec); repeatable")
    p.add_argument("--classes", nargs="+", default=None, help="default: all but the first")
    p.add_argument("--iteration", type=int, default=None, help="default: the latest")
    p.add_argument("--out", action="append", default=[], metavar="FILE",
                   help="write the objects (and FILE-spectra) as .xml (VOTable), .fits, .csv, "
                   ".ecsv or .parquet; repeatable")
    p.add_argument("--samp", action="store_true",
                   help="send the objects table to TOPCAT etc. through the running SAMP hub")
    p.set_defaults(func=cmd_candidates)

    p = sub.add_parser("audit", help="estimate precision and recall from random audit samples")
    p.add_argument("project")
    p.add_argument("--draw", action="store_true", help="draw a new audit sample")
    p.add_argument("--positives", type=int, default=50, help="per candidate class")
    p.add_argument("--negatives", type=int, default=150, help="over the other strata")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--iteration", type=int, default=None, help="default: the latest")
    p.add_argument("--truth", default=None,
                   help="simulations: label the sample from this truth table")
    p.add_argument("--level", type=float, default=0.95)
    p.add_argument("--coverage", type=int, default=0, metavar="N",
                   help="simulations: repeat N audits labelled from --truth and report how "
                   "often the intervals hold the true values")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("report", help="a static HTML page with figures of the project")
    p.add_argument("project")
    p.add_argument("--out", default=None, help="directory (default PROJECT/report)")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--radius", type=float, default=3.0)
    p.add_argument("--catalogue", action="append", default=[], metavar="FILE")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo", help="the whole job on a simulated archive: simulate, ingest, "
                       "iterate with a simulated annotator, audit, catalogue, report")
    p.add_argument("out", nargs="?", default="specscout-demo",
                   help="a new directory (default %(default)s)")
    p.add_argument("--survey", type=int, default=20000, help="survey spectra")
    p.add_argument("--labelled", type=int, default=1000, help="labelled-set spectra")
    p.add_argument("--iterations", type=int, default=4)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--strategy", default="rare")
    p.add_argument("--model", default="paper-cnn")
    p.add_argument("--epochs", type=int, default=30, help="at most, per training")
    p.add_argument("--workers", type=int, default=None, help="local Dask workers")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve", help="the labelling web app")
    p.add_argument("project")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default %(default)s; any other address requires "
                   "every annotator to log in)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--annotator", default=None,
                   help="name written with labels when no one logs in (default: your login)")
    p.add_argument("--require-login", action="store_true",
                   help="require a user's token even on loopback")
    p.add_argument("--no-samp", action="store_true", help="no SAMP link to VO tools")
    p.add_argument("--catalogue", action="append", default=[], metavar="FILE",
                   help="reference catalogue to mark known candidates (repeatable)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("user", help="annotators who may label through the web app")
    p.add_argument("action", choices=("add", "list", "remove"))
    p.add_argument("project")
    p.add_argument("name", nargs="?")
    p.set_defaults(func=cmd_user)

    p = sub.add_parser("status", help="the project's iterations")
    p.add_argument("project")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("labels", help="import or export labels as CSV")
    p.add_argument("action", choices=("import", "export"))
    p.add_argument("project")
    p.add_argument("csv")
    p.add_argument("--annotator", default="csv")
    p.add_argument("--audit", action="store_true",
                   help="audit labels (kept apart from training)")
    p.set_defaults(func=cmd_labels)

    p = sub.add_parser("info", help="what the project holds, and what could not be ingested")
    p.add_argument("project")
    p.add_argument("--failures", action="store_true", help="list every failed or flagged file")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (SpecscoutError, ValueError, OSError) as exc:
        print(f"specscout: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
