"""SAMP: hand tables to Virtual Observatory tools (TOPCAT, Aladin, ...) on the desktop.

The hub is found the standard way (the ``SAMP_HUB`` variable or ``~/.samp``), as every SAMP tool
finds it. pyvo.samp is astropy.samp's successor (astropy 8 deprecates its copy).
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from pathlib import Path

from specscout.errors import SpecscoutError

#: What the web app sends, and what it listens to.
TABLE = "table.load.votable"
SPECTRUM = "spectrum.load.ssa-generic"
POINT = "coord.pointAt.sky"
HIGHLIGHT = "table.highlight.row"


def _client(name: str = "specscout"):
    from pyvo.samp import SAMPHubError, SAMPIntegratedClient

    client = SAMPIntegratedClient(name=name, description="specscout: rare spectra in archives")
    try:
        client.connect()
    except SAMPHubError as exc:
        raise SpecscoutError(f"no SAMP hub is running (start TOPCAT or Aladin first): {exc}") \
            from None
    return client


def send_table(path: str | Path, name: str | None = None) -> list[str]:
    """Send the VOTable ``path`` to every SAMP client that loads tables
    (``table.load.votable``); returns the names of those that were sent it."""
    path = Path(path).resolve()
    if not path.is_file():
        raise SpecscoutError(f"{path}: no such file")
    link = SampLink()
    try:
        return link.send(TABLE, {"url": path.as_uri(), "table-id": path.stem,
                                 "name": name or path.stem})
    finally:
        link.close()


class SampLink:
    """A long-lived SAMP client for the web app: it sends tables, spectra and positions, and
    keeps what other tools send back (a highlighted table row, a sky position) as events that
    the page picks up. It connects on first use, so the app runs without a hub."""

    def __init__(self, name: str = "specscout", on_message=None) -> None:
        self.name = name
        self.on_message = on_message  # (mtype, params) -> event dict or None
        self.events: deque[dict] = deque(maxlen=100)
        self._count = 0
        self._client = None
        self._lock = threading.Lock()

    def connect(self):
        """The connected client (connecting now if need be)."""
        with self._lock:
            if self._client is not None and self._client.is_connected:
                return self._client
            client = _client(self.name)
            for mtype in (HIGHLIGHT, POINT):
                client.bind_receive_notification(mtype, self._notified)
                client.bind_receive_call(mtype, self._called)
            self._client = client
            return client

    def _receive(self, mtype: str, params: dict) -> None:
        event = self.on_message(mtype, params) if self.on_message else {"mtype": mtype}
        if event is not None:
            with self._lock:
                self._count += 1
                self.events.append({"n": self._count, "mtype": mtype, **event})

    def _notified(self, private_key, sender_id, mtype, params, extra) -> None:
        self._receive(mtype, params)

    def _called(self, private_key, sender_id, msg_id, mtype, params, extra) -> None:
        self._receive(mtype, params)
        self._client.reply(msg_id, {"samp.status": "samp.ok", "samp.result": {}})

    def since(self, n: int) -> list[dict]:
        with self._lock:
            return [e for e in self.events if e["n"] > n]

    def send(self, mtype: str, params: dict) -> list[str]:
        """Notify every client subscribed to ``mtype``; returns their names."""
        client = self.connect()
        names = []
        for rid in client.get_subscribed_clients(mtype):
            client.notify(rid, {"samp.mtype": mtype, "samp.params": params})
            names.append(str(client.get_metadata(rid).get("samp.name", rid)))
        return names

    def close(self) -> None:
        with self._lock:
            if self._client is not None and self._client.is_connected:
                with contextlib.suppress(OSError):  # the hub went first
                    self._client.disconnect()
            self._client = None
