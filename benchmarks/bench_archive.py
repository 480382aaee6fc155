"""The whole loop at archive scale: every step a user runs, timed, with its peak memory, at
several pool sizes (default 500,000, 1,000,000 and 4,100,000 spectra).

The pool is built the way a user builds one. The real LAMOST low-resolution files of
../shared/data (every layout: DR1, DR2, DR3, DR5, DR7, DR9; 243 files) are linked under
distinct names into a farm (link k points to real file k mod 243), and up to ``--real`` of them
(default 1,000,000) go through ``specscout ingest`` for real: read, preprocessed, committed,
compacted. The rest of a size is appended through the store's own write path
(``Writer.commit``): copies of the ingested spectra with metadata of their own (ids, obsids,
designations, positions over the LAMOST footprint). A labelled set of 2,000 simulated
Ondrejov-like spectra is ingested once, matched to R 1531.

At each size a project over that pool (the pool and labelled set linked in; its own label
database and iterations) runs these, each as its own process, as a user would: a resumed
ingest that skips every file; one iteration (``specscout iterate``: the paper's CNN trained on
the 2,000 labels, the pool scored, 100 queried by entropy); every query strategy; a
10,000-label import; ``candidates``; an audit draw; ``report``; ``info``; ``specscout serve``,
whose endpoints are timed over loopback (next spectrum, save a label, search by id, obsid,
designation and position, the candidates page on first load and after a new label, progress);
last, scoring with 10 MC-dropout passes and the ``bald`` query on its scores. The steps done
so far are in ``progress-SIZE.json`` while a size runs.

Each step's wall time, rate and peak RSS (of the command's process; for Dask steps also its
largest worker) go into one table, with the time per million spectra so that a cost that grows
with the pool stands out. Results are appended to ``--out`` as JSON lines.

    python benchmarks/bench_archive.py [--sizes 500000,1000000,4100000] [--real 1000000]
    python benchmarks/bench_archive.py --quick      # 20,000 and 50,000 spectra: minutes
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from served import open_session, serve

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SPECSCOUT_SHARED_DATA", ROOT.parent / "shared" / "data"))
LINKS_PER_DIR = 1000
# bald last: it needs the MC-dropout scores, the longest step, run at the end
STRATEGIES = ("entropy", "margin", "least-confidence", "random", "rare", "diverse", "bald")


# --- measuring a command ----------------------------------------------------------------


def run(cmd: list[str], **kw) -> dict:
    """Run ``cmd``; its wall time, exit status, output, and the peak RSS of its process and
    of its largest descendant (a Dask worker), sampled every 50 ms."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kw)
    peak = {"rss": 0, "worker_rss": 0}
    done = threading.Event()

    def sample() -> None:
        p = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                peak["rss"] = max(peak["rss"], p.memory_info().rss)
                for child in p.children(recursive=True):
                    peak["worker_rss"] = max(peak["worker_rss"], child.memory_info().rss)
            except psutil.Error:
                pass
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    result = {"seconds": time.perf_counter() - start, "code": proc.returncode, "out": out,
              "err": err, **peak}
    if proc.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{err[-3000:]}")
    return result


def specscout(*args) -> list[str]:
    return [sys.executable, "-m", "specscout.cli", *map(str, args)]


# --- building the pool ------------------------------------------------------------------


def real_files() -> list[Path]:
    files = sorted(p for d in ("lamost", "lamost-extra", "pairs/lamost")
                   for p in (SHARED / d).rglob("*.fits*"))
    if not files:
        sys.exit(f"no real LAMOST files under {SHARED} (set SPECSCOUT_SHARED_DATA)")
    return files


def pooled_links(files: list[Path], spectra: int) -> int:
    """How many links (link k to file k mod len(files)) give exactly ``spectra`` pooled
    spectra: some real files are flagged, not pooled."""
    from specscout.archive.ingest import process_batch
    from specscout.spectra.preprocess import PreprocessConfig

    _, records = process_batch([str(f) for f in files], PreprocessConfig())
    ok = np.array([r["status"] == "ok" for r in records])
    full, rest = divmod(spectra, int(ok.sum()))
    return full * len(files) + (int(np.searchsorted(np.cumsum(ok), rest)) + 1 if rest else 0)


