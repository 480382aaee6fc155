"""The app's server-side SAMP link: tables of the queue and the candidates, spectra and
positions sent to the VO tools of the desktop the server runs on, and what those tools send
back (a row highlighted, a sky position pointed at) turned into events for the page.

The URLs handed to the tools carry no user's token: each is signed for its own table or
spectrum (an HMAC under the app's secret) and expires after ``URL_HOURS``.
"""

from __future__ import annotations

import hmac
import io
import re
import secrets
import time

import numpy as np
from astropy import units as u
from astropy.table import Table
from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import Field

from specscout.catalogue.samp import HIGHLIGHT, POINT, SPECTRUM, TABLE
from specscout.errors import SpecscoutError
from specscout.labels.store import agreed
from specscout.web.deps import StateDep, Strict, Who, Writer
from specscout.web.pool import DEFAULT_RADIUS_ARCSEC
from specscout.web.state import DEFAULT_THRESHOLD, State

router = APIRouter()

#: How long a URL handed to a VO tool works.
URL_HOURS = 24
#: Rows of a table sent to a VO tool, at most (the most probable candidates first).
MAX_TABLE_ROWS = 100_000


class SampIn(Strict):
    action: str = Field(pattern="^(queue|candidates|spectrum|point)$")
    row: int | None = Field(None, ge=0)
    threshold: float = Field(DEFAULT_THRESHOLD, ge=0, le=1)


def page_event(state: State, mtype: str, params: dict) -> dict | None:
    """An event for the page from a SAMP message: the spectrum to show."""
    if mtype == HIGHLIGHT:
        by_url = re.search(r"/table/([^/]+)\.xml$", str(params.get("url", "")))
        rows = state.sent_tables.get(str(params.get("table-id", "")))
        if rows is None and by_url:
            rows = state.sent_tables.get(by_url.group(1))
        try:
            index = int(params.get("row", -1))
        except (TypeError, ValueError):
            return None
        if rows is None or not 0 <= index < len(rows):
            return None
        return {"row": int(rows[index])}
    if mtype == POINT:
        try:
            ra, dec = float(params["ra"]), float(params["dec"])
        except (KeyError, TypeError, ValueError):
            return None
        found = state.pool.cone(ra, dec, DEFAULT_RADIUS_ARCSEC)
        return {"row": found[0][0] if found else None, "ra": ra, "dec": dec,
                "separation": round(found[0][1], 3) if found else None}
    return None


def signature(state: State, path: str, expires: int) -> str:
    return hmac.new(state.secret, f"samp|{path}|{expires}".encode(), "sha256").hexdigest()[:32]


def samp_url(state: State, request: Request, path: str) -> str:
    """The URL of ``path`` for a VO tool: signed for it alone, until it expires."""
    expires = int(time.time()) + URL_HOURS * 3600
    return (str(request.base_url).rstrip("/") +
            f"/samp/{expires}/{signature(state, path, expires)}/{path}")


def check_signature(state: State, path: str, expires: str, sig: str) -> None:
    """404 unless ``sig`` is the signature of ``path`` and it has not expired."""
    # ASCII digits, as many as a time has: "²" is a digit to str.isdigit but not to int()
    ok = expires.isascii() and expires.isdigit() and len(expires) <= 12 and secrets.compare_digest(
        sig.encode(), signature(state, path, int(expires)).encode())
    if not ok or int(expires) < time.time():
        raise HTTPException(404, "not found (or the link has expired)")


def message(state: State, request: Request, body: SampIn) -> tuple[str, dict]:
    """(mtype, params) of the SAMP message that ``body`` asks for; a table sent is kept (by
    its id and URL) for the messages that come back about its rows."""
    if body.action in ("queue", "candidates"):
        table_id = f"specscout-{body.action}-{secrets.token_hex(4)}"
        rows = table_rows(state, body.action, body.threshold)
        url = samp_url(state, request, f"table/{table_id}.xml")
        state.sent_tables[table_id] = np.asarray(rows, np.int64)  # 8 bytes a row
        return TABLE, {"url": url, "table-id": table_id, "name": f"specscout {body.action}"}
    if body.row is None:
        raise HTTPException(422, f"{body.action} needs a row")
    try:
        record = state.pool.record(body.row)
    except KeyError as exc:
        raise HTTPException(404, str(exc.args[0])) from None
    if body.action == "spectrum":
        return SPECTRUM, {"url": samp_url(state, request, f"spectrum/{body.row}.fits"),
                          "spectrum-id": record["id"], "name": record["id"],
                          "meta": {"Access.Format": "application/fits",
                                   "Target.Name": record["designation"] or record["id"]}}
    if record["ra"] is None or record["dec"] is None:
        raise HTTPException(422, f"row {body.row} has no position")
    return POINT, {"ra": str(record["ra"]), "dec": str(record["dec"])}


