"""Ingest and scoring on an existing ``dask.distributed`` cluster, with 1 and 2 workers.

The cluster is made as on a real one: a ``dask scheduler`` and separate ``dask worker``
processes (one thread each), started in another working directory; the project is named by a
relative path from here, so whatever reaches the workers must be absolute. For each number of
workers, in the same run:

- ``specscout ingest PROJECT farm --scheduler ADDRESS``: ``--files`` links with distinct names
  to the real LAMOST files of ../shared/data, read and preprocessed for real;
- ``specscout score PROJECT --scheduler ADDRESS``: the pool grown to ``--rows`` through the
  store's own write path (copies of the ingested spectra, as ``bench_archive.py`` does), scored
  chunk by chunk (65,536 rows a task) with the paper's CNN.

Printed: wall time, rate, the scaling from 1 to 2 workers, what the command's own process (the
one writer) sustains per CPU second, and peak RSS of the command and of its largest worker.

    python benchmarks/bench_cluster.py [--files 40000] [--rows 524288] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from bench_archive import append, farm, real_files, run, specscout

BIN = Path(sys.executable).parent


def driver(cmd: list[str]) -> tuple[dict, float]:
    """``run(cmd)`` and the CPU seconds of the command's own process (its workers are not its
    children here): what one driver can sustain is files or spectra per CPU second."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = run(cmd)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A scheduler and ``workers`` single-threaded worker processes in ``directory``; the
    peak RSS of the largest worker is sampled while it runs."""

    def __init__(self, workers: int, directory: Path) -> None:
        port = free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": directory}
        self.procs = [subprocess.Popen([BIN / "dask", "scheduler", "--host", "127.0.0.1",
                                        "--port", str(port), "--no-dashboard"], **quiet)]
        time.sleep(2)
        self.procs += [subprocess.Popen([BIN / "dask", "worker", self.address, "--nthreads",
                                         "1", "--no-dashboard", "--local-directory",
                                         str(directory)], **quiet) for _ in range(workers)]
        from distributed import Client

        with Client(self.address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=120)
        self.peak = 0
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._done.is_set():
            for p in self.procs[1:]:
                try:
                    proc = psutil.Process(p.pid)
                    rss = proc.memory_info().rss + sum(
                        c.memory_info().rss for c in proc.children(recursive=True))
                    self.peak = max(self.peak, rss)
                except psutil.Error:
                    pass
            self._done.wait(0.1)

    def reset(self) -> None:
        self.peak = 0

    def close(self) -> None:
        self._done.set()
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            p.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=40_000)
    parser.add_argument("--rows", type=int, default=524_288)
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    here, elsewhere = base / "here", base / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    files = real_files()
    dirs = farm(here / "farm", args.files, files)
    os.chdir(here)  # the project is named relatively, as a user in this directory would
    run(specscout("simulate", "ondrejov", "--kind", "labelled", "--n", "1000", "--quiet"))
    results = {}
    for workers in (int(w) for w in args.workers.split(",")):
        shutil.rmtree(here / "p", ignore_errors=True)
        run(specscout("init", "p"))
        cluster = Cluster(workers, elsewhere)
        try:
            r, cpu = driver(specscout("ingest", "p", *[d.relative_to(here) for d in dirs],
                                      "--scheduler", cluster.address, "--quiet"))
            results[workers, "ingest"] = (r, args.files / r["seconds"], "files/s",
                                          cluster.peak, args.files / cpu)
            run(specscout("ingest", "p", "ondrejov", "--labels", "ondrejov/labels.csv",
                          "--degrade-to", "1531", "--quiet", "--workers", "1"))
            append(here / "p", args.rows - len(_store(here / "p")))
            run(specscout("train", "p", "--no-domain", "--epochs", "2", "--quiet"))
            cluster.reset()
            r, cpu = driver(specscout("score", "p", "--scheduler", cluster.address,
                                      "--quiet"))
            results[workers, "score"] = (r, args.rows / r["seconds"], "spectra/s",
                                         cluster.peak, args.rows / cpu)
        finally:
            cluster.close()
    print(f"\n{args.files:,} files ingested, {args.rows:,} spectra scored; workers are "
          f"'dask worker' processes (1 thread each) in another directory; {os.cpu_count()} "
          f"cores here")
    print(f"{'step':<8} {'workers':>7} {'wall s':>8} {'rate':>18} {'scaling':>8} "
          f"{'driver: per CPU s':>18}  RSS MB (command / largest worker)")
    for (workers, step), (r, rate, unit, worker_rss, per_cpu) in results.items():
        one = results.get((1, step))
        scaling = f"{rate / one[1]:.2f}x" if one else "-"
        print(f"{step:<8} {workers:>7} {r['seconds']:>8.1f} {rate:>8,.0f} {unit:<9} "
              f"{scaling:>8} {per_cpu:>18,.0f}  {r['rss'] / 2**20:.0f} / "
              f"{worker_rss / 2**20:.0f}")
    shutil.rmtree(base, ignore_errors=True)


def _store(path: Path):
    from specscout.archive.project import Project

    return Project(path).store()


if __name__ == "__main__":
    main()
