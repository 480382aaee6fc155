"""The spectra store: preprocessed spectra as Zarr v3 arrays, metadata as Parquet, in
immutable parts listed by a manifest.

    STORE/store.json               points, dtype, format
    STORE/manifest.json            the committed parts, in row order (replaced atomically)
    STORE/parts/NAME/flux.zarr     float32 (or float16) array (rows, points), chunked by rows
    STORE/parts/NAME/meta.parquet  one record per spectrum or file processed: pooled, flagged
                                   or failed (row groups of 4096 records)
    STORE/parts/NAME/part.json     first_row, rows, files
    STORE/parts/NAME/*.npy         the part's indexes (see :mod:`specscout.archive.index`)
    STORE/write.lock               held by the one process writing (see :mod:`.writer`)

Row ids are stable integers: part k holds rows ``first_row .. first_row + rows - 1``. A part
is written whole beside the others, then committed by replacing the manifest, so a reader sees
the store before or after a commit, never during one, and a run killed at any moment leaves it
consistent. Readers never write or delete anything; only the writer does, under the lock.
Everything is read part by part, chunk by chunk, so memory stays bounded whatever the store's
size; lookups by id, obsid, designation and position go through the parts' indexes, so their
cost does not grow with the pool.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import zarr

from specscout.archive import index
from specscout.archive.index import designation_key, path_hash
from specscout.errors import SpecscoutError

FORMAT = 2
STATUSES = ("ok", "flagged", "failed")
#: The columns a pooled spectrum can be looked up by, in a CSV's order of preference.
LOOKUP_KEYS = ("row", "id", "obsid", "designation")
#: Records per Parquet row group: reading one record reads one group.
ROW_GROUP = 4096

#: The metadata of every spectrum processed, and of every file that could not be read.
#: ``row`` is -1 for what is not pooled. Stores written before ``exposure`` and ``mjd`` read
#: them as nulls.
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
    ("exposure", pa.string()),  # which spectrum of a file of several ("coadd", a time, ...)
    ("mjd", pa.float64()),  # when it was observed
    ("status", pa.string()),
    ("flags", pa.int32()),
    ("reason", pa.string()),
    ("detail", pa.string()),
    ("label", pa.string()),
])

__all__ = ["LOOKUP_KEYS", "META_SCHEMA", "Chunk", "Part", "Store", "designation_key",
           "path_hash"]


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

    def as_dict(self) -> dict:
        return {"name": self.name, "first_row": self.first_row, "rows": self.rows,
                "files": self.files}


def read_manifest(path: Path) -> tuple[int, list[Part], dict]:
    """(version, parts, the whole manifest) of the store at ``path``."""
    try:
        info = json.loads((path / "manifest.json").read_text())
    except FileNotFoundError:
        return 0, [], {}
    return info["version"], [Part(**p) for p in info["parts"]], info


class Store:
    """An append-only store of preprocessed spectra (see the module docstring)."""

    def __init__(self, path: Path, points: int, dtype: str) -> None:
        self.path = path
        self.points = points
        self.dtype = np.dtype(dtype)
        self.version = -1
        self.parts: list[Part] = []
        self._indexes: dict[tuple[str, str], np.ndarray] = {}  # parts are immutable
        self.refresh()

    # --- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path) -> Store:
        path = Path(path).resolve()  # workers elsewhere must find it too
        try:
            info = json.loads((path / "store.json").read_text())
        except FileNotFoundError:
            raise SpecscoutError(f"{path} is not a specscout store (no store.json)") from None
        if info.get("format") not in (1, FORMAT):
            raise SpecscoutError(f"{path}: store format {info.get('format')} is not {FORMAT}")
        return cls(path, int(info["points"]), str(info["dtype"]))

    @classmethod
    def open_or_create(cls, path: str | Path, points: int, dtype: str = "float32") -> Store:
        from specscout.archive.atomic import write_text

        path = Path(path)
        if not (path / "store.json").exists():
            (path / "parts").mkdir(parents=True, exist_ok=True)
            write_text(path / "store.json", json.dumps({"format": FORMAT, "points": points,
                                                        "dtype": dtype}))
        store = cls.open(path)
        if store.points != points:
            raise SpecscoutError(f"{path} holds spectra of {store.points} points, "
                                 f"the project's grid has {points}")
        return store

    def refresh(self) -> bool:
        """Take in what has been committed since the store was opened; True if anything
        was."""
        version, parts, _ = read_manifest(self.path)
        if version == 0 and (self.path / "parts").is_dir():  # format 1: no manifest yet
            parts = _listed_parts(self.path / "parts")
        if version == self.version and len(parts) == len(self.parts):
            return False
        self.version, self.parts = version, parts
        return True

    # --- size ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.parts[-1].first_row + self.parts[-1].rows if self.parts else 0

    @property
    def files(self) -> int:
        """Records of files processed into the store: pooled, flagged and failed."""
        return sum(p.files for p in self.parts)

    def part_dir(self, part: Part) -> Path:
        return self.path / "parts" / part.name

    def meta_path(self, part: Part) -> Path:
        return self.part_dir(part) / "meta.parquet"

    def writer(self, **options):
        """The store's one writer (a context manager holding the write lock; see
        :class:`specscout.archive.writer.Writer`)."""
        from specscout.archive.writer import Writer

        return Writer(self, **options)

    def commit(self, flux: np.ndarray, records: list[dict]) -> Part:
        """Append one part (taking the write lock for it): ``flux`` holds the pooled spectra,
        in the order of the records whose status is ``ok``."""
        with self.writer() as w:
            return w.commit(flux, records)

    # --- indexes ---------------------------------------------------------------------------

    def index(self, part: Part, name: str) -> np.ndarray:
        """The ``name`` index (paths, keys, sky) of ``part``, memory-mapped."""
        key = (part.name, name)
        if key not in self._indexes:
            file = self.part_dir(part) / f"{name}.npy"
            if file.exists():
                self._indexes[key] = np.load(file, mmap_mode="r")
            else:  # a part of a format-1 store: built from its metadata, kept in memory
                from specscout.archive.writer import build_indexes

                self._indexes.update({(part.name, k): v for k, v in build_indexes(
                    pq.read_table(self.meta_path(part))).items()})
        return self._indexes[key]

    def seen(self) -> index.HashSet:
        """The hashes (:func:`path_hash`) of every file processed into the store."""
        seen = index.HashSet()
        for part in self.parts:
            seen.add(np.asarray(self.index(part, "paths")))
        return seen

    # --- reading metadata ------------------------------------------------------------------

    def _dataset(self, parts: Sequence[Part] | None = None) -> pads.Dataset | None:
        files = [str(self.meta_path(p)) for p in (self.parts if parts is None else parts)]
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

    def records(self, rows: Sequence[int] | np.ndarray,
                columns: Sequence[str] | None = None) -> pa.Table:
        """The metadata records of pool rows ``rows`` (sorted by row; rows not in the pool are
        left out), reading only the parts, and the row groups, that hold them."""
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        rows = rows[(rows >= 0) & (rows < len(self))]
        columns = list(dict.fromkeys(["row", *(columns or META_SCHEMA.names)]))
        if not rows.size:
            return META_SCHEMA.empty_table().select(columns)
        which = self._locate(rows)
        tables = []
        for k in np.unique(which):
            part = self.parts[int(k)]
            mine = rows[which == k]
            # The row groups that hold them, from the groups' largest rows (a file that was
            # not pooled has row -1 anywhere in a group, so the smallest say nothing)
            ends, meta = self._row_groups(part)
            if ends is None:  # a file without statistics: filtered as a whole
                expr = ((pc.field("row") >= int(mine[0])) & (pc.field("row") <= int(mine[-1]))
                        & pc.field("row").isin(mine))
                tables.append(self._dataset([part]).to_table(columns=columns, filter=expr))
                continue
            groups = np.unique(np.searchsorted(ends, mine)).tolist()
            # a reader of its own (a request thread's), on the footer read once
            table = pq.ParquetFile(self.meta_path(part), metadata=meta).read_row_groups(
                groups, columns=columns)
            tables.append(table.filter(pc.is_in(table["row"], pa.array(mine))))
        return pa.concat_tables(tables).sort_by("row")

    def _row_groups(self, part: Part) -> tuple[np.ndarray | None, pq.FileMetaData]:
        """(the largest row up to each row group of the part's metadata, or None without
        statistics; the file's footer), read once: parts never change."""
        key = (part.name, "row-groups")
        if key not in self._indexes:
            meta = pq.read_metadata(self.meta_path(part))
            column = meta.schema.to_arrow_schema().get_field_index("row")
            stats = [meta.row_group(g).column(column).statistics
                     for g in range(meta.num_row_groups)]
            ends = (None if any(s is None or not s.has_min_max for s in stats)
                    else np.maximum.accumulate(np.array([s.max for s in stats], np.int64)))
            self._indexes[key] = (ends, meta)
        return self._indexes[key]

    def ids(self, rows: Sequence[int] | np.ndarray) -> list[str]:
        """The ids of pool ``rows``, in the order given (KeyError for a row not pooled)."""
        found = self.records(rows, ["id"]).to_pydict()
        id_of = dict(zip(found["row"], found["id"], strict=True))
        try:
            return [id_of[int(r)] for r in rows]
        except KeyError as exc:
            raise KeyError(f"no spectrum at row {exc.args[0]}: the pool has rows "
                           f"0..{len(self) - 1}") from None

    def record(self, row: int) -> dict:
        """The metadata record of pool row ``row``."""
        found = self.records([row]).to_pylist()
        if not found:
            raise KeyError(f"no spectrum at row {row}: the pool has rows 0..{len(self) - 1}")
        return found[0]

    def failures(self) -> pa.Table:
        """Every file that was flagged or failed, with its reason, and not processed again
        later (``ingest --retry-failed``): :func:`specscout.archive.failures.failures`."""
        from specscout.archive.failures import failures

        return failures(self)

    def summary(self, by: str = "release") -> dict:
        """Counts of the files processed: by status (failures retried later counted once,
        as they ended); the pooled spectra by the metadata column ``by``; the files not pooled
        by reason."""
        failed = self.failures()
        ok = self.meta(columns=[by])
        status = {"ok": len(ok)} | {s: 0 for s in STATUSES[1:]} | _counts(failed["status"])
        return {"status": status, "key": by, "by": _counts(ok[by]),
                "reasons": _counts(failed["reason"])}

    def lookup(self, key: str, values: Sequence, limit: int | None = None) -> pa.Table:
        """The pooled spectra whose ``key`` (row, id, obsid or designation) is one of
        ``values``: a table of ``value`` (as asked; each once), ``row`` and ``id``. A
        designation matches by its position part (:func:`designation_key`), so
        "LAMOST J0637..." and "J0637..." agree. Found through the parts' indexes: the cost
        does not grow with the pool. ``limit``: at most that many spectra (a search box's
        page). A row or obsid that is not a whole number is a ValueError."""
        if key not in LOOKUP_KEYS:
            raise ValueError(f"look up by one of {LOOKUP_KEYS}, not {key!r}")
        values = index.asked_values(key, values)
        if key == "row":
            found = self.records(values[:limit], ["id"])
            return pa.table({"value": found["row"], "row": found["row"], "id": found["id"]})
        wanted = np.unique(index.hash64(index.key_text(key, v) for v in values))
        rows = np.concatenate([index.find(self.index(p, "keys"), "hash", wanted)["row"]
                               for p in self.parts] or [np.empty(0, np.int64)])
        return index.confirmed(key, values, self.records(rows[:limit], ["id", key]))

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
        return self.records(sorted(rows))

    def positions(self, rows: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ra, dec) in degrees of pool rows ``rows`` (NaN where unknown), from the parts'
        positional indexes, without reading the metadata."""
        rows = np.asarray(rows, dtype=np.int64)
        ra, dec = np.full(len(rows), np.nan), np.full(len(rows), np.nan)
        which = self._locate(rows) if rows.size else rows
        for k in np.unique(which):
            part = self.parts[int(k)]
            key = (part.name, "positions")
            if key not in self._indexes:  # the sky index in row order, once per part
                sky = self.index(part, "sky")
                table = np.full((part.rows, 2), np.nan)
                table[np.asarray(sky["row"]) - part.first_row] = np.stack(
                    [sky["ra"], sky["dec"]], axis=1)
                self._indexes[key] = table
            sel = np.nonzero(which == k)[0]
            ra[sel], dec[sel] = self._indexes[key][rows[sel] - part.first_row].T
        return ra, dec

    def cone(self, ra: float, dec: float, radius_arcsec: float,
             limit: int | None = None) -> list[tuple[int, float]]:
        """(row, separation in arcsec) of the pooled spectra within ``radius_arcsec`` of
        (``ra``, ``dec``) in degrees, nearest first; through the HEALPix index."""
        lo, hi = index.cone_ranges(ra, dec, radius_arcsec)
        near = np.concatenate([index.find_ranges(self.index(p, "sky"), "pixel", lo, hi)
                               for p in self.parts] or [np.empty(0, index.SKY_DTYPE)])
        ra0, dec0, rr, dd = map(np.radians, (ra, dec, near["ra"], near["dec"]))
        hav = (np.sin((dd - dec0) / 2) ** 2
               + np.cos(dd) * np.cos(dec0) * np.sin((rr - ra0) / 2) ** 2)
        sep = np.degrees(2 * np.arcsin(np.sqrt(np.clip(hav, 0, 1)))) * 3600
        hit = np.nonzero(sep <= radius_arcsec)[0]
        hit = hit[np.lexsort((near["row"][hit], sep[hit]))][:limit]
        return [(int(near["row"][i]), float(sep[i])) for i in hit]

    # --- reading spectra -------------------------------------------------------------------

    def _array(self, part: Part) -> zarr.Array:
        return zarr.open_array(str(self.part_dir(part) / "flux.zarr"), mode="r")

    def _locate(self, rows: np.ndarray) -> np.ndarray:
        starts = np.array([p.first_row for p in self.parts])
        return np.searchsorted(starts, rows, side="right") - 1

    def part_of(self, row: int) -> Part:
        """The part that holds pool row ``row``."""
        return self.parts[int(self._locate(np.array([row]))[0])]

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

        arrays = [da.from_zarr(str(self.part_dir(p) / "flux.zarr"))
                  for p in self.parts if p.rows]
        if not arrays:
            return da.zeros((0, self.points), dtype=self.dtype)
        return da.concatenate(arrays, axis=0)


def _listed_parts(parts_dir: Path) -> list[Part]:
    """The committed parts of a format-1 store (committed by renaming their directory)."""
    parts = []
    for d in sorted(p for p in parts_dir.iterdir() if not p.name.startswith(".")):
        try:
            meta = json.loads((d / "part.json").read_text())
        except FileNotFoundError:
            continue
        parts.append(Part(d.name, meta["first_row"], meta["rows"], meta["files"]))
    for a, b in itertools.pairwise(parts):
        if b.first_row != a.first_row + a.rows:
            raise SpecscoutError(f"{parts_dir}: part {b.name} starts at row {b.first_row}, "
                                 f"expected {a.first_row + a.rows}")
    return parts


def _counts(column: pa.ChunkedArray) -> dict:
    return {c["values"]: c["counts"] for c in column.value_counts().to_pylist()}
