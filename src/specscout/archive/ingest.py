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
from contextlib import nullcontext
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from specscout.archive.cluster import dask_client, map_batches
from specscout.archive.index import HashSet, contains, path_hash
from specscout.archive.store import Store
from specscout.errors import PartError, ReadError, SpecscoutError
from specscout.progress import progress_bar
from specscout.spectra.preprocess import PreprocessConfig, describe, prepare
from specscout.spectra.readers import read_all

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
LIST_SUFFIXES = (".txt", ".lst", ".list")


# --- which files ---------------------------------------------------------------------------


def _walk(directory: str) -> Iterator[str]:
    """FITS files below ``directory``, in a stable order (a directory's files, then its
    subdirectories), without listing the whole tree. A name with a FITS suffix is taken for a
    file without asking the filesystem: a stat per file (what telling a link or a network
    file from a directory takes) would cost more than the skip check of a resumed run."""
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:  # unreadable: as os.walk, nothing below it
        return
    subdirectories = []
    for entry in entries:
        if entry.name.lower().endswith(FITS_SUFFIXES):
            yield entry.path
        elif entry.is_dir(follow_symlinks=False):  # from the directory listing: no stat
            subdirectories.append(entry.path)
    for path in subdirectories:
        yield from _walk(path)


def iter_paths(sources: Iterable[str | Path]) -> Iterator[str]:
    """Absolute paths of the files that ``sources`` name: directories (recursively, FITS files
    only), glob patterns, lists of paths (``.txt``/``.lst``/``.list``, one per line, relative to
    the list) or single files."""
    for source in map(str, sources):
        if glob.has_magic(source):
            for match in sorted(glob.iglob(source, recursive=True)):
                yield from (_walk(os.path.abspath(match)) if os.path.isdir(match)
                            else [os.path.abspath(match)])
        elif os.path.isdir(source):
            yield from _walk(os.path.abspath(source))
        elif source.lower().endswith(LIST_SUFFIXES) and os.path.isfile(source):
            base = os.path.dirname(os.path.abspath(source))
            with open(source) as fh:
                for line in fh:
                    line = line.strip()
                    if line and not line.startswith("#"):
                        yield os.path.abspath(os.path.join(base, line))
        else:
            yield os.path.abspath(source)


def check_sources(sources: Iterable[str | Path]) -> None:
    """Refuse, naming it, a source that names nothing: a path that does not exist, a glob
    pattern that matches nothing, a folder without a FITS file (a typo must not be stored as a
    failed file, nor an empty match pass for an ingest)."""
    for source in map(str, sources):
        if glob.has_magic(source):
            if next(glob.iglob(source, recursive=True), None) is None:
                raise SpecscoutError(f"{source}: matches no file")
        elif not os.path.exists(source):
            raise SpecscoutError(f"{source}: no such file or folder")
        elif os.path.isdir(source) and next(_walk(os.path.abspath(source)), None) is None:
            raise SpecscoutError(f"{source}: a folder without FITS files "
                                 f"({', '.join(FITS_SUFFIXES)})")


# --- labels of a labelled set --------------------------------------------------------------


def load_labels(csv_path: str | Path, classes: Sequence[str],
                label_map: dict[str, str] | None = None) -> dict[str, str]:
    """Labels from a CSV with a ``label`` column and a ``path`` (relative to the CSV) or ``id``
    column. ``label_map`` translates the CSV's labels (e.g. ``{"0": "emission"}``); rows whose
    label maps to ``""`` are left out. Returns {absolute path or id: class}."""
    csv_path = Path(csv_path)
    out: dict[str, str] = {}
    try:
        return _read_labels(csv_path, classes, label_map, out)
    except UnicodeDecodeError as exc:
        raise SpecscoutError(f"{csv_path}: not UTF-8 text (byte {exc.start}); save it as UTF-8 "
                             f"CSV") from None
    except OSError as exc:
        raise SpecscoutError(f"{csv_path}: cannot be read ({exc.strerror or exc})") from None


