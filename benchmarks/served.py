"""``specscout serve`` in a process of its own, for the benchmarks: its one-time link, and a
client session opened by it."""

from __future__ import annotations

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
    for line in proc.stdout:
        if m := re.search(r"(https?://\S+/\?token=\S+)", line):
            break
    else:
        raise RuntimeError(f"specscout serve printed no link (exit {proc.wait()})")
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # never a full pipe
    return proc, m.group(1)


def open_session(client, link: str, attempts: int = 600) -> dict[str, str]:
    """Open the link's session in ``client`` (an httpx client) once the server answers;
    returns the headers a write needs."""
    import httpx2 as httpx

    for _ in range(attempts):
        try:
            client.get(link, follow_redirects=True).raise_for_status()
            break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        raise RuntimeError(f"no answer at {link}")
    return {"X-CSRF-Token": client.get("/api/session").json()["csrf"]}
