"""Known objects as labels: the pool spectra that match a reference catalogue by position are
labelled with the catalogue's class, by the annotator ``catalogue:NAME``.

Such labels are training labels (never audit labels), so the audit's strata leave their rows
out as they do every labelled row. A person who later labels one of them differently makes a
disagreement, which is reported and kept out of training, not guessed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from specscout.archive.project import Project
from specscout.catalogue.references import crossmatch, reference
from specscout.errors import SpecscoutError
from specscout.labels import CATALOGUE_ANNOTATOR, label_store


def label_from_catalogue(project: Project, path: str | Path, cls: str,
                         radius_arcsec: float = 3.0, name: str | None = None) -> dict:
    """Label ``cls`` on every pool spectrum within ``radius_arcsec`` of an entry of the
    catalogue ``path`` (CSV, VOTable, FITS or a HATS catalogue). Returns counts: entries,
    spectra matched, labels added, already given, and rows where a person's label differs."""
    classes = project.config.classes
    if cls not in classes:
        raise SpecscoutError(f"class {cls!r} is not one of {list(classes)}")
    if radius_arcsec <= 0:
        raise SpecscoutError(f"the radius must be positive, not {radius_arcsec}")
    ref = reference(path)
    annotator = f"{CATALOGUE_ANNOTATOR}{name or ref.name}"
    pool = project.store("pool")
    rows = np.arange(len(pool))
    ra, dec = pool.positions(rows)
    ok = np.isfinite(ra) & np.isfinite(dec)
    epochs = pool.meta(columns=["row", "mjd"]).sort_by("row")["mjd"]  # for proper motions
    m = crossmatch(ra, dec, [ref], radius_arcsec,
                   mjd=epochs.to_numpy(zero_copy_only=False).astype(float))
    matched = m.known
    labels = label_store(project)
    hit = np.nonzero(matched)[0]
    votes = labels.latest(rows[hit].tolist())
    found = pool.records(hit, columns=["id"])
    ids = dict(zip(found["row"].to_pylist(), found["id"].to_pylist(), strict=True))
    new, already, conflicts = [], 0, 0
    for i in hit:
        r = int(rows[i])
        by = votes.get(r, {})
        if by.get(annotator) == cls:
            already += 1
            continue
        if any(v not in (None, cls) for a, v in by.items() if a != annotator):
            conflicts += 1
        new.append({"spectrum": ids[int(i)], "row": r, "label": cls, "annotator": annotator,
                    "comment": f"within {radius_arcsec:g} arcsec of {ref.name}"})
    labels.add_many(new)
    return {"annotator": annotator, "entries": m.rows[ref.name], "matched": int(hit.size),
            "added": len(new), "already": already, "conflicts": conflicts,
            "no_position": int((~ok).sum())}