def farm(base: Path, n: int, files: list[Path]) -> list[Path]:
    """Directories of links with distinct names to the real files, n links in all."""
    dirs = []
    for d in range((n + LINKS_PER_DIR - 1) // LINKS_PER_DIR):
        directory = base / f"{d:05d}"
        dirs.append(directory)
        if directory.is_dir():
            continue
        tmp = base / f".{d:05d}"
        shutil.rmtree(tmp, ignore_errors=True)  # left half made by a stopped run
        tmp.mkdir(parents=True)
        for k in range(d * LINKS_PER_DIR, min(n, (d + 1) * LINKS_PER_DIR)):
            source = files[k % len(files)]
            suffix = ".fits.gz" if source.name.endswith(".gz") else ".fits"
            os.symlink(source, tmp / f"spec-{k:08d}{suffix}")
        tmp.rename(directory)
    return dirs


def append(project_path: Path, rows: int, seed: int = 0) -> float:
    """Append ``rows`` spectra through the store's write path: copies of the pool's ingested
    spectra with metadata of their own. Returns the seconds it took."""
    from specscout.archive.project import Project

    start = time.perf_counter()
    store = Project(project_path).store()
    rng = np.random.default_rng(seed)
    first = len(store)
    step = 65536
    with store.writer() as writer:
        for at in range(0, rows, step):
            n = min(step, rows - at)
            flux = store.flux(rng.integers(0, first, n))
            k = np.arange(first + at, first + at + n)
            ra, dec = rng.uniform(0, 360, n), np.degrees(np.arcsin(rng.uniform(
                np.sin(np.radians(-10)), np.sin(np.radians(60)), n)))
            records = [{
                "path": f"/archive/dr2/{55000 + i // 250_000}/spec-{55000 + i // 250_000}-"
                        f"F{i // 250 % 10_000:05d}_sp{i % 16 + 1:02d}-{i % 250 + 1:03d}.fits.gz",
                "id": f"spec-{55000 + i // 250_000}-F{i // 250 % 10_000:05d}_sp{i % 16 + 1:02d}"
                      f"-{i % 250 + 1:03d}-{i}", "obsid": 300_000_000 + int(i),
                "designation": "LAMOST " + _designation(r, d), "ra": float(r), "dec": float(d),
                "snr": float(s), "window_snr": float(s), "release": "DR2",
                "instrument": "LAMOST LRS", "layout": "lamost-image", "survey_class": "STAR",
                "status": "ok", "flags": 0, "reason": "", "detail": ""}
                for i, r, d, s in zip(k, ra, dec, rng.lognormal(3.5, 0.6, n), strict=True)]
            writer.commit(flux, records)
        writer.compact()
    return time.perf_counter() - start


def _designation(ra: float, dec: float) -> str:
    h, rem = divmod(ra / 15 * 3600, 3600)
    m, s = divmod(rem, 60)
    sign = "+" if dec >= 0 else "-"
    dd, rem = divmod(abs(dec) * 3600, 3600)
    dm, ds = divmod(rem, 60)
    return f"J{int(h):02d}{int(m):02d}{s:05.2f}{sign}{int(dd):02d}{int(dm):02d}{ds:04.1f}"


# --- one size -----------------------------------------------------------------------------


def size_project(base: Path, archive: Path, size: int) -> Path:
    """A project over the archive's pool and labelled set, with labels of its own."""
    path = base / f"p{size}"
    if path.exists():
        shutil.rmtree(path)
    run(specscout("init", path))
    for store in ("pool", "labelled"):
        shutil.rmtree(path / store, ignore_errors=True)
        (path / store).symlink_to(archive / store)
    return path


def steps(base: Path, archive: Path, ingested: list[Path], size: int, row: dict) -> None:
    from specscout.archive.project import Project

    p = size_project(base, archive, size)
    pool = Project(p).store()
    assert len(pool) == size, (len(pool), size)

    r = run(specscout("ingest", archive, *ingested, "--quiet"))
    skipped = sum(1 for d in ingested for _ in os.scandir(d))
    row["resume"] = {**_m(r), "rate": skipped / r["seconds"], "unit": "paths/s"}

    r = run(specscout("iterate", p, "--quiet"))
    it = json.loads((p / "iterations" / "0001" / "iteration.json").read_text())
    row["iterate"] = {**_m(r), "rate": size / r["seconds"], "unit": "spectra/s",
                      "train_s": it["train"]["seconds"], "labels": it["train"]["labelled_set"]
                      + it["train"]["pool_labels"], "score_s": it["score"]["seconds"],
                      "query_s": it["query"]["seconds"]}
    _progress(base, row)
    for strategy in STRATEGIES[:-1]:
        r = run(specscout("query", p, "--strategy", strategy, "--batch", "100", "--quiet"))
        row[f"query_{strategy}"] = {**_m(r), "rate": size / r["seconds"], "unit": "spectra/s"}

    rng = np.random.default_rng(size)
    from specscout.labels import label_store

    queued = [q["row"] for q in label_store(Project(p)).queue.batch()]  # left for the web app
    chosen = np.sort(rng.choice(np.setdiff1d(np.arange(size), queued), 10_000, replace=False))
    found = pool.lookup("row", chosen)
    labels = rng.choice(["other", "other", "other", "emission", "double-peak"], len(found))
    with (p / "labels.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "label"])
        w.writerows(zip(found["id"].to_pylist(), labels, strict=True))
    r = run(specscout("labels", "import", p, p / "labels.csv"))
    row["labels_import"] = {**_m(r), "rate": 10_000 / r["seconds"], "unit": "labels/s"}

    for name, args in (("candidates", ("candidates", p, "--out", p / "candidates.xml")),
                       ("audit_draw", ("audit", p, "--draw")),
                       ("report", ("report", p)), ("info", ("info", p))):
        r = run(specscout(*args))
        row[name] = {**_m(r), "rate": size / r["seconds"], "unit": "spectra/s"}
        _progress(base, row)
    row["web"] = web(p, pool, rng)
    _progress(base, row)
    # last, as the longest: scoring with 10 MC-dropout passes (what bald needs)
    r = run(specscout("score", p, "--mc-passes", "10", "--quiet"))
    row["score_mc10"] = {**_m(r), "rate": size / r["seconds"], "unit": "spectra/s"}
    r = run(specscout("query", p, "--strategy", "bald", "--batch", "100", "--quiet"))
    row["query_bald"] = {**_m(r), "rate": size / r["seconds"], "unit": "spectra/s"}


def again(base: Path, archive: Path, size: int, names: list[str]) -> dict:
    """Measure the steps ``names`` once more on the project of ``size`` a run left in
    ``base`` (after a change, without building the pool again)."""
    from specscout.archive.project import Project

    p = base / f"p{size}"
    pool = Project(p).store()
    row: dict = {"size": size, "again": names}
    commands = {"candidates": ("candidates", p, "--out", p / "candidates.xml"),
                "audit_draw": ("audit", p, "--draw"), "report": ("report", p),
                "info": ("info", p)}
    for name in names:
        if name == "resume":
            dirs = sorted(d for d in (base / "farm").iterdir() if not d.name.startswith("."))
            r = run(specscout("ingest", archive, *dirs, "--quiet"))
            skipped = sum(1 for d in dirs for _ in os.scandir(d))
            row["resume"] = {**_m(r), "rate": skipped / r["seconds"], "unit": "paths/s"}
        elif name == "web":  # a new batch to label: an earlier run's may be used up
            run(specscout("query", p, "--strategy", "entropy", "--batch", "100", "--quiet"))
            row["web"] = web(p, pool, np.random.default_rng(size + 1))
        elif name.startswith("query_"):
            r = run(specscout("query", p, "--strategy", name[6:], "--batch", "100", "--quiet"))
            row[name] = {**_m(r), "rate": size / r["seconds"], "unit": "spectra/s"}
        else:
            r = run(specscout(*commands[name]))
            row[name] = {**_m(r), "rate": size / r["seconds"], "unit": "spectra/s"}
    return row


def _progress(base: Path, row: dict) -> None:
    """The steps of the size under way so far, readable while the run goes on."""
    (base / f"progress-{row['size']}.json").write_text(json.dumps(row, indent=1))


def _m(r: dict) -> dict:
    return {"seconds": round(r["seconds"], 2), "rss_mb": round(r["rss"] / 2**20),
            "worker_rss_mb": round(r["worker_rss"] / 2**20)}


def web(p: Path, pool, rng: np.random.Generator, requests: int = 60) -> dict:
    import httpx2 as httpx

    port = 8800 + int(rng.integers(0, 900))
    proc, link = serve(p, port, "--annotator", "bench")
    times: dict[str, list[float]] = {}

    def timed(name: str, call):
        t = time.perf_counter()
        response = call()
        times.setdefault(name, []).append(time.perf_counter() - t)
        response.raise_for_status()
        return response.json()

    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            headers = open_session(client, link)
            timed("candidates_first", lambda: client.get("/api/candidates"))
            item = client.get("/api/next").json()["item"]
            rows = rng.choice(len(pool), requests, replace=False)
            records = pool.records(rows, ["id", "obsid", "designation", "ra", "dec"])
            for k, rec in enumerate(records.to_pylist()):
                timed("save_label", lambda item=item: client.post(
                    "/api/labels", headers=headers,
                    json={"row": item["row"], "label": "other", "spectrum": item["id"]}))
                data = timed("next_spectrum", lambda item=item: client.get(
                    "/api/next", params={"after": item["rank"]}))
                item = data["item"]
                if k % 6 == 0:
                    timed("candidates_after_label", lambda: client.get("/api/candidates"))
                for name, text in (("search_id", rec["id"]), ("search_obsid", rec["obsid"]),
                                   ("search_designation", rec["designation"]),
                                   ("search_position", f"{rec['ra']:.6f} {rec['dec']:.6f} 5")):
                    if text is not None:
                        timed(name, lambda text=text: client.get("/api/search",
                                                                  params={"q": str(text)}))
                if k % 6 == 0:
                    timed("progress", lambda: client.get("/api/progress"))
        rss = psutil.Process(proc.pid).memory_info().rss
    finally:
        proc.terminate()
        proc.wait(30)
    out = {name: {"p50_ms": round(float(np.percentile(v, 50)) * 1000, 1),
                  "p95_ms": round(float(np.percentile(v, 95)) * 1000, 1),
                  "n": len(v)} for name, v in times.items()}
    out["server_rss_mb"] = round(rss / 2**20)
    return out


# --- the table ----------------------------------------------------------------------------


def table(rows: list[dict]) -> str:
    """Steps by pool size: wall s, s per million spectra, rate, peak RSS MB (process /
    largest worker)."""
    sizes = [r["size"] for r in rows]
    w = 38
    lines = [f"{'step':<24}" + "".join(f"| {f'{s:,} spectra':<{w - 2}}" for s in sizes),
             f"{'':<24}" + "".join(f"| {'wall s   s/M     rate     RSS MB':<{w - 2}}"
                                   for _ in sizes)]
    names = [k for k in rows[-1] if isinstance(rows[-1][k], dict) and k != "web"]
    names = list(dict.fromkeys([k for r in rows for k in r if isinstance(r[k], dict)
                                and k != "web"] + names))
    for name in names:
        cells = []
        for r in rows:
            m = r.get(name)
            if not m:
                cells.append(f"| {'-':<{w - 2}}")
                continue
            rss = f"{m['rss_mb']}" + (f"/{m['worker_rss_mb']}" if m.get("worker_rss_mb") else "")
            cell = (f"{m['seconds']:>7.1f} {m['seconds'] / r['size'] * 1e6:>7.1f} "
                    f"{m['rate']:>8,.0f} {rss:>9}")
            cells.append(f"| {cell:<{w - 2}}")
        lines.append(f"{name:<24}" + "".join(cells))
    lines.append("")
    lines.append(f"{'web endpoint':<24}" + "".join(f"| {'p50 / p95 ms':<{w - 2}}" for _ in sizes))
    for name in dict.fromkeys(k for r in rows for k in r.get("web", {}) if k != "server_rss_mb"):
        lines.append(f"{name:<24}" + "".join(
            f"| {r['web'][name]['p50_ms']:>7.1f} / {r['web'][name]['p95_ms']:<{w - 14}.1f}"
            if name in r.get("web", {}) else f"| {'-':<{w - 2}}" for r in rows))
    lines.append(f"{'server RSS MB':<24}" + "".join(
        f"| {r.get('web', {}).get('server_rss_mb', '-'):<{w - 2}}" for r in rows))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500000,1000000,4100000")
    parser.add_argument("--real", type=int, default=1_000_000,
                        help="spectra ingested from real files (the rest appended)")
    parser.add_argument("--quick", action="store_true", help="--sizes 20000,50000 --real 20000")
    parser.add_argument("--dir", default=None, help="work directory (default: a new one in "
                        "/tmp; kept, so a later run can reuse its farm and pool)")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--out", default=None, help="JSON lines file of the results")
    parser.add_argument("--again", default=None, metavar="STEPS",
                        help="with --dir of an earlier run and one --sizes: measure these "
                             "steps (e.g. resume,candidates,report,web) on its project again")
    parser.add_argument("--append", nargs=2, metavar=("PROJECT", "ROWS"),
                        help=argparse.SUPPRESS)  # the append step, in a process of its own
    args = parser.parse_args()
    if args.append:
        append(Path(args.append[0]), int(args.append[1]))
        return
    if args.quick:
        args.sizes, args.real = "20000,50000", 20000
    sizes = sorted(int(s) for s in args.sizes.split(","))
    base = Path(args.dir or f"/tmp/bench-archive-{os.getpid()}")
    base.mkdir(parents=True, exist_ok=True)
    out = Path(args.out or base / "results.jsonl")
    files = real_files()
    print(f"{len(files)} real LAMOST files; work directory {base}", flush=True)
    archive = base / "archive"
    if args.again:
        rows = [again(base, archive, size, args.again.split(",")) for size in sizes]
        with out.open("a") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
        print(table(rows), flush=True)
        return
    if not archive.exists():
        run(specscout("init", archive))
        t = time.perf_counter()
        run(specscout("simulate", base / "ondrejov", "--kind", "labelled", "--n", "2000",
                      "--quiet"))
        run(specscout("ingest", archive, base / "ondrejov", "--labels",
                      base / "ondrejov" / "labels.csv", "--degrade-to", "1531", "--quiet"))
        print(f"labelled set of 2,000 in {time.perf_counter() - t:.0f} s", flush=True)
    from specscout.archive.project import Project

    rows = []
    workers = ("--workers", args.workers) if args.workers else ()
    for size in sizes:
        row = {"size": size, "real": min(size, args.real)}
        real = min(size, args.real)
        links = pooled_links(files, real)
        t = time.perf_counter()
        dirs = farm(base / "farm", links, files)
        print(f"[{size:,}] farm of {links:,} links in {time.perf_counter() - t:.0f} s",
              flush=True)
        store = Project(archive).store()
        have_files, have = store.files, len(store)
        if have < real:
            r = run(specscout("ingest", archive, *dirs, "--quiet", *workers))
            files_now = Project(archive).store().files
            row["ingest"] = {**_m(r), "rate": (files_now - have_files) / r["seconds"],
                             "unit": "files/s", "files": files_now - have_files,
                             "pooled": len(Project(archive).store()) - have}
            print(f"[{size:,}] ingested {files_now - have_files:,} files in "
                  f"{r['seconds']:.0f} s", flush=True)
        have = len(Project(archive).store())
        if have < size:
            r = run([sys.executable, __file__, "--append", str(archive), str(size - have)])
            row["append"] = {**_m(r), "rate": (size - have) / r["seconds"], "unit": "spectra/s",
                             "rows": size - have}
            print(f"[{size:,}] appended {size - have:,} in {r['seconds']:.0f} s", flush=True)
        steps(base, archive, dirs, size, row)
        rows.append(row)
        with out.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(table(rows), flush=True)
    print(f"\nresults in {out}")


if __name__ == "__main__":
    main()
