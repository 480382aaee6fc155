"""The local Dask cluster helper."""

from __future__ import annotations

import os

from specscout.archive.cluster import dask_client


def test_a_local_cluster_leaves_this_process_environment_alone(monkeypatch):
    # Dask's nanny gives its workers OMP_NUM_THREADS=1; it must not stay in this process,
    # where it would make every later torch call (and child process) single-threaded.
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with dask_client(1, None) as client:
        on_workers = client.run(lambda: os.environ.get("OMP_NUM_THREADS"))
    assert set(on_workers.values()) == {"1"}
    assert "OMP_NUM_THREADS" not in os.environ
