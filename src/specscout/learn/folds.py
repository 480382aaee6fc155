"""The folds' training examples made at once: injecting and measuring is single-threaded
numpy, so the later folds are made in other processes meanwhile (:func:`fold_examples`)."""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
from threadpoolctl import threadpool_limits

from specscout.archive.project import Project
from specscout.learn.domain import DomainConfig, Examples, domain_examples, injectable

log = logging.getLogger(__name__)


#: Injections and artefacts a fold from which the folds' examples are made in parallel
#: processes (below, a process's start costs about what it saves).
PARALLEL_FROM = 1000


def fold_examples(project: Project, config: DomainConfig, exclude: np.ndarray,
                  target_probability: np.ndarray | None, folds: tuple[int | None, ...],
                  cells: np.ndarray | None = None) -> list[tuple[Examples, dict]]:
    """:func:`domain_examples` of each fold. Injecting and measuring is single-threaded
    numpy, so with more than one fold and core the later folds are made in other processes
    meanwhile (the default training's examples in half the time); the result is the same."""
    jobs = [(project, config, exclude, target_probability, f, cells) for f in folds]
    work = config.positives * len(injectable(project.config.classes)) + config.artefacts
    if (len(folds) < 2 or work < PARALLEL_FROM or _cores() < 2
            or multiprocessing.current_process().daemon):  # a daemon may not start one
        return [domain_examples(*job) for job in jobs]
    first = None
    try:  # spawn: the parent's threads (torch's, Dask's) are not forked mid-use
        with ProcessPoolExecutor(len(folds) - 1, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_one_blas_thread) as workers, \
                threadpool_limits(1, user_api="blas"):
            # one BLAS thread a process: OpenBLAS's spinning threads, two processes' worth on
            # these cores, made it 2.5 times slower than one process alone
            later = [workers.submit(domain_examples, *job) for job in jobs[1:]]
            first = domain_examples(*jobs[0])
            return [first, *(f.result() for f in later)]
    except (BrokenProcessPool, OSError, RuntimeError) as exc:
        # no process could start or it died (a script without a main guard, no memory)
        log.warning("the other folds' examples are made here, one after the other: %s", exc)
        return [first if first is not None else domain_examples(*jobs[0]),
                *(domain_examples(*job) for job in jobs[1:])]


def _one_blas_thread() -> None:
    threadpool_limits(1, user_api="blas")


def _cores() -> int:
    """The cores this process may run on (macOS has no affinity: all of them)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
