"""Work that would hold the server's interpreter for long runs in a process of its own: a
search of the pool (a cone reads the records of spectra spread over many parts: a quarter
of a second on a million spectra) and the measuring of the candidates' lines at start-up
(minutes on a long candidate list). The server's requests run one thread at a time in its
interpreter; a thread busy for seconds there delays every other request at each step, and
a team's labels would wait behind one search.

The process is started at the first task (spawned: nothing of the server's threads or
locks is copied into it) and ends with the app; if it dies, the next task starts another.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import threading
import weakref
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from specscout.archive.project import Project
from specscout.errors import SpecscoutError
from specscout.web.pool import PoolView

log = logging.getLogger(__name__)

#: Candidates measured per task at start-up: a search waits at most for one such task.
LINES_TASK = 100

_view: PoolView | None = None  # the project, as the worker process sees it


def _start(path: str) -> None:
    """The worker's start: Ctrl-C in the server's terminal reaches it too, and it is the
    server that stops it."""
    global _view
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _view = PoolView(Project(Path(path)))


def search(text: str) -> list[dict]:
    """:meth:`PoolView.search` in the worker."""
    return _view.search(text)


def measure_lines(rows: list[int]) -> int:
    """Measure the lines of pool ``rows`` and keep them in the project (the server reads
    them there); returns how many were measured."""
    from specscout.catalogue.lines import measured

    return measured(_view.project, np.asarray(rows, np.int64), keep=True).num_rows


class WorkerLost(SpecscoutError):
    """The worker process ended during a task (killed, out of memory)."""


class Worker:
    """The app's worker process (see the module's docstring)."""

    def __init__(self, project: Project) -> None:
        self.path = str(project.path)
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn, *args) -> Future:
        """Run ``fn(*args)`` (a function of this module) in the worker."""
        return self._submit(fn, *args)[1]

    async def run(self, fn, *args):
        """``fn(*args)`` in the worker, awaited."""
        executor, future = self._submit(fn, *args)
        try:
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            log.error("the app's worker process ended during %s", fn.__name__)
            self._lost(executor)
            raise WorkerLost("the worker process ended during this request: try again") \
                from None

    def _submit(self, fn, *args) -> tuple[ProcessPoolExecutor, Future]:
        for _ in range(2):  # a process found dead before the task: another is started
            with self._lock:
                if self._closed:
                    raise WorkerLost("the app is stopping")
                if self._executor is None:
                    self._executor = ProcessPoolExecutor(
                        1, mp_context=multiprocessing.get_context("spawn"),
                        initializer=_start, initargs=(self.path,))
                    weakref.finalize(self, _stop, self._executor)  # an app dropped unclosed
                executor = self._executor
            try:
                return executor, executor.submit(fn, *args)
            except (BrokenProcessPool, RuntimeError):  # broken; or shut down just now
                self._lost(executor)
        raise WorkerLost("the worker process cannot be started: see the server's log")

    def _lost(self, executor: ProcessPoolExecutor) -> None:
        """Forget a broken executor: the next task starts a new process."""
        with self._lock:
            if self._executor is executor:
                self._executor = None
        executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the worker now, its task unfinished (what it kept stays kept)."""
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            _stop(executor)

    @property
    def closed(self) -> bool:
        return self._closed

    def pid(self) -> int | None:
        """The worker process's id, if one runs."""
        with self._lock:
            processes = getattr(self._executor, "_processes", None) or {}
        return next(iter(processes), None)


def _stop(executor: ProcessPoolExecutor) -> None:
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        process.terminate()
    executor.shutdown(wait=True, cancel_futures=True)
