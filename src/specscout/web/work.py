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
import concurrent.futures
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import weakref
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from specscout.archive.project import Project
from specscout.errors import SpecscoutError
from specscout.web.pool import PoolView, TooWide

log = logging.getLogger(__name__)

#: Candidates measured per task at start-up: a search waits at most for one such task.
LINES_TASK = 100
#: Searches waiting for the worker at most; one more is answered 503 at once.
QUEUED = 8
#: Seconds searches are refused after the worker could not start (it is not started
#: again for every search meanwhile).
RETRY_S = 30.0
#: Seconds the worker gets to finish its task when the app stops, before it is stopped.
STOP_S = 2.0

_view: PoolView | None = None  # the project, as the worker process sees it


def _start(path: str) -> None:
    """The worker's start: Ctrl-C in the server's terminal reaches it too, and it is the
    server that stops it (SIGTERM, on which it unwinds: a file half written is removed); if
    the server dies without stopping it (killed), it ends too."""
    global _view
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    parent = multiprocessing.parent_process()

    def orphaned() -> None:
        parent.join()
        os._exit(0)

    threading.Thread(target=orphaned, daemon=True).start()
    _view = PoolView(Project(Path(path)))


def _portably(fn, *args):
    """``fn(*args)``, its error made one the server can rebuild whatever it is: an
    exception that cannot be unpickled there would break the worker."""
    try:
        return fn(*args)
    except TooWide as exc:
        raise TooWide(str(exc)) from None
    except SpecscoutError as exc:
        raise SpecscoutError(str(exc)) from None
    except Exception as exc:
        raise RuntimeError(f"{type(exc).__name__}: {exc}") from None


def search(text: str) -> list[dict]:
    """:meth:`PoolView.search` in the worker."""
    return _portably(_view.search, text)


def measure_lines(rows: list[int]) -> tuple[list[dict], bool]:
    """Measure the lines of pool ``rows`` not measured yet and keep them in the project:
    (the measurements, whether they were kept)."""
    return _portably(_measure_lines, rows)


def _measure_lines(rows: list[int]) -> tuple[list[dict], bool]:
    from specscout.catalogue.lines import keep_rows, measure_missing

    _, new = measure_missing(_view.project, np.asarray(rows, np.int64))
    try:
        keep_rows(_view.project, new)
    except OSError as exc:  # a read-only project: the server holds them in memory
        log.warning("could not keep the line measurements in the project: %s", exc)
        return new, False
    return new, True


class WorkerLost(SpecscoutError):
    """The worker process ended during a task (killed, out of memory), cannot start, or the
    app is stopping."""


class WorkerBusy(SpecscoutError):
    """Too many tasks wait for the worker."""


class Worker:
    """The app's worker process (see the module's docstring)."""

    def __init__(self, project: Project) -> None:
        self.path = str(project.path)
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._waiting = 0  # tasks of requests submitted and not ended
        self._failed_at: float | None = None  # when it last could not start
        self._executors: list[ProcessPoolExecutor] = []
        self._proven: set[int] = set()  # ids of executors that have done a task
        weakref.finalize(self, _stop_all, self._executors)  # an app dropped unclosed

    def submit(self, fn, *args) -> Future:
        """Run ``fn(*args)`` (a function of this module) in the worker."""
        return self._submit(fn, *args)[1]

    async def run(self, fn, *args, timeout: float):
        """``fn(*args)`` in the worker, awaited at most ``timeout`` seconds (then
        TimeoutError: a task not begun is dropped; one under way ends in the worker)."""
        with self._lock:
            if self._waiting >= QUEUED:
                raise WorkerBusy(f"{self._waiting} searches are waiting: try again in a "
                                 f"moment")
            self._waiting += 1
        try:
            executor, future = self._submit(fn, *args)
            try:
                result = await asyncio.wait_for(asyncio.wrap_future(future), timeout)
            except BrokenProcessPool:
                log.error("the app's worker process ended during %s", fn.__name__)
                self._lost(executor)
                raise WorkerLost("the worker process ended during this request: try "
                                 "again") from None
            except (asyncio.CancelledError, concurrent.futures.CancelledError):
                if self._closed:
                    raise WorkerLost("the app is stopping") from None
                raise
            self._proven.add(id(executor))  # it started: a later failure is no start's
            return result
        finally:
            with self._lock:
                self._waiting -= 1

    def _submit(self, fn, *args) -> tuple[ProcessPoolExecutor, Future]:
        for _ in range(2):  # a process found dead before the task: another is started
            with self._lock:
                if self._closed:
                    raise WorkerLost("the app is stopping")
                if self._failed_at is not None and time.monotonic() - self._failed_at < \
                        RETRY_S:
                    raise WorkerLost("the app's worker process could not start (the "
                                     "server's log says why): try again later")
                if self._executor is None:
                    self._executor = ProcessPoolExecutor(
                        1, mp_context=multiprocessing.get_context("spawn"),
                        initializer=_start, initargs=(self.path,))
                    self._executors.append(self._executor)
                executor = self._executor
            try:
                return executor, executor.submit(fn, *args)
            except (BrokenProcessPool, RuntimeError):  # broken; or shut down just now
                self._lost(executor)
        raise WorkerLost("the app's worker process cannot be started: see the server's log")

    def _lost(self, executor: ProcessPoolExecutor) -> None:
        """Forget a broken executor: the next task starts a new process, at once unless
        this one broke before doing any task (it could not start)."""
        with self._lock:
            if self._executor is executor:
                self._executor = None
                if id(executor) not in self._proven:
                    self._failed_at = time.monotonic()
            self._proven.discard(id(executor))
            if executor in self._executors:
                self._executors.remove(executor)
        executor.shutdown(wait=False, cancel_futures=True)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop the worker: its task gets :data:`STOP_S` seconds to end (what it kept stays
        kept), then it is stopped."""
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            _stop(executor, STOP_S)

    def pid(self) -> int | None:
        """The worker process's id, if one runs."""
        with self._lock:
            processes = getattr(self._executor, "_processes", None) or {}
        return next(iter(processes), None)


def _stop(executor: ProcessPoolExecutor, grace: float = 0.0) -> None:
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.join(grace)
        if process.is_alive():
            process.terminate()
    executor.shutdown(wait=True)


def _stop_all(executors: list[ProcessPoolExecutor]) -> None:
    for executor in list(executors):
        _stop(executor)
