"""Training examples in the survey's own domain: real pool spectra with injected lines as the
positives, real pool spectra as the negatives.

A labelled set from another telescope, even resolution matched, is not the survey: its
photospheres, noise and pipeline artefacts differ, and a network trained on it alone calls a
share of the survey's normal stars candidates. Here the positives are pool spectra with an
H-alpha profile of the simulator's families injected on their own pixels
(:mod:`specscout.simulate.inject`), kept where the spectrum then shows the line in emission
(:func:`~specscout.simulate.inject.shows_emission`), and preprocessed exactly as at ingest; the
negatives are pool spectra as they are. The pool is >= 99 % "other", but not all of it: a
negative that the latest model thinks likely a target is down-weighted by that probability
(the few unknown positives among the negatives are thereby mostly ignored, a simple form of
positive-unlabelled learning), and spectra that anyone labelled are never drawn.

Which pool spectra serve is decided by a hash of their row and the seed, not by a draw over
the pool's current size: as the pool grows the hosts mostly stay the same, so that one
iteration's examples are the next one's, and a warm start keeps validating on what it never
trained on.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from specscout.archive.project import Project
from specscout.errors import ReadError, SpecscoutError
from specscout.simulate.inject import (
    InjectionError,
    draw_injection,
    effective_resolution,
    inject,
    net_line,
    shows_emission,
)
from specscout.simulate.profiles import FAMILIES
from specscout.spectra.preprocess import prepare
from specscout.spectra.readers import read_all

#: Up to this many hosts, their files are read once and kept.
CACHED_HOSTS = 2000
#: Where a training example comes from.
ORIGINS = ("labelled-set", "injected", "pool-negative", "human", "catalogue")


@dataclass(frozen=True)
class DomainConfig:
    positives: int = 1500  # injected spectra per class that has a line family
    negatives: int = 4000  # pool spectra taken as "other"
    seed: int = 0


@dataclass
class Examples:
    """Training examples: spectra, class indices, origin, a stable key (which decides the
    validation split), a loss weight, and what was injected."""

    x: np.ndarray
    y: np.ndarray
    origin: list[str] = field(default_factory=list)
    key: list[str] = field(default_factory=list)
    weight: np.ndarray | None = None
    row: np.ndarray | None = None  # pool row of the spectrum (-1: not from the pool)
    line: list[dict] = field(default_factory=list)  # injected line parameters, {} for none

    def __post_init__(self) -> None:
        n = len(self.y)
        self.weight = np.ones(n, np.float32) if self.weight is None else self.weight
        self.row = np.full(n, -1, np.int64) if self.row is None else self.row
        self.line = self.line or [{} for _ in range(n)]

    def __len__(self) -> int:
        return len(self.y)

    @staticmethod
    def join(parts: list[Examples], points: int) -> Examples:
        parts = [p for p in parts if len(p)]
        if not parts:
            return Examples(np.empty((0, points), np.float32), np.empty(0, np.int64))
        return Examples(np.concatenate([p.x for p in parts]),
                        np.concatenate([p.y for p in parts]),
                        [o for p in parts for o in p.origin], [k for p in parts for k in p.key],
                        np.concatenate([p.weight for p in parts]),
                        np.concatenate([p.row for p in parts]),
                        [d for p in parts for d in p.line])


def _splitmix(rows: np.ndarray, seed: int) -> np.ndarray:
    z = np.asarray(rows, dtype=np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15) % 2**64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def ranked_rows(n: int, seed: int) -> np.ndarray:
    """Rows 0..n-1 ordered by a hash of (row, seed) (splitmix64): a random order in which a
    row's place does not depend on ``n``."""
    return np.argsort(_splitmix(np.arange(n), seed), kind="stable")


#: Sky cells of about 14 arcmin (HEALPix nside 256): every spectrum of one star (a file's
#: coadd and exposures, repeat visits) is in one cell but for the rare star on a border.
CELL_NSIDE = 256


