"""``specscout serve`` in a process of its own, for the benchmarks: its one-time link, and a
client session opened by it."""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
import time


def serve(project, port: int, *options: str) -> tuple[subprocess.Popen, str]:
    """Start the app on ``port``; returns the process and the link it prints."""
    proc = subprocess.Popen([sys.executable, "-m", "specscout.cli", "serve", str(project),
                             "--port", str(port), "--no-samp", *options],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()

    def drain() -> None:  # never a full pipe
        for line in proc.stdout:
            lines.put(line)
        lines.put("")

    threading.Thread(target=drain, daemon=True).start()
    while line := lines.get(timeout=120):
        if m := re.search(r"labelling .* at (https?://\S+)", line):
            return proc, m.group(1)
    raise RuntimeError(f"specscout serve printed no link (exit {proc.wait()})")


def open_session(client, link: str, attempts: int = 600) -> dict[str, str]:
    """Open the link's session in ``client`` (an httpx client) once the server answers, as
    the page does: the session's secret goes in the client's headers, for every request
    (and is returned)."""
    import httpx2 as httpx

    for _ in range(attempts):
        try:
            csrf = client.get("/api/session").raise_for_status().json()["csrf"]
            break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        raise RuntimeError(f"no answer at {link}")
    r = client.post("/api/launch", json={"token": link.rsplit("token=", 1)[1]},
                    headers={"X-CSRF-Token": csrf}).raise_for_status()
    client.headers["X-Session-Secret"] = r.json()["secret"]
    return {"X-Session-Secret": r.json()["secret"]}
