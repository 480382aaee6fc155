"""The pool in the network's eyes: a 2-D map of its penultimate features, and the labelled
spectra nearest to a spectrum.

The map of an iteration (``specscout map``) lays out, by UMAP, the features of every labelled
pool spectrum, every candidate and a random sample of the rest of the pool, at most
``MAX_POINTS`` in all (labelled and candidates each take at most a quarter, drawn at random
beyond that), and keeps it beside the iteration (``map.npz``): it is computed once, and the web
app serves it (the latest iteration that has one). Embedding and UMAP grow with the points, not
with the pool; the pool's scores are read once, in chunks, for its candidates.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import numpy as np

from specscout.archive.atomic import write_with
from specscout.archive.project import Project
from specscout.errors import SpecscoutError
from specscout.labels import label_store
from specscout.learn.iterations import (
    MAP_FILE,
    iteration_path,
    load_scores,
    scored_iterations,
)
from specscout.learn.predictions import chunks, model_candidates
from specscout.learn.strategies import entropy
from specscout.learn.train import Fitted

MAX_POINTS = 100_000
#: Kinds of points: why a spectrum is on the map.
SAMPLE, LABELLED, CANDIDATE = 0, 1, 2


def embed(fitted: Fitted, flux_of, rows: np.ndarray, batch: int = 4096) -> np.ndarray:
    """The network's penultimate features (float32) of pool ``rows``, read ``batch`` at a
    time by ``flux_of(rows)``."""
    import torch

    model = fitted.model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(rows), batch):
            x = torch.as_tensor(np.asarray(flux_of(rows[i : i + batch]), dtype=np.float32))
            out.append(model.embed(x).numpy())
    return np.concatenate(out) if out else np.empty((0, 0), np.float32)


def map_rows(n: int, labelled: np.ndarray, candidates: np.ndarray, hidden: np.ndarray,
             max_points: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(rows, kind) of the map: labelled rows, candidates and a random sample of the other
    rows of a pool of ``n``, never one of ``hidden`` (the audit's, which are blind)."""
    def some(rows: np.ndarray, k: int) -> np.ndarray:
        rows = np.setdiff1d(rows, hidden)
        return np.sort(rng.choice(rows, k, replace=False)) if len(rows) > k else rows

    lab = some(np.unique(labelled), max_points // 4)
    cand = some(np.setdiff1d(candidates, lab), max_points // 4)
    taken = np.concatenate([lab, cand, np.asarray(hidden, np.int64)])
    room = min(max_points - len(lab) - len(cand), n - len(np.unique(taken)))
    rest = np.empty(0, np.int64)
    if room > 0 and n <= 4 * max_points:
        rest = some(np.setdiff1d(np.arange(n), taken), room)
    elif room > 0:  # a large pool: drawn without a mask of it, a few draws more than needed
        found: set[int] = set()
        skip = set(taken.tolist())
        while len(found) < room:
            draw = rng.integers(0, n, 2 * (room - len(found)) + 16)
            found.update(int(r) for r in draw if int(r) not in skip)
        rest = np.sort(rng.choice(np.fromiter(found, np.int64), room, replace=False))
    rows = np.concatenate([lab, cand, rest])
    kind = np.concatenate([np.full(len(lab), LABELLED), np.full(len(cand), CANDIDATE),
                           np.full(len(rest), SAMPLE)]).astype(np.uint8)
    return rows, kind


def layout(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """(n, 2) UMAP coordinates of ``features`` (first reduced to 50 dimensions by PCA)."""
    import umap
    from sklearn.decomposition import PCA

    if len(features) < 5:
        raise SpecscoutError(f"a map needs at least 5 spectra, not {len(features)}")
    x = features
    if x.shape[1] > 50 and len(x) > 50:
        x = PCA(50, random_state=seed).fit_transform(x)
    reducer = umap.UMAP(n_neighbors=min(15, len(x) - 1), min_dist=0.1, random_state=seed)
    with warnings.catch_warnings():  # a seed makes it run on one thread, as wanted
        warnings.filterwarnings("ignore", "n_jobs value", UserWarning)
        return reducer.fit_transform(x).astype(np.float32)


def compute_map(project: Project, number: int | None = None, max_points: int = MAX_POINTS,
                threshold: float = 0.5, seed: int = 0,
                say: Callable[[str], None] | None = None) -> dict:
    """Compute and keep the map of iteration ``number`` (default: the latest scored);
    ``say`` is told of each stage as it starts."""
    from specscout.learn.iterate import members_of

    say = say or (lambda _: None)
    start = time.perf_counter()
    scored = scored_iterations(project)
    if not scored:
        raise SpecscoutError(f"{project.path} has no scored iteration: run 'specscout iterate'")
    number = number or scored[-1]
    _, probs = load_scores(project, number)
    say(f"choosing the spectra of the map among the {len(probs):,} of the pool")
    labels = label_store(project)
    candidates = np.concatenate([first + np.nonzero(model_candidates(p, threshold)[1])[0]
                                 for first, p in chunks(probs)] or [np.empty(0, np.int64)])
    audit = labels.audit_samples.sample()
    rows, kind = map_rows(len(probs), np.array(sorted(labels.current()), np.int64),
                          candidates.astype(np.int64),
                          np.array([s["row"] for s in audit], np.int64), max_points,
                          np.random.default_rng(seed))
    pool = project.store("pool")
    fitted = members_of(iteration_path(project, number))[0]
    say(f"the network's features of {len(rows):,} spectra")
    features = embed(fitted, pool.flux, rows)
    say("their UMAP layout")
    xy = layout(features, seed)
    p = np.asarray(probs[rows], np.float32)
    info = {"iteration": number, "points": len(rows), "seconds":
            round(time.perf_counter() - start, 1)}
    write_with(iteration_path(project, number) / MAP_FILE, lambda fh: np.savez(
        fh, rows=rows, kind=kind, xy=xy, predicted=p.argmax(1).astype(np.uint8),
        entropy=entropy(p).astype(np.float32), iteration=number))
    return info


class Neighbours:
    """The labelled pool spectra in the features of one network, for the nearest to a
    spectrum (Euclidean), with their ids and spectra kept (float16) to show them without
    reading the store again. Labels given later are added as they come: each addition
    publishes a new snapshot whole, so a reader never sees one half made."""

    def __init__(self, fitted: Fitted, flux_of, ids_of) -> None:
        self.fitted, self.flux_of, self.ids_of = fitted, flux_of, ids_of
        # rows, features, squared norms, spectra, ids, {row: position}
        self.snapshot: tuple = (np.empty(0, np.int64), np.empty((0, 0), np.float32),
                                np.empty(0, np.float32), np.empty((0, 0), np.float16), [], {})

    def add(self, rows: np.ndarray, batch: int = 4096) -> None:
        """Add labelled ``rows`` (one writer at a time: the caller serialises additions)."""
        old_rows, features, _, flux, ids, _ = self.snapshot
        rows = np.setdiff1d(np.asarray(rows, np.int64), old_rows)
        if not len(rows):
            return
        parts_f, parts_x, new_ids = [features] if len(old_rows) else [], \
            [flux] if len(old_rows) else [], list(ids)
        for i in range(0, len(rows), batch):
            b = rows[i : i + batch]
            x = np.asarray(self.flux_of(b), np.float32)
            parts_f.append(embed(self.fitted, lambda _, x=x: x, b, batch=len(b)))
            parts_x.append(x.astype(np.float16))
            new_ids += list(self.ids_of(b))
        all_rows = np.concatenate([old_rows, rows])
        f = np.concatenate(parts_f)
        self.snapshot = (all_rows, f, (f**2).sum(1), np.concatenate(parts_x), new_ids,
                         {int(r): k for k, r in enumerate(all_rows)})

    def nearest(self, row: int, allowed, k: int = 5) -> list[tuple[int, float, str, np.ndarray]]:
        """(row, distance, id, spectrum) of the ``k`` nearest of the ``allowed`` labelled rows
        to ``row`` (never itself)."""
        rows, features, norms, flux, ids, _ = self.snapshot  # one consistent snapshot
        if not len(rows):
            return []
        q = embed(self.fitted, self.flux_of, np.array([row]))[0]
        # one float32 product ranks them all; the nearest few are measured exactly
        approx = norms - 2 * (features @ q)
        few = min(len(approx), 4 * k + 32)
        for shortlist in (np.argpartition(approx, few - 1)[:few], np.arange(len(approx))):
            exact = np.sqrt(((features[shortlist] - q) ** 2).sum(1, dtype=np.float64))
            out = [(int(rows[i]), float(d), ids[i], flux[i].astype(np.float32)) for i, d in
                   sorted(zip(shortlist, exact, strict=True), key=lambda t: t[1])
                   if int(rows[i]) != row and int(rows[i]) in allowed][:k]
            if len(out) == k or len(shortlist) == len(approx):
                return out
        return out
