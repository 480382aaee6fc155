"""The map of the pool (``specscout map``), a spectrum's nearest labelled spectra, and spectra
chosen by hand sent to the queue."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import Field

from specscout.labels.store import agreed
from specscout.web.deps import QueueChanger, StateDep, Strict, Who

router = APIRouter()

#: Spectra that one request may send to the queue.
MAX_SELECTION = 5000


class SelectionIn(Strict):
    rows: list[int] = Field(max_length=MAX_SELECTION)


@router.get("/api/map")
def pool_map(who: Who, state: StateDep) -> JSONResponse:
    """Every point of the map: its row, position, why it is there, the model's class and
    uncertainty, and its current label (-1: none). The audit's spectra are left out (blind)."""
    m = state.map()
    if m is None:
        raise HTTPException(404, "no map of the latest iteration yet: run 'specscout map "
                                 "PROJECT'")
    keep = ~np.isin(m["rows"], np.fromiter(state.blind(), np.int64))
    rows = m["rows"][keep]
    current = agreed(state.votes(False))
    index = {c: i for i, c in enumerate(state.classes)}
    label = [index.get(current.get(int(r)), -1) for r in rows]
    xy = np.round(m["xy"][keep].astype(np.float64), 3)
    return JSONResponse({
        "iteration": int(m["iteration"]), "classes": state.classes, "points": len(rows),
        "row": rows.tolist(), "x": xy[:, 0].tolist(), "y": xy[:, 1].tolist(),
        "kind": m["kind"][keep].tolist(), "predicted": m["predicted"][keep].tolist(),
        "entropy": np.round(m["entropy"][keep].astype(np.float64), 3).tolist(),
        "label": label})


@router.get("/api/spectrum/{row}/neighbours")
def neighbours(row: int, who: Who, state: StateDep, k: int = Query(5, ge=1, le=20)) -> dict:
    """The ``k`` labelled pool spectra nearest to ``row`` in the network's features."""
    try:
        state.pool.check_row(row)
    except KeyError as exc:
        raise HTTPException(404, str(exc.args[0])) from None
    if row in state.blind():  # which spectra the network puts beside it is its opinion
        return {"row": row, "neighbours": [], "blind": True}
    index, current = state.neighbours()
    if index is None:
        return {"row": row, "neighbours": []}
    near = index.nearest(row, current.keys(), k)  # kept in the index: no read of the store
    return {"row": row, "neighbours": [
        {"row": r, "id": i, "label": current[r], "distance": round(d, 4),
         "flux": [round(float(v), 4) for v in flux]} for r, d, i, flux in near]}


@router.post("/api/queue/add")
def add_to_queue(body: SelectionIn, who: QueueChanger, state: StateDep) -> dict:
    """Append spectra chosen by hand (e.g. a lasso on the map) to the latest query batch, or
    start the batch of the latest scored iteration."""
    iteration, _ = state.items(False)
    scored, _ = state.pool.scores()
    if iteration is None and scored is None:
        raise HTTPException(409, "no iteration yet: run 'specscout iterate'")
    blind = state.blind()  # the audit's spectra stay on the audit page
    rows = sorted(set(body.rows) - blind)
    for r in rows:
        try:
            state.pool.check_row(r)
        except KeyError as exc:
            raise HTTPException(404, str(exc.args[0])) from None
    ids = state.pool.pool.records(rows, ("id",))["id"].to_pylist() if rows else []  # sorted
    # the latest batch as it stands when the rows are added (a query may land meanwhile)
    added = state.labels.queue.extend(None, rows, ids, default=scored)
    return {"iteration": state.items(False)[0], "added": added, "asked": len(rows)}
