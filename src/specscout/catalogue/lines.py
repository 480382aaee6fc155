"""Line measurements of pool spectra, made from their files and kept in the project.

    PROJECT/lines/part-<uuid>.parquet   one part per measuring run: the pool row, the
                                        spectrum's id and the columns of
                                        :data:`specscout.spectra.measure.COLUMNS`

A pool row's spectrum never changes, so a row is measured once: :func:`measured` reads what
the parts hold and measures the rest, in this process for a few, on the project's Dask
cluster for many. A kept row whose id is not the pool row's any more is measured again, and
parts of another measurement version are ignored, so a better measurement reaches old
projects by itself; the kind is decided again on every read (:func:`~specscout.spectra.kinds.
classify` on the kept columns), so a change of the rule does too. A file that cannot be read
gives its row ``status`` ``unreadable`` and the reason in ``notes``, kind ``unknown``, never a
number; such a row, and one whose measurement failed, is not kept and is tried again the next
time. Small parts are merged once there are :data:`MERGE_AFTER` of them.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from specscout.archive.atomic import write_with
from specscout.archive.project import Project
from specscout.errors import ReadError
from specscout.progress import progress_bar
from specscout.spectra.kinds import classify
from specscout.spectra.measure import VERSION, empty_row, measure

DIRECTORY = "lines"
#: Spectra measured in this process at most; more go to the Dask cluster.
IN_PROCESS = 400
#: Spectra a Dask task measures.
TASK = 500
#: Parts of fewer rows than SMALL are merged into one once there are this many.
MERGE_AFTER = 8
SMALL = 20_000
#: Rows classified at a time (the kept columns turned into rows and back).
BATCH = 4096


def schema() -> pa.Schema:
    row = empty_row()
    types = {str: pa.string(), bool: pa.bool_(), int: pa.int32(), float: pa.float32()}
    return pa.schema([("row", pa.int64()), ("id", pa.string())]
                     + [(k, types[type(v)]) for k, v in row.items()],
                     metadata={"version": str(VERSION)})


def _parts(project: Project) -> list[Path]:
    folder = project.path / DIRECTORY
    return sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []


def _current(path: Path) -> bool:
    try:
        return (pq.read_schema(path).metadata or {}).get(b"version") == str(VERSION).encode()
    except (OSError, pa.ArrowException):
        return False  # a part being written, or damaged: its rows are measured again


def cached(project: Project, rows: np.ndarray, ids: Sequence[str] | None = None) -> pa.Table:
    """The kept measurements (of this version) of pool ``rows``, one per row, sorted by row;
    ``ids``: the rows' spectrum ids, which a kept row must have."""
    rows = np.asarray(rows, np.int64)
    found = []
    if rows.size:
        wanted = pa.array(np.unique(rows))
        for path in _parts(project):
            if not _current(path):
                continue
            try:
                found.append(pq.read_table(path, filters=[("row", "in", wanted)],
                                           schema=schema()))
            except (OSError, pa.ArrowException):
                continue
    table = pa.concat_tables(found) if found else schema().empty_table()
    if ids is not None and table.num_rows:
        id_of = dict(zip(rows.tolist(), ids, strict=True))
        same = [id_of.get(r) == i for r, i in zip(table["row"].to_pylist(),
                                                  table["id"].to_pylist(), strict=True)]
        table = table.filter(pa.array(same))
    if not table.num_rows:
        return table
    # one row each (two processes may have measured one at once: either will do)
    table = table.sort_by("row")
    keep = np.r_[True, np.diff(table["row"].to_numpy()) != 0]
    return table.filter(pa.array(keep))


def measure_records(records: Sequence[dict]) -> list[dict]:
    """Measure the pool spectra of ``records`` (row, id, path), reading each file once."""
    from specscout.spectra.readers import read_all

    by_path: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_path[r["path"]].append(r)
    out = []
    for path, recs in by_path.items():
        try:
            spectra = {s.meta.id: s for s in read_all(path)}
            error = None
        except (ReadError, OSError, ValueError) as exc:
            spectra, error = {}, str(getattr(exc, "reason", "") or exc)
        for r in recs:
            spectrum = spectra.get(r["id"])
            if spectrum is None:
                row = {**empty_row(), "status": "unreadable",
                       "notes": error or f"{r['id']} is no longer in its file"}
            else:
                row = measure(spectrum)
            out.append({"row": int(r["row"]), "id": r["id"], **classify(row)})
    return out


