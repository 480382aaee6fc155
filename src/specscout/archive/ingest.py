"""Ingest: spectrum files -> read + preprocess on Dask workers -> committed parts of a store.

The driver streams the paths (never a list of all of them), skips the files the store has
already seen, keeps a bounded number of batches in flight on a ``dask.distributed`` cluster
(a local one of processes by default, or an existing one by address), and commits results
part by part (see :mod:`specscout.archive.store`). Every file ends in exactly one record: pooled,
flagged (with the quality flags) or failed (with the read error's reason).
"""

from __future__ import annotations

import csv
import glob
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np

from specscout.archive.cluster import dask_client, map_batches
from specscout.archive.store import Store, path_hash
from specscout.errors import ReadError, SpecscoutError
from specscout.spectra.preprocess import PreprocessConfig, describe, prepare
from specscout.spectra.readers import read

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
LIST_SUFFIXES = (".txt", ".lst", ".list")


# --- which files ---------------------------------------------------------------------------


def _walk(directory: str) -> Iterator[str]:
    """FITS files below ``directory``, in a stable order, without listing the whole tree."""
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(FITS_SUFFIXES):
                yield os.path.join(root, name)


def iter_paths(sources: Iterable[str | Path]) -> Iterator[str]:
    """Absolute paths of the files that ``sources`` name: directories (recursively, FITS files
    only), glob patterns, lists of paths (``.txt``/``.lst``/``.list``, one per line, relative to
    the list) or single files."""
    for source in map(str, sources):
        if glob.has_magic(source):
            for match in sorted(glob.iglob(source, recursive=True)):
                yield from (_walk(match) if os.path.isdir(match) else [os.path.abspath(match)])
        elif os.path.isdir(source):
            yield from (os.path.abspath(p) for p in _walk(source))
        elif source.lower().endswith(LIST_SUFFIXES) and os.path.isfile(source):
            base = os.path.dirname(os.path.abspath(source))
            with open(source) as fh:
                for line in fh:
                    line = line.strip()
                    if line and not line.startswith("#"):
                        yield os.path.abspath(os.path.join(base, line))
        else:
            yield os.path.abspath(source)


# --- labels of a labelled set --------------------------------------------------------------


def load_labels(csv_path: str | Path, classes: Sequence[str],
                label_map: dict[str, str] | None = None) -> dict[str, str]:
    """Labels from a CSV with a ``label`` column and a ``path`` (relative to the CSV) or ``id``
    column. ``label_map`` translates the CSV's labels (e.g. ``{"0": "emission"}``); rows whose
    label maps to ``""`` are left out. Returns {absolute path or id: class}."""
    csv_path = Path(csv_path)
    out: dict[str, str] = {}
    with csv_path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields = set(reader.fieldnames or ())
        if "label" not in fields or not fields & {"path", "id"}:
            raise SpecscoutError(f"{csv_path}: needs a 'label' column and a 'path' or 'id' "
                                 f"column, has {sorted(fields)}")
        for line, row in enumerate(reader, start=2):
            label = row["label"].strip()
            if label_map is not None:
                label = label_map.get(label, label)
            if label == "":
                continue
            if label not in classes:
                raise SpecscoutError(f"{csv_path}:{line}: label {label!r} is not one of "
                                     f"{list(classes)}")
            if row.get("path"):
                key = os.path.abspath(csv_path.parent / row["path"].strip())
            else:
                key = row["id"].strip()
            if out.get(key, label) != label:
                raise SpecscoutError(f"{csv_path}:{line}: {key} has two labels")
            out[key] = label
    return out


# --- the work of one batch (runs on a worker) ----------------------------------------------


def _record(path: str, status: str, **kw) -> dict:
    return {"path": path, "status": status, "flags": 0, "reason": "", "detail": "", **kw}


def process_batch(paths: Sequence[str], config: PreprocessConfig,
                  labels: dict[str, str] | None = None,
                  dtype: str = "float32") -> tuple[np.ndarray, list[dict]]:
    """Read and preprocess ``paths``. Returns the pooled spectra and one record per path."""
    flux, records = [], []
    for path in paths:
        try:
            spectrum = read(path)
            prepared = prepare(spectrum, config)
        except ReadError as exc:
            records.append(_record(path, "failed", reason=exc.reason, detail=exc.detail))
            continue
        except Exception as exc:  # a bug or an oddity must not sink the other files
            records.append(_record(path, "failed", reason="error",
                                   detail=f"{type(exc).__name__}: {exc}"))
            continue
        m = spectrum.meta
        rec = _record(path, "ok", id=m.id, obsid=m.obsid, designation=m.designation, ra=m.ra,
                      dec=m.dec, snr=m.snr, window_snr=prepared.snr,
                      survey_class=m.survey_class, survey_subclass=m.survey_subclass,
                      release=m.release, instrument=m.instrument, layout=m.layout)
        if labels is not None:
            rec["label"] = labels.get(path, labels.get(m.id))
            if rec["label"] is None:
                rec.update(status="failed", reason="no-label",
                           detail=f"neither the path nor the id {m.id!r} has a label")
        if rec["status"] == "ok" and prepared.flags:
            rec.update(status="flagged", flags=prepared.flags, reason=describe(prepared.flags))
        if rec["status"] == "ok":
            flux.append(prepared.flux)
        records.append(rec)
    points = config.grid.points
    array = np.array(flux, dtype=dtype).reshape(-1, points)
    return array, records


