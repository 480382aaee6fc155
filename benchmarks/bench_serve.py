"""Latency of the labelling app: the next spectrum of the queue, saving a label, the map's
data and a spectrum's nearest labelled spectra.

Builds a project whose pool has N rows (default 1,000,000) in parts of the project's default
size (4,096 rows, as ``specscout ingest`` writes them), with metadata like LAMOST's, scores of
every row, a query batch of 1,000, 5,000 earlier labels and the map of 100,000 points
(``specscout map``); the same on a 10,000-row pool as the baseline. Runs ``specscout serve``
on each and times, over loopback, the annotator's loop: save a label (POST /api/labels), then
fetch the next spectrum with everything the page shows (GET /api/next); and the map's data
(GET /api/map) and a spectrum's 5 nearest labelled spectra (GET /api/spectrum/ROW/neighbours).
Round trips include the client and HTTP, so they bound the server's time.

Then, on the large pool, the load of a team: ``--annotators`` (32) users, each logged in
with their own token and session, each saving ``--labels`` (200) labels of the queue and
fetching the next spectrum after each, at once, pausing 0.25-0.75 s between labels (faster
than anyone labels by eye), while another user runs the heaviest search allowed (a cone of
one degree) over and over. Every acknowledged label must be stored once, on its spectrum, by
its annotator.

    python benchmarks/bench_serve.py [--rows 1000000] [--requests 300] [--annotators 32]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import httpx2 as httpx
import numpy as np
from served import open_session, serve

from specscout.archive.project import Project
from specscout.labels import label_store
from specscout.learn.iterations import iteration_path
from specscout.learn.map import compute_map
from specscout.learn.model import build as build_model
from specscout.learn.train import Fitted, TrainConfig

QUEUE = 1000
MAP_POINTS = 100_000


def build(path: Path, rows: int) -> Project:
    project = Project.init(path)
    store = project.store()
    rng = np.random.default_rng(0)
    part = project.config.part_rows
    for start in range(0, rows, part):
        n = min(part, rows - start)
        flux = rng.normal(0, 0.3, (n, 140)).astype(np.float32)
        store.commit(flux, [{
            "path": f"/archive/dr7/spec-{55000 + k // 250}-F{k % 97:04d}_sp{k % 16 + 1:02d}-"
                    f"{k % 250 + 1:03d}.fits.gz",
            "id": f"spec-{k}", "obsid": 100_000_000 + k,
            "designation": f"LAMOST J{k % 24:02d}{k % 60:02d}00.00+{k % 90:02d}0000.0",
            "ra": float(rng.uniform(0, 360)), "dec": float(rng.uniform(-10, 80)),
            "snr": 30.0, "status": "ok", "flags": 0, "reason": "", "detail": ""}
            for k in range(start, start + n)])
    it = iteration_path(project, 1)
    it.mkdir(parents=True)
    p = rng.dirichlet([8, 1, 1], rows).astype(np.float16)
    np.save(it / "scores.npy", p)
    labels = label_store(project)
    queued = rng.choice(rows, QUEUE, replace=False)
    labels.queue.put(1, queued, [f"spec-{r}" for r in queued], np.linspace(1, 0, QUEUE),
                   "entropy")
    earlier = np.setdiff1d(rng.choice(rows, 5000, replace=False), queued)
    labels.add_many([{"spectrum": f"spec-{r}", "row": int(r), "label": "other",
                      "annotator": "earlier", "iteration": 0} for r in earlier])
    # the iteration's network (untrained: the timings do not depend on its weights), and the
    # map of the pool, as 'specscout map' makes it
    Fitted(build_model("paper-cnn", 140, 3), "paper-cnn", tuple(project.config.classes), 140,
           1.0, TrainConfig()).save(it / "model.pt")
    t = time.perf_counter()
    info = compute_map(project, 1, MAP_POINTS)
    print(f"  map of {info['points']:,} points computed in {time.perf_counter() - t:.0f} s")
    return project


def measure(path: Path, requests: int, port: int) -> dict[str, np.ndarray]:
    proc, link = serve(path, port, "--annotator", "bench")
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            headers = open_session(client, link)
            times: dict[str, list[float]] = {"next": [], "label": []}
            item = client.get("/api/next").json()["item"]  # warm-up
            for k in range(requests):
                t = time.perf_counter()
                r = client.post("/api/labels", headers=headers, json={
                    "row": item["row"], "label": "other", "spectrum": item["id"]})
                times["label"].append(time.perf_counter() - t)
                r.raise_for_status()
                t = time.perf_counter()
                data = client.get("/api/next", params={"after": item["rank"]}).json()
                times["next"].append(time.perf_counter() - t)
                item = data["item"]
                assert item is not None and len(data["spectrum"]["flux"]) == 140, k
            t = time.perf_counter()
            m = client.get("/api/map").json()
            times["map_first"] = [time.perf_counter() - t]
            for _ in range(5):
                t = time.perf_counter()
                m = client.get("/api/map").json()
                times.setdefault("map", []).append(time.perf_counter() - t)
            assert m["points"] >= min(MAP_POINTS, len(m["row"])) and len(m["x"]) == m["points"]
            rows = np.random.default_rng(1).choice(m["row"], requests + 1, replace=False)
            t = time.perf_counter()
            client.get(f"/api/spectrum/{rows[0]}/neighbours").raise_for_status()
            times["neighbours_first"] = [time.perf_counter() - t]  # embeds the labelled
            for r in rows[1:]:
                t = time.perf_counter()
                near = client.get(f"/api/spectrum/{r}/neighbours").json()["neighbours"]
                times.setdefault("neighbours", []).append(time.perf_counter() - t)
                assert len(near) == 5
        return {k: np.array(v) * 1000 for k, v in times.items()}
    finally:
        proc.terminate()
        proc.wait(10)


def team(path: Path, port: int, annotators: int, labels: int) -> dict:
    """The team's load (see the module's docstring); the times in ms and the label check."""
    store = label_store(Project(path))
    tokens = {f"a{k:02d}": store.users.add(f"a{k:02d}") for k in range(annotators)}
    searcher = store.users.add("searcher")
    queue = [q["row"] for q in store.queue.batch()]
    ids = {q["row"]: q["spectrum"] for q in store.queue.batch()}
    proc, _ = serve(path, port, "--require-login")
    url = f"http://127.0.0.1:{port}"
    times: dict[str, list[float]] = {"label": [], "next": [], "search": []}
    acked: list[tuple[int, str, str, int]] = []  # (label id, annotator, label, row)
    errors: list[BaseException] = []
    done = threading.Event()
    lock = threading.Lock()

    def logged_in(client: httpx.Client, name: str, token: str) -> None:
        for _ in range(600):
            try:
                csrf = client.get("/api/session").raise_for_status().json()["csrf"]
                break
            except httpx.TransportError:
                time.sleep(0.1)
        r = client.post("/api/login", json={"name": name, "token": token},
                        headers={"X-CSRF-Token": csrf}).raise_for_status()
        client.headers["X-Session-Secret"] = r.json()["secret"]

    def annotate(k: int, name: str, token: str) -> None:
        rng = np.random.default_rng(k)
        try:
            with httpx.Client(base_url=url, timeout=60) as client:
                logged_in(client, name, token)
                for i in range(labels):
                    row = queue[(k * labels + i) % len(queue)]
                    label = ("other", "emission", "double-peak")[int(rng.integers(3))]
                    t = time.perf_counter()
                    r = client.post("/api/labels", json={"row": row, "label": label,
                                                         "spectrum": ids[row]})
                    took = time.perf_counter() - t
                    r.raise_for_status()
                    t = time.perf_counter()
                    client.get("/api/next", params={"after": i % len(queue)}).raise_for_status()
                    with lock:
                        times["label"].append(took)
                        times["next"].append(time.perf_counter() - t)
                        acked.append((r.json()["id"], name, label, row))
                    time.sleep(rng.uniform(0.25, 0.75))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    def search() -> None:
        try:
            with httpx.Client(base_url=url, timeout=60) as client:
                logged_in(client, "searcher", searcher)
                rng = np.random.default_rng(99)
                while not done.is_set():
                    q = f"{rng.uniform(0, 360):.4f} {rng.uniform(-5, 75):.4f} 3600"
                    t = time.perf_counter()
                    client.get("/api/search", params={"q": q}).raise_for_status()
                    with lock:
                        times["search"].append(time.perf_counter() - t)
        except BaseException as exc:
            errors.append(exc)

    try:
        searching = threading.Thread(target=search)
        searching.start()
        team = [threading.Thread(target=annotate, args=(k, n, t))
                for k, (n, t) in enumerate(tokens.items())]
        began = time.perf_counter()
        for t in team:
            t.start()
        for t in team:
            t.join()
        wall = time.perf_counter() - began
        done.set()
        searching.join()
    finally:
        proc.terminate()
        proc.wait(10)
    if errors:
        raise errors[0]
    stored = {h["id"]: h for h in store.history() if h["annotator"] in tokens}
    right = sum(1 for i, who, label, row in acked if i in stored and
                (stored[i]["annotator"], stored[i]["label"], stored[i]["row"]) == (who, label, row))
    return {**{k: np.array(v) * 1000 for k, v in times.items()}, "acked": len(acked),
            "stored": len(stored), "right": right, "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline-rows", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--annotators", type=int, default=32)
    parser.add_argument("--labels", type=int, default=200, help="per annotator")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for n, port in ((args.baseline_rows, 8791), (args.rows, 8792)):
            t = time.perf_counter()
            build(Path(tmp) / f"p{n}", n)
            print(f"pool of {n:,} rows built in {time.perf_counter() - t:.0f} s")
            results[n] = measure(Path(tmp) / f"p{n}", args.requests, port)
        load = team(Path(tmp) / f"p{args.rows}", 8793, args.annotators, args.labels)
    print(f"\n{args.requests} label + next cycles per pool; round trips over loopback (ms)")
    print(f"{'':>22}{'p50':>8}{'p95':>8}{'max':>8}")
    for n, t in results.items():
        for k in ("next", "label", "map_first", "map", "neighbours_first", "neighbours"):
            v = t[k]
            print(f"{n:>10,} rows {k:>6}{np.percentile(v, 50):8.1f}"
                  f"{np.percentile(v, 95):8.1f}{v.max():8.1f}")
    big, small = results[args.rows]["next"], results[args.baseline_rows]["next"]
    print(f"\nnext spectrum p95 on {args.rows:,} rows: {np.percentile(big, 95):.1f} ms "
          f"(target < 100 ms); {np.percentile(big, 95) / np.percentile(small, 95):.2f}x the "
          f"{args.baseline_rows:,}-row pool's")
    r = results[args.rows]
    print(f"map data of {MAP_POINTS:,} points: first load {r['map_first'][0]:.0f} ms, then "
          f"p95 {np.percentile(r['map'], 95):.0f} ms (target < 1 s); 5 nearest labelled "
          f"spectra p95 {np.percentile(r['neighbours'], 95):.1f} ms (target < 100 ms; first "
          f"call, embedding the labelled: {r['neighbours_first'][0]:.0f} ms)")
    print(f"\n{args.annotators} annotators x {args.labels} labels at once on {args.rows:,} rows "
          f"({load['wall']:.0f} s), one more searching a 1-degree cone over and over "
          f"({len(load['search'])} searches, p50 {np.percentile(load['search'], 50):.0f} ms, "
          f"p95 {np.percentile(load['search'], 95):.0f} ms):")
    print(f"  save a label p50 {np.percentile(load['label'], 50):.1f} ms, p95 "
          f"{np.percentile(load['label'], 95):.1f} ms (target < 100 ms); next spectrum p50 "
          f"{np.percentile(load['next'], 50):.1f} ms, p95 {np.percentile(load['next'], 95):.1f} "
          f"ms (target < 100 ms)")
    print(f"  labels acknowledged {load['acked']:,}, stored {load['stored']:,}, stored as "
          f"acknowledged (spectrum, label, annotator) {load['right']:,}")


if __name__ == "__main__":
    main()
