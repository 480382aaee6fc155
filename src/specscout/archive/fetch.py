"""Spectra from Virtual Observatory archives, by the IVOA Simple Spectral Access protocol.

``fetch`` asks an SSA service (pyvo) for spectra by their publisher's dataset ids (the
``PUBDID`` parameter, one query per id) or by a region of the sky and time, and downloads each
file it is pointed to, in parallel threads, streamed to disk (memory stays bounded whatever the
files' sizes). A file appears under its final name only once complete (written as ``.part``,
then renamed), so a run that is stopped resumes where it was: files already there are skipped.
Every spectrum that could not be had is named with its reason in ``fetch-failures.csv``;
``fetched.csv`` maps each id to its file (with the ids' labels, when the list had them, ready
for ``specscout ingest --labels``). Nothing here runs unless a user asks for it.
"""

from __future__ import annotations

import csv
import os
import re
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from specscout.errors import SpecscoutError

CHUNK = 1 << 20


@dataclass
class FetchSummary:
    fetched: int = 0
    skipped: int = 0  # there from an earlier run
    failed: list[tuple[str, str]] = field(default_factory=list)  # (id or url, reason)
    seconds: float = 0.0

    def __str__(self) -> str:
        text = (f"fetched {self.fetched}, skipped {self.skipped} already there, failed "
                f"{len(self.failed)} in {self.seconds:.1f} s")
        for key, reason in self.failed[:10]:
            text += f"\n  {key}: {reason}"
        if len(self.failed) > 10:
            text += f"\n  ... {len(self.failed) - 10} more in fetch-failures.csv"
        return text


def read_ids(path: str | Path) -> list[tuple[str, str]]:
    """(id, label) of a CSV with an ``id`` column and, optionally, a ``label`` column."""
    path = Path(path)
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if "id" not in (reader.fieldnames or ()):
            raise SpecscoutError(f"{path}: needs an 'id' column; has {reader.fieldnames}")
        return [(row["id"].strip(), (row.get("label") or "").strip()) for row in reader
                if row["id"].strip()]


def file_name(key: str, url: str) -> str:
    """A safe local name for a dataset: the last part of its id (or URL), .fits added."""
    tail = re.split(r"[/#?=]", key.rstrip("/"))[-1] or re.split(r"[/#?=]", url)[-1]
    tail = re.sub(r"[^A-Za-z0-9._-]", "_", tail) or "spectrum"
    return tail if tail.lower().endswith((".fits", ".fit", ".fits.gz")) else tail + ".fits"


def unique_name(key: str, url: str, taken: dict[str, str]) -> str:
    """:func:`file_name`, made distinct (by a hash of the id) where another id has it."""
    name = file_name(key, url)
    if taken.get(name, key) != key:
        import hashlib

        digest = hashlib.blake2b(key.encode(), digest_size=5).hexdigest()
        stem, dot, ext = name.partition(".")
        name = f"{stem}-{digest}{dot}{ext}"
    taken[name] = key
    return name


def _search(service, **constraints) -> list:
    import requests
    from pyvo.dal import DALAccessError

    try:
        return list(service.search(**constraints))
    except (DALAccessError, requests.RequestException) as exc:  # unreachable, refused, HTML
        raise _Failed(f"the service could not answer the query: {exc}") from None


class _Failed(Exception):
    pass


def _dataset_id(record) -> str:
    for utype in ("ssa:Curation.PublisherDID", "ssa:DataID.DatasetID"):
        value = record.getbyutype(utype, decode=True)
        if value:
            return str(value)
    return ""


def _locate(service, key: str) -> str:
    """The download URL of the dataset whose publisher id is ``key``."""
    found = [r for r in _search(service, PUBDID=key) if r.getdataurl()]
    if not found:
        raise _Failed("not found by the service")
    fits = [r for r in found if "fits" in str(r.format or "").lower()]
    return str((fits or found)[0].getdataurl())


def _download(url: str, target: Path, timeout: float) -> None:
    import requests

    part = target.with_name(target.name + ".part")
    try:
        with requests.get(url, stream=True, timeout=timeout) as response:
            if response.status_code != 200:
                raise _Failed(f"HTTP {response.status_code} from {url}")
            with part.open("wb") as fh:
                for block in response.iter_content(CHUNK):
                    fh.write(block)
    except requests.RequestException as exc:
        part.unlink(missing_ok=True)
        raise _Failed(f"download failed: {exc}") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    if part.stat().st_size == 0:
        part.unlink()
        raise _Failed(f"empty file from {url}")
    os.replace(part, target)


