"""Running the iterations of active learning in a project: train -> score -> query ->
(labels) -> ... Each step is recorded in the iteration's directory (:mod:`.iterations`).

Training data: the labelled store (the initial set) plus every pool spectrum whose current label
in the label store is agreed. A query never proposes a spectrum already labelled or already
queued in an earlier iteration.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import time
import uuid
from dataclasses import asdict

import numpy as np

from specscout.archive.atomic import fsync_dir, fsync_tree, write_text, write_with
from specscout.archive.project import Project
from specscout.errors import SpecscoutError
from specscout.labels import label_store
from specscout.learn.acquire import acquire
from specscout.learn.iterations import (
    iteration_numbers,
    iteration_path,
    iterations_dir,
    latest,
    load_scores,
    record,
)
from specscout.learn.score import Scores, score_store
from specscout.learn.strategies import entropy
from specscout.learn.train import Fitted, TrainConfig, fit


def training_set(project: Project) -> tuple[np.ndarray, np.ndarray, dict]:
    """(spectra, class indices, counts) from the labelled store and the labelled pool rows."""
    classes = list(project.config.classes)
    xs, ys = [], []
    labelled = project.store("labelled")
    counts = {"labelled_set": 0, "pool_labels": 0}
    if len(labelled):
        meta = labelled.meta(columns=["row", "label"])
        rows = np.asarray(meta["row"].to_numpy())
        xs.append(labelled.flux(rows).astype(np.float32))
        ys.append(np.array([classes.index(v) for v in meta["label"].to_pylist()]))
        counts["labelled_set"] = len(rows)
    current = label_store(project).current()
    if current:
        rows = np.array(sorted(current), dtype=np.int64)
        xs.append(project.store("pool").flux(rows).astype(np.float32))
        ys.append(np.array([classes.index(current[r]) for r in rows]))
        counts["pool_labels"] = len(rows)
    if not xs:
        raise SpecscoutError("no labels yet: ingest a labelled set (--labels) or import labels")
    y = np.concatenate(ys)
    counts["per_class"] = {c: int((y == i).sum()) for i, c in enumerate(classes)}
    return np.concatenate(xs), y, counts


def train_step(project: Project, config: TrainConfig, warm_start: bool = False,
               log=None) -> int:
    """Train a new model on every label so far; returns the new iteration's number."""
    x, y, counts = training_set(project)
    numbers = iteration_numbers(project)
    number = (numbers[-1] + 1) if numbers else 1
    state = None
    if warm_start and numbers:
        state = Fitted.load(iteration_path(project, numbers[-1]) / "model.pt").model.state_dict()
    fitted = fit(x, y, project.config.classes, config, warm_start=state, log=log)
    path = iteration_path(project, number)
    tmp = iterations_dir(project) / f".tmp-{number:04d}-{uuid.uuid4().hex}"
    tmp.mkdir(parents=True)
    fitted.save(tmp / "model.pt")
    best = fitted.history[fitted.best_epoch - 1]
    record(tmp, iteration=number, started=time.strftime("%Y-%m-%dT%H:%M:%S"),
            train={"config": asdict(config), "warm_start": bool(state), **counts,
                   "epochs": len(fitted.history), "best_epoch": fitted.best_epoch,
                   "val_loss": best["val_loss"], "train_loss": best["train_loss"],
                   "temperature": fitted.temperature, "seconds": round(fitted.seconds, 2)})
    if path.exists() and not (path / "model.pt").exists():  # a killed run's, incomplete
        shutil.rmtree(path)
    fsync_tree(tmp)
    os.rename(tmp, path)  # the iteration appears whole
    fsync_dir(path.parent)
    return number


def score_step(project: Project, number: int | None = None, **options) -> Scores:
    """Score the pool with iteration ``number``'s model (default: the latest)."""
    number = number or latest(project)
    path = iteration_path(project, number)
    fitted = Fitted.load(path / "model.pt")
    scores = score_store(fitted, project.store("pool"), **options)
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
                         "predicted": dict(zip(fitted.classes, map(int, predicted),
                                               strict=True)),
                         "mean_entropy": float(entropy(scores.probabilities).mean())
                         if len(scores.probabilities) else None})
    return scores


def excluded_rows(project: Project, before: int) -> np.ndarray:
    """Pool rows labelled by anyone, or queued in an iteration before ``before``."""
    labels = label_store(project)
    rows = {r["row"] for r in labels.history()}
    for n in iteration_numbers(project):
        if n < before:
            rows.update(q["row"] for q in labels.queue.batch(n))
    return np.array(sorted(rows), dtype=np.int64)


def query_step(project: Project, strategy: str, k: int, number: int | None = None,
               seed: int = 0) -> list[dict]:
    """Choose the query batch of iteration ``number`` and put it in the label queue."""
    start = time.perf_counter()
    number, probs = load_scores(project, number)
    path = iteration_path(project, number)
    pool = project.store("pool")
    allowed = np.setdiff1d(np.arange(len(probs)), excluded_rows(project, number))
    bald = None
    if strategy == "bald" and (path / "bald.npy").exists():
        bald = np.load(path / "bald.npy", mmap_mode="r")[allowed]
    model = Fitted.load(path / "model.pt").model if strategy == "diverse" else None
    picked, scores = acquire(strategy, np.asarray(probs[allowed], dtype=np.float32), k,
                             rng=np.random.default_rng(seed),
                             target=tuple(range(1, len(project.config.classes))), bald=bald,
                             model=model, flux_of=lambda i: pool.flux(allowed[i]))
    rows = allowed[picked]
    found = pool.lookup("row", rows)
    id_of = dict(zip(found["row"].to_pylist(), found["id"].to_pylist(), strict=True))
    batch = [{"rank": i, "row": int(r), "id": id_of[int(r)], "acquisition_score": float(s)}
             for i, (r, s) in enumerate(zip(rows, scores, strict=True))]
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
