"""The candidate catalogue: spectra of the target classes, grouped into objects by position and
cross-matched against reference catalogues.

A spectrum is a candidate of class c when a human labelled it c, or when no human labelled it
and the model's calibrated probability of c is the largest and at least ``threshold``. A human
label always wins over the model (a spectrum labelled "other" is never a candidate). Spectra
within ``radius`` of each other (friends of friends) are one object, as several LAMOST visits of
one star are. Objects are matched by position, never by designation text, to each reference
catalogue: known (with the catalogue and its type) or new.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.table import Table
from astropy.units import UnitsWarning

from specscout.archive.project import Project
from specscout.catalogue.lines import measured
from specscout.catalogue.objects import group, unit_vectors
from specscout.catalogue.references import crossmatch
from specscout.errors import SpecscoutError
from specscout.labels import label_store
from specscout.labels.store import agreed
from specscout.learn.iterations import load_scores
from specscout.learn.predictions import chunks, model_candidates
from specscout.learn.strategies import entropy
from specscout.spectra.kinds import EMISSION, KINDS
from specscout.spectra.measure import COLUMNS as MEASURED

#: Spectra named in an object's row; the spectra table lists every one with its object (a
#: star observed thousands of times must not make every row of the table that wide).
LISTED = 20

#: Units and UCDs of the exported columns (VOTable FIELD attributes).
COLUMNS = {
    "object": (None, "meta.id.parent", "object number in this catalogue"),
    "row": (None, "meta.id", "row of the spectrum in the project's pool"),
    "id": (None, "meta.id;meta.main", "spectrum id (file name)"),
    "obsid": (None, "meta.id", "LAMOST OBSID"),
    "designation": (None, "meta.id", "survey designation"),
    "ra": (u.deg, "pos.eq.ra;meta.main", "right ascension (ICRS)"),
    "dec": (u.deg, "pos.eq.dec;meta.main", "declination (ICRS)"),
    "snr": (None, "stat.snr", "signal-to-noise ratio"),
    "mjd": (u.day, "time.epoch", "MJD of the observation (of an object: the mean)"),
    "class": (None, "src.class", "candidate class (the label if any, else the prediction)"),
    "source": (None, "meta.code", "'label' (a human's) or 'model'"),
    "predicted": (None, "src.class", "the model's most probable class"),
    "uncertainty": (None, "stat.uncertainty", "entropy of the class probabilities (nat)"),
    "label": (None, "src.class", "current human label (empty if none)"),
    "annotators": (None, "meta.id", "who labelled it"),
    "n_spectra": (None, "meta.number", "spectra of this object among the candidates"),
    "spectra": (None, "meta.id", "ids of the object's spectra (the first 20; the spectra "
                                 "table has them all)"),
    "known": (None, "meta.code", "true if in a reference catalogue"),
    "catalogue": (None, "meta.ref", "reference catalogue(s) where it is known"),
    "catalogue_type": (None, "src.class", "type given by that catalogue"),
    "separation": (u.arcsec, "pos.angDistance", "distance to the catalogue entry"),
    "path": (None, "meta.ref.url", "file of the spectrum"),
    "flagged": (None, "meta.code", "its kind is set to 'flag' in the project's [targets]"),
    "unusual": (None, "stat.value", "how unusual its shape is among the candidates: the "
                                    "isolation forest's score on the network's features, 0-1"),
    "kinds": (None, "src.class", "the kinds of the object's spectra"),
}
#: The line measurement's columns (specscout.spectra.measure), in the catalogue.
LINE_COLUMNS = {k: v for k, v in MEASURED.items() if k not in ("status",)}
LINE_COLUMNS["lines_status"] = MEASURED["status"]
#: Kinds that are never listed unless asked for (--kind): no emission, or not a line.
NOT_LISTED = ("none", "artefact")


@dataclass
class Catalogue:
    spectra: Table  # one row per candidate spectrum
    objects: Table  # one row per object
    iteration: int
    threshold: float
    #: The model's candidates left out, by measured kind (none, artefact, a kind the
    #: project sets to "other", or one not asked for).
    set_aside: dict[str, int] = field(default_factory=dict)


def _describe(table: Table) -> Table:
    for name in table.colnames:
        if name.startswith("p_"):
            unit, ucd, text = None, "stat.probability", f"calibrated probability of {name[2:]}"
        elif name in COLUMNS:
            unit, ucd, text = COLUMNS[name]
        elif name in LINE_COLUMNS:
            unit, ucd, text = LINE_COLUMNS[name]
            unit = u.Unit(unit) if unit else None
        elif name.endswith("_separation"):
            unit, ucd = u.arcsec, "pos.angDistance"
            text = f"distance to the entry of {name.removesuffix('_separation')}"
        else:
            continue
        if unit is not None:
            table[name].unit = unit
        table[name].meta["ucd"] = ucd
        table[name].description = text
    return table


def model_rows(probabilities: np.ndarray, threshold: float, targets: Sequence[int]
               ) -> tuple[np.ndarray, np.ndarray]:
    """(rows, class) of the spectra the model proposes as candidates of ``targets``, read in
    chunks so that a pool of millions never needs the probabilities in float32 at once."""
    rows, classes = [], []
    for start, p in chunks(probabilities):
        best, proposed = model_candidates(p, threshold)
        hit = np.nonzero(proposed & np.isin(best, targets))[0]
        rows.append(hit + start)
        classes.append(best[hit].astype(np.int8))
    if not rows:
        return np.empty(0, np.int64), np.empty(0, np.int8)
    return np.concatenate(rows).astype(np.int64), np.concatenate(classes)


def select(model: tuple[np.ndarray, np.ndarray], current: dict[int, str],
           names: Sequence[str], targets: Sequence[int]
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, class, whether a human gave it) of the candidates: the model's, less every
    spectrum a human labelled, plus those labelled as a target class."""
    rows, cls = model
    labelled = np.fromiter(current, dtype=np.int64, count=len(current))
    keep = ~np.isin(rows, labelled)
    index = {c: i for i, c in enumerate(names)}
    human = {r: index[c] for r, c in current.items() if index.get(c) in targets}
    h_rows = np.fromiter(human, dtype=np.int64, count=len(human))
    h_cls = np.fromiter(human.values(), dtype=np.int8, count=len(human))
    all_rows = np.concatenate([rows[keep], h_rows])
    order = np.argsort(all_rows, kind="stable")
    return (all_rows[order], np.concatenate([cls[keep], h_cls])[order],
            np.concatenate([np.zeros(int(keep.sum()), bool), np.ones(len(h_rows), bool)])[order])


