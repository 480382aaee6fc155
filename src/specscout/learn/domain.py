"""Training examples in the survey's own domain: real pool spectra with injected lines as the
positives, real pool spectra as the negatives.

A labelled set from another telescope, even resolution matched, is not the survey: its
photospheres, noise and pipeline artefacts differ, and a network trained on it alone calls a
share of the survey's normal stars candidates. Here the positives are pool spectra with an
H-alpha profile of the simulator's families injected on their own pixels
(:mod:`specscout.simulate.inject`), kept where the spectrum then shows the line in emission
(:func:`~specscout.simulate.inject.emission_kind`), and preprocessed exactly as at ingest; the
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

import math
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from specscout.archive.project import Project
from specscout.errors import ReadError, SpecscoutError
from specscout.simulate.artefacts import add_artefact, draw_artefact
from specscout.simulate.inject import (
    InjectionError,
    draw_injection,
    effective_resolution,
    emission_kind,
    inject,
    shown,
)
from specscout.simulate.profiles import FAMILIES, KIND_OF
from specscout.spectra.preprocess import prepare
from specscout.spectra.readers import read_all

#: Up to this many hosts, their files are read once and kept.
CACHED_HOSTS = 2000
#: Where a training example comes from.
ORIGINS = ("labelled-set", "injected", "artefact", "pool-negative", "human", "catalogue")


@dataclass(frozen=True)
class DomainConfig:
    positives: int = 1500  # injected spectra per class that has a line family
    negatives: int = 4000  # pool spectra taken as "other"
    artefacts: int = 500  # pool spectra with an artefact added, taken as "other"
    seed: int = 0
    #: What each kind of emission is to the network: "target" or "flag" (taught as its
    #: class) or "other" (taught as not a target); the project's ``[targets]``.
    settings: dict = field(default_factory=dict)


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


def sky_cells(pool, rows: np.ndarray | None = None) -> np.ndarray:
    """A cell id per pool row (in row order; of ``rows`` only, if given): its HEALPix cell,
    or for a spectrum without a position a hash of its file (so a file's spectra still
    share one)."""
    from astropy_healpix import HEALPix

    from specscout.archive.index import path_hash

    rows = np.arange(len(pool)) if rows is None else np.asarray(rows, np.int64)
    ra, dec = pool.positions(rows)  # the parts' sky indexes, not the metadata
    cells = np.empty(len(ra), np.uint64)
    ok = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90)
    if ok.any():
        from astropy import units as u

        cells[ok] = HEALPix(CELL_NSIDE, order="nested").lonlat_to_healpix(
            (ra[ok] % 360) * u.deg, dec[ok] * u.deg).astype(np.uint64)
    if (~ok).any():
        missing = np.nonzero(~ok)[0]
        found = pool.records(rows[missing], columns=["path"]).to_pydict()
        path_of = dict(zip(found["row"], found["path"], strict=True))
        paths = [path_of[int(r)] for r in rows[missing]]
        cells[missing] = path_hash(paths) | np.uint64(1 << 63)  # apart from the sky's ids
    return cells


#: The cells folds are made of (HEALPix nside; :func:`fold_of` takes coarser ones too). A
#: nebula spans degrees: with these 14' cells its stars fall in both folds (88-100 % of the
#: nebulae of Hou et al. 2016's H II-region stars, ``benchmarks/bench_folds.py``), so the
#: negatives are vetted instead: one whose own spectrum shows emission of a kind taught as a
#: target is no negative. Coarser cells (3.7 degrees: 34-63 %) kept whole plates in one fold,
#: and a plate's sky-subtraction residuals, never taught as "other", were listed (the network
#: listed 23 of the 237 normal stars of the real pool of ``bench_real.py`` against 7 with
#: these; docs/training.md).
FOLD_NSIDE = 256


def fold_of(cells: np.ndarray, seed: int, nside: int = FOLD_NSIDE) -> np.ndarray:
    """The fold (0 or 1) of each sky cell (:func:`sky_cells`), by a hash of (the cell of
    ``nside`` holding it, seed). The network of fold f takes its negatives and hosts from
    fold f only, and scores the rows of the other fold: no spectrum, nor another spectrum of
    its star or its nebula, is scored by a network that was told it is "other"
    (cross-fitting; the few unknown targets among the negatives are still found)."""
    cells = np.asarray(cells, np.uint64)
    if nside != CELL_NSIDE:  # nested ids: a parent cell is the child's id shifted
        shift = np.uint64(2 * int(math.log2(CELL_NSIDE // nside)))
        sky = (cells >> np.uint64(63)) == 0  # the rest are files' hashes, kept whole
        cells = np.where(sky, cells >> shift, cells)
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
    """Injected positives, artefacts and pool negatives for ``project``; ``exclude``: pool
    rows never to draw (the labelled ones); ``target_probability``: the latest model's
    probability that each pool row is a target (weights the negatives); ``fold``: draw only
    from that fold's rows (:func:`fold_of` of ``cells``, :func:`sky_cells`). Returns the
    examples and counts."""
    classes = project.config.classes
    targets = injectable(classes)
    if not targets:
        raise SpecscoutError(f"no class of {list(classes)} has a line family to inject "
                             f"({sorted(set(FAMILIES.values()))})")
    pool = project.store("pool")
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
    made, vetted, failures = _from_files(project, pool, order, targets, config, cells,
                                         neg_rows)
    wanted = config.positives * len(targets)
    positives = int(np.sum(made.y > 0))
    if positives < max(1, wanted // 10):
        raise SpecscoutError(
            f"only {positives} of {wanted} lines could be injected into pool spectra "
            f"(failures: {dict(failures) or 'none'}); the pool's files must be readable from "
            f"here to train in its domain; or train without it (--no-domain)")
    # a negative that shows H-alpha emission of a kind taught as a target is no negative
    dropped = {r: k for r, k in vetted.items() if config.settings.get(k, "target") != "other"}
    drawn = set(neg_rows.tolist())
    neg_rows = neg_rows[~np.isin(neg_rows, np.fromiter(dropped, np.int64, len(dropped)))]
    weight = np.ones(neg_rows.size, np.float32)
    if target_probability is not None:  # rows the pool gained since keep weight 1
        scored = neg_rows < len(target_probability)
        weight[scored] = np.clip(1 - target_probability[neg_rows[scored]], 0, 1)
    negatives = Examples(pool.flux(neg_rows).astype(np.float32),
                         np.zeros(neg_rows.size, np.int64),
                         ["pool-negative"] * neg_rows.size,
                         pool_key(cells, neg_rows), weight, neg_rows.astype(np.int64))
    origins = np.array(made.origin)
    counts = {"injected": int((origins == "injected").sum()),
              "artefacts": int((origins == "artefact").sum()),
              "pool_negatives": len(negatives),
              "negatives_in_emission": dict(Counter(
                  k for r, k in dropped.items() if r in drawn)),
              "injected_kinds": dict(Counter(KIND_OF[d["family"]] for d, o in
                                             zip(made.line, made.origin, strict=True)
                                             if o == "injected")),
              "injection_failures": failures,
              "negative_weight_mean": round(float(weight.mean()), 4) if weight.size else None}
    return Examples.join([made, negatives], pool.points), counts


#: The share of each kind among the injected lines of a class with more than one kind.
KIND_MIX = {"stellar": 0.6, "nebular": 0.25, "core": 0.15}
#: A host takes an emission core only with an absorption line of at least this net EW (A):
#: the A, B and F stars whose shells, weak Ae emission and chromospheres show them.
CORE_HOST_EW = 2.0


def _quotas(classes: tuple[str, ...], targets: list[int], config: DomainConfig
            ) -> dict[tuple[int, str], int]:
    """How many lines of each (class, kind) to inject, and of each artefact ((0, "artefact")):
    a class of the emission families has every kind in :data:`KIND_MIX`; a kind set to
    "other" is injected as that, besides the positives."""
    quotas: dict[tuple[int, str], int] = {}
    for c in targets:
        if classes[c] != "emission":
            quotas[(c, "stellar")] = config.positives
            continue
        taught = {k: v for k, v in KIND_MIX.items() if config.settings.get(k) != "other"}
        total = sum(taught.values())
        for kind, share in KIND_MIX.items():
            if kind in taught:
                quotas[(c, kind)] = round(config.positives * share / total)
            else:
                quotas[(0, kind)] = round(config.positives * share)
    if config.artefacts:
        quotas[(0, "artefact")] = config.artefacts
    return quotas


def _from_files(project: Project, pool, hosts: np.ndarray, targets: list[int],
                config: DomainConfig, cells: np.ndarray, negatives: np.ndarray
                ) -> tuple[Examples, dict[int, str], dict[str, int]]:
    """The examples made from the pool's files: lines injected on ``hosts`` in order (again
    from the first while more are wanted), by the quotas of :func:`_quotas`, and artefacts.
    Every host, and every one of the ``negatives`` besides, is measured first
    (:func:`~specscout.simulate.inject.emission_kind`): one that shows emission itself takes
    nothing, and is returned with its kind (the negatives leave it out). A line is kept where
    the spectrum then shows it in emission (a kind taught as "other": shows it as that kind)
    and preprocesses cleanly; an artefact where the spectrum shows no emission. Gives up
    after ``4 x wanted`` tries that made nothing (a line not shown counts as one), or a pass
    over the hosts that made nothing. Returns (examples, {row: kind} of the hosts and
    negatives in emission, failures).
    """
    classes = project.config.classes
    preprocess = project.config.preprocess()
    rng = np.random.default_rng([config.seed, 1])
    quotas = _quotas(classes, targets, config)
    done = dict.fromkeys(quotas, 0)
    wanted = sum(quotas.values())
    xs, ys, keys, rows, lines, origins = [], [], [], [], [], []
    failures: dict[str, int] = defaultdict(int)
    vetted: dict[int, str] = {}
    measured: dict[int, dict] = {}  # hosts' measurements, for every pass
    # a small pool is used again and again: its files are read once
    cache: dict[str, dict | ReadError] | None = {} if hosts.size <= CACHED_HOSTS else None
    tried = made = 0
    step = max(64, wanted // 4)
    at, made_in_pass = 0, 0
    while made < wanted and hosts.size and tried - made < 4 * wanted:
        if at >= hosts.size:  # another pass over the hosts, with other lines
            if not made_in_pass:
                break
            at, made_in_pass = 0, 0
        batch = hosts[at : at + step]
        at += batch.size
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
                tried += len(by_path[path])
                continue
            for r in by_path[path]:
                if made >= wanted:
                    break
                spectrum = spectra.get(r["id"])
                if spectrum is None:
                    failures["id-not-in-file"] += 1
                    tried += 1
                    continue
                host = measured.get(r["row"])
                if host is None:
                    host = measured[r["row"]] = _vet(spectrum, failures)
                    if host[0]:
                        vetted[r["row"]] = host[0]
                if r["row"] in vetted:
                    continue  # an emission-line star: no host for a line, no negative
                open_ = [q for q in quotas if done[q] < quotas[q]
                         and (q[1] != "core" or host[1] >= CORE_HOST_EW)]
                if not open_:
                    if not [q for q in quotas if done[q] < quotas[q]]:
                        break
                    continue
                tried += 1
                c, kind = min(open_, key=lambda q: (done[q] / quotas[q], q))
                try:
                    if kind == "artefact":
                        line = draw_artefact(rng)
                        changed = add_artefact(spectrum, line)
                        if emission_kind(changed)[0]:  # a bad run can look like a line
                            failures[f"artefact-shows-emission:{line['family']}"] += 1
                            continue
                    else:
                        line = draw_injection(rng, classes[c or targets[0]],
                                              effective_resolution(spectrum), kind)
                        changed = inject(spectrum, line, line["rv"], rng)
                        if c:
                            seen, net = emission_kind(changed)
                        else:  # taught as "other": only where it shows as its own kind
                            row = shown(changed)
                            seen = row["kind"] if row["kind"] == kind else ""
                            net = row["ha_ew"]
                        if not seen:  # no line an observer would call one (of this kind)
                            failures[f"line-not-shown:{line['family']}"] += 1
                            continue
                        line["net_ew"] = round(float(net), 3)
                        line["shown_as"] = seen
                    prepared = prepare(changed, preprocess)
                except InjectionError as exc:
                    failures[exc.reason] += 1
                    continue
                except Exception as exc:  # as ingest: one odd spectrum must not stop it
                    failures[f"error:{type(exc).__name__}"] += 1
                    continue
                if not prepared.ok:
                    failures["flagged"] += 1
                    continue
                done[(c, kind)] += 1
                made += 1
                made_in_pass += 1
                xs.append(prepared.flux)
                ys.append(c)
                keys.append(f"sky:{int(cells[r['row']])}")
                rows.append(r["row"])
                lines.append(line)
                origins.append("artefact" if kind == "artefact" else "injected")
    # every negative is vetted, also those no line needed as a host
    unvetted = [int(r) for r in negatives if int(r) not in measured]
    for rec in pool.records(np.array(unvetted, np.int64), columns=["path", "id"]).to_pylist() \
            if unvetted else []:
        try:
            spectrum = {s.meta.id: s for s in read_all(rec["path"])}.get(rec["id"])
        except ReadError as exc:
            failures[f"negative-not-vetted:{exc.reason}"] += 1
            continue
        if spectrum is None:
            failures["negative-not-vetted:id-not-in-file"] += 1
            continue
        kind, _ = _vet(spectrum, failures)
        if kind:
            vetted[int(rec["row"])] = kind
    x = np.array(xs, np.float32).reshape(-1, pool.points)
    return (Examples(x, np.array(ys, np.int64), origins, keys, None, np.array(rows, np.int64),
                     lines), vetted, dict(failures))


#: What each pool spectrum showed, by (file, id, the file's size and time): a process that
#: trains again (the demo, an experiment) measures a host once. Cleared when this full
#: (~500 bytes an entry: 25 MB at most).
VETTED_MAX = 50_000
_VETTED: dict[tuple, tuple[str, float]] = {}


def _vet(spectrum, failures: dict[str, int]) -> tuple[str, float]:
    """(the kind of emission a pool spectrum shows, "" for none; its net EW): one that cannot
    be measured counts as none (and is counted)."""
    try:
        stat = os.stat(spectrum.meta.path)
        key = (spectrum.meta.path, spectrum.meta.id, stat.st_size, stat.st_mtime_ns)
    except (OSError, TypeError):
        key = None
    if key is not None and key in _VETTED:
        return _VETTED[key]
    try:
        found = emission_kind(spectrum)
    except Exception as exc:  # one odd spectrum must not stop a training
        failures[f"vetting-error:{type(exc).__name__}"] += 1
        return "", float("nan")
    if key is not None:
        if len(_VETTED) >= VETTED_MAX:
            _VETTED.clear()
        _VETTED[key] = found
    return found
