"""The candidate list of the latest scored iteration, and search."""

from __future__ import annotations

import math

import numpy as np
from fastapi import APIRouter, HTTPException, Query

from specscout.catalogue.candidates import listed_kinds
from specscout.labels.store import agreed
from specscout.web import work
from specscout.web.deps import StateDep, Who
from specscout.web.pool import TooWide
from specscout.web.state import DEFAULT_THRESHOLD
from specscout.web.work import WorkerBusy, WorkerLost

router = APIRouter()

#: Of the app's deadline, what a search may wait for the worker.
SEARCH_WAIT = 0.8


@router.get("/api/candidates")
def candidates(who: Who, state: StateDep,
               threshold: float = Query(DEFAULT_THRESHOLD, ge=0, le=1),
               limit: int = Query(500, ge=1, le=5000)) -> dict:
    """The candidate list; the spectra of the latest audit draw are left out of it, and out
    of its count (which would say how the model rates them)."""
    iteration, live = state.candidates(threshold)
    page = live.page(agreed(state.votes(False)), limit)
    rows = [it["row"] for it in page["items"]]
    found = state.lines.of(rows)
    flux = state.pool.pool.flux(np.array(rows, np.int64)) if rows else []
    targets = state.project.config.targets
    for it, f in zip(page["items"], flux, strict=True):
        m = found.get(it["row"])
        it.update({k: _plain(m[k]) if m else None for k in SHOWN_LINES})
        it["kind"] = m["kind"] if m else "unmeasured"
        it["lines_status"] = m["status"] if m else "not measured yet"
        it["flagged"] = targets.get(it["kind"]) == "flag"
        it["thumb"] = thumb(state.pool.wavelength, f)
    return {"iteration": iteration, "threshold": live.threshold,
            "measured": sum(r in found for r in rows),
            "listed_kinds": sorted(listed_kinds(state.project) | {"unmeasured"}), **page}


#: The line measurements a candidate row shows (docs/lines.md).
SHOWN_LINES = ("kind_reason", "profile", "nebular", "ha_ew", "ha_ew_err", "ha_emission_ew",
               "ha_peak_snr", "ha_fwhm", "ha_resolved", "ha_peaks", "ha_velocity", "nii_ha",
               "nii_ha_err")


def _plain(value):
    """A JSON value: NaN as null, numpy scalars as Python's."""
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(value) else round(float(value), 4)
    return value.item() if isinstance(value, np.generic) else value


#: The part of the window a candidate's small plot shows (vacuum A): H-alpha and [N II].
THUMB = (6530.0, 6600.0)


def thumb(wave: np.ndarray, flux: np.ndarray, points: int = 70) -> list[int]:
    """A candidate's line drawn small: the window's flux over :data:`THUMB` (all of it where
    the window is another), as ``points`` values 0-100 (min to max)."""
    lo, hi = THUMB if wave[0] <= THUMB[0] and wave[-1] >= THUMB[1] else (wave[0], wave[-1])
    f = np.interp(np.linspace(lo, hi, points), wave, np.asarray(flux, np.float64))
    lo, hi = float(f.min()), float(f.max())
    return np.round(100 * (f - lo) / (hi - lo or 1)).astype(int).tolist()


@router.get("/api/search")
async def search(who: Who, state: StateDep,
                 q: str = Query(..., min_length=1, max_length=200)) -> dict:
    # in the app's worker process: a cone's records, read from many parts, would hold up
    # every other request here; given up here before the app's deadline, so that a search
    # waiting for the worker never counts among the reads that hold a thread
    wait = SEARCH_WAIT * state.config.deadline_s
    try:
        return {"query": q, "items": await state.worker.run(work.search, q, timeout=wait)}
    except TooWide as exc:
        raise HTTPException(422, str(exc)) from None
    except (WorkerLost, WorkerBusy) as exc:
        raise HTTPException(503, str(exc)) from None
    except TimeoutError:
        raise HTTPException(503, f"this search took over {wait:g} s and was given up: try "
                                 f"again in a moment") from None