@router.post("/api/samp")
def samp_send(body: SampIn, request: Request, who: Writer, state: StateDep) -> dict:
    """Send a message through the server's own SAMP link (the hub of the server's desktop)."""
    if state.samp is None:
        raise HTTPException(409, "SAMP is off (specscout serve --no-samp)")
    mtype, params = message(state, request, body)
    try:
        return {"sent": state.samp.send(mtype, params)}
    except SpecscoutError as exc:
        raise HTTPException(503, str(exc)) from None


@router.post("/api/samp/message")
def samp_message(body: SampIn, request: Request, who: Writer, state: StateDep) -> dict:
    """The message for the page to send through the annotator's own hub (Web Profile)."""
    mtype, params = message(state, request, body)
    return {"mtype": mtype, "params": params}


class ReceivedIn(Strict):
    mtype: str = Field(max_length=100)
    params: dict


@router.post("/api/samp/received")
def samp_received(body: ReceivedIn, who: Writer, state: StateDep) -> dict:
    """What a message from the annotator's hub means for the page: the spectrum to show."""
    return {"event": page_event(state, body.mtype, body.params)}


def table_rows(state: State, action: str, threshold: float) -> list[int]:
    if action == "queue":
        return [i["row"] for i in state.items(False)[1]]
    _, live = state.candidates(threshold)
    blind = state.blind()  # audit spectra: no model output leaves the app for them
    rows = np.array([r for r in live.rows_now(agreed(state.votes(False))).tolist()
                     if r not in blind], np.int64)
    if len(rows) > MAX_TABLE_ROWS:  # the most probable
        _, probs = state.pool.scores()
        p = np.asarray(probs[rows], np.float32)[:, 1:].max(1)
        rows = np.sort(rows[np.argsort(-p, kind="stable")[:MAX_TABLE_ROWS]])
    return rows.tolist()


@router.get("/samp/{expires}/{sig}/table/{table_id}.xml", include_in_schema=False)
def samp_table(expires: str, sig: str, table_id: str, state: StateDep) -> Response:
    check_signature(state, f"table/{table_id}.xml", expires, sig)
    rows = state.sent_tables.get(table_id)
    if rows is None:
        raise HTTPException(404, f"no table {table_id!r}")
    return Response(votable(state, rows), media_type="application/x-votable+xml")


def votable(state: State, rows: list[int]) -> bytes:
    _, probs = state.pool.scores()
    found = state.pool.pool.records(rows, ("id", "designation", "ra", "dec")).to_pydict()
    at = {r: i for i, r in enumerate(found["row"])}  # records come sorted by row
    order = [at[r] for r in rows]
    table = Table({"row": np.array(rows, dtype=np.int64),
                   **{k: [found[k][i] or "" for i in order] for k in ("id", "designation")},
                   **{k: np.array([np.nan if found[k][i] is None else found[k][i]
                                   for i in order], dtype=float) for k in ("ra", "dec")}})
    table["ra"].unit = table["dec"].unit = u.deg
    table["ra"].meta["ucd"] = "pos.eq.ra;meta.main"
    table["dec"].meta["ucd"] = "pos.eq.dec;meta.main"
    if probs is not None:
        p = np.asarray(probs[np.array(rows, dtype=np.int64)], dtype=np.float32)
        p[np.isin(rows, np.fromiter(state.blind(), np.int64))] = np.nan  # audit: blind
        for i, c in enumerate(state.classes):
            table[f"p_{c}"] = p[:, i] if len(rows) else np.empty(0, np.float32)
    buf = io.BytesIO()
    table.write(buf, format="votable")
    return buf.getvalue()


@router.get("/samp/{expires}/{sig}/spectrum/{row}.fits", include_in_schema=False)
def samp_spectrum(expires: str, sig: str, row: int, state: StateDep) -> Response:
    check_signature(state, f"spectrum/{row}.fits", expires, sig)
    try:
        data = state.pool.original(row)
    except KeyError as exc:
        raise HTTPException(404, str(exc.args[0])) from None
    if "error" in data:  # the file is gone: send the preprocessed window
        data = {"wavelength": state.pool.wavelength, "flux": state.pool.flux(row)}
    table = Table({"WAVELENGTH": np.asarray(data["wavelength"], float) * u.AA,
                   "FLUX": np.asarray(data["flux"], float)})
    buf = io.BytesIO()
    table.write(buf, format="fits")
    return Response(buf.getvalue(), media_type="application/fits")


@router.get("/api/samp/events")
def samp_events(who: Who, state: StateDep, after: int = 0) -> dict:
    if state.samp is None:
        return {"events": []}
    return {"events": state.samp.since(after)}
