"""SAMP against a real hub on loopback, with a second client that checks what arrives."""

from __future__ import annotations

import time

import pytest
from astropy.table import Table
from pyvo.samp import SAMPHubServer, SAMPIntegratedClient
from test_candidates import make_project

from specscout.catalogue.candidates import write
from specscout.catalogue.samp import send_table
from specscout.errors import SpecscoutError


@pytest.fixture
def hub(tmp_path, monkeypatch):
    lockfile = tmp_path / "samp.lock"
    server = SAMPHubServer(web_profile=False, lockfile=str(lockfile), addr="127.0.0.1")
    server.start()
    monkeypatch.setenv("SAMP_HUB", f"std-lockurl:{lockfile.as_uri()}")
    yield server
    server.stop()


@pytest.fixture
def viewer(hub):
    """A second client, as TOPCAT would be: it records every table.load.votable it gets."""
    received = []
    tool = SAMPIntegratedClient(name="table-viewer")
    tool.connect()
    tool.bind_receive_notification(
        "table.load.votable",
        lambda private_key, sender_id, mtype, params, extra: received.append(params))
    yield received
    tool.disconnect()


def _first(received: list) -> dict:
    for _ in range(100):
        if received:
            break
        time.sleep(0.05)
    assert received, "nothing arrived"
    return received[0]


def test_a_table_reaches_a_listening_tool(viewer, tmp_path):
    table = Table({"ra": [10.0, 20.0], "dec": [1.0, 2.0], "id": ["a", "b"]})
    path = write(table, tmp_path / "cands.xml")
    assert send_table(path, name="candidates") == ["table-viewer"]
    params = _first(viewer)
    assert params["name"] == "candidates"
    assert params["url"] == path.resolve().as_uri()
    back = Table.read(params["url"].removeprefix("file://"))
    assert list(back["id"]) == ["a", "b"]


def test_no_hub_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMP_HUB", f"std-lockurl:{(tmp_path / 'none.lock').as_uri()}")
    (tmp_path / "t.xml").write_text("")
    with pytest.raises(SpecscoutError, match="no SAMP hub"):
        send_table(tmp_path / "t.xml")


def test_candidates_command_sends_by_samp(viewer, tmp_path, capsys):
    from specscout.cli import main

    proj = make_project(tmp_path)
    assert main(["candidates", str(proj.path), "--samp"]) == 0
    assert "sent" in capsys.readouterr().out
    assert len(Table.read(_first(viewer)["url"].removeprefix("file://"))) == 3
