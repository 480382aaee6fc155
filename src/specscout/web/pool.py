"""What the web app reads of a project, one spectrum at a time: its record, its preprocessed
window, its original file, and the latest model's probabilities.

Everything is found by pool row. A row leads to one part of the store (a binary search over the
parts' first rows), so a request reads one small Parquet file and one Zarr chunk whatever the
pool's size. The store and the scores are reopened when an ingest or an iteration adds to them.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord

from specscout.archive.project import Project
from specscout.archive.store import Store
from specscout.errors import ReadError, SpecscoutError
from specscout.learn.iterations import iteration_numbers, iteration_path

#: Lines marked on the plots (vacuum Angstrom).
LINES = {"H-alpha": 6564.61, "He I 6680": 6679.99, "[N II] 6585": 6585.27,
         "[N II] 6550": 6549.86, "[S II] 6718": 6718.29}

SEARCH_LIMIT = 50
#: Spectra this close to one another are epochs of one object.
EPOCH_RADIUS_ARCSEC = 3.0
DEFAULT_RADIUS_ARCSEC = 5.0
#: A search by position looks at most this far (1 degree): the app answers every request
#: quickly, and a search wider than this is a job for a catalogue tool.
MAX_RADIUS_ARCSEC = 3600.0
#: Rows whose record and window are kept in memory (about 2 kB each): a queue batch's
#: spectrum is read by the page, then again when its label is saved.
ROWS_KEPT = 4096
_NUMBER = r"[-+]?\d+(?:\.\d*)?"
_DEGREES = re.compile(rf"\s*({_NUMBER})[\s,]+({_NUMBER})(?:[\s,]+({_NUMBER}))?\s*")


def _stamp(path: Path) -> tuple[int, int]:
    """Changes whenever ``path`` is written or replaced."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return (0, 0)
    return st.st_ino, st.st_mtime_ns