def fetch(service_url: str, out: str | Path, *, ids: Iterable[tuple[str, str]] = (),
          pos: tuple[float, float] | None = None, size: float | None = None,
          time_range: tuple[str, str] | None = None, workers: int = 8,
          timeout: float = 60.0) -> FetchSummary:
    """Download into ``out`` the spectra named by ``ids`` ((id, label) pairs), or those the
    service finds within ``size`` degrees of ``pos`` (and within ``time_range``)."""
    from pyvo.dal import SSAService

    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    service = SSAService(service_url)
    summary = FetchSummary()
    ledger = out / "fetched.csv"
    done = _ledger(ledger)
    taken = {path: key for key, path in done.items()}
    ids = list(ids)
    labels = dict(ids)

    def jobs() -> Iterator[tuple[str, str | None]]:
        if ids:
            yield from ((key, None) for key, _ in ids)
        if pos is not None:
            constraints = {"pos": pos, "diameter": 2 * (size or 0.01)}
            if time_range:
                constraints["time"] = time_range
            for record in _search(service, **constraints):
                url = record.getdataurl()
                if url:
                    yield _dataset_id(record) or str(url), str(url)

    def work(key: str, url: str | None, name: str) -> str:
        target = out / name
        if target.exists():
            return "skipped"
        _download(url or _locate(service, key), target, timeout)
        return "fetched"

    # Both files are written as the work goes, so a run that is stopped keeps what it did.
    with ThreadPoolExecutor(workers) as pool, _Appender(ledger, ["id", "path", "label"]) as \
            fetched, _Appender(out / "fetch-failures.csv", ["id", "reason"], new=True) as failed:

        def fail(key: str, reason: str) -> None:
            summary.failed.append((key, reason))
            failed.write({"id": key, "reason": reason})

        pending: dict = {}
        asked: set[str] = set()
        queue = iter(jobs())
        while True:
            while len(pending) < 2 * workers:  # bounded: never all the work at once
                try:
                    job = next(queue, None)
                except _Failed as exc:  # the search itself
                    fail(f"query {pos}", str(exc))
                    job, queue = None, iter(())
                if job is None:
                    break
                if job[0] in done or job[0] in asked:  # had, or listed twice
                    summary.skipped += 1
                    continue
                asked.add(job[0])
                name = unique_name(job[0], job[1] or "", taken)
                pending[pool.submit(work, *job, name)] = (job[0], name)
            if not pending:
                break
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                key, name = pending.pop(future)
                try:
                    outcome = future.result()
                except (_Failed, OSError) as exc:
                    fail(key, str(exc))
                    continue
                except Exception as exc:  # anything else a client library raises: named too
                    fail(key, f"{type(exc).__name__}: {exc}")
                    continue
                if outcome == "skipped":
                    summary.skipped += 1
                else:
                    summary.fetched += 1
                done[key] = name
                fetched.write({"id": key, "path": name, "label": labels.get(key, "")})
    summary.seconds = time.perf_counter() - start
    return summary


class _Appender:
    """A CSV file appended to row by row, each row flushed (``new``: started afresh)."""

    def __init__(self, path: Path, fields: list[str], new: bool = False) -> None:
        fresh = new or not path.exists()
        self.fh = path.open("w" if new else "a", newline="")
        self.writer = csv.DictWriter(self.fh, fieldnames=fields)
        if fresh:
            self.writer.writeheader()
            self.fh.flush()

    def write(self, row: dict) -> None:
        self.writer.writerow(row)
        self.fh.flush()

    def __enter__(self) -> _Appender:
        return self

    def __exit__(self, *exc) -> None:
        self.fh.close()


def _ledger(path: Path) -> dict[str, str]:
    """{id: file} of the earlier runs' downloads that are still there."""
    if not path.exists():
        return {}
    with path.open(newline="") as fh:
        return {row["id"]: row["path"] for row in csv.DictReader(fh)
                if (path.parent / row["path"]).exists()}
