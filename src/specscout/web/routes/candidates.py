"""The candidate list of the latest scored iteration, and search."""

from __future__ import annotations

from fastapi import APIRouter, Query

from specscout.labels.store import agreed
from specscout.web.deps import StateDep, Who
from specscout.web.state import DEFAULT_THRESHOLD

router = APIRouter()


@router.get("/api/candidates")
def candidates(who: Who, state: StateDep,
               threshold: float = Query(DEFAULT_THRESHOLD, ge=0, le=1),
               limit: int = Query(500, ge=1, le=5000)) -> dict:
    """The candidate list; the spectra of the latest audit draw are left out of it, and out
    of its count (which would say how the model rates them)."""
    iteration, live = state.candidates(threshold)
    page = live.page(agreed(state.votes(False)), limit)
    return {"iteration": iteration, "threshold": live.threshold, **page}


@router.get("/api/search")
def search(who: Who, state: StateDep,
           q: str = Query(..., min_length=1, max_length=200)) -> dict:
    return {"query": q, "items": state.pool.search(q)}