def sky_cells(pool) -> np.ndarray:
    """A cell id per pool row (in row order): its HEALPix cell, or for a spectrum without a
    position a hash of its file (so a file's spectra still share one)."""
    from astropy_healpix import HEALPix

    from specscout.archive.index import path_hash

    ra, dec = pool.positions(np.arange(len(pool)))  # the parts' sky indexes, not the metadata
    cells = np.empty(len(ra), np.uint64)
    ok = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90)
    if ok.any():
        from astropy import units as u

        cells[ok] = HEALPix(CELL_NSIDE, order="nested").lonlat_to_healpix(
            (ra[ok] % 360) * u.deg, dec[ok] * u.deg).astype(np.uint64)
    if (~ok).any():
        rows = np.nonzero(~ok)[0]
        paths = pool.records(rows, columns=["path"])["path"].to_pylist()
        cells[rows] = path_hash(paths) | np.uint64(1 << 63)  # apart from the sky's ids
    return cells


def fold_of(cells: np.ndarray, seed: int) -> np.ndarray:
    """The fold (0 or 1) of each sky cell, by a hash of (cell, seed). The network of fold f
    takes its negatives and hosts from fold f only, and scores the rows of the other fold: no
    spectrum, nor another spectrum of its star, is scored by a network that was told it is
    "other" (cross-fitting; the few unknown targets among the negatives are still found)."""
    return (_splitmix(cells, seed ^ 0x5DEECE66D) >> np.uint64(63)).astype(np.int8)


def pool_key(cells: np.ndarray, rows: np.ndarray) -> list[str]:
    """The validation-split key of pool spectra: their sky cell, so that a star's epochs
    and its injected copies are on one side of the split."""
    return [f"sky:{int(c)}" for c in cells[np.asarray(rows, np.int64)]]


def injectable(classes: tuple[str, ...]) -> list[int]:
    """Indices of the classes that have a line family to inject."""
    return [i for i, c in enumerate(classes) if i and c in set(FAMILIES.values())]