def listed_kinds(project: Project, kinds: Sequence[str] | None = None,
                 flagged: bool = True) -> set[str]:
    """The measured kinds a model candidate is listed with: ``kinds`` if given ("all": every
    kind), else every emission kind the project's ``[targets]`` does not set to "other", and
    "unknown" (not measured: nothing says it is not a line); ``flagged``: with the kinds set
    to "flag"."""
    if kinds:
        bad = set(kinds) - set(KINDS) - {"all"}
        if bad:
            raise SpecscoutError(f"unknown kind {sorted(bad)[0]!r}: one of "
                                 f"{', '.join(KINDS)} or all")
        chosen = set(KINDS) if "all" in kinds else set(kinds)
    else:
        chosen = {k for k, v in project.config.targets.items() if v != "other"} | {"unknown"}
    if not flagged:
        chosen -= {k for k, v in project.config.targets.items() if v == "flag"}
    return chosen


def build(project: Project, *, threshold: float = 0.5, radius_arcsec: float = 3.0,
          references: tuple[str | Path, ...] = (), iteration: int | None = None,
          classes: tuple[str, ...] | None = None, columns: tuple[str, ...] = (),
          workers: int | None = None, scheduler: str | None = None,
          kinds: Sequence[str] | None = None, flagged: bool = True,
          lines: bool = True, progress: bool = False) -> Catalogue:
    """The candidate catalogue of ``classes`` (default: every class but the first) from the
    scores of ``iteration`` (default: the latest) and the current labels, cross-matched with
    ``references`` (files or HATS catalogues, ``PATH@ARCSEC`` for a radius of their own;
    :mod:`.references`), bringing ``columns`` over; HATS catalogues are matched on Dask
    (``workers`` local processes or the cluster at ``scheduler``).

    Every candidate's lines are measured on its file (:mod:`.lines`; on Dask for many) and
    the model's candidates are listed by their measured kind (:func:`listed_kinds` of
    ``kinds`` and ``flagged``); a human's label lists a spectrum whatever its kind, unless
    ``kinds`` are asked for. ``lines`` False: nothing measured, every kind "unknown"."""
    names = tuple(project.config.classes)
    targets = classes or names[1:]
    unknown = set(targets) - set(names)
    if unknown:
        raise SpecscoutError(f"unknown classes {sorted(unknown)}; the project has {names}")
    chosen = listed_kinds(project, kinds, flagged)
    number, probs = load_scores(project, iteration)
    target_idx = [names.index(c) for c in targets]
    votes = label_store(project).votes()
    current = agreed(votes)
    rows, cls, by_human = select(model_rows(probs, threshold, target_idx), current, names,
                                 target_idx)
    found = _aligned(measured(project, rows, workers=workers, scheduler=scheduler,
                              progress=progress) if lines and len(rows) else None, rows)
    kind = found["kind"]
    keep = np.isin(kind, list(chosen)) | (by_human & (not kinds))
    set_aside = dict(Counter(kind[~keep].tolist()))
    rows, cls, by_human, kind = rows[keep], cls[keep], by_human[keep], kind[keep]
    pool = project.store("pool")
    meta = pool.records(rows, ["id", "obsid", "designation", "ra", "dec", "snr", "mjd",
                               "path"])
    p = np.asarray(probs[rows], dtype=np.float32).reshape(len(rows), len(names))
    label = [current[int(r)] if h else "" for r, h in zip(rows, by_human, strict=True)]
    spectra = Table({
        "row": rows, "id": meta["id"].to_pylist(), "obsid": meta["obsid"].to_numpy(),
        "designation": meta["designation"].to_pylist(),
        "ra": meta["ra"].to_numpy(zero_copy_only=False),
        "dec": meta["dec"].to_numpy(zero_copy_only=False),
        "snr": meta["snr"].to_numpy(zero_copy_only=False),
        "mjd": meta["mjd"].to_numpy(zero_copy_only=False),
        "class": np.asarray(names)[cls],
        "source": np.where(by_human, "label", "model"),
        "predicted": np.asarray(names)[p.argmax(1)] if len(p) else np.empty(0, str),
        **{f"p_{c}": p[:, i] for i, c in enumerate(names)},
        "uncertainty": entropy(p).astype(np.float32) if len(p) else np.empty(0, np.float32),
        "label": label,
        "annotators": [",".join(sorted(a for a, v in votes[int(r)].items() if v is not None))
                       if int(r) in votes else "" for r in rows],
        "path": meta["path"].to_pylist(),
        "flagged": np.array([project.config.targets.get(k) == "flag" for k in kind], bool),
        "unusual": unusual(project, number, rows),
        **{("lines_status" if k == "status" else k): v[keep] for k, v in found.items()},
    })
    spectra.add_column(group(spectra["ra"], spectra["dec"], radius_arcsec), name="object",
                       index=0)
    spectra.sort(["object", "row"])
    objects = _objects(spectra, targets)
    m = crossmatch(objects["ra"], objects["dec"], references, radius_arcsec, columns=columns,
                   mjd=objects["mjd"], workers=workers, scheduler=scheduler)
    objects["known"], objects["catalogue"] = m.known, m.catalogue
    objects["catalogue_type"], objects["separation"] = m.kind, m.separation
    for name, values in m.columns.items():
        objects[name] = values.astype(str) if values.dtype == object else values
    objects.meta["catalogues"] = m.notes
    at = np.asarray(spectra["object"])
    spectra["known"], spectra["catalogue"] = m.known[at], np.asarray(m.catalogue, dtype=str)[at]
    return Catalogue(_describe(spectra), _describe(objects), number, threshold, set_aside)


