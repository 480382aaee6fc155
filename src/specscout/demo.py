"""``specscout demo``: the whole job on a simulated archive, with nothing else to set up.

1. simulate an Ondrejov-like labelled set (R 13000, air, the paper's class mix) and a
   LAMOST-like survey (1 % emission, 0.3 % double-peak, some stars observed twice);
2. ingest both into a project (the labelled set through resolution matching to R 1531);
3. iterate: train, score the pool, query, and let the truth table label the query batch as a
   human annotator would (the simulated oracle);
4. audit: a random sample of predicted positives and negatives, labelled by the oracle, gives
   precision and recall with intervals, which are compared with the truth;
5. the candidate catalogue, grouped by position and cross-matched against a reference
   catalogue (a simulated "published" list of some of the survey's emission-line stars);
6. the report.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from specscout.archive.project import Project, ProjectConfig


@dataclass(frozen=True)
class DemoConfig:
    survey: int = 20000
    labelled: int = 500
    iterations: int = 4
    batch: int = 100
    strategy: str = "rare"
    model: str = "paper-cnn"
    max_epochs: int = 30
    patience: int = 3  # the curve: what comes after three worse epochs is noise here
    # A warm start (100 labels more): the start itself is validated first, and its best
    # epoch comes early or never (docs/benchmarks.md)
    warm_patience: int = 1
    warm_epochs: int = 4
    audit_positives: int = 60
    audit_negatives: int = 240
    repeats: float = 0.05
    known_fraction: float = 0.4  # of the survey's emission-line objects in the reference list
    workers: int | None = None
    seed: int = 0
    layout: str = "dr2"  # the survey's files; "mrs": LAMOST MRS, matched down to LRS
    # Training in the survey's domain (docs/training.md), at a size for a laptop's minutes
    injected: int = 300
    negatives: int = 1000
    artefacts: int = 100


#: What the stages take on 2 cores (a 2-core AMD EPYC, docs/benchmarks.md), for the
#: expectations the demo announces.
SIMULATED_PER_S = 650.0
INGESTED_PER_S = 1500.0
FIRST_TRAINING_S = 80.0
WARM_TRAINING_S = 20.0


def _about(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _say(log: Callable[[str], None] | None, text: str) -> None:
    if log:
        log(text)


def reference_catalogue(truth: Path, out: Path, fraction: float, seed: int) -> int:
    """A simulated published catalogue: ``fraction`` of the survey's emission-line objects
    (one row per object, positions off by ~0.3 arcsec, a type column)."""
    t = pq.read_table(truth, columns=["object", "class", "ra", "dec", "line_family"]).to_pylist()
    firsts = {}
    for r in t:
        if r["class"] != "other":
            firsts.setdefault(r["object"], r)
    rng = np.random.default_rng(seed)
    chosen = [r for r in firsts.values() if rng.uniform() < fraction]
    with out.open("w") as fh:
        fh.write("name,ra,dec,type\n")
        for k, r in enumerate(chosen):
            dra, ddec = rng.normal(0, 0.3 / 3600, 2)
            kind = "Be" if r["class"] == "emission" else "Be (double-peaked)"
            fh.write(f"REF{k:05d},{(r['ra'] + dra / np.cos(np.radians(r['dec']))) % 360:.7f},"
                     f"{r['dec'] + ddec:.7f},{kind}\n")
    return len(chosen)


def oracle_labels(project: Project, y: np.ndarray, iteration: int) -> int:
    """Label the query batch of ``iteration`` from the truth, as an annotator would."""
    from specscout.labels import label_store

    classes = tuple(project.config.classes)
    labels = label_store(project)
    return labels.add_many([
        {"spectrum": q["spectrum"], "row": q["row"], "label": classes[y[q["row"]]],
         "annotator": "oracle", "iteration": iteration,
         "acquisition_score": q["acquisition_score"]} for q in labels.queue.batch(iteration)])


def run(out: str | Path, config: DemoConfig = DemoConfig(),
        log: Callable[[str], None] | None = print) -> dict:
    from specscout.archive.cluster import dask_client
    from specscout.archive.ingest import ingest, load_labels
    from specscout.catalogue import audit
    from specscout.catalogue.candidates import build
    from specscout.catalogue.candidates import write as write_table
    from specscout.catalogue.report import write as write_report
    from specscout.labels import label_store
    from specscout.learn.experiment import truth_classes
    from specscout.learn.iterate import query_step, score_step, train_step
    from specscout.learn.iterations import load_scores
    from specscout.learn.train import TrainConfig
    from specscout.simulate import PAPER_MIX, SurveyConfig, simulate_labelled, simulate_survey

    out = Path(out)
    if (out / "project").exists():
        raise FileExistsError(f"{out / 'project'} exists: give the demo a new directory")
    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    start = t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        times[name] = round(now - t, 1)
        t = now

    spectra = config.labelled + config.survey * (4 if config.layout == "mrs" else 1)
    # one local cluster for the bulk work of the first two stages: its workers start once
    # (workers 0: everything in this process); a file that kills a worker fails at once,
    # as ingest's own cluster has it
    shared = (dask_client(config.workers, None, allowed_failures=0) if config.workers != 0
              else nullcontext(None))
    with shared as client:
        scheduler = client.scheduler.address if client is not None else None
        _say(log, f"[1/6] simulating a labelled set of {config.labelled} spectra "
                  f"(Ondrejov-like, R 13000) and a LAMOST-like survey of {config.survey} with "
                  f"known truth (about {_about(spectra / SIMULATED_PER_S)} on 2 cores) ...")
        simulate_labelled(out / "data" / "ondrejov", SurveyConfig(
            n=config.labelled, seed=config.seed + 1, fractions=PAPER_MIX),
            workers=config.workers, scheduler=scheduler)
        truth = simulate_survey(out / "data" / "survey", SurveyConfig(
            n=config.survey, seed=config.seed + 2, repeats=config.repeats),
            layout=config.layout, workers=config.workers, scheduler=scheduler)
        known = reference_catalogue(truth, out / "data" / "known-emission-stars.csv",
                                    config.known_fraction, config.seed + 3)
        lap("simulate")

        _say(log, f"[2/6] ingesting both into a project: read, matched to R 1531, "
                  f"resampled, stored (about {_about(spectra / INGESTED_PER_S)}) ...")
        # MRS files (a coadd and exposures each) go into an LRS-like project: one model
        preset = "lamost-mrs-as-lrs" if config.layout == "mrs" else "lamost-lrs"
        project = Project.init(out / "project", ProjectConfig.preset(
            preset, injected=config.injected, negatives=config.negatives,
            artefacts=config.artefacts))
        pooled = ingest(project.store("pool"), [out / "data" / "survey"],
                        project.config.preprocess(), workers=config.workers,
                        scheduler=scheduler, progress=False)
        labels = load_labels(out / "data" / "ondrejov" / "labels.csv", project.config.classes)
        ingest(project.store("labelled"), [out / "data" / "ondrejov"],
               project.config.preprocess(None, project.config.resolution or 1531.0),
               workers=config.workers, scheduler=scheduler, labels=labels, progress=False)
        lap("ingest")
    y = truth_classes(project, truth)

    train = TrainConfig(model=config.model, max_epochs=config.max_epochs,
                        patience=config.patience, seed=config.seed)
    warm = replace(train, patience=config.warm_patience,
                   max_epochs=min(config.warm_epochs, config.max_epochs))
    _say(log, f"[3/6] active learning, {config.iterations} rounds: train {config.model} (two "
              f"networks, on the labelled set and lines injected into the survey's own "
              f"spectra), score the {len(project.store('pool'))} spectra, query "
              f"{config.batch} by {config.strategy}, the truth labels them as you would; "
              f"then the final training (about "
              f"{_about(FIRST_TRAINING_S + config.iterations * WARM_TRAINING_S)}; the first "
              f"training is the longest, the others start from the last) ...")
    found = {c: 0 for c in project.config.classes}
    for k in range(config.iterations):
        began = time.perf_counter()
        # after the first, each training starts from the last one's networks: 100 more
        # labels need a few epochs, not a training from scratch
        number = train_step(project, train if k == 0 else warm, warm_start=k > 0)
        score_step(project, number)
        batch = query_step(project, config.strategy, config.batch, number, seed=config.seed)
        oracle_labels(project, y, number)
        for b in batch:
            found[project.config.classes[y[b["row"]]]] += 1
        _say(log, f"      round {number} ({time.perf_counter() - began:.0f} s): queried "
                  f"{len(batch)}; pool labels so far "
                  + ", ".join(f"{k} {v}" for k, v in found.items()))
    number = train_step(project, warm, warm_start=True)  # the final model, on every label
    score_step(project, number)
    lap("iterate")

    _say(log, "[4/6] audit: random samples of the predicted positives and negatives, "
              "labelled, give precision and recall with their intervals ...")
    audit.draw(project, positives=config.audit_positives, negatives=config.audit_negatives,
               seed=config.seed)
    audit.label_from_truth(project, truth)
    # The next batch is left for a human, in the labelling app (never an audit spectrum).
    waiting = len(query_step(project, config.strategy, config.batch, number, seed=config.seed))
    estimates = audit.estimate_project(project)
    _, probs = load_scores(project, number)
    labelled = np.array(sorted(label_store(project).current()), dtype=np.int64)
    true = audit.truth_values(y, audit.strata(probs, tuple(project.config.classes), labelled,
                                              estimates["threshold"]),
                              tuple(project.config.classes))
    lap("audit")

    _say(log, "[5/6] the candidate catalogue: grouped into objects, each line measured and "
              "given its kind, cross-matched with a reference list ...")
    ref = out / "data" / "known-emission-stars.csv"
    cat = build(project, references=(ref,))
    write_table(cat.objects, out / "candidates.xml")
    write_table(cat.spectra, out / "candidates-spectra.xml")
    write_table(cat.objects, out / "candidates.csv")
    lap("candidates")

    _say(log, "[6/6] the report ...")
    report = write_report(project, references=(ref,))
    lap("report")
    wall = time.perf_counter() - start

    classes = tuple(project.config.classes)
    summary = {
        "wall_seconds": round(wall, 1), "steps_seconds": times,
        "survey": config.survey, "pooled": pooled.ingested, "flagged": pooled.flagged,
        "failed": pooled.failed, "labelled_set": config.labelled,
        "pool_labels": int(config.iterations * config.batch),
        "audit_labels": estimates["labelled"],
        "truth_in_pool": {c: int(np.sum(y == i)) for i, c in enumerate(classes)},
        "estimates": {c: {k: estimates["classes"][c][k] for k in (
            "precision", "precision_interval", "recall", "recall_interval", "count",
            "count_interval", "listed")} | {f"true_{k}": true[i][k]
                                          for k in ("precision", "recall", "count")}
            for i, c in enumerate(classes[1:])},
        "candidates": {"spectra": len(cat.spectra), "objects": len(cat.objects),
                       "known": int(np.sum(cat.objects["known"])),
                       "reference_objects": known,
                       "kinds": {str(k): int(n) for k, n in zip(*np.unique(
                           np.asarray(cat.spectra["kind"], str), return_counts=True),
                           strict=True)},
                       "set_aside": cat.set_aside},
        "project": str(project.path), "report": str(report), "queue_waiting": waiting,
        "catalogue": str(out / "candidates.xml"),
    }
    (out / "demo.json").write_text(json.dumps(summary, indent=2))
    _say(log, _describe(summary))
    return summary


def _describe(s: dict) -> str:
    from specscout.catalogue.audit import show

    lines = [f"\ndone in {s['wall_seconds']:.0f} s ("
             + ", ".join(f"{k} {v:.0f} s" for k, v in s["steps_seconds"].items()) + ")",
             f"labels spent: {s['pool_labels']} pool + {s['audit_labels']} audit "
             f"(besides the {s['labelled_set']} of the labelled set)",
             "audit estimates (95 % intervals) vs the truth:"]
    for c, e in s["estimates"].items():
        lines.append(f"  {c:<12} precision {show(e['precision'], e['precision_interval'])} "
                     f"true {e['true_precision']:.3f} | recall "
                     f"{show(e['recall'], e['recall_interval'])} true {e['true_recall']:.3f} "
                     f"| {e['listed']} listed")
    c = s["candidates"]
    kinds = ", ".join(f"{k} {n}" for k, n in c["kinds"].items()) or "none"
    aside = ", ".join(f"{k} {n}" for k, n in c["set_aside"].items())
    lines += [f"candidates: {c['spectra']} spectra of {c['objects']} objects, {c['known']} "
              f"known in the reference list, {c['objects'] - c['known']} new; by kind: "
              f"{kinds}" + (f"; set aside by their measured kind: {aside}" if aside else ""),
              "",
              "Open:",
              f"  1. the report     {s['report']}",
              f"  2. the catalogue  {s['catalogue']} (VOTable, also .csv; to TOPCAT with "
              f"'specscout candidates {s['project']} --samp')",
              f"  3. the app        'specscout serve {s['project']}', then the link it "
              f"prints: the next query batch ({s['queue_waiting']} spectra) waits for you "
              f"(keys 1-{len(s['truth_in_pool'])} label, u skip, z undo, n/p move)",
              f"The project: {s['project']} ('specscout status {s['project']}')."]
    return "\n".join(lines)
