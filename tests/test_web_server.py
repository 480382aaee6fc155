"""The app served for real: concurrent annotators lose no label; a killed server keeps every
label it acknowledged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2 as httpx
import pytest
from test_candidates import ROWS, make_project

from specscout.labels import label_store
from specscout.web import AppConfig, create_app

from conftest import annotate_at_once, printed

CLASSES = ("other", "emission", "double-peak")


def test_concurrent_annotators_lose_no_label(tmp_path):
    project = make_project(tmp_path)
    labels = label_store(project)
    before = len(labels.history())
    tokens = {f"annotator{i}": labels.users.add(f"annotator{i}") for i in range(8)}
    acks: dict[str, list[dict]] = {}
    errors: list[str] = []

    def annotate(name: str, token: str, url: str) -> None:
        mine = acks.setdefault(name, [])
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                          timeout=30) as client:
            for k in range(200):
                body = {"row": k % len(ROWS), "label": CLASSES[(k + len(name)) % 3],
                        "comment": f"{name}-{k}"}
                r = client.post("/api/labels", json=body)
                if r.status_code != 200:
                    errors.append(f"{name} {k}: {r.status_code} {r.text}")
                    continue
                mine.append({**body, **r.json()})

    config = AppConfig(annotator="nobody", require_login=True, samp=False)
    annotate_at_once(create_app(project, config), tokens, annotate)
    assert not errors, errors[:3]
    history = {h["id"]: h for h in labels.history()}
    assert len(history) == before + 8 * 200
    for name, mine in acks.items():
        assert len(mine) == 200
        for ack in mine:  # every label is where it was said to be, attributed to its sender
            h = history[ack["id"]]
            assert (h["row"], h["label"], h["annotator"], h["comment"]) == \
                (ack["row"], ack["label"], name, ack["comment"])
            assert h["spectrum"] == f"spec-{ack['row']}"


def _start(project_path) -> tuple[subprocess.Popen, str, str]:
    """``specscout serve`` in a process of its own on a free port; the one-time link it
    prints, and the server's address."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "specscout.cli", "serve", str(project_path), "--port", "0",
         "--no-samp", "--annotator", "ana"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    link = printed(proc, r"(http://127\.0\.0\.1:\d+/\?token=\S+)").group(1)
    url = link.split("/?token=")[0]
    for _ in range(300):
        try:
            httpx.get(f"{url}/api/session", timeout=1)
            return proc, link, url
        except httpx.TransportError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stdout.read()) from None
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the server did not start")


def _logged_in(client, link: str) -> str:
    """Open the session of the one-time link as the page does, its secret in the client's
    headers; returns the login token (harmless on a request that has a session)."""
    assert client.get(link).status_code == 200  # the page
    csrf = client.get("/api/session").json()["csrf"]
    r = client.post("/api/launch", json={"token": link.rsplit("token=", 1)[1]},
                    headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    client.headers["X-Session-Secret"] = r.json()["secret"]
    return csrf


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started (Linux)."""
    found = Path(f"/proc/{pid}/task/{pid}/children")
    if not found.exists():
        pytest.skip("no /proc here to find a process's children")
    return [int(p) for p in found.read_text().split()]


def _alive(pid: int) -> bool:
    try:  # a zombie (ended, not yet reaped by whoever adopted it) is not alive
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_killed_server_keeps_every_acknowledged_label(tmp_path):
    project = make_project(tmp_path)
    proc, link, url = _start(project.path)
    acked: list[dict] = []
    searched: list[int] = []
    stop = threading.Event()

    def annotate() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            csrf = _logged_in(client, link)
            searched.append(client.get("/api/search", params={"q": "spec-1"}).status_code)
            k = 0  # (the search started the app's worker process)
            while not stop.is_set():
                body = {"row": k % len(ROWS), "label": CLASSES[k % 3], "comment": f"k{k}"}
                try:
                    r = client.post("/api/labels", json=body, headers={"X-CSRF-Token": csrf})
                except httpx.TransportError:
                    return  # the server is gone: this label was never acknowledged
                if r.status_code == 200:
                    acked.append({**body, **r.json()})
                k += 1

    worker = threading.Thread(target=annotate)
    worker.start()
    while len(acked) < 150:
        time.sleep(0.01)
    assert searched == [200]
    children = _children(proc.pid)
    assert children  # the worker (and its resource tracker)
    os.kill(proc.pid, signal.SIGKILL)  # mid-session, requests in flight
    proc.wait()
    stop.set()
    worker.join()
    for _ in range(100):  # the worker ends with the server that started it
        if not any(_alive(pid) for pid in children):
            break
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in children)

    history = {h["id"]: h for h in label_store(project).history()}
    for ack in acked:
        h = history[ack["id"]]
        assert (h["row"], h["label"], h["comment"]) == (ack["row"], ack["label"],
                                                         ack["comment"])
    # Restarted, the app serves the same labels and takes new ones.
    proc, link, url = _start(project.path)
    try:
        with httpx.Client(base_url=url, timeout=5) as client:
            csrf = _logged_in(client, link)
            r = client.post("/api/labels", json={"row": 0, "label": "other"},
                            headers={"X-CSRF-Token": csrf})
            assert r.status_code == 200 and r.json()["id"] > max(a["id"] for a in acked)
            progress = client.get("/api/progress").json()
            assert progress["labels"] >= len(acked) + 3
    finally:
        proc.terminate()
        proc.wait(10)