def _aligned(table, rows: np.ndarray) -> dict[str, np.ndarray]:
    """The measurement's columns for ``rows`` (in their order) from ``table`` (sorted by
    row; None: nothing measured), a row not in it as measured nothing and kind unknown."""
    from specscout.spectra.measure import empty_row

    blank = {**empty_row(), "kind": "unknown", "status": "not measured"}
    n = len(rows)
    at = np.full(n, -1, np.int64)
    if table is not None and table.num_rows:
        have = table["row"].to_numpy()
        pos = np.clip(np.searchsorted(have, rows), 0, len(have) - 1)
        at = np.where(have[pos] == rows, pos, -1)
    out = {}
    for name, value in blank.items():
        kind = str if isinstance(value, str) else type(value)
        dtype = object if kind is str else np.float32 if kind is float else kind
        column = np.full(n, value, dtype=dtype)
        if (at >= 0).any():
            values = table[name].to_numpy(zero_copy_only=False)[at[at >= 0]]
            column[at >= 0] = values
        out[name] = column.astype(str) if kind is str else column
    return out


def unusual(project: Project, number: int, rows: np.ndarray) -> np.ndarray:
    """How unusual each spectrum of ``rows`` is among them (0-1, 1 the oddest): an isolation
    forest (Liu, Ting & Zhou 2008) on the features of the network that scores it (for
    cross-fitted networks, each fold's spectra apart, by the other fold's network), scaled
    by rank. NaN where fewer than 20 spectra share a network: "unusual" means nothing."""
    out = np.full(len(rows), np.nan, np.float32)
    if len(rows) < UNUSUAL_AMONG:
        return out
    from specscout.learn.acquire import embedder
    from specscout.learn.domain import fold_of, sky_cells
    from specscout.learn.iterate import members_of
    from specscout.learn.iterations import iteration_path
    from specscout.learn.strategies import isolation

    rows = np.asarray(rows, np.int64)
    members = members_of(iteration_path(project, number))
    pool = project.store("pool")
    if len(members) > 1:
        folds = fold_of(sky_cells(pool, rows), members[0].fold_seed, members[0].fold_nside)
        groups = [(np.nonzero(folds == f)[0], next(m for m in members if m.fold != f))
                  for f in (0, 1)]
    else:
        groups = [(np.arange(len(rows)), members[0])]
    for idx, member in groups:
        if len(idx) < UNUSUAL_AMONG:
            continue
        embed = embedder(member.model, pool.flux)
        features = np.concatenate([embed(rows[idx[i : i + 4096]])
                                   for i in range(0, len(idx), 4096)])
        out[idx] = isolation(features)
    return out