class Bounded(OrderedDict):
    """A dict that forgets its oldest entries beyond ``size``."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class PoolView:
    def __init__(self, project: Project) -> None:
        self.project = project
        self.wavelength = project.config.grid.wavelength
        self._lock = threading.RLock()
        self._store: Store | None = None
        self._store_stamp = None
        self._scores: tuple | None = None  # (stamp, iteration, memory-mapped probabilities)
        # (store stamp, row) -> (record, window): a commit (ingest, compaction) makes new keys
        self._rows: dict[tuple, tuple[dict, np.ndarray]] = Bounded(ROWS_KEPT)

    # --- the pool --------------------------------------------------------------------------

    @property
    def pool(self) -> Store:
        """The pool as last committed."""
        return self._current()[0]

    def _current(self) -> tuple[Store, tuple[int, int]]:
        """(the pool as last committed, the stamp of its manifest). A commit (an ingest, a
        compaction) opens it anew rather than changing the one in use: a reader keeps the
        parts it began with, and what is kept in memory is keyed by the stamp read here."""
        with self._lock:
            stamp = _stamp(self.project.pool_path / "manifest.json")
            if self._store is None or stamp != self._store_stamp:
                self._store, self._store_stamp = self.project.store("pool"), stamp
            return self._store, self._store_stamp

    def __len__(self) -> int:
        return len(self.pool)

    def check_row(self, row: int) -> None:
        if not 0 <= row < len(self):
            raise KeyError(f"no spectrum at row {row}: the pool has rows 0..{len(self) - 1}")

    def record(self, row: int) -> dict:
        """The metadata record of pool row ``row``."""
        return dict(self._row(row)[0])

    def flux(self, row: int) -> np.ndarray:
        """The preprocessed window of pool row ``row`` (not to be changed: it is kept)."""
        return self._row(row)[1]

    def kept(self, row: int) -> bool:
        """Whether the record and window of ``row`` are in memory."""
        return (self._current()[1], int(row)) in self._rows

    def keep(self, rows) -> None:
        """Read the records and windows of ``rows`` (at most :data:`ROWS_KEPT`) into memory at
        once, a part at a time, before the page asks for them one by one."""
        pool, stamp = self._current()
        rows = [int(r) for r in rows if (stamp, int(r)) not in self._rows][:ROWS_KEPT]
        self._read(pool, stamp, [r for r in rows if 0 <= r < len(pool)])

    def _row(self, row: int) -> tuple[dict, np.ndarray]:
        self.check_row(row)  # rows are only ever added: valid in the store read next too
        pool, stamp = self._current()
        key = (stamp, row)
        with self._lock:
            kept = self._rows.get(key)
            if kept is not None:
                self._rows.move_to_end(key)  # recently used: kept longest
        return kept if kept is not None else self._read(pool, stamp, [row])[key]

    def _read(self, pool: Store, stamp: tuple, rows: list[int]) -> dict:
        """Read ``rows`` of ``pool`` and keep them under ``stamp``; returns what was read."""
        if not rows:
            return {}
        flux = pool.flux(rows).astype(np.float32)
        records = {r["row"]: r for r in pool.records(rows).to_pylist()}
        read = {}
        for k, r in enumerate(rows):
            window = flux[k].copy()  # its own: a view would keep the whole read alive
            window.flags.writeable = False
            read[stamp, r] = ({c: _finite(v) for c, v in records[r].items()}, window)
        with self._lock:
            for key, value in read.items():
                self._rows[key] = value
        return read

    def original(self, row: int) -> dict:
        """The whole spectrum from its file (the one of this row, in a file of several), as
        read by specscout's readers; or the reason it cannot be read now (the path is the
        store's, never the client's)."""
        from specscout.spectra.readers import read_all

        record = self.record(row)
        path = record["path"]
        try:
            found = read_all(path)
        except ReadError as exc:  # its reason only: a detail may quote the file's bytes
            return {"path": path, "error": f"the file cannot be read ({exc.reason})"}
        except OSError as exc:
            return {"path": path, "error": f"the file cannot be read ({exc.strerror or 'io'})"}
        except (SpecscoutError, ValueError):
            return {"path": path, "error": "the file cannot be read"}
        spec = next((s for s in found if s.meta.id == record["id"]), None)
        if spec is None:
            return {"path": path, "error": f"{record['id']} is no longer in the file"}
        good = ~spec.mask & np.isfinite(spec.flux)
        return {"path": path, "medium": spec.medium,
                "wavelength": np.round(spec.wavelength[good], 3).tolist(),
                "flux": spec.flux[good].astype(float).tolist()}

    def epochs(self, row: int, radius_arcsec: float = EPOCH_RADIUS_ARCSEC,
               limit: int = 40) -> list[dict]:
        """The other spectra of this spectrum's object (its other exposures, or visits),
        within ``radius_arcsec``, by time of observation, with their windows."""
        rec = self.record(row)
        if rec["ra"] is None or rec["dec"] is None:
            return []
        near = [r for r, _ in self.pool.cone(rec["ra"], rec["dec"], radius_arcsec,
                                             limit=limit + 1) if r != row][:limit]
        if not near:
            return []
        found = self.pool.records(near, ("id", "exposure", "mjd", "release")).to_pylist()
        flux = dict(zip(near, self.pool.flux(near).astype(np.float32), strict=True))
        found.sort(key=lambda r: (_finite(r["mjd"]) is None, r["mjd"] or 0, r["row"]))
        return [{**{k: _finite(r[k]) for k in ("row", "id", "exposure", "mjd", "release")},
                 "flux": [round(float(v), 5) for v in flux[r["row"]]]} for r in found]

    # --- the latest scores -----------------------------------------------------------------

    def scores(self) -> tuple[int | None, np.ndarray | None]:
        """(iteration, probabilities of every pool row) of the latest scored iteration."""
        numbers = [n for n in iteration_numbers(self.project)
                   if (iteration_path(self.project, n) / "scores.npy").exists()]
        if not numbers:
            return None, None
        path = iteration_path(self.project, numbers[-1]) / "scores.npy"
        stamp = (numbers[-1], _stamp(path))
        with self._lock:
            if self._scores is None or self._scores[0] != stamp:
                self._scores = (stamp, numbers[-1], np.load(path, mmap_mode="r"))
            return self._scores[1], self._scores[2]

    def probabilities(self, row: int) -> dict[str, float] | None:
        _, probs = self.scores()
        if probs is None or row >= len(probs):
            return None
        return {c: round(float(p), 4)
                for c, p in zip(self.project.config.classes, probs[row], strict=True)}

    # --- search ----------------------------------------------------------------------------

    def cone(self, ra: float, dec: float, radius_arcsec: float) -> list[tuple[int, float]]:
        """(row, separation in arcsec) of pooled spectra within the radius, nearest first."""
        return self.pool.cone(ra, dec, radius_arcsec, limit=SEARCH_LIMIT)

    def search(self, text: str) -> list[dict]:
        """Spectra matching ``text``: a pool row ("row 12"), an id, an obsid, a designation
        (the "J..." part is enough), or a position "ra dec [radius arcsec]" in degrees or
        sexagesimal."""
        text = text.strip()
        if not text:
            return []
        hits: dict[int, dict] = {}

        def add(rows, how, sep=None) -> None:
            for r in rows:
                if int(r) not in hits and len(hits) < SEARCH_LIMIT:
                    hits[int(r)] = {"row": int(r), "match": how,
                                    **({"separation": round(sep[int(r)], 3)} if sep else {})}

        pool = self.pool
        if m := re.fullmatch(r"row\s*(\d+)", text, re.IGNORECASE):
            add(pool.lookup("row", [int(m.group(1))])["row"].to_pylist(), "row")
        for key in ("id", "designation") + (("obsid",) if text.isdigit() else ()):
            add(pool.lookup(key, [text], limit=SEARCH_LIMIT)["row"].to_pylist(), key)
        if not hits:
            position = _position(text)
            if position is not None and position[2] > MAX_RADIUS_ARCSEC:
                raise TooWide(f"a search radius is at most {MAX_RADIUS_ARCSEC:g} "
                                     f"arcsec (1 degree), not {position[2]:g}")
            if position is not None:
                found = self.cone(*position)
                add([r for r, _ in found], "position", dict(found))
        shown = ("id", "obsid", "designation", "ra", "dec", "snr")
        records = {r["row"]: r for r in pool.records(list(hits), shown).to_pylist()}
        return [{**h, **{k: _finite(records[row][k]) for k in shown}}
                for row, h in hits.items()]


class TooWide(SpecscoutError):
    """A search by position wider than :data:`MAX_RADIUS_ARCSEC`."""


def _finite(value):
    return None if isinstance(value, float) and not np.isfinite(value) else value


def _position(text: str) -> tuple[float, float, float] | None:
    """(ra, dec, radius arcsec) from "ra dec [radius]" in degrees or sexagesimal, or None."""
    if m := _DEGREES.fullmatch(text):
        ra, dec = float(m.group(1)), float(m.group(2))
        radius = float(m.group(3)) if m.group(3) else DEFAULT_RADIUS_ARCSEC
        if 0 <= ra < 360 and -90 <= dec <= 90 and radius > 0:
            return ra, dec, radius
        return None
    parts = text.split()
    radius = DEFAULT_RADIUS_ARCSEC
    if len(parts) in (3, 7) and re.fullmatch(_NUMBER, parts[-1]):
        radius = float(parts.pop())
    try:
        coord = SkyCoord(" ".join(parts), unit=(u.hourangle, u.deg))
    except ValueError:
        return None
    return float(coord.ra.deg), float(coord.dec.deg), radius
