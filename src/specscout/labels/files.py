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
            writer.writerow({k: _cell(v) for k, v in r.items()}
                            | {"time": r["time"].isoformat() if r["time"] else ""})
    return len(rows)


def _cell(value):
    """A value as a spreadsheet will not run it: text that starts as a formula would
    (= + - @, a tab or a carriage return) gets a leading apostrophe (OWASP's advice)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def import_csv(labels: LabelStore, path: str | Path, store: Store, classes: Sequence[str],
               annotator: str = "csv", audit: bool = False) -> dict[str, int]:
    """Labels from a CSV with a ``label`` column and one of ``row``, ``id``, ``obsid`` or
    ``designation`` naming pooled spectra of ``store``. Every line must resolve to exactly
    one spectrum and a known class, and a spectrum named twice must have one label, or
    nothing is imported. A label the annotator has already given that spectrum is not added
    again (importing a file twice adds nothing). Returns {"added": n, "unchanged": m}."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:  # a spreadsheet's BOM too
            reader = csv.DictReader(fh)
            fields = {f.strip() for f in reader.fieldnames or ()}
            key = next((k for k in LOOKUP_KEYS if k in fields), None)
            if "label" not in fields or key is None:
                raise SpecscoutError(f"{path}: needs a 'label' column and one of row, id, "
                                     f"obsid, designation; has {sorted(fields)}")
            lines = [(line, {k.strip(): (v or "") for k, v in rec.items() if k})
                     for line, rec in enumerate(reader, start=2)]
    except UnicodeDecodeError as exc:
        raise SpecscoutError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8 "
                             f"CSV") from None
    except csv.Error as exc:
        raise SpecscoutError(f"{path}: not a CSV file ({exc})") from None
    asked = []
    for line, rec in lines:
        if rec["label"].strip() not in classes:
            raise SpecscoutError(f"{path}:{line}: label {rec['label'].strip()!r} is not one "
                                 f"of {list(classes)}")
        value = rec[key].strip()
        if key in ("row", "obsid") and not value.isdigit():
            raise SpecscoutError(f"{path}:{line}: {key} {value!r} is not a {key} (a whole "
                                 f"number, 0 or more)")
        asked.append(int(value) if key in ("row", "obsid") else value)
    found = store.lookup(key, asked)
    hits: dict = {}
    for v, row, id_ in zip(found["value"].to_pylist(), found["row"].to_pylist(),
                           found["id"].to_pylist(), strict=True):
        hits.setdefault(v, []).append((row, id_))
    out: dict[int, dict] = {}
    first: dict[int, int] = {}
    for (line, rec), value in zip(lines, asked, strict=True):
        match = hits.get(value, [])
        if len(match) != 1:
            raise SpecscoutError(f"{path}:{line}: {key} {value!r} matches {len(match)} "
                                 f"pooled spectra, not one")
        (row, id_), = match
        label = rec["label"].strip()
        if row in out and out[row]["label"] != label:
            raise SpecscoutError(f"{path}: lines {first[row]} and {line} label {id_} "
                                 f"{out[row]['label']!r} and {label!r}: say which, once")
        first.setdefault(row, line)
        out[row] = {"spectrum": id_, "row": row, "label": label, "annotator": annotator,
                    "audit": audit, "comment": rec.get("comment", "") or ""}
    given = labels.votes(audit=audit)
    new = [r for r in out.values() if given.get(r["row"], {}).get(annotator) != r["label"]]
    return {"added": labels.add_many(new), "unchanged": len(out) - len(new)}
