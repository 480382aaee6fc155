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

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
from astropy import units as u
from astropy.coordinates import SkyCoord, search_around_sky
from astropy.table import Table
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from specscout.archive.project import Project
from specscout.catalogue.predictions import chunks, model_candidates
from specscout.errors import SpecscoutError
from specscout.labels import label_store
from specscout.learn.iterate import load_scores
from specscout.learn.strategies import entropy

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
    "class": (None, "src.class", "candidate class (the label if any, else the prediction)"),
    "source": (None, "meta.code", "'label' (a human's) or 'model'"),
    "predicted": (None, "src.class", "the model's most probable class"),
    "uncertainty": (None, "stat.uncertainty", "entropy of the class probabilities (nat)"),
    "label": (None, "src.class", "current human label (empty if none)"),
    "annotators": (None, "meta.id", "who labelled it"),
    "n_spectra": (None, "meta.number", "spectra of this object among the candidates"),
    "spectra": (None, "meta.id", "ids of the object's spectra"),
    "known": (None, "meta.code", "true if in a reference catalogue"),
    "catalogue": (None, "meta.ref", "reference catalogue(s) where it is known"),
    "catalogue_type": (None, "src.class", "type given by that catalogue"),
    "separation": (u.arcsec, "pos.angDistance", "distance to the catalogue entry"),
    "path": (None, "meta.ref.url", "file of the spectrum"),
}


@dataclass
class Catalogue:
    spectra: Table  # one row per candidate spectrum
    objects: Table  # one row per object
    iteration: int
    threshold: float


def _describe(table: Table) -> Table:
    for name in table.colnames:
        if name.startswith("p_"):
            unit, ucd, text = None, "stat.probability", f"calibrated probability of {name[2:]}"
        elif name in COLUMNS:
            unit, ucd, text = COLUMNS[name]
        else:
            continue
        if unit is not None:
            table[name].unit = unit
        table[name].meta["ucd"] = ucd
        table[name].description = text
    return table


def group(ra: np.ndarray, dec: np.ndarray, radius: u.Quantity) -> np.ndarray:
    """Object number (0..) of each position: friends of friends within ``radius``."""
    n = len(ra)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    coords = SkyCoord(ra * u.deg, dec * u.deg)
    i, j, _, _ = search_around_sky(coords, coords, radius)
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    # Number objects by their first spectrum, so the numbering follows the pool's order.
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(np.argsort(first))
    return order[labels]


def read_reference(path: str | Path) -> tuple[str, SkyCoord, np.ndarray]:
    """(name, positions, types) of a reference catalogue file (CSV, VOTable or FITS) with
    RA/Dec columns in degrees or sexagesimal text."""
    path = Path(path)
    if not path.is_file():
        raise SpecscoutError(f"{path}: no such catalogue file")
    fmt = {".csv": "ascii.csv", ".xml": "votable", ".vot": "votable"}.get(path.suffix.lower())
    try:
        table = Table.read(path, format=fmt) if fmt else Table.read(path)
    except Exception as exc:
        raise SpecscoutError(f"{path}: cannot read it as a table ({exc})") from exc
    names = {c.lower(): c for c in table.colnames}

    def find(options: tuple[str, ...]) -> str | None:
        return next((names[o] for o in options if o in names), None)

    ra = find(("ra", "raj2000", "_raj2000", "ra_icrs", "radeg", "ra_deg"))
    dec = find(("dec", "dej2000", "_dej2000", "de_icrs", "decdeg", "dec_deg", "de"))
    if ra is None or dec is None:
        raise SpecscoutError(f"{path}: no RA/Dec columns among {table.colnames}")
    if table[ra].dtype.kind in "US":
        coords = SkyCoord(table[ra], table[dec], unit=(u.hourangle, u.deg))
    else:
        coords = SkyCoord(np.asarray(table[ra], float) * u.deg,
                          np.asarray(table[dec], float) * u.deg)
    kind = next((names[c] for c in names if "objtype" in c), None) or \
        next((names[c] for c in names if "type" in c or c in ("class", "otype")), None)
    types = (np.array([str(v) if v is not np.ma.masked else "" for v in table[kind]])
             if kind else np.full(len(table), "", dtype=object))
    return path.stem, coords, types