def _read_labels(csv_path: Path, classes: Sequence[str], label_map: dict[str, str] | None,
                 out: dict[str, str]) -> dict[str, str]:
    with csv_path.open(newline="", encoding="utf-8-sig") as fh:  # a spreadsheet's BOM too
        reader = csv.DictReader(fh)
        fields = set(reader.fieldnames or ())
        if "label" not in fields or not fields & {"path", "id"}:
            raise SpecscoutError(f"{csv_path}: needs a 'label' column and a 'path' or 'id' "
                                 f"column, has {sorted(fields)}")
        for line, row in enumerate(reader, start=2):
            label = (row.get("label") or "").strip()
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
                key = (row.get("id") or "").strip()
            if not key:
                raise SpecscoutError(f"{csv_path}:{line}: a label without a path or an id")
            if out.get(key, label) != label:
                raise SpecscoutError(f"{csv_path}:{line}: {key} has two labels")
            out[key] = label
    return out


def check_labels(store: Store, labels: dict[str, str]) -> int:
    """Refuse a labelled set's CSV that gives a spectrum already in ``store`` another label
    than the one it was stored with (ingest skips a file it has seen, so the change would be
    lost without a word). Returns how many files stored without a label have one now
    (``--retry-failed`` takes them in)."""
    held = store.meta(columns=["path", "id", "label", "reason"], status=None).to_pydict()
    changed, newly, taken = [], set(), set()
    for path, sid, stored, reason in zip(held["path"], held["id"], held["label"],
                                         held["reason"], strict=True):
        now = labels.get(path, labels.get(sid) if sid else None)
        if reason == "no-label":
            if now is not None:
                newly.add(path)
        else:
            taken.add(path)  # a retry stored it since
            if stored and now is not None and now != stored:
                changed.append(f"{sid or path} ({stored} -> {now})")
    if changed:
        raise SpecscoutError(
            f"{len(changed)} spectra of the labelled set have another label in the CSV than "
            f"the one they were ingested with: {', '.join(changed[:5])}"
            + (" ..." if len(changed) > 5 else "")
            + f"; a stored label is not changed by ingesting again: remove {store.path} and "
              f"ingest the set anew (it is made from the files and the CSV alone)")
    return len(newly - taken)


# --- the work of one batch (runs on a worker) ----------------------------------------------


def _record(path: str, status: str, **kw) -> dict:
    return {"path": path, "status": status, "flags": 0, "reason": "", "detail": "", **kw}