# --- the driver ----------------------------------------------------------------------------


@dataclass
class IngestSummary:
    ingested: int = 0
    flagged: int = 0
    failed: int = 0
    skipped: int = 0  # already in the store
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def processed(self) -> int:
        return self.ingested + self.flagged + self.failed

    def add(self, records: list[dict]) -> None:
        for r in records:
            if r["status"] == "ok":
                self.ingested += 1
            else:
                if r["status"] == "flagged":
                    self.flagged += 1
                else:
                    self.failed += 1
                self.reasons[r["reason"]] = self.reasons.get(r["reason"], 0) + 1

    def __str__(self) -> str:
        rate = self.processed / self.seconds if self.seconds else 0.0
        text = (f"ingested {self.ingested}, flagged {self.flagged}, failed {self.failed}, "
                f"skipped {self.skipped} already in the store "
                f"({self.processed} files in {self.seconds:.1f} s, {rate:.0f} files/s)")
        if self.reasons:
            text += "\n  reasons: " + ", ".join(f"{k} {v}" for k, v in
                                                sorted(self.reasons.items()))
        return text


class _Seen:
    """Which paths the store (or this run) already has: sorted 64-bit hashes, 8 bytes a file."""

    def __init__(self, committed: np.ndarray) -> None:
        self.blocks = [committed] if committed.size else []
        self.pending: dict[str, int] = {}  # in flight or buffered: path -> hash
        self._pending_hashes: set[int] = set()

    def __contains__(self, h: int) -> bool:
        if h in self._pending_hashes:
            return True
        for block in self.blocks:
            i = np.searchsorted(block, h)
            if i < block.size and block[i] == h:
                return True
        return False

    def add_pending(self, path: str, h: int) -> None:
        self.pending[path] = h
        self._pending_hashes.add(h)

    def commit(self, paths: Iterable[str]) -> None:
        """The files of a committed part join the sorted blocks."""
        hashes = [self.pending.pop(p) for p in paths]
        self._pending_hashes.difference_update(hashes)
        self.blocks.append(np.sort(np.array(hashes, dtype=np.uint64)))


def _batches(paths: Iterator[str], seen: _Seen, size: int, summary: IngestSummary,
             on_skip: Callable[[int], object]) -> Iterator[list[str]]:
    while chunk := list(islice(paths, size)):
        hashes = path_hash(chunk).tolist()
        batch = []
        for p, h in zip(chunk, hashes, strict=True):
            if h in seen:
                summary.skipped += 1
            else:
                seen.add_pending(p, h)
                batch.append(p)
        if len(batch) < len(chunk):
            on_skip(len(chunk) - len(batch))
        if batch:
            yield batch


def ingest(
    store: Store,
    sources: Iterable[str | Path],
    config: PreprocessConfig,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    part_rows: int = 4096,
    batch_size: int = 256,
    labels: dict[str, str] | None = None,
    progress: bool = True,
) -> IngestSummary:
    """Ingest the files ``sources`` name into ``store`` (see the module docstring).

    workers: local worker processes (default: one per core); scheduler: the address of an
    existing ``dask.distributed`` scheduler to use instead. labels: for a labelled set, the
    class of each file by absolute path or id (:func:`load_labels`).
    """
    start = time.perf_counter()
    summary = IngestSummary()
    seen = _Seen(store.seen())
    total = None
    if progress:  # a cheap first pass over the names, for the progress bar's ETA
        total = sum(1 for _ in iter_paths(sources))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="files", file=sys.stderr, smoothing=0.05,
                   dynamic_ncols=True)
    batch_size = max(1, min(batch_size, part_rows))  # a part is at least a batch
    batches = _batches(iter_paths(sources), seen, batch_size, summary,
                       bar.update if bar is not None else (lambda n: None))
    buffer_flux: list[np.ndarray] = []
    buffer_records: list[dict] = []

    def commit() -> None:
        if not buffer_records:
            return
        store.commit(np.concatenate(buffer_flux) if buffer_flux
                     else np.empty((0, store.points)), buffer_records)
        seen.commit(r["path"] for r in buffer_records)
        buffer_flux.clear()
        buffer_records.clear()

    try:
        with dask_client(workers, scheduler) as client:
            for flux, records in map_batches(client, process_batch, batches, config, labels,
                                             store.dtype.name):
                buffer_flux.append(flux)
                buffer_records.extend(records)
                summary.add(records)
                if bar is not None:
                    bar.update(len(records))
                    bar.set_postfix(ok=summary.ingested, flagged=summary.flagged,
                                    failed=summary.failed, refresh=False)
                if len(buffer_records) >= part_rows:
                    commit()
            commit()
    finally:
        if bar is not None:
            bar.close()
    summary.seconds = time.perf_counter() - start
    return summary
