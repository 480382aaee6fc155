"""SAMP: hand tables to Virtual Observatory tools (TOPCAT, Aladin, ...) on the desktop.

The hub is found the standard way (the ``SAMP_HUB`` variable or ``~/.samp``), as every SAMP tool
finds it. pyvo.samp is astropy.samp's successor (astropy 8 deprecates its copy).
"""

from __future__ import annotations

from pathlib import Path

from specscout.errors import SpecscoutError


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
    client = _client()
    try:
        mtype = "table.load.votable"
        recipients = client.get_subscribed_clients(mtype)
        params = {"url": path.as_uri(), "table-id": path.stem, "name": name or path.stem}
        for rid in recipients:
            client.notify(rid, {"samp.mtype": mtype, "samp.params": params})
        names = []
        for rid in recipients:
            meta = client.get_metadata(rid)
            names.append(str(meta.get("samp.name", rid)))
        return names
    finally:
        client.disconnect()