def process_batch(paths: Sequence[str], config: PreprocessConfig,
                  labels: dict[str, str] | None = None,
                  dtype: str = "float32") -> tuple[np.ndarray, list[dict]]:
    """Read and preprocess ``paths``. Returns the pooled spectra and the records: one per
    spectrum of a file that reads (several for a file of several epochs or targets), one for
    a file that does not. A file's records are consecutive."""
    flux, records = [], []
    for path in paths:
        parts: list[PartError] = []  # spectra of the file that could not be had, the rest can
        try:
            found = []
            for s in read_all(path, parts):
                try:
                    found.append((s, prepare(s, config)))
                except Exception as exc:  # one spectrum must not sink its file
                    parts.append(PartError(path, s.meta.id, "error",
                                           f"preprocessing: {type(exc).__name__}: {exc}"))
        except ReadError as exc:
            records.append(_record(path, "failed", reason=exc.reason, detail=exc.detail))
            continue
        except Exception as exc:  # a bug or an oddity must not sink the other files
            records.append(_record(path, "failed", reason="error",
                                   detail=f"{type(exc).__name__}: {exc}"))
            continue
        records += [_record(path, "failed", id=e.spectrum_id, reason=e.reason,
                            detail=e.part_detail) for e in parts]
        for spectrum, prepared in found:
            m = spectrum.meta
            rec = _record(path, "ok", id=m.id, obsid=m.obsid, designation=m.designation,
                          ra=m.ra, dec=m.dec, snr=m.snr, window_snr=prepared.snr,
                          survey_class=m.survey_class, survey_subclass=m.survey_subclass,
                          release=m.release, instrument=m.instrument, layout=m.layout,
                          exposure=m.exposure, mjd=m.mjd)
            if labels is not None:
                rec["label"] = labels.get(path, labels.get(m.id))
                if rec["label"] is None:
                    rec.update(status="failed", reason="no-label",
                               detail=f"neither the path nor the id {m.id!r} has a label")
            if rec["status"] == "ok" and prepared.flags:
                rec.update(status="flagged", flags=prepared.flags,
                           reason=describe(prepared.flags))
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
    skipped: int = 0  # files already in the store
    files: int = 0  # files read (a file may hold several spectra)
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def processed(self) -> int:
        return self.ingested + self.flagged + self.failed

    def add(self, records: list[dict]) -> None:
        self.files += len({r["path"] for r in records})
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
        rate = self.files / self.seconds if self.seconds else 0.0
        spectra = f"{self.processed} records from " if self.processed != self.files else ""
        text = (f"ingested {self.ingested}, flagged {self.flagged}, failed {self.failed}, "
                f"skipped {self.skipped} already in the store "
                f"({spectra}{self.files} files in {self.seconds:.1f} s, {rate:.0f} files/s)")
        if self.reasons:
            text += "\n  reasons: " + ", ".join(f"{k} {v}" for k, v in
                                                sorted(self.reasons.items()))
        return text


class _Seen:
    """Which files the store or this run already has: the store's path hashes, and those in
    flight. ``retry``: hashes of failed files to process once more."""

    def __init__(self, committed: HashSet, retry: np.ndarray) -> None:
        self.committed = committed
        self.retry = np.sort(np.asarray(retry, dtype=np.uint64))
        self.pending: set[int] = set()  # in flight or buffered
        self.again: set[int] = set()  # taken from ``retry``

    def take(self, hashes: np.ndarray) -> np.ndarray:
        """Which of ``hashes`` to process now; they are marked in flight."""
        retry = contains(self.retry, hashes)
        out = ~self.committed.contains(hashes) | retry
        for i in np.nonzero(out)[0]:
            h = int(hashes[i])
            if h in self.pending or h in self.again:
                out[i] = False
            else:
                self.pending.add(h)
                if retry[i]:
                    self.again.add(h)
        return out

    def commit(self, hashes: np.ndarray) -> None:
        """The files of a committed part."""
        self.committed.add(hashes)
        self.pending.difference_update(hashes.tolist())


def _batches(paths: Iterator[str], seen: _Seen, size: int, summary: IngestSummary,
             on_skip: Callable[[int], object]) -> Iterator[list[str]]:
    while chunk := list(islice(paths, size)):
        take = seen.take(path_hash(chunk))
        batch = [p for p, t in zip(chunk, take, strict=True) if t]
        summary.skipped += len(chunk) - len(batch)
        if len(batch) < len(chunk):
            on_skip(len(chunk) - len(batch))
        if batch:
            yield batch


def _without(flux: np.ndarray, records: list[dict], stored: set[tuple[str, str]]
             ) -> tuple[np.ndarray, list[dict]]:
    """``flux`` and ``records`` less the spectra whose (path, id) is in ``stored``."""
    keep = [(r["path"], r.get("id")) not in stored for r in records]
    pooled = np.array([k for r, k in zip(records, keep, strict=True) if r["status"] == "ok"],
                      dtype=bool)
    return flux[pooled], [r for r, k in zip(records, keep, strict=True) if k]


