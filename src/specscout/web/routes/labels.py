"""The queue and the audit sample, the next spectrum to label, labels, progress."""

from __future__ import annotations

import json

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse
from pydantic import Field, field_validator

from specscout.labels.store import agreed
from specscout.web.deps import StateDep, Strict, Who, Writer, clean_text, may_label
from specscout.web.routes.spectra import spectrum_payload
from specscout.web.state import READ_AHEAD, State

router = APIRouter()


class LabelIn(Strict):
    row: int = Field(ge=0, description="pool row of the spectrum")
    label: str | None = Field(description="a class of the project, or null (unsure / undo)")
    comment: str = Field("", max_length=2000)
    audit: bool = False
    spectrum: str | None = Field(None, description="the spectrum's id, checked against the row")

    _clean = field_validator("label", "comment", "spectrum")(
        lambda v: v if v is None else clean_text(v))


def with_labels(state: State, items: list[dict], who: str, audit: bool,
                votes: dict | None = None) -> list[dict]:
    """Each item with this annotator's label, the others' labels (none for the audit, which is
    blind to them), and whether it is done (someone labelled it; "unsure" is not done). From
    the labels kept in memory and caught up at each call (or ``votes``, so caught up): a
    query of every label of the batch's rows cost most of the server's time under a team's
    load."""
    latest = state.votes(audit) if votes is None else votes
    out = []
    for i in items:
        votes = latest.get(i["row"], {})
        others = {} if audit else {a: v for a, v in votes.items() if a != who and v is not None}
        out.append({**i, "label": votes.get(who), "others": others,
                    "done": any(v is not None for v in votes.values())})
    return out


@router.get("/api/queue")
def queue(who: Who, state: StateDep, audit: bool = False) -> dict:
    iteration, items = state.items(audit)
    items = with_labels(state, items, who, audit)
    if audit:  # blind: no model output on the audit page
        items = [{k: v for k, v in i.items() if k != "acquisition_score"} for i in items]
    return {"audit": audit, "iteration": iteration, "items": items,
            "done": sum(i["done"] for i in items)}


@router.get("/api/next")
def next_item(who: Who, state: StateDep, audit: bool = False,
              after: int = -1) -> JSONResponse:
    """The first spectrum after rank ``after`` (wrapping round) that no one has labelled (a
    skipped one, marked unsure, comes round again), with everything the page shows."""
    _, items = state.items(audit)
    votes, done = state.votes_and_done(audit)
    todo = [i for i in items if i["row"] not in done]  # this runs at every label
    if not todo:
        return JSONResponse({"item": None, "remaining": 0})
    k = next((k for k, i in enumerate(todo) if i["rank"] > after), 0)
    item = with_labels(state, [todo[k]], who, audit, votes)[0]
    state.read_ahead([i["row"] for i in todo[k + 1 : k + 1 + READ_AHEAD]])
    # Plain JSON: the payload is made of JSON types already (the hot path of the page).
    return JSONResponse({"item": item, "remaining": len(todo),
                         "spectrum": spectrum_payload(state, item["row"], who, audit)})


@router.post("/api/labels")
def add_label(body: LabelIn, caller: Writer, state: StateDep) -> dict:
    may_label(caller, body.audit)
    who = caller.name
    if body.label is not None and body.label not in state.classes:
        raise HTTPException(422, f"unknown class {body.label!r}: the project's classes are "
                                 f"{state.classes}")
    # a spectrum of the batch is known by its item; another is read from the pool
    iteration, _, by_row = state.batch(body.audit)
    item = by_row.get(body.row)
    try:
        spectrum = item["id"] if item else state.pool.record(body.row)["id"]
    except KeyError as exc:
        raise HTTPException(404, str(exc.args[0])) from None
    if body.spectrum is not None and body.spectrum != spectrum:
        raise HTTPException(409, f"row {body.row} holds {spectrum!r}, not "
                                 f"{body.spectrum!r}: reload the page")
    # The audit stays apart from training: a spectrum of the latest draw is labelled blind,
    # on the audit page, and an audit label is for a spectrum of that draw.
    drawn = body.row in state.blind()
    if drawn and not body.audit:
        raise HTTPException(409, f"row {body.row} is in the audit sample: label it on the "
                                 f"audit page, blind")
    if body.audit and not drawn:
        raise HTTPException(409, f"row {body.row} is not in the latest audit sample: reload "
                                 f"the page")
    score = item.get("acquisition_score") if item else None
    number = iteration if iteration is not None else state.pool.scores()[0]
    label_id = state.labels.add(
        spectrum, body.row, body.label, who, iteration=number,
        model_version=None if body.audit else state.model_version(number),
        acquisition_score=score, comment=body.comment, audit=body.audit)
    state.check_labels()  # the file went while it was written: not acknowledged
    return {"id": label_id, "row": body.row, "spectrum": spectrum, "label": body.label,
            "annotator": who, "audit": body.audit}


@router.get("/api/progress")
def progress(who: Who, state: StateDep) -> dict:
    tallies = state.labels.tallies()
    per_class = {c: {"training": 0, "audit": 0} for c in state.classes}
    votes = {audit: state.votes(audit) for audit in (False, True)}
    for label in agreed(votes[False]).values():
        per_class[label]["training"] += 1
    for by in votes[True].values():  # the audit is blind to the others' labels: one's own
        if by.get(who) is not None:
            per_class[by[who]]["audit"] += 1
    disagreements = {row: v for row, v in votes[False].items()
                     if len({x for x in v.values() if x}) > 1}
    out = {"classes": per_class, "annotators": tallies["annotators"],
           "iterations": tallies["iterations"], "disagreements": len(disagreements),
           "labels": tallies["labels"],
           "disagreeing": [{"row": r, "labels": v}
                           for r, v in sorted(disagreements.items())[:200]]}
    for audit, name in ((False, "queue"), (True, "audit")):
        iteration, items = state.items(audit)
        items = with_labels(state, items, who, audit)
        out[name] = {"iteration": iteration, "size": len(items),
                     "done": sum(i["done"] for i in items)}
    return out


@router.get("/api/progress/curve")
def learning_curve(who: Who, state: StateDep) -> dict:
    """Per iteration: the training labels per class, the spectra predicted per class, and the
    audit's precision and recall (with their intervals) per target class."""
    from specscout.catalogue.audit import estimates_by_iteration
    from specscout.learn.iterations import iteration_numbers, iteration_path

    audits = estimates_by_iteration(state.project)
    out = []
    for n in iteration_numbers(state.project):
        record = iteration_path(state.project, n) / "iteration.json"
        it = json.loads(record.read_text()) if record.exists() else {}
        a = audits.get(n, {}).get("classes", {})
        out.append({"iteration": n,
                    "training": it.get("train", {}).get("per_class", {}),
                    "predicted": it.get("score", {}).get("predicted", {}),
                    "audit": {c: {k: a[c].get(k) for k in ("precision", "precision_interval",
                                                          "recall", "recall_interval")}
                              for c in state.classes[1:] if c in a}})
    return {"classes": state.classes, "iterations": out}
