"""Running the iterations of active learning in a project: train -> score -> query ->
(labels) -> ... Each step is recorded in the iteration's directory (:mod:`.iterations`).

Training data: the labelled store (the initial set) plus every pool spectrum whose current label
in the label store is agreed. A query never proposes a spectrum already labelled or already
queued in an earlier iteration.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import socket
import time
import uuid
from dataclasses import asdict, replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from specscout.archive.atomic import fsync_dir, fsync_tree, write_text, write_with
from specscout.archive.project import Project
from specscout.errors import SpecscoutError
from specscout.labels import CATALOGUE_ANNOTATOR, label_store
from specscout.labels.queue import SELECTION
from specscout.labels.store import agreed
from specscout.learn.acquire import acquire
from specscout.learn.domain import (
    FOLD_NSIDE,
    ORIGINS,
    DomainConfig,
    Examples,
    pool_key,
    sky_cells,
)
from specscout.learn.folds import fold_examples
from specscout.learn.iterations import (
    iteration_numbers,
    iteration_path,
    iterations_dir,
    latest,
    load_scores,
    record,
    scored_iterations,
)
from specscout.learn.predictions import churn
from specscout.learn.priors import em_priors, in_chunks, shift
from specscout.learn.score import Scores, score_store
from specscout.learn.strategies import entropy
from specscout.learn.train import Fitted, TrainConfig, fit


def training_set(project: Project, domain: DomainConfig | None = None, fold: int | None = None,
                 cells: np.ndarray | None = None, labelled_set: bool = True,
                 exclude: np.ndarray | None = None) -> tuple[Examples, dict]:
    """The training examples and their counts: the labelled store, the labelled pool rows
    (by people, or by a reference catalogue) and, with ``domain``, lines injected into pool
    spectra and pool negatives (:mod:`.domain`), of pool fold ``fold`` if given. ``cells``:
    the pool's sky cells (:func:`.domain.sky_cells`), which key the validation split.
    ``exclude``: pool rows held out (an experiment's test set), never a negative or a host."""
    return training_sets(project, domain, (fold,), cells, labelled_set, exclude)[0]


def training_sets(project: Project, domain: DomainConfig | None = None,
                  folds: tuple[int | None, ...] = (None,), cells: np.ndarray | None = None,
                  labelled_set: bool = True, exclude: np.ndarray | None = None
                  ) -> list[tuple[Examples, dict]]:
    """:func:`training_set` of each of ``folds``, the folds' domain examples made at once
    (:func:`.domain.fold_examples`)."""
    classes = list(project.config.classes)
    points = project.config.grid.points
    parts = []
    labelled = project.store("labelled")
    if labelled_set and len(labelled):
        meta = labelled.meta(columns=["row", "label", "id"])
        rows = np.asarray(meta["row"].to_numpy())
        parts.append(Examples(labelled.flux(rows).astype(np.float32),
                              np.array([classes.index(v) for v in meta["label"].to_pylist()]),
                              ["labelled-set"] * len(rows),
                              [f"labelled:{i}" for i in meta["id"].to_pylist()]))
    labels = label_store(project)
    votes = labels.votes()
    current = agreed(votes)
    pool = project.store("pool")
    if current or domain is not None:
        cells = sky_cells(pool) if cells is None else cells
    if current:
        rows = np.array(sorted(current), dtype=np.int64)
        by_catalogue = [all(a.startswith(CATALOGUE_ANNOTATOR) for a in votes[r]) for r in rows]
        parts.append(Examples(pool.flux(rows).astype(np.float32),
                              np.array([classes.index(current[r]) for r in rows]),
                              ["catalogue" if c else "human" for c in by_catalogue],
                              pool_key(cells, rows), row=rows))
    made: list[tuple[Examples | None, dict]] = [(None, {}) for _ in folds]
    if domain is not None:
        # never a negative or a host: what anyone labelled, for training or the audit
        held = set(votes) | set(labels.votes(audit=True))
        held.update(() if exclude is None else np.asarray(exclude, np.int64).tolist())
        exclude = np.array(sorted(held), dtype=np.int64)
        target = None
        scored = scored_iterations(project)
        if scored:
            _, probs = load_scores(project, scored[-1])
            target = np.asarray(probs, np.float32)[:, 1:].sum(1)
        made = fold_examples(project, domain, exclude, target, tuple(folds), cells)
    sets = []
    for injected, counts in made:
        examples = Examples.join(parts if injected is None else [*parts, injected], points)
        if not len(examples):
            raise SpecscoutError("no labels yet: ingest a labelled set (--labels) or import "
                                 "labels")
        origins = np.array(examples.origin)
        sets.append((examples, {
            "labelled_set": int((origins == "labelled-set").sum()),
            "pool_labels": int(np.isin(origins, ["human", "catalogue"]).sum()),
            "origins": {o: int((origins == o).sum()) for o in ORIGINS if (origins == o).any()},
            **counts,
            "per_class": {c: int((examples.y == i).sum()) for i, c in enumerate(classes)}}))
    return sets


def _write_examples(path, sets: list[Examples], classes: tuple[str, ...]) -> None:
    """training.parquet: what each example of each network was (its key, origin, class, pool
    row, loss weight and, for an injection, the line's parameters)."""
    pq.write_table(pa.concat_tables([pa.table({
        "network": np.full(len(e), i, np.int8), "key": e.key, "origin": e.origin,
        "label": [classes[c] for c in e.y], "row": e.row, "weight": e.weight,
        "line": [json.dumps(d, sort_keys=True) if d else None for d in e.line]})
        for i, e in enumerate(sets)]), path)


def members_of(path) -> list[Fitted]:
    """The network(s) of an iteration's directory: one, or cross-fitted ones (model.pt,
    model-1.pt, ...)."""
    more = sorted((int(p.stem.split("-")[1]), p) for p in path.glob("model-*.pt")
                  if p.stem.split("-")[1].isdigit())
    return [Fitted.load(path / "model.pt")] + [Fitted.load(p) for _, p in more]


def train_step(project: Project, config: TrainConfig, warm_start: bool = False,
               log=None, domain: bool | None = None, labelled_set: bool | None = None,
               networks: int | None = None, exclude: np.ndarray | None = None) -> int:
    """Train a new model on every label so far; returns the new iteration's number.

    With ``domain`` (default: the project's setting) the training is also in the survey's own
    domain, and cross-fitted: two networks, each with the negatives and injection hosts of
    one half of the pool (:func:`.domain.fold_of`), each scoring the other half.
    ``labelled_set`` (default: the project's setting): train on the labelled store too.
    ``networks`` (default: the project's setting): networks per fold, of other seeds on the
    same examples, whose probabilities are averaged. ``exclude``: pool rows held out (never
    drawn as negatives or hosts). ``log``: called after every epoch with its losses, the
    fold and the network's number within the fold."""
    c = project.config
    domain = c.domain if domain is None else domain
    labelled_set = c.labelled_set if labelled_set is None else labelled_set
    networks = (c.networks if networks is None else networks) if domain else 1
    if networks < 1:
        raise SpecscoutError(f"networks per fold must be at least 1, not {networks}")
    numbers = iteration_numbers(project)
    number = (numbers[-1] + 1) if numbers else 1
    previous = members_of(iteration_path(project, numbers[-1])) if warm_start and numbers else []
    # a network of other folds was told "other" about rows it would now score: not a start
    previous = [m for m in previous if m.fold is None or (m.fold_seed, m.fold_nside)
                == (config.seed, FOLD_NSIDE)]
    folds = (0, 1) if domain else (None,)
    cells = sky_cells(project.store("pool")) if domain else None
    sets, counts = [], {}
    trained: dict[tuple, Fitted] = {}
    made = training_sets(project, DomainConfig(c.injected, c.negatives, c.artefacts,
                                               config.seed, c.targets) if domain else None,
                         folds, cells, labelled_set, exclude)
    for fold, (examples, counts_f) in zip(folds, made, strict=True):
        # the same fold's networks; for a fold, a whole-pool one does too (it was told
        # "other" of no pool row it did not have a label for)
        same = [m for m in previous if m.fold == fold] or [
            m for m in previous if m.fold is None]
        for k in range(networks):
            start = same[k % len(same)] if same else None
            fitted = fit(examples.x, examples.y, c.classes,
                         replace(config, seed=config.seed + 7919 * k),
                         warm_start=start.model.state_dict() if start else None,
                         log=(lambda h, f=fold, k=k: log({**h, "fold": f, "network": k}))
                         if log else None,
                         keys=examples.key, weight=examples.weight)
            fitted.fold, fitted.fold_seed, fitted.fold_nside = fold, config.seed, FOLD_NSIDE
            trained[(k, fold)] = fitted
        sets.append(examples)
        if counts:  # the first network's counts, with both networks' tallies
            for tally in ("injection_failures", "negatives_in_emission", "injected_kinds"):
                for k, v in counts_f.get(tally, {}).items():
                    counts[tally][k] = counts[tally].get(k, 0) + v
        else:
            counts = counts_f
    fits = [trained[key] for key in sorted(trained, key=lambda kf: (kf[0], kf[1] or 0))]
    path = iteration_path(project, number)
    # who writes it: clean_unfinished leaves a living training's folder alone
    tmp = iterations_dir(project) / (f".tmp-{number:04d}-{socket.gethostname()}-{os.getpid()}"
                                     f"-{uuid.uuid4().hex}")
    tmp.mkdir(parents=True)
    for i, fitted in enumerate(fits):
        fitted.save(tmp / ("model.pt" if i == 0 else f"model-{i}.pt"))
    _write_examples(tmp / "training.parquet", sets, c.classes)
    # the kept epoch's losses (no epoch improved, a loss of NaN: the last one's)
    best = [next((h for h in f.history if h["epoch"] == f.best_epoch), f.history[-1])
            for f in fits]
    losses = [b["train_loss"] for b in best if b["train_loss"] is not None]
    record(tmp, iteration=number, started=time.strftime("%Y-%m-%dT%H:%M:%S"),
           train={"config": asdict(config), "warm_start": bool(previous), "domain": domain,
                  "targets": c.targets, "fold_nside": FOLD_NSIDE if domain else None,
                  "networks": len(fits), **counts,
                  "validation": len(fits[0].val_rows),
                  "epochs": fits[0].history[-1]["epoch"], "best_epoch": fits[0].best_epoch,
                  "val_loss": float(np.mean([b["val_loss"] for b in best])),
                  "train_loss": float(np.mean(losses)) if losses else None,  # None: the start
                  "temperature": fits[0].temperature, "priors": list(fits[0].priors),
                  "seconds": round(sum(f.seconds for f in fits), 2)})
    if path.exists() and not (path / "model.pt").exists():  # a killed run's, incomplete
        shutil.rmtree(path)
    fsync_tree(tmp)
    os.rename(tmp, path)  # the iteration appears whole
    fsync_dir(path.parent)
    return number


def clean_unfinished(project: Project) -> list[str]:
    """Remove what trainings that were killed left (``iterations/.tmp-*``), while holding the
    project's lock (:meth:`~specscout.archive.project.Project.lock`): the folders of this
    host's processes that are gone (a training from Python holds no lock; one of another
    host is left to that host). Returns their names."""
    folder = iterations_dir(project)
    gone = []
    for path in sorted(folder.glob(".tmp-*")) if folder.is_dir() else []:
        owner = path.name.split("-", 2)[-1].rsplit("-", 2)  # host, pid, a random id
        if len(owner) == 3 and (owner[0] != socket.gethostname() or not owner[1].isdigit()
                                or _alive(int(owner[1]))):
            continue
        shutil.rmtree(path, ignore_errors=True)
        gone.append(path.name)
    return gone


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


#: EM's sample of the pool's scores, at most.
EM_ROWS = 1_000_000


def score_step(project: Project, number: int | None = None, prior_shift: bool | None = None,
               **options) -> Scores:
    """Score the pool with iteration ``number``'s model (default: the latest). With
    ``prior_shift`` (default: the project's setting) the probabilities are made relative to the
    pool's class priors, estimated by EM on the pool's scores (:mod:`.priors`)."""
    number = number or latest(project)
    path = iteration_path(project, number)
    members = members_of(path)
    fitted = members[0]
    scores = score_store(members, project.store("pool"), **options)
    priors = None
    prior_shift = project.config.prior_shift if prior_shift is None else prior_shift
    if len(scores.probabilities):
        # The pool's mix is estimated always (a figure for status and the report); the
        # probabilities are made relative to it only when asked.
        k = len(fitted.classes)
        trained = np.asarray(fitted.priors or np.full(k, 1 / k))
        # EM on at most a million rows (the priors of a random million are the pool's to
        # about 0.01 %): its cost does not grow with the archive
        probs = scores.probabilities
        sample = (np.sort(np.random.default_rng(0).choice(len(probs), EM_ROWS, replace=False))
                  if len(probs) > EM_ROWS else slice(None))
        em_input = np.asarray(probs[sample])
        pool_priors, steps = em_priors(lambda: in_chunks(em_input), trained)
        if prior_shift:
            for i in range(0, len(scores.probabilities), 1 << 18):
                block = scores.probabilities[i : i + (1 << 18)]
                block[:] = shift(block, trained, pool_priors)
        priors = {"training": [round(float(v), 6) for v in trained],
                  "pool": [round(float(v), 6) for v in pool_priors], "em_iterations": steps,
                  "applied": bool(prior_shift)}
    before = [n for n in scored_iterations(project) if n < number]
    changed = (churn(load_scores(project, before[-1])[1], scores.probabilities)
               if before else churn(scores.probabilities[:0], scores.probabilities))
    # Replaced whole: a reader that mapped the old file keeps reading the old one.
    write_with(path / "scores.npy", lambda fh: np.save(fh, scores.probabilities))
    if scores.bald is not None:
        write_with(path / "bald.npy", lambda fh: np.save(fh, scores.bald))
    predicted = np.bincount(scores.probabilities.argmax(1).astype(np.int64),
                            minlength=len(fitted.classes)) if len(scores.probabilities) else []
    record(path, score={"rows": len(scores.probabilities), "seconds": round(scores.seconds, 2),
                         "spectra_per_s": round(scores.rate, 1),
                         "mc_passes": options.get("mc_passes", 0),
                         "precision": options.get("precision", "float32"),
                         "priors": priors,
                         "churn": {"since": before[-1] if before else None, **changed},
                         "predicted": dict(zip(fitted.classes, map(int, predicted),
                                               strict=True)),
                         "mean_entropy": float(entropy(scores.probabilities).mean())
                         if len(scores.probabilities) else None})
    return scores


def excluded_rows(project: Project, before: int) -> np.ndarray:
    """Pool rows labelled by anyone, queued in an iteration before ``before``, chosen by hand
    for iteration ``before`` (kept when it is queried again), or drawn for an audit (which
    stays blind, and apart from training)."""
    labels = label_store(project)
    rows = {r["row"] for r in labels.history()}
    for n in iteration_numbers(project):
        if n < before:
            rows.update(q["row"] for q in labels.queue.batch(n))
        elif n == before:
            rows.update(q["row"] for q in labels.queue.batch(n) if q["strategy"] == SELECTION)
    rows.update(labels.audit_samples.drawn())
    return np.array(sorted(rows), dtype=np.int64)


def query_step(project: Project, strategy: str, k: int, number: int | None = None,
               seed: int = 0, exclude: np.ndarray | None = None) -> list[dict]:
    """Choose the query batch of iteration ``number`` and put it in the label queue.
    ``exclude``: pool rows never to propose (besides those labelled or queued before)."""
    start = time.perf_counter()
    number, probs = load_scores(project, number)
    path = iteration_path(project, number)
    pool = project.store("pool")
    allowed = np.setdiff1d(np.arange(len(probs)), excluded_rows(project, number))
    if exclude is not None:
        allowed = np.setdiff1d(allowed, exclude)
    bald = None
    if strategy == "bald" and (path / "bald.npy").exists():
        bald = np.load(path / "bald.npy", mmap_mode="r")[allowed]
    model = Fitted.load(path / "model.pt").model if strategy in ("diverse", "unusual") else None
    picked, scores = acquire(strategy, np.asarray(probs[allowed], dtype=np.float32), k,
                             rng=np.random.default_rng(seed),
                             target=tuple(range(1, len(project.config.classes))), bald=bald,
                             model=model, flux_of=lambda i: pool.flux(allowed[i]))
    rows = allowed[picked]
    batch = [{"rank": i, "row": int(r), "id": id_, "acquisition_score": float(s)}
             for i, (r, id_, s) in enumerate(zip(rows, pool.ids(rows), scores, strict=True))]
    label_store(project).queue.put(number, [b["row"] for b in batch],
                                   [b["id"] for b in batch],
                                   [b["acquisition_score"] for b in batch], strategy)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=["rank", "row", "id", "acquisition_score"])
    writer.writeheader()
    writer.writerows(batch)
    write_text(path / "query.csv", text.getvalue())
    record(path, query={"strategy": strategy, "k": k, "queued": len(batch), "seed": seed,
                         "candidates": len(allowed),
                         "seconds": round(time.perf_counter() - start, 3)})
    return batch
