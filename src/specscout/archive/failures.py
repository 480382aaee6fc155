"""The failure ledger of a store: which files were flagged or failed, less those that a later
record processed again (``ingest --retry-failed``, or a retry merged into the same part by a
compaction)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from specscout.archive import index
from specscout.archive.index import path_hash
from specscout.archive.store import META_SCHEMA, Part, Store


def failures(store: Store) -> pa.Table:
    """Every file that was flagged or failed, with its reason, and not processed again
    later (``ingest --retry-failed``)."""
    columns = ["path", "status", "reason", "detail", "flags"]
    found = []
    for k, part in enumerate(store.parts):
        t = store._dataset([part]).to_table(columns=columns,
                                           filter=pc.field("status") != "ok")
        if len(t):
            found.append((k, t))
    tables = []
    later, added_from = index.HashSet(), len(store.parts)  # the paths of parts[added_from:]
    for k, t in reversed(found):
        for p in store.parts[k + 1 : added_from]:
            later.add(np.asarray(store.index(p, "paths")))
        added_from = k + 1
        hashes = path_hash(t["path"].to_pylist())
        again = later.contains(hashes) | _again_within(store, store.parts[k], t, hashes)
        tables.append(t.filter(pa.array(~again)))
    return pa.concat_tables(tables[::-1]) if tables else \
        META_SCHEMA.empty_table().select(columns)

def _again_within(store: Store, part: Part, failed: pa.Table, hashes: np.ndarray
                  ) -> np.ndarray:
    """Which ``failed`` records of ``part`` its own later records process again (a
    compaction merges a failure and its retry into one part). A file's records are
    consecutive, so a later record of the same path in another run of records is a
    retry; the other spectra of the same file are not."""
    paths = np.asarray(store.index(part, "paths"))
    twice = (np.searchsorted(paths, hashes, "right") - np.searchsorted(paths, hashes)) > 1
    if not twice.any():
        return twice
    every = store._dataset([part]).to_table(columns=["path", "status"])
    names, status = every["path"].to_pylist(), every["status"].to_pylist()
    run, runs, last_run = -1, [], {}
    for i, name in enumerate(names):
        if i == 0 or name != names[i - 1]:
            run += 1
        runs.append(run)
        last_run[name] = run
    return np.array([runs[i] != last_run[names[i]] for i in range(len(names))
                     if status[i] != "ok"], dtype=bool)