def _worker_died(points: int, dtype: str):
    def record(batch: list[str]) -> tuple[np.ndarray, list[dict]]:
        return np.empty((0, points), dtype=dtype), [_record(
            batch[0], "failed", reason="worker-died",
            detail="the worker process reading it died (a crash, its memory limit or a "
                   "signal)")]
    return record


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
    retry_failed: bool = False,
    compact: bool = True,
    progress: bool = True,
) -> IngestSummary:
    """Ingest the files ``sources`` name into ``store`` (see the module docstring).

    workers: local worker processes (default: one per core); scheduler: the address of an
    existing ``dask.distributed`` scheduler to use instead. labels: for a labelled set, the
    class of each file by absolute path or id (:func:`load_labels`). retry_failed: process
    again the files that failed before (a transient I/O error, a worker that died). compact:
    merge the run's small parts at the end (:meth:`Writer.compact`).
    """
    sources = list(sources)
    check_sources(sources)
    if labels is not None:
        check_labels(store, labels)
    start = time.perf_counter()
    summary = IngestSummary()
    bar = None
    with store.writer() as writer:  # refuses at once if another process writes the store
        retry = np.empty(0, np.uint64)
        stored: set[tuple[str, str]] = set()  # (path, id) of the retried files' stored spectra
        if retry_failed:
            failed = store.failures()
            failed = failed.filter(pc.equal(failed["status"], "failed"))
            retry = path_hash(failed["path"].to_pylist())
            if len(failed):
                held = store.meta(columns=["path", "id"], status=None,
                                  filter=pc.field("path").isin(failed["path"].unique())
                                  & (pc.field("status") != "failed"))
                stored = set(zip(held["path"].to_pylist(), held["id"].to_pylist(),
                                 strict=True))
        seen = _Seen(store.seen(), retry)
        if progress and sys.stderr.isatty():  # a first pass over the names, for the ETA
            bar = progress_bar(sum(1 for _ in iter_paths(sources)), "files",
                               smoothing=0.05, dynamic_ncols=True)
        batch_size = max(1, min(batch_size, part_rows))  # a part is at least a batch
        batches = _batches(iter_paths(sources), seen, batch_size, summary,
                           bar.update if bar is not None else (lambda n: None))
        buffer_flux: list[np.ndarray] = []
        buffer_records: list[dict] = []

        def commit() -> None:
            if not buffer_records:
                return
            hashes = path_hash([r["path"] for r in buffer_records])
            for r, h in zip(buffer_records, hashes.tolist(), strict=True):
                r["again"] = h in seen.again
            writer.commit(np.concatenate(buffer_flux) if buffer_flux
                          else np.empty((0, store.points)), buffer_records)
            seen.commit(hashes)
            buffer_flux.clear()
            buffer_records.clear()

        try:
            # The cluster starts with the first file to read: a resumed run that skips
            # everything never waits for one.
            first = next(batches, None)
            # Locally a task is given up on at its worker's first death: the batch is then
            # split until the file that kills workers stands alone (map_batches).
            with (dask_client(workers, scheduler, allowed_failures=0) if first is not None
                  else nullcontext()) as client:
                results = () if first is None else map_batches(
                    client, process_batch, chain([first], batches), config, labels,
                    store.dtype.name, on_death=_worker_died(store.points, store.dtype.name))
                for flux, records in results:
                    if stored:  # a retried file's other spectra are in the store already
                        flux, records = _without(flux, records, stored)
                    buffer_flux.append(flux)
                    buffer_records.extend(records)
                    summary.add(records)
                    if bar is not None:
                        bar.update(len({r["path"] for r in records}))  # files, as its total
                        bar.set_postfix(ok=summary.ingested, flagged=summary.flagged,
                                        failed=summary.failed, refresh=False)
                    if len(buffer_records) >= part_rows:
                        commit()
                commit()
        finally:
            if bar is not None:
                bar.close()
        if compact:
            writer.compact()
    summary.seconds = time.perf_counter() - start
    return summary
