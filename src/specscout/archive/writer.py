"""The one writer of a store: commits parts, compacts small ones, cleans up after killed runs.

Only the process holding ``STORE/write.lock`` (an advisory ``flock``; on a network filesystem,
one whose locks work across hosts, as NFSv4's do) writes. A second writer is refused with a
message naming the holder. On taking the lock, the writer reads the latest manifest, removes
what a killed writer left (temporary directories, parts written but never committed) and the
parts that compaction retired more than ``retain_hours`` ago: readers that opened the store
before a compaction keep reading the retired parts until then. Readers never wait for the
lock and never delete anything.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import zarr

from specscout.archive import index
from specscout.archive.atomic import fsync_dir, fsync_tree, write_text, write_with
from specscout.archive.store import FORMAT, META_SCHEMA, ROW_GROUP, Part, Store, read_manifest
from specscout.errors import SpecscoutError

#: Rows per Zarr chunk: reading one spectrum decompresses one chunk.
CHUNK_ROWS = 4096
#: Compaction merges neighbouring parts up to this many rows.
COMPACT_ROWS = 262144


def build_indexes(table: pa.Table) -> dict[str, np.ndarray]:
    """The indexes (see :mod:`specscout.archive.index`) of a part's metadata table."""
    ok = table.filter(pc.equal(table["status"], "ok"))
    rows = ok["row"].to_numpy()
    return {
        "paths": np.sort(index.path_hash(table["path"].to_pylist())),
        "keys": index.key_entries(rows, ok["id"].to_pylist(), ok["obsid"].to_pylist(),
                                  ok["designation"].to_pylist()),
        "sky": index.sky_entries(rows, ok["ra"].to_numpy(zero_copy_only=False),
                                 ok["dec"].to_numpy(zero_copy_only=False)),
    }


def _save_indexes(directory: Path, indexes: dict[str, np.ndarray]) -> None:
    for name, array in indexes.items():
        write_with(directory / f"{name}.npy", lambda fh, a=array: np.save(fh, a))


