"""Labels to and from CSV files."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from specscout.archive.store import LOOKUP_KEYS, Store
from specscout.errors import SpecscoutError
from specscout.labels.schema import labels_table
from specscout.labels.store import LabelStore


def export_csv(labels: LabelStore, path: str | Path) -> int:
    """Every label row, oldest first; returns how many."""
    rows = labels.history()
    with Path(path).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[c.name for c in labels_table.columns])
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "time": r["time"].isoformat() if r["time"] else ""})
    return len(rows)


def import_csv(labels: LabelStore, path: str | Path, store: Store, classes: Sequence[str],
               annotator: str = "csv", audit: bool = False) -> int:
    """Labels from a CSV with a ``label`` column and one of ``row``, ``id``, ``obsid`` or
    ``designation`` naming pooled spectra of ``store``. Every line must resolve to exactly
    one spectrum and a known class, or nothing is imported."""
    path = Path(path)
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields = set(reader.fieldnames or ())
        key = next((k for k in LOOKUP_KEYS if k in fields), None)
        if "label" not in fields or key is None:
            raise SpecscoutError(f"{path}: needs a 'label' column and one of row, id, "
                                 f"obsid, designation; has {sorted(fields)}")
        lines = list(enumerate(reader, start=2))
    asked = []
    for line, rec in lines:
        if rec["label"].strip() not in classes:
            raise SpecscoutError(f"{path}:{line}: label {rec['label'].strip()!r} is not one "
                                 f"of {list(classes)}")
        value = rec[key].strip()
        if key in ("row", "obsid") and not value.isdigit():
            raise SpecscoutError(f"{path}:{line}: {key} {value!r} is not a number")
        asked.append(int(value) if key in ("row", "obsid") else value)
    found = store.lookup(key, asked)
    hits: dict = {}
    for v, row, id_ in zip(found["value"].to_pylist(), found["row"].to_pylist(),
                           found["id"].to_pylist(), strict=True):
        hits.setdefault(v, []).append((row, id_))
    out = []
    for (line, rec), value in zip(lines, asked, strict=True):
        match = hits.get(value, [])
        if len(match) != 1:
            raise SpecscoutError(f"{path}:{line}: {key} {value!r} matches {len(match)} "
                                 f"pooled spectra, not one")
        (row, id_), = match
        out.append({"spectrum": id_, "row": row, "label": rec["label"].strip(),
                    "annotator": annotator, "audit": audit,
                    "comment": rec.get("comment", "") or ""})
    return labels.add_many(out)