def domain_examples(project: Project, config: DomainConfig, exclude: np.ndarray,
                    target_probability: np.ndarray | None = None,
                    fold: int | None = None, cells: np.ndarray | None = None
                    ) -> tuple[Examples, dict]:
    """Injected positives and pool negatives for ``project``; ``exclude``: pool rows never to
    draw (the labelled ones); ``target_probability``: the latest model's probability that each
    pool row is a target (weights the negatives); ``fold``: draw only from that fold's rows
    (:func:`fold_of` of ``cells``, :func:`sky_cells`). Returns the examples and counts."""
    classes = project.config.classes
    targets = injectable(classes)
    if not targets:
        raise SpecscoutError(f"no class of {list(classes)} has a line family to inject "
                             f"({sorted(set(FAMILIES.values()))})")
    pool = project.store("pool")
    n_pos = config.positives * len(targets)
    if len(pool) < 10:
        raise SpecscoutError(f"the pool holds {len(pool)} spectra: too few to train on its "
                             f"domain; ingest the survey first (or train without --domain)")
    cells = sky_cells(pool) if cells is None else cells
    # the rows the cells were made for: an ingest that commits meanwhile adds rows not drawn
    order = ranked_rows(len(cells), config.seed)
    order = order[~np.isin(order, exclude)]
    if fold is not None:
        order = order[fold_of(cells[order], config.seed) == fold]
    # The hosts of the injections are the negatives themselves first (a star with and without
    # a line teaches the line and nothing else), then further rows; a small pool is used again
    # with other lines. A host and its injected copies share a key, hence a side of the split.
    neg_rows = np.sort(order[: config.negatives])

    weight = np.ones(neg_rows.size, np.float32)
    if target_probability is not None:  # rows the pool gained since keep weight 1
        scored = neg_rows < len(target_probability)
        weight[scored] = np.clip(1 - target_probability[neg_rows[scored]], 0, 1)
    negatives = Examples(pool.flux(neg_rows).astype(np.float32),
                         np.zeros(neg_rows.size, np.int64),
                         ["pool-negative"] * neg_rows.size,
                         pool_key(cells, neg_rows), weight, neg_rows.astype(np.int64))

    positives, failures = _injected(project, pool, order, targets, n_pos, config.seed, cells)
    if len(positives) < max(1, n_pos // 10):
        raise SpecscoutError(
            f"only {len(positives)} of {n_pos} lines could be injected into pool spectra "
            f"(failures: {dict(failures) or 'none'}); the pool's files must be readable from "
            f"here to train in its domain; or train without it (--no-domain)")
    counts = {"injected": len(positives), "pool_negatives": len(negatives),
              "injection_failures": failures,
              "negative_weight_mean": round(float(weight.mean()), 4) if weight.size else None}
    return Examples.join([positives, negatives], pool.points), counts


def _injected(project: Project, pool, hosts: np.ndarray, targets: list[int], wanted: int,
              seed: int, cells: np.ndarray) -> tuple[Examples, dict[str, int]]:
    """``wanted`` injected spectra, classes in turn over ``targets``, on ``hosts`` in order
    (again from the first while more are wanted) whose file reads and whose spectrum takes a
    line, shows it in emission and preprocesses cleanly. Gives up after ``4 * wanted`` tries
    that made none (a line not shown counts as one), or a pass over the hosts that made none."""
    classes = project.config.classes
    preprocess = project.config.preprocess()
    rng = np.random.default_rng([seed, 1])
    xs, ys, keys, rows, lines = [], [], [], [], []
    failures: dict[str, int] = defaultdict(int)
    # a small pool is used again and again: its files are read once
    cache: dict[str, dict | ReadError] | None = {} if hosts.size <= CACHED_HOSTS else None
    tried = 0
    step = max(64, wanted // 4)
    at, made_in_pass = 0, 0
    while len(ys) < wanted and hosts.size and tried - len(ys) < 4 * wanted:
        if at >= hosts.size:  # another pass over the hosts, with other lines
            if not made_in_pass:
                break
            at, made_in_pass = 0, 0
        batch = hosts[at : at + step]
        at += batch.size
        tried += batch.size
        records = pool.records(batch, columns=["path", "id"]).to_pylist()
        by_path: dict[str, list[dict]] = defaultdict(list)
        for r in records:
            by_path[r["path"]].append(r)
        for path in sorted(by_path, key=lambda p: by_path[p][0]["row"]):
            spectra = cache.get(path) if cache is not None else None
            if spectra is None:
                try:
                    spectra = {s.meta.id: s for s in read_all(path)}
                except ReadError as exc:
                    spectra = exc
                if cache is not None:
                    cache[path] = spectra
            if isinstance(spectra, ReadError):
                failures[f"read:{spectra.reason}"] += len(by_path[path])
                continue
            for r in by_path[path]:
                if len(ys) >= wanted:
                    break
                spectrum = spectra.get(r["id"])
                if spectrum is None:
                    failures["id-not-in-file"] += 1
                    continue
                c = targets[len(ys) % len(targets)]
                try:
                    line = draw_injection(rng, classes[c], effective_resolution(spectrum))
                    shown = inject(spectrum, line, line["rv"], rng)
                    net = net_line(shown, line["rv"])
                    if not np.isfinite(net[0]):
                        failures["no-line-pixels"] += 1
                        continue
                    if not shows_emission(*net):  # no line an observer would call one
                        failures[f"line-not-shown:{line['family']}"] += 1
                        continue
                    line["net_ew"] = round(net[0], 3)
                    prepared = prepare(shown, preprocess)
                except InjectionError as exc:
                    failures[exc.reason] += 1
                    continue
                except Exception as exc:  # as ingest: one odd spectrum must not stop it
                    failures[f"error:{type(exc).__name__}"] += 1
                    continue
                if not prepared.ok:
                    failures["flagged"] += 1
                    continue
                xs.append(prepared.flux)
                ys.append(c)
                keys.append(f"sky:{int(cells[r['row']])}")
                rows.append(r["row"])
                lines.append(line)
                made_in_pass += 1
    x = np.array(xs, np.float32).reshape(-1, pool.points)
    return Examples(x, np.array(ys, np.int64), ["injected"] * len(ys), keys, None,
                    np.array(rows, np.int64), lines), dict(failures)
