"""The Dask cluster bulk work runs on: local worker processes, or an existing cluster."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None,
                allowed_failures: int | None = None) -> Iterator:
    """A ``distributed.Client``: on ``scheduler`` (an address such as tcp://host:8786) when
    given, else on a new local cluster of ``workers`` single-threaded processes (default: one
    per core) that is closed on exit. ``allowed_failures``: for a local cluster, how many
    worker deaths a task may cause before the scheduler gives up on it (Dask's default: 3);
    an existing cluster keeps its own setting."""
    import os
    import warnings

    import dask
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.ERROR)
    # Dask keeps its last N messages per connection for debugging, and bulk work sends large
    # ones (a batch of paths): with the default N = 1000 that is ~40 MB of the driver's memory.
    # The setting is read when a connection opens, so it applies to this client only.
    settings = {"distributed.admin.low-level-log-length": 20}
    if allowed_failures is not None:
        settings["distributed.scheduler.allowed-failures"] = allowed_failures
    with dask.config.set(settings):
        if scheduler:
            client, cluster = Client(scheduler), None
        else:
            # The nanny sets OMP_NUM_THREADS=1 etc. in this process's environment to pass
            # them to its workers, and leaves them there: every later torch or BLAS call of
            # this process, and its child processes, would run on one thread.
            keys = set(dask.config.get("distributed.nanny.pre-spawn-environ", {})) | set(
                dask.config.get("distributed.nanny.environ", {}))
            saved = {k: os.environ.get(k) for k in keys}
            try:
                with warnings.catch_warnings():
                    # The dashboard moves to a free port when 8787 is taken (another cluster,
                    # a notebook): nothing a user must act on, so no warning. silence_logs:
                    # workers otherwise log heartbeat errors while the cluster closes.
                    warnings.filterwarnings("ignore", message="Port .* is already in use",
                                            category=UserWarning)
                    cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1,
                                           threads_per_worker=1, processes=True,
                                           dashboard_address=None, host="127.0.0.1",
                                           silence_logs=logging.CRITICAL)
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def map_batches(client, func, batches: Iterator, *args, per_worker: int = 2,
                on_death: Callable[[list], object] | None = None) -> Iterator:
    """Run ``func(batch, *args)`` on the cluster for each batch, keeping at most
    ``per_worker`` batches per worker in flight (so memory stays bounded however many batches
    there are), and yield the results in the order of the batches, so that a run's output
    (e.g. the rows of a store) does not depend on which worker finished first. ``args`` go
    with every task.

    A batch whose worker dies (a crash, the memory limit, a signal: the scheduler gives up on
    it with ``KilledWorker``) is split in halves that are run again, until the item that
    kills its worker stands alone. A worker's death fails every batch it held, the innocent
    ones queued beside the culprit too, so an item is judged only when it ran with nothing
    else in flight: once the batches before it are done, it runs alone, and if it dies then,
    ``on_death([item])`` gives its result. Without ``on_death`` the error is raised.
    """
    from collections import deque
    from contextlib import suppress
    from itertools import islice

    from distributed import KilledWorker, wait
    from distributed.client import FutureCancelledError, FuturesCancelledError

    in_flight = per_worker * max(len(client.scheduler_info()["workers"]), 1) + 1

    # ``args`` travel with every task (they are small: a configuration, a label map), not
    # scattered once: data scattered to a worker that dies is lost, and a task waiting on it
    # could wait for ever
    def submit(batch, alone: bool = False):
        return batch, client.submit(func, batch, *args, pure=False), alone

    queue = deque(submit(b) for b in islice(batches, in_flight))
    while queue:
        batch, future, alone = queue.popleft()
        try:
            result = future.result()
        except (KilledWorker, FutureCancelledError) as exc:
            future.release()
            if isinstance(exc, FutureCancelledError):  # it lost them: run it again
                queue.appendleft(submit(batch))
                continue
            if on_death is None:
                raise
            if len(batch) > 1:
                half = len(batch) // 2
                queue.extendleft([submit(batch[half:]), submit(batch[:half])])
                continue
            if not alone:  # perhaps only beside the culprit: try it with nothing else running
                # cancelled ones are run again when their turn comes
                with suppress(FuturesCancelledError):
                    wait([f for _, f, _ in queue])
                queue.appendleft(submit(batch, alone=True))
                continue
            result = on_death(batch)
        else:
            future.release()
        for b in islice(batches, max(in_flight - len(queue), 0)):
            queue.append(submit(b))
        yield result