#: Spectra that must share a network for "unusual" to mean something.
UNUSUAL_AMONG = 20


def _objects(spectra: Table, targets: tuple[str, ...]) -> Table:
    """One row per object of ``spectra`` (sorted by object, numbered 0..): the mean direction
    of its spectra, its majority class, the best signal-to-noise and probabilities, the kinds
    of its spectra, and the line measurement of its lead spectrum (the best signal-to-noise
    among those in emission, else among all)."""
    obj = np.asarray(spectra["object"])
    measured = [c for c in spectra.colnames if c in LINE_COLUMNS]
    columns = ("object", "designation", "ra", "dec", "class", "n_spectra", "source",
               *(f"p_{c}" for c in targets), "snr", "mjd", "spectra", "kinds", "flagged",
               "unusual", *measured)
    if not len(obj):
        return Table(names=columns, dtype=(int, str, float, float, str, int, str,
                                           *(float for _ in targets), float, float, str, str,
                                           bool, float,
                                           *(spectra[c].dtype for c in measured)))
    starts = np.flatnonzero(np.r_[True, obj[1:] != obj[:-1]])
    sizes = np.diff(np.r_[starts, len(obj)])
    xyz = np.add.reduceat(unit_vectors(spectra["ra"], spectra["dec"]), starts, axis=0)
    ra0 = np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0])) % 360
    dec0 = np.degrees(np.arctan2(xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1])))
    snr = np.asarray(spectra["snr"], float)
    best = _argmax_per_group(np.nan_to_num(snr, nan=-np.inf), starts)
    kind = np.asarray(spectra["kind"]) if "kind" in spectra.colnames else np.full(len(obj), "")
    emits = np.isin(kind, EMISSION)
    lead = _argmax_per_group(np.where(emits, 1e12, 0.0) + np.nan_to_num(snr, nan=-1e6), starts)
    names, cls = np.unique(np.asarray(spectra["class"]), return_inverse=True)
    counts = np.zeros((len(starts), len(names)), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(len(starts)), sizes), cls.ravel()), 1)
    ids = np.asarray(spectra["id"], dtype=object)
    unusual = np.asarray(spectra["unusual"], float) if "unusual" in spectra.colnames \
        else np.full(len(obj), np.nan)
    return Table({
        "object": obj[starts],
        "designation": np.asarray([str(d) for d in spectra["designation"][best]]),
        "ra": ra0, "dec": dec0, "class": names[counts.argmax(1)], "n_spectra": sizes,
        "source": np.where(np.logical_or.reduceat(np.asarray(spectra["source"]) == "label",
                                                  starts), "label", "model"),
        **{f"p_{c}": np.maximum.reduceat(np.asarray(spectra[f"p_{c}"], float), starts)
           for c in targets},
        "snr": np.fmax.reduceat(snr, starts),
        "mjd": _mean_per_group(np.asarray(spectra["mjd"], float), starts),
        "spectra": [",".join(ids[a : a + min(n, LISTED)]) + (f",+{n - LISTED} more"
                                                              if n > LISTED else "")
                    for a, n in zip(starts, sizes, strict=True)],
        "kinds": [",".join(sorted(set(kind[a : a + n].tolist())))
                  for a, n in zip(starts, sizes, strict=True)],
        "flagged": np.logical_or.reduceat(np.asarray(spectra["flagged"], bool), starts)
        if "flagged" in spectra.colnames else np.zeros(len(starts), bool),
        "unusual": np.fmax.reduceat(unusual, starts),
        **{c: np.asarray(spectra[c])[lead] for c in measured},
    })