def measured(project: Project, rows: np.ndarray, *, workers: int | None = None,
             scheduler: str | None = None, progress: bool = False, keep: bool = True,
             budget: int | None = None) -> pa.Table:
    """The measurements of pool ``rows``, one per row, sorted by row (the kind decided now):
    those kept, and the others measured now (at most ``budget`` of them; on Dask with
    ``workers`` local processes or at ``scheduler`` when there are more than
    :data:`IN_PROCESS`) and, with ``keep``, kept."""
    have, new = measure_missing(project, rows, workers=workers, scheduler=scheduler,
                                progress=progress, budget=budget)
    if keep:
        keep_rows(project, new)
    return joined(have, new)


def measure_missing(project: Project, rows: np.ndarray, *, workers: int | None = None,
                    scheduler: str | None = None, progress: bool = False,
                    budget: int | None = None) -> tuple[pa.Table, list[dict]]:
    """(the kept measurements of pool ``rows``, the others measured now: at most ``budget``,
    not kept), as :func:`measured` makes them."""
    rows = np.unique(np.asarray(rows, np.int64))
    pool = project.store("pool")
    records = pool.records(rows, columns=["id", "path"]).to_pylist() if rows.size else []
    have = cached(project, rows, [r["id"] for r in records])
    done = set(have["row"].to_pylist())
    todo = [r for r in records if r["row"] not in done][:budget]
    new: list[dict] = []
    if todo:
        if len(todo) <= IN_PROCESS and workers is None and scheduler is None:
            new = measure_records(todo)
        else:
            new = _on_dask(todo, workers, scheduler, progress)
    return have, new


def joined(have: pa.Table, new: list[dict]) -> pa.Table:
    """Kept and new measurements (:func:`measure_missing`) as one table, sorted by row."""
    table = pa.concat_tables([_classified(have), pa.Table.from_pylist(new, schema=schema())])
    return table.sort_by("row")


def _classified(table: pa.Table) -> pa.Table:
    """``table`` with each row's kind decided again by the rule as it now stands."""
    if not table.num_rows:
        return table
    parts = [pa.Table.from_pylist([classify(r) for r in batch.to_pylist()], schema=schema())
             for batch in table.to_batches(max_chunksize=BATCH)]
    return pa.concat_tables(parts)


def _on_dask(records: list[dict], workers: int | None, scheduler: str | None,
             progress: bool) -> list[dict]:
    from specscout.archive.cluster import dask_client, map_batches

    records = sorted(records, key=lambda r: r["path"])  # a file's spectra in one task
    batches = [records[i : i + TASK] for i in range(0, len(records), TASK)]
    bar = progress_bar(len(records), "spectra", "measuring lines") if progress else None
    out: list[dict] = []
    try:
        with dask_client(workers, scheduler) as client:
            for result in map_batches(client, measure_records, iter(batches)):
                out.extend(result)
                if bar is not None:
                    bar.update(len(result))
    finally:
        if bar is not None:
            bar.close()
    return out


def keep_rows(project: Project, rows: list[dict]) -> None:
    """Keep measured ``rows`` in a new part; a file that could not be read (a disk not
    mounted here?) and a measurement that failed are tried again next time. Merges the small
    parts once there are :data:`MERGE_AFTER` of them."""
    rows = [r for r in rows if r["status"] not in ("unreadable", "error")]
    if not rows:
        return
    folder = project.path / DIRECTORY
    folder.mkdir(exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=schema())
    write_with(folder / f"part-{uuid.uuid4().hex}.parquet", lambda fh: pq.write_table(table, fh))
    _merge(project)


def _merge(project: Project) -> None:
    """Merge the small parts of this version into one, and drop those of other versions.
    Safe beside another process doing the same: a part is removed only once its rows are in
    a merged part written whole (a row kept twice is read once)."""
    small, stale = [], []
    for path in _parts(project):
        if not _current(path):
            stale.append(path)
        elif pq.ParquetFile(path).metadata.num_rows < SMALL:
            small.append(path)
    if len(small) < MERGE_AFTER:
        return
    tables, read = [], []
    for path in small:  # one that cannot be read now (removed meanwhile) is left as it is
        try:
            tables.append(pq.read_table(path, schema=schema()))
            read.append(path)
        except (OSError, pa.ArrowException):
            continue
    if not tables:
        return
    merged = pa.concat_tables(tables)
    write_with(project.path / DIRECTORY / f"part-{uuid.uuid4().hex}.parquet",
               lambda fh: pq.write_table(merged, fh))
    for path in read + stale:
        path.unlink(missing_ok=True)