def build(project: Project, *, threshold: float = 0.5, radius_arcsec: float = 3.0,
          references: tuple[str | Path, ...] = (), iteration: int | None = None,
          classes: tuple[str, ...] | None = None) -> Catalogue:
    """The candidate catalogue of ``classes`` (default: every class but the first) from the
    scores of ``iteration`` (default: the latest) and the current labels."""
    names = tuple(project.config.classes)
    targets = classes or names[1:]
    unknown = set(targets) - set(names)
    if unknown:
        raise SpecscoutError(f"unknown classes {sorted(unknown)}; the project has {names}")
    number, probs = load_scores(project, iteration)
    target_idx = [names.index(c) for c in targets]
    # Chunked so that a pool of millions never needs the probabilities in float32 at once.
    predicted = np.empty(len(probs), dtype=np.int8)
    by_model = np.empty(len(probs), dtype=bool)
    for start, p in chunks(probs):
        best, proposed = model_candidates(p, threshold)
        predicted[start : start + len(p)] = best
        by_model[start : start + len(p)] = proposed & np.isin(best, target_idx)

    labels = label_store(project)
    current = labels.current()
    annotators: dict[int, set[str]] = {}
    for r in labels.history():
        if r["label"] is not None and not r["audit"]:
            annotators.setdefault(r["row"], set()).add(r["annotator"])
    labelled_rows = np.array(sorted(current), dtype=np.int64)
    if len(labelled_rows):
        by_model[labelled_rows] = False  # a human's word replaces the model's
    rows = np.union1d(np.nonzero(by_model)[0],
                      [r for r, c in current.items() if c in targets]).astype(np.int64)

    pool = project.store("pool")
    meta = pool.meta(columns=["row", "id", "obsid", "designation", "ra", "dec", "snr", "path"],
                     filter=pc.field("row").isin(rows)).sort_by("row")
    p = np.asarray(probs[rows], dtype=np.float32).reshape(len(rows), len(names))
    label = [current.get(int(r), "") for r in rows]
    cls = [lab or names[int(predicted[r])] for r, lab in zip(rows, label, strict=True)]
    spectra = Table({
        "row": rows, "id": meta["id"].to_pylist(), "obsid": meta["obsid"].to_numpy(),
        "designation": meta["designation"].to_pylist(),
        "ra": meta["ra"].to_numpy(zero_copy_only=False),
        "dec": meta["dec"].to_numpy(zero_copy_only=False),
        "snr": meta["snr"].to_numpy(zero_copy_only=False),
        "class": cls, "source": ["label" if lab else "model" for lab in label],
        "predicted": [names[int(predicted[r])] for r in rows],
        **{f"p_{c}": p[:, i] for i, c in enumerate(names)},
        "uncertainty": entropy(p).astype(np.float32) if len(p) else np.empty(0, np.float32),
        "label": label,
        "annotators": [",".join(sorted(annotators.get(int(r), ()))) for r in rows],
        "path": meta["path"].to_pylist(),
    })
    radius = radius_arcsec * u.arcsec
    has_pos = np.isfinite(spectra["ra"]) & np.isfinite(spectra["dec"])
    obj = np.full(len(spectra), -1, dtype=np.int64)
    obj[has_pos] = group(np.asarray(spectra["ra"])[has_pos], np.asarray(spectra["dec"])[has_pos],
                         radius)
    # Spectra without a position are objects of their own.
    n_pos = obj.max() + 1 if has_pos.any() else 0
    obj[~has_pos] = n_pos + np.arange(int((~has_pos).sum()))
    spectra.add_column(obj, name="object", index=0)
    spectra.sort(["object", "row"])
    objects = _objects(spectra, targets)
    _crossmatch(objects, references, radius)
    spectra = _with_known(spectra, objects)
    return Catalogue(_describe(spectra), _describe(objects), number, threshold)


def _objects(spectra: Table, targets: tuple[str, ...]) -> Table:
    """One row per object of ``spectra`` (sorted by object): the mean direction of its
    spectra, its majority class, the best signal-to-noise and probabilities."""
    obj = np.asarray(spectra["object"])
    if not len(obj):
        return Table(names=("object", "designation", "ra", "dec", "class", "n_spectra",
                            "source", *(f"p_{c}" for c in targets), "snr", "spectra"),
                     dtype=(int, str, float, float, str, int, str,
                            *(float for _ in targets), float, str))
    starts = np.flatnonzero(np.r_[True, obj[1:] != obj[:-1]])
    stops = np.r_[starts[1:], len(obj)]
    ra, dec = np.radians(np.asarray(spectra["ra"], float)), np.radians(
        np.asarray(spectra["dec"], float))
    xyz = np.add.reduceat(np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra),
                                    np.sin(dec)], axis=1), starts, axis=0)
    ra0 = np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0])) % 360
    dec0 = np.degrees(np.arctan2(xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1])))
    rows = []
    for i, (a, b) in enumerate(zip(starts, stops, strict=True)):
        s = spectra[a:b]
        classes, counts = np.unique(np.asarray(s["class"]), return_counts=True)
        snr = np.asarray(s["snr"], float)
        rows.append({
            "object": int(obj[a]), "designation": str(s["designation"][int(np.argmax(snr))]),
            "ra": float(ra0[i]), "dec": float(dec0[i]), "class": str(classes[np.argmax(counts)]),
            "n_spectra": len(s), "source": "label" if "label" in s["source"] else "model",
            **{f"p_{c}": float(np.max(s[f"p_{c}"])) for c in targets},
            "snr": float(np.nanmax(snr)), "spectra": ",".join(s["id"]),
        })
    return Table(rows=rows)


def _crossmatch(objects: Table, references: tuple[str | Path, ...],
                radius: u.Quantity) -> None:
    n = len(objects)
    known = np.zeros(n, dtype=bool)
    catalogue = [""] * n
    kind = [""] * n
    separation = np.full(n, np.nan)
    if n and references:
        coords = SkyCoord(np.asarray(objects["ra"]) * u.deg, np.asarray(objects["dec"]) * u.deg)
        finite = np.isfinite(np.asarray(objects["ra"], float))
        for ref in references:
            name, ref_coords, types = read_reference(ref)
            if len(ref_coords) == 0:
                continue
            idx, sep, _ = coords.match_to_catalog_sky(ref_coords)
            hit = (sep <= radius) & finite
            for i in np.nonzero(hit)[0]:
                catalogue[i] = ",".join(filter(None, [catalogue[i], name]))
                kind[i] = kind[i] or types[idx[i]]
                if not known[i] or sep[i].arcsec < separation[i]:
                    separation[i] = sep[i].arcsec
                known[i] = True
    objects["known"] = known
    objects["catalogue"] = catalogue
    objects["catalogue_type"] = kind
    objects["separation"] = separation


def _with_known(spectra: Table, objects: Table) -> Table:
    known = dict(zip(objects["object"], objects["known"], strict=True))
    cat = dict(zip(objects["object"], objects["catalogue"], strict=True))
    spectra["known"] = [bool(known[o]) for o in spectra["object"]]
    spectra["catalogue"] = [str(cat[o]) for o in spectra["object"]]
    return spectra


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
    out.write(path, format=fmt, overwrite=True)
    return path
