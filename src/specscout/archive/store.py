"""The spectra store: preprocessed spectra as Zarr v3 arrays, metadata as Parquet.

The store is a directory of immutable *parts*, each written whole and then committed by one
atomic rename::

    STORE/store.json                 points, dtype, format version
    STORE/parts/000000/flux.zarr     float32 (or float16) array (rows, points), chunked by rows
    STORE/parts/000000/meta.parquet  one record per file processed: pooled, flagged or failed
    STORE/parts/000000/part.json     first_row, rows, files

Row ids are stable integers: part k holds rows ``first_row .. first_row + rows - 1``. A part
either exists whole or not at all, so a run killed at any moment leaves the store consistent;
a later run skips the files the committed parts list and redoes the rest. Everything is read
part by part, chunk by chunk, so memory stays bounded whatever the store's size; Dask reads the
arrays natively (:meth:`Store.to_dask`) and pyarrow / Dask read the Parquet tables.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import zarr

from specscout.errors import SpecscoutError

FORMAT = 1
STATUSES = ("ok", "flagged", "failed")
#: The columns a pooled spectrum can be looked up by, in a CSV's order of preference.
LOOKUP_KEYS = ("row", "id", "obsid", "designation")

#: The metadata of every processed file. ``row`` is -1 for files not pooled.
META_SCHEMA = pa.schema([
    ("row", pa.int64()),
    ("path", pa.string()),
    ("id", pa.string()),
    ("obsid", pa.int64()),
    ("designation", pa.string()),
    ("ra", pa.float64()),
    ("dec", pa.float64()),
    ("snr", pa.float32()),
    ("window_snr", pa.float32()),
    ("survey_class", pa.string()),
    ("survey_subclass", pa.string()),
    ("release", pa.string()),
    ("instrument", pa.string()),
    ("layout", pa.string()),
    ("status", pa.string()),
    ("flags", pa.int32()),
    ("reason", pa.string()),
    ("detail", pa.string()),
    ("label", pa.string()),
])


def path_hash(paths: Sequence[str]) -> np.ndarray:
    """64-bit hashes of file paths: the store remembers which files it has seen by these."""
    return np.array([int.from_bytes(hashlib.blake2b(p.encode(), digest_size=8).digest(),
                                    "little") for p in paths], dtype=np.uint64)


#: What precedes the position part of a designation ("LAMOST " of "LAMOST J0637...").
_DESIGNATION_PREFIX, _KEEP = r"^.*\s(J)", r"\1"


def designation_key(designation: str) -> str:
    """The position part of a designation, upper case ("J063715.90+271356.5" of
    "LAMOST J063715.90+271356.5"); the whole text when it has none."""
    return re.sub(_DESIGNATION_PREFIX, _KEEP, designation.strip().upper())


def _designation_keys(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """:func:`designation_key` of a whole column, in Arrow."""
    return pc.replace_substring_regex(pc.utf8_upper(pc.utf8_trim_whitespace(column)),
                                      _DESIGNATION_PREFIX, _KEEP)


@dataclass(frozen=True)
class Chunk:
    part: str  # the part's name
    start: int  # rows start..stop of the part
    stop: int
    first_row: int  # the pool row of ``start``


@dataclass(frozen=True)
class Part:
    name: str
    first_row: int
    rows: int
    files: int


class Store:
    """An append-only store of preprocessed spectra (see the module docstring)."""

    def __init__(self, path: Path, points: int, dtype: str, parts: list[Part]) -> None:
        self.path = path
        self.points = points
        self.dtype = np.dtype(dtype)
        self.parts = parts

    # --- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path) -> Store:
        path = Path(path)
        try:
            info = json.loads((path / "store.json").read_text())
        except FileNotFoundError:
            raise SpecscoutError(f"{path} is not a specscout store (no store.json)") from None
        if info.get("format") != FORMAT:
            raise SpecscoutError(f"{path}: store format {info.get('format')} is not {FORMAT}")
        parts_dir = path / "parts"
        parts_dir.mkdir(exist_ok=True)
        for leftover in parts_dir.glob(".tmp-*"):  # an uncommitted part of a killed run
            shutil.rmtree(leftover, ignore_errors=True)
        parts = []
        for d in sorted(p for p in parts_dir.iterdir() if not p.name.startswith(".")):
            meta = json.loads((d / "part.json").read_text())
            parts.append(Part(d.name, meta["first_row"], meta["rows"], meta["files"]))
        for a, b in itertools.pairwise(parts):
            if b.first_row != a.first_row + a.rows:
                raise SpecscoutError(f"{path}: part {b.name} starts at row {b.first_row}, "
                                     f"expected {a.first_row + a.rows}")
        return cls(path, int(info["points"]), str(info["dtype"]), parts)

    @classmethod
    def open_or_create(cls, path: str | Path, points: int, dtype: str = "float32") -> Store:
        path = Path(path)
        if not (path / "store.json").exists():
            path.mkdir(parents=True, exist_ok=True)
            tmp = path / f".store.json.{uuid.uuid4().hex}"
            tmp.write_text(json.dumps({"format": FORMAT, "points": points, "dtype": dtype}))
            os.replace(tmp, path / "store.json")
        store = cls.open(path)
        if store.points != points:
            raise SpecscoutError(f"{path} holds spectra of {store.points} points, "
                                 f"the project's grid has {points}")
        return store

    # --- size ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.parts[-1].first_row + self.parts[-1].rows if self.parts else 0

    @property
    def files(self) -> int:
        """Files processed into the store: pooled, flagged and failed."""
        return sum(p.files for p in self.parts)

    def _part_dir(self, part: Part) -> Path:
        return self.path / "parts" / part.name

    # --- writing ---------------------------------------------------------------------------

    def commit(self, flux: np.ndarray, records: list[dict]) -> Part:
        """Append one part: ``flux`` holds the pooled spectra, in the order of the records
        whose status is ``ok``; ``records`` describe every file processed (see META_SCHEMA).
        Rows are assigned here. The part appears whole or not at all."""
        ok = [r for r in records if r["status"] == "ok"]
        flux = np.asarray(flux, dtype=self.dtype).reshape(-1, self.points)
        if len(ok) != len(flux):
            raise ValueError(f"{len(flux)} spectra for {len(ok)} pooled records")
        first = len(self)
        next_row = iter(range(first, first + len(ok)))
        rows = [next(next_row) if r["status"] == "ok" else -1 for r in records]
        table = pa.Table.from_pylist(
            [{**r, "row": row} for r, row in zip(records, rows, strict=True)],
            schema=META_SCHEMA)
        part = Part(f"{len(self.parts):06d}", first, len(ok), len(records))
        tmp = self.path / "parts" / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir(parents=True)
        zarr.create_array(store=str(tmp / "flux.zarr"), data=flux,
                          chunks=(max(min(len(flux), 8192), 1), self.points))
        pq.write_table(table, tmp / "meta.parquet")
        (tmp / "part.json").write_text(json.dumps(
            {"first_row": part.first_row, "rows": part.rows, "files": part.files}))
        _fsync_tree(tmp)
        os.rename(tmp, self._part_dir(part))  # the commit
        _fsync_dir(self.path / "parts")
        self.parts.append(part)
        return part

    # --- reading metadata ------------------------------------------------------------------

    def _dataset(self) -> pads.Dataset | None:
        files = [str(self.meta_path(p)) for p in self.parts]
        return pads.dataset(files, schema=META_SCHEMA, format="parquet") if files else None

    def meta(self, columns: Sequence[str] | None = None, status: str | None = "ok",
             filter: pc.Expression | None = None) -> pa.Table:
        """Metadata records (of pooled spectra by default; ``status=None`` for all files)."""
        ds = self._dataset()
        if ds is None:
            return META_SCHEMA.empty_table().select(list(columns or META_SCHEMA.names))
        expr = filter
        if status is not None:
            cond = pc.field("status") == status
            expr = cond if expr is None else expr & cond
        return ds.to_table(columns=list(columns) if columns else None, filter=expr)

    def summary(self, by: str = "release") -> dict:
        """Counts of the files processed: by status; the pooled spectra by the metadata
        column ``by``; the files not pooled by reason."""
        t = self.meta(columns=["status", "reason", by], status=None)
        status = dict.fromkeys(STATUSES, 0) | _counts(t["status"])
        ok = pc.equal(t["status"], "ok")
        return {"status": status, "key": by, "by": _counts(t[by].filter(ok)),
                "reasons": _counts(t["reason"].filter(pc.invert(ok)))}

    def failures(self) -> pa.Table:
        """Every file that was flagged or failed, with its reason."""
        return self.meta(columns=["path", "status", "reason", "detail", "flags"], status=None,
                         filter=pc.field("status") != "ok")

    def seen(self) -> np.ndarray:
        """Sorted hashes (:func:`path_hash`) of every file processed into the store."""
        hashes = [path_hash(pq.read_table(self.meta_path(p),
                                          columns=["path"])["path"].to_pylist())
                  for p in self.parts]
        return np.sort(np.concatenate(hashes)) if hashes else np.empty(0, np.uint64)

    def lookup(self, key: str, values: Sequence) -> pa.Table:
        """The pooled spectra whose ``key`` (row, id, obsid or designation) is one of
        ``values``: a table of ``value`` (as asked), ``row`` and ``id``. A designation matches
        by its position part (:func:`designation_key`), so "LAMOST J0637..." and "J0637..."
        agree."""
        if key not in LOOKUP_KEYS:
            raise ValueError(f"look up by one of {LOOKUP_KEYS}, not {key!r}")
        values = list(values)
        if key in ("row", "obsid"):
            values = [int(v) for v in values]
        if key != "designation":
            columns = list(dict.fromkeys(["row", "id", key]))
            found = self.meta(columns=columns, filter=pc.field(key).isin(values))
            return pa.table({"value": found[key], "row": found["row"], "id": found["id"]})
        asked: dict[str, list[str]] = {}
        for v in values:
            asked.setdefault(designation_key(v), []).append(v)
        meta = self.meta(columns=["row", "id", "designation"])
        keys = _designation_keys(meta["designation"])
        found = meta.filter(pc.is_in(keys, pa.array(list(asked), pa.string())))
        out = {"value": [], "row": [], "id": []}
        for row, id_, d in zip(found["row"].to_pylist(), found["id"].to_pylist(),
                               found["designation"].to_pylist(), strict=True):
            for v in asked[designation_key(d)]:
                out["value"].append(v)
                out["row"].append(row)
                out["id"].append(id_)
        return pa.table({"value": pa.array(out["value"], pa.string()),
                         "row": pa.array(out["row"], pa.int64()),
                         "id": pa.array(out["id"], pa.string())})

    def find(self, *, id: str | None = None, obsid: int | None = None,
             designation: str | None = None) -> pa.Table:
        """Pooled records (every column) by id, obsid or designation; several keys must all
        hold."""
        given = [(k, v) for k, v in (("id", id), ("obsid", obsid), ("designation", designation))
                 if v is not None]
        if not given:
            raise ValueError("give id, obsid or designation")
        rows = None
        for key, value in given:
            hit = set(self.lookup(key, [value])["row"].to_pylist())
            rows = hit if rows is None else rows & hit
        return self.meta(filter=pc.field("row").isin(sorted(rows))).sort_by("row")

    # --- reading spectra -------------------------------------------------------------------

    def _array(self, part: Part) -> zarr.Array:
        return zarr.open_array(str(self._part_dir(part) / "flux.zarr"), mode="r")

    def _locate(self, rows: np.ndarray) -> np.ndarray:
        starts = np.array([p.first_row for p in self.parts])
        return np.searchsorted(starts, rows, side="right") - 1

    def part_of(self, row: int) -> Part:
        """The part that holds pool row ``row``."""
        return self.parts[int(self._locate(np.array([row]))[0])]

    def meta_path(self, part: Part) -> Path:
        return self._part_dir(part) / "meta.parquet"

    def flux(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Spectra of the given row ids, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"row ids must lie in 0..{len(self) - 1}")
        out = np.empty((rows.size, self.points), dtype=self.dtype)
        which = self._locate(rows) if rows.size else rows
        for k in np.unique(which):
            sel = np.nonzero(which == k)[0]
            part = self.parts[int(k)]
            local = rows[sel] - part.first_row
            order = np.argsort(local)
            block = self._array(part).get_orthogonal_selection((local[order], slice(None)))
            out[sel[order]] = block
        return out

    def chunks(self, chunk_rows: int = 65536) -> Iterator[Chunk]:
        """The store cut into blocks of at most ``chunk_rows`` rows, none across parts."""
        for part in self.parts:
            for start in range(0, part.rows, chunk_rows):
                stop = min(start + chunk_rows, part.rows)
                yield Chunk(part.name, start, stop, part.first_row + start)

    @staticmethod
    def read_chunk(path: str | Path, chunk: Chunk) -> np.ndarray:
        """The spectra of ``chunk`` of the store at ``path``, without opening the whole store
        (what a Dask worker does for each task)."""
        arr = zarr.open_array(str(Path(path) / "parts" / chunk.part / "flux.zarr"), mode="r")
        return np.asarray(arr[chunk.start : chunk.stop])

    def iter_chunks(self, chunk_rows: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Stream the pool: ``(row ids, spectra)`` blocks of at most ``chunk_rows``."""
        for chunk in self.chunks(chunk_rows):
            rows = np.arange(chunk.first_row, chunk.first_row + chunk.stop - chunk.start)
            yield rows, self.read_chunk(self.path, chunk)

    def to_dask(self):
        """The whole pool as one lazy Dask array (rows, points)."""
        import dask.array as da

        arrays = [da.from_zarr(str(self._part_dir(p) / "flux.zarr"))
                  for p in self.parts if p.rows]
        if not arrays:
            return da.zeros((0, self.points), dtype=self.dtype)
        return da.concatenate(arrays, axis=0)


def _counts(column: pa.ChunkedArray) -> dict:
    return {c["values"]: c["counts"] for c in column.value_counts().to_pylist()}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for root, _, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(root))