class Writer:
    """A context manager: the write lock of ``store`` and what may be done holding it."""

    def __init__(self, store: Store, retain_hours: float = 24.0) -> None:
        self.store = store
        self.retain_hours = retain_hours
        self._lock = None
        self._manifest: dict = {}

    # --- the lock --------------------------------------------------------------------------

    def __enter__(self) -> Writer:
        path = self.store.path / "write.lock"
        fh = path.open("a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise SpecscoutError(f"{self.store.path} is being written by {holder}: wait for "
                                 f"it to finish (or stop it), then run again") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                 f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
        fh.flush()
        self._lock = fh
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def _start(self) -> None:
        store = self.store
        store.refresh()
        version, _, manifest = read_manifest(store.path)
        if version == 0:  # a new store, or one of format 1: list its parts in a manifest
            for part in store.parts:
                if not (store.part_dir(part) / "paths.npy").exists():
                    _save_indexes(store.part_dir(part),
                                  build_indexes(pq.read_table(store.meta_path(part))))
            manifest = {"version": 0, "next": _next_number(store.parts), "parts": [],
                        "retired": []}
            self._manifest = manifest
            self._write_manifest(store.parts)
            info = json.loads((store.path / "store.json").read_text())
            if info.get("format") != FORMAT:
                write_text(store.path / "store.json", json.dumps({**info, "format": FORMAT}))
        self._manifest = json.loads((store.path / "manifest.json").read_text())
        self._clean()

    def _write_manifest(self, parts: list[Part], retired: list[dict] | None = None) -> None:
        m = self._manifest
        m.update(version=m["version"] + 1, parts=[p.as_dict() for p in parts])
        if retired is not None:
            m["retired"] = retired
        write_text(self.store.path / "manifest.json", json.dumps(m, indent=1))
        self.store.refresh()

    def _clean(self) -> None:
        """Remove the leftovers of killed writers, and retired parts past their time."""
        parts_dir = self.store.path / "parts"
        live = {p.name for p in self.store.parts}
        retired = self._manifest.get("retired", [])
        old = time.time() - self.retain_hours * 3600
        keep = [r for r in retired if r["since"] > old]
        for r in retired:
            if r["since"] <= old:
                shutil.rmtree(parts_dir / r["name"], ignore_errors=True)
        if len(keep) != len(retired):
            self._write_manifest(self.store.parts, keep)
        waiting = live | {r["name"] for r in keep}
        for d in parts_dir.iterdir():
            if d.name not in waiting:  # temporary, or written but never committed
                shutil.rmtree(d, ignore_errors=True)

    def _new_dir(self) -> tuple[str, Path]:
        """A name for the next part, and a temporary directory to write it in."""
        name = f"{self._manifest['next']:06d}"
        self._manifest["next"] += 1
        tmp = self.store.path / "parts" / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir(parents=True)
        return name, tmp

    def _place(self, tmp: Path, name: str) -> None:
        fsync_tree(tmp)
        os.rename(tmp, self.store.path / "parts" / name)
        fsync_dir(self.store.path / "parts")

    # --- committing ------------------------------------------------------------------------

    def commit(self, flux: np.ndarray, records: list[dict]) -> Part:
        """Append one part: ``flux`` holds the pooled spectra, in the order of the records
        whose status is ``ok``; ``records`` describe every file processed (see META_SCHEMA;
        a record with ``"again": True`` is a file processed before, so it is not counted
        twice). Rows are assigned here. The part appears whole or not at all."""
        if self._lock is None:
            raise RuntimeError("commit outside 'with store.writer()'")
        store = self.store
        ok = [r for r in records if r["status"] == "ok"]
        flux = np.asarray(flux, dtype=store.dtype).reshape(-1, store.points)
        if len(ok) != len(flux):
            raise ValueError(f"{len(flux)} spectra for {len(ok)} pooled records")
        first = len(store)
        next_row = iter(range(first, first + len(ok)))
        rows = [next(next_row) if r["status"] == "ok" else -1 for r in records]
        table = pa.Table.from_pylist(
            [{k: v for k, v in r.items() if k in META_SCHEMA.names} | {"row": row}
             for r, row in zip(records, rows, strict=True)], schema=META_SCHEMA)
        files = len({r["path"] for r in records if not r.get("again")})
        name, tmp = self._new_dir()
        part = Part(name, first, len(ok), files)
        zarr.create_array(store=str(tmp / "flux.zarr"), data=flux,
                          chunks=(max(min(len(flux), CHUNK_ROWS), 1), store.points))
        self._finish(tmp, part, table, build_indexes(table))
        self._write_manifest([*store.parts, part])
        return part

    def _finish(self, tmp: Path, part: Part, table: pa.Table | None,
                indexes: dict[str, np.ndarray]) -> None:
        if table is not None:
            pq.write_table(table, tmp / "meta.parquet", row_group_size=ROW_GROUP)
        for name, array in indexes.items():
            np.save(tmp / f"{name}.npy", array)
        (tmp / "part.json").write_text(json.dumps(
            {"first_row": part.first_row, "rows": part.rows, "files": part.files}))
        self._place(tmp, part.name)

    # --- compaction ------------------------------------------------------------------------

    def compact(self, target_rows: int = COMPACT_ROWS) -> int:
        """Merge runs of neighbouring small parts into parts of up to ``target_rows`` rows, so
        that a metadata query opens few files. Returns the number of parts merged away."""
        parts, groups, run = self.store.parts, [], []
        for part in parts:
            if run and (part.rows >= target_rows
                        or sum(p.rows for p in run) + part.rows > target_rows):
                groups.append(run)
                run = []
            if part.rows < target_rows:
                run.append(part)
        groups.append(run)
        groups = [g for g in groups if len(g) > 1]
        if not groups:
            return 0
        merged = {g[0].name: (g, self._merge(g)) for g in groups}
        gone = {p.name for g in groups for p in g}
        out = []
        for part in parts:
            if part.name in merged:
                out.append(merged[part.name][1])
            elif part.name not in gone:
                out.append(part)
        now = time.time()
        retired = self._manifest.get("retired", []) + [{"name": n, "since": now}
                                                        for n in sorted(gone)]
        self._write_manifest(out, retired)
        return len(gone) - len(groups)

    def _merge(self, group: list[Part]) -> Part:
        store = self.store
        name, tmp = self._new_dir()
        rows = sum(p.rows for p in group)
        part = Part(name, group[0].first_row, rows, sum(p.files for p in group))
        out = zarr.create_array(store=str(tmp / "flux.zarr"), shape=(rows, store.points),
                                dtype=store.dtype,
                                chunks=(max(min(rows, CHUNK_ROWS), 1), store.points))
        at = 0
        for p in group:
            if p.rows:
                out[at : at + p.rows] = store._array(p)[:]
                at += p.rows
        with pq.ParquetWriter(tmp / "meta.parquet", META_SCHEMA) as w:
            for p in group:
                w.write_table(store._dataset([p]).to_table(),
                              row_group_size=ROW_GROUP)
        indexes = {}
        for kind, field in (("paths", None), ("keys", "hash"), ("sky", "pixel")):
            joined = np.concatenate([np.asarray(store.index(p, kind)) for p in group])
            joined.sort(**({"order": [field, "row"]} if field else {}), kind="stable")
            indexes[kind] = joined
        self._finish(tmp, part, None, indexes)
        return part


def _next_number(parts: list[Part]) -> int:
    numbers = [int(p.name) for p in parts if p.name.isdigit()]
    return max(numbers, default=-1) + 1
