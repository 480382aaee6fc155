"""The app's line measurements (:mod:`specscout.catalogue.lines`): held in memory as they
are read from the project or made, by a page's request or the start-up's worker, and kept
in the project a few hundred at a time."""

from __future__ import annotations

import logging
import threading

import numpy as np

from specscout.archive.project import Project
from specscout.web.pool import Bounded

log = logging.getLogger(__name__)

#: Spectra a request may have measured from their files (5-40 ms each, the file read and
#: the measurement); measurements held in memory; candidates measured at start-up, most
#: probable first; measurements kept in the project this many at a time.
PER_REQUEST = 30
HELD = 50_000
AT_START = 5000
SAVED_AT = 500


class Lines:
    """The line measurements a server holds."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self._held: dict[int, dict] = Bounded(HELD)
        self._lock = threading.Lock()
        self._measuring: set[int] = set()  # rows a request is measuring now
        self._unsaved: list[dict] = []  # measured here, not yet kept in the project
        self._saved: set[int] = set()

    def of(self, rows, budget: int = PER_REQUEST) -> dict[int, dict]:
        """The line measurements of pool ``rows`` that are known (kept in the project, or
        made by this server), and of at most ``budget`` more measured now from their files
        (a page is never held up long; the rest come with later requests, or from the
        start-up's measuring of the candidate list). What this server measures is kept in
        the project a few hundred at a time (:meth:`keep`); a file it cannot read is
        tried again by a later request."""
        from specscout.catalogue.lines import joined, measure_missing

        rows = [int(r) for r in rows]
        with self._lock:
            out = {r: self._held[r] for r in rows if r in self._held}
            busy = set(self._measuring)
            todo = [r for r in rows if r not in out and r not in busy]
            self._measuring.update(todo)
        try:
            if todo:
                have, new = measure_missing(self.project, np.array(todo, np.int64),
                                            budget=budget)
                table, fresh = joined(have, new).to_pylist(), {r["row"] for r in new}
                self.hold([r for r in table if r["row"] not in fresh], kept=True)
                self.hold([r for r in table if r["row"] in fresh], kept=False)
                out.update({r["row"]: r for r in table})
        finally:
            with self._lock:
                self._measuring.difference_update(todo)
        if len(self._unsaved) >= SAVED_AT:
            self.keep()
        return out

    def hold(self, measured: list[dict], kept: bool) -> None:
        """Hold line measurements in memory (a file that cannot be read now is left out: a
        later request tries it again); those not ``kept`` in the project yet are kept by
        :meth:`keep`."""
        fresh = [r for r in measured if r["status"] != "unreadable"]
        with self._lock:
            self._held.update({r["row"]: r for r in fresh})
            if not kept:
                self._unsaved.extend(r for r in fresh if r["row"] not in self._saved)
            self._saved.update(r["row"] for r in fresh)

    def keep(self) -> None:
        """Keep in the project what this server has measured (a read-only project: they
        stay in memory only)."""
        from specscout.catalogue.lines import keep_rows

        with self._lock:
            rows, self._unsaved = self._unsaved, []
        try:
            keep_rows(self.project, rows)
        except OSError as exc:
            log.warning("could not keep the line measurements in the project: %s", exc)
