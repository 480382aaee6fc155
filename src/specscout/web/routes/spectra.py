"""One spectrum: its window, record, probabilities and label history; its other epochs; the
whole spectrum read from its file."""

from __future__ import annotations

from pathlib import PurePath

import numpy as np
from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse

from specscout.web.deps import StateDep, Who
from specscout.web.state import State

router = APIRouter()

RECORD = ("id", "obsid", "designation", "ra", "dec", "snr", "window_snr", "survey_class",
          "survey_subclass", "release", "instrument")


def spectrum_payload(state: State, row: int, who: str, audit: bool) -> dict:
    try:
        record = state.pool.record(row)
    except KeyError as exc:
        raise HTTPException(404, str(exc.args[0])) from None
    flux = state.pool.flux(row)
    history = [h for h in state.labels.history(row)
               if h["audit"] == audit and (not audit or h["annotator"] == who)]
    mine = [h for h in history if h["annotator"] == who]
    iteration, _ = state.pool.scores()
    blind = audit or row in state.blind()  # an audit spectrum: no model output, on any page
    return {
        "row": row,
        "record": {**{k: record[k] for k in RECORD},
                   "file": PurePath(record["path"]).name},  # the name, never the path
        "wavelength": np.round(state.pool.wavelength, 3).tolist(),
        "flux": [round(float(v), 5) for v in flux],
        "probabilities": None if blind else state.pool.probabilities(row),
        "iteration": None if blind else iteration,
        "history": [{"label": h["label"], "annotator": h["annotator"],
                     "time": h["time"].isoformat(), "iteration": h["iteration"],
                     "comment": h["comment"]} for h in history],
        "label": mine[-1]["label"] if mine else None,
    }


@router.get("/api/spectrum/{row}")
def spectrum(row: int, who: Who, state: StateDep, audit: bool = False) -> JSONResponse:
    return JSONResponse(spectrum_payload(state, row, who, audit))


@router.get("/api/spectrum/{row}/epochs")
def epochs(row: int, who: Who, state: StateDep) -> dict:
    try:
        return {"row": row, "epochs": state.pool.epochs(row)}
    except KeyError as exc:
        raise HTTPException(404, str(exc.args[0])) from None


@router.get("/api/spectrum/{row}/lines")
def lines(row: int, who: Who, state: StateDep) -> dict:
    """The spectrum's H-alpha and neighbouring lines, measured on its file (docs/lines.md),
    and its kind of emission."""
    from specscout.web.routes.candidates import _plain

    if not 0 <= row < len(state.pool.pool):
        raise HTTPException(404, f"no row {row} in the pool")
    m = state.lines.of([row], budget=1).get(row)
    if m is None:
        raise HTTPException(503, "not measured: try again")
    return {"row": row, **{k: _plain(v) for k, v in m.items() if k not in ("row", "id")}}


@router.get("/api/spectrum/{row}/original")
def original(row: int, who: Who, state: StateDep) -> dict:
    try:
        data = state.pool.original(row)
    except KeyError as exc:
        raise HTTPException(404, str(exc.args[0])) from None
    path = data.pop("path")
    name = PurePath(path).name
    if "error" in data:
        data["error"] = data["error"].replace(path, name)
    return {**data, "file": name}
