"""The candidate list of the latest scored iteration, and search."""

from __future__ import annotations

from fastapi import APIRouter, Query

from specscout.labels.store import agreed
from specscout.web.deps import StateDep, Who

router = APIRouter()


@router.get("/api/candidates")
def candidates(who: Who, state: StateDep, threshold: float = Query(0.5, ge=0, le=1),
               limit: int = Query(500, ge=1)) -> dict:
    iteration, live = state.candidates(threshold)
    page = live.page(agreed(state.votes(False)), limit)
    blind = state.blind()
    shown = [i for i in page["items"] if i["row"] not in blind]
    return {"iteration": iteration, "threshold": threshold, **page, "items": shown,
            "withheld": len(page["items"]) - len(shown)}  # audit spectra: blind


@router.get("/api/search")
def search(who: Who, state: StateDep,
           q: str = Query(..., min_length=1, max_length=200)) -> dict:
    return {"query": q, "items": state.pool.search(q)}