def _mean_per_group(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The mean of the finite ``values`` of each group (NaN where none is)."""
    ok = np.isfinite(values)
    total = np.add.reduceat(np.where(ok, values, 0.0), starts)
    count = np.add.reduceat(ok.astype(np.int64), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _argmax_per_group(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The index of each group's largest value (the first of ties)."""
    group_of = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(values)]))
    order = np.lexsort((np.arange(len(values)), -values, group_of))
    return order[starts]


FORMATS = {".xml": "votable", ".vot": "votable", ".fits": "fits", ".csv": "ascii.csv",
           ".ecsv": "ascii.ecsv", ".parquet": "parquet"}


def write(table: Table, path: str | Path) -> Path:
    """Write ``table`` in the format its suffix names: .xml/.vot (VOTable with units and
    UCDs), .fits, .csv, .ecsv (CSV with units in a header), .parquet."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise SpecscoutError(f"{path}: unknown format; use one of {sorted(FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    out = table.copy(copy_data=False)
    if fmt == "fits":  # FITS tables take fixed-width text, not Python objects
        for name in out.colnames:
            if out[name].dtype == object:
                out[name] = out[name].astype(str)
    with warnings.catch_warnings():
        # VOUnit calls the Angstrom of equivalent widths deprecated; astronomers read it
        warnings.filterwarnings("ignore", message=".*Angstrom.*", category=UnitsWarning)
        out.write(path, format=fmt, overwrite=True)
    return path
