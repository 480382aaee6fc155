"""The local Dask cluster helper."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from specscout.archive.cluster import dask_client


def test_a_local_cluster_leaves_this_process_environment_alone(monkeypatch):
    # Dask's nanny gives its workers OMP_NUM_THREADS=1; it must not stay in this process,
    # where it would make every later torch call (and child process) single-threaded.
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with dask_client(1, None) as client:
        on_workers = client.run(lambda: os.environ.get("OMP_NUM_THREADS"))
    assert set(on_workers.values()) == {"1"}
    assert "OMP_NUM_THREADS" not in os.environ


def test_workers_in_another_directory_ingest_and_score(tmp_path, monkeypatch):
    """An existing cluster whose workers are separate 'dask worker' processes started
    elsewhere: the project is named by a relative path here, so everything the workers are
    given must be absolute."""
    import subprocess
    import sys
    import time

    from specscout.cli import main
    from specscout.spectra.writers import write_lamost

    from conftest import lamost_meta, star_flux

    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    flux, ivar = star_flux()
    data = write_lamost(here / "spec-0.fits.gz", flux, ivar, lamost_meta()).read_bytes()
    (here / "survey").mkdir()
    for i in range(30):
        (here / "survey" / f"spec-{i}.fits.gz").write_bytes(data)
    (here / "spec-0.fits.gz").unlink()
    bin_dir = Path(sys.executable).parent
    found = elsewhere / "scheduler.json"  # where it says which port it took
    procs = [subprocess.Popen([bin_dir / "dask", "scheduler", "--host", "127.0.0.1", "--port",
                               "0", "--no-dashboard", "--scheduler-file", str(found)],
                              cwd=elsewhere, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    try:
        for _ in range(600):
            try:
                address = json.loads(found.read_text())["address"]
                break
            except (OSError, ValueError):  # not written yet, or not whole yet
                time.sleep(0.1)
        else:
            pytest.fail("the scheduler did not say its address within 60 s")
        procs += [subprocess.Popen([bin_dir / "dask", "worker", address, "--nthreads", "1",
                                    "--no-dashboard", "--local-directory", str(elsewhere)],
                                   cwd=elsewhere, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL) for _ in range(2)]
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
            cwds = set(client.run(os.getcwd).values())
        assert cwds == {str(elsewhere)}
        monkeypatch.chdir(here)
        assert main(["init", "p"]) == 0
        assert main(["ingest", "p", "survey", "--scheduler", address, "--quiet"]) == 0
        from specscout.archive.project import Project

        store = Project("p").store()
        assert len(store) == 30 and not len(store.failures())
        assert all(Path(p).is_absolute() for p in store.meta(columns=["path"])["path"]
                   .to_pylist())
        for label, rows in (("emission", range(0, 10)), ("other", range(10, 30))):
            (here / f"{label}.csv").write_text("row,label\n" + "".join(
                f"{r},{label}\n" for r in rows))
            assert main(["labels", "import", "p", f"{label}.csv"]) == 0
        assert main(["train", "p", "--model", "small-cnn", "--epochs", "2", "--quiet",
                     "--no-domain"]) == 0
        assert main(["score", "p", "--scheduler", address, "--quiet"]) == 0
        from specscout.learn.iterations import load_scores

        _, probs = load_scores(Project("p"))
        assert probs.shape == (30, 3)
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
