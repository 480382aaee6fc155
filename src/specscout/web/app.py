"""The labelling web app: a FastAPI application over a project.

The page (``static/``) is one HTML file, its script and style, and uPlot for the plots; nothing
is fetched from the internet. The API under ``/api`` serves the queue, spectra, search,
candidates and progress, and appends labels to the label store the moment they arrive.

Safety: on loopback the app is open to the local user (labels are written under
``annotator``) unless ``require_login``; bound to any other address it requires every request to
carry a user's token (``specscout user add``), as a cookie set by the login form or as an
``Authorization: Bearer`` header. Writes from the page must carry the server's CSRF token in a
header (which a cross-site form cannot set) and, when the browser sends an Origin, come from the
app's own origin. The client never names a file: spectra are addressed by pool row only.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import secrets
import threading
from dataclasses import dataclass, field
from importlib import resources
from urllib.parse import urlsplit

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.middleware.trustedhost import TrustedHostMiddleware

from specscout.archive.project import Project
from specscout.catalogue.live import LiveCandidates
from specscout.catalogue.samp import SampLink
from specscout.errors import SpecscoutError
from specscout.labels import LabelStore, label_store
from specscout.labels.schema import audit_table, queue_table
from specscout.labels.store import agreed
from specscout.learn.iterations import iteration_path
from specscout.web.pool import LINES, PoolView
from specscout.web.samp_routes import add_samp_routes, page_event

COOKIE = "specscout_token"
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]", "::1"]
STATIC = resources.files("specscout.web") / "static"
#: Labels changed since the candidate list was built, beyond which it is built again.
REBUILD_AFTER = 2000


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class AppConfig:
    annotator: str = "local"  # who writes when no one has logged in (loopback only)
    require_login: bool = False
    allowed_hosts: list[str] | None = field(default_factory=lambda: list(LOOPBACK_HOSTS))
    samp: bool = True
    catalogues: tuple[str, ...] = ()  # reference catalogues the candidates are matched with


class LabelIn(BaseModel):
    row: int = Field(ge=0, description="pool row of the spectrum")
    label: str | None = Field(description="a class of the project, or null (unsure / undo)")
    comment: str = Field("", max_length=2000)
    audit: bool = False
    spectrum: str | None = Field(None, description="the spectrum's id, checked against the row")


class LoginIn(BaseModel):
    name: str = Field(max_length=64)
    token: str = Field(max_length=200)


class State:
    """Everything the endpoints share."""

    def __init__(self, project: Project, config: AppConfig) -> None:
        self.project = project
        self.config = config
        self.classes = list(project.config.classes)
        self.labels: LabelStore = label_store(project)
        self.pool = PoolView(project)
        self.csrf = secrets.token_urlsafe(32)
        self.key = secrets.token_urlsafe(24)  # in the URLs handed to SAMP tools
        self.samp = (SampLink(on_message=lambda mtype, params: page_event(self, mtype,
                                                                          params))
                     if config.samp else None)
        self.sent_tables: dict[str, list[int]] = {}  # SAMP table-id -> pool rows
        self._versions: dict[int, str] = {}
        self._candidates: dict[tuple, LiveCandidates] = {}
        self._votes: dict[bool, tuple[int, dict]] = {}
        self._items: dict[bool, tuple] = {}
        self._lock = threading.Lock()

    def model_version(self, iteration: int | None) -> str | None:
        """"NNNN:<hash of model.pt>": which network was behind a queue or a prediction."""
        if iteration is None:
            return None
        if iteration not in self._versions:
            path = iteration_path(self.project, iteration) / "model.pt"
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.exists() else ""
            self._versions[iteration] = f"{iteration:04d}:{digest}"
        return self._versions[iteration]

    def items(self, audit: bool) -> tuple[int | None, list[dict]]:
        """(iteration, items) of the latest query batch, or of the latest audit draw. Kept
        until a new batch or draw appears (their rows get new ids)."""
        stamp = self.labels.last_id(audit_table if audit else queue_table)
        cached = self._items.get(audit)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        if audit:
            sample = self.labels.audit_samples.sample()
            found = (sample[0]["iteration"] if sample else None,
                     [{"rank": i, "row": s["row"], "id": s["spectrum"]}
                      for i, s in enumerate(sample)])
        else:
            queue = self.labels.queue.batch()
            found = (queue[0]["iteration"] if queue else None,
                     [{"rank": q["rank"], "row": q["row"], "id": q["spectrum"],
                       "acquisition_score": q["acquisition_score"]} for q in queue])
        self._items[audit] = (stamp, found)
        return found

    def votes(self, audit: bool) -> dict[int, dict[str, str | None]]:
        """{row: {annotator: latest label}}, kept and caught up with the labels appended
        since the last call."""
        with self._lock:
            last, votes = self._votes.get(audit, (0, {}))
            for label_id, row, who, label in self.labels.since(last, audit):
                votes.setdefault(row, {})[who] = label
                last = label_id
            self._votes[audit] = (last, votes)
            return votes

    def candidates(self, threshold: float) -> tuple[int, LiveCandidates]:
        """(iteration, the candidate list) of the latest scored iteration at ``threshold``,
        brought up to date with the labels."""
        iteration, probs = self.pool.scores()
        if iteration is None:
            raise HTTPException(404, "no scored iteration yet: run 'specscout iterate'")
        current = agreed(self.votes(False))
        key = (iteration, threshold, len(self.pool))
        with self._lock:
            live = self._candidates.get(key)
            # Rebuilt when labels have changed too much since (each page costs the change).
            if live is None or len(live.changed(current)) > REBUILD_AFTER:
                live = LiveCandidates(
                    self.pool.pool, probs, current, names=self.classes, threshold=threshold,
                    targets=range(1, len(self.classes)), references=self.config.catalogues)
                self._candidates = {key: live}
            return iteration, live


def create_app(project: Project, config: AppConfig | None = None) -> FastAPI:
    config = config or AppConfig()
    state = State(project, config)
    if config.require_login and not state.labels.users.names():
        raise SpecscoutError("logins are required but there are no users: add one with "
                             f"'specscout user add {project.path} NAME'")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if state.samp is not None:  # listen to the VO tools from the start, if a hub runs
            with contextlib.suppress(SpecscoutError, OSError):
                state.samp.connect()
        yield
        if state.samp is not None:
            state.samp.close()

    app = FastAPI(title="specscout", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.specscout = state
    if config.allowed_hosts:  # refuses DNS-rebinding pages that call themselves 127.0.0.1
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=config.allowed_hosts)

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "frame-ancestors 'none'")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    # --- who is asking ---------------------------------------------------------------------

    def annotator(request: Request) -> str:
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else request.cookies.get(COOKIE)
        if token:
            name = state.labels.users.authenticate(token)
            if name is None:
                raise HTTPException(401, "unknown or revoked token: log in again")
            return name
        if config.require_login:
            raise HTTPException(401, "log in first (a token from 'specscout user add')")
        return config.annotator

    def writer(request: Request, who: str = Depends(annotator)) -> str:
        """A state-changing request: from the app's own page, or with a bearer token."""
        if not request.headers.get("authorization", "").lower().startswith("bearer "):
            check_csrf(request)
        return who

    def check_csrf(request: Request) -> None:
        sent = request.headers.get("x-csrf-token", "")
        if not secrets.compare_digest(sent.encode(), state.csrf.encode()):
            raise HTTPException(403, "missing or wrong CSRF token: reload the page")
        origin = request.headers.get("origin")
        if origin and urlsplit(origin).netloc != request.headers.get("host"):
            raise HTTPException(403, f"cross-site request from {origin} refused")

    # --- the page --------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return (STATIC / "index.html").read_text()

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/api/session")
    def session(request: Request) -> dict:
        try:
            who = annotator(request)
        except HTTPException:
            who = None
        iteration, _ = state.pool.scores()
        return {"annotator": who, "login_required": config.require_login,
                "classes": state.classes, "csrf": state.csrf, "pool": len(state.pool),
                "iteration": iteration, "lines": LINES, "samp": config.samp,
                "project": state.project.path.name}

    @app.post("/api/login")
    def login(body: LoginIn, request: Request, response: Response) -> dict:
        check_csrf(request)
        if state.labels.users.authenticate(body.token) != body.name:
            raise HTTPException(401, "wrong name or token")
        response.set_cookie(COOKIE, body.token, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", max_age=30 * 86400)
        return {"annotator": body.name}

    @app.post("/api/logout")
    def logout(request: Request, response: Response) -> dict:
        check_csrf(request)
        response.delete_cookie(COOKIE)
        return {"annotator": None}

    # --- the queue, the audit sample, one spectrum -----------------------------------------

    def with_labels(items: list[dict], who: str, audit: bool) -> list[dict]:
        """Each item with this annotator's label, the others' labels, and whether it is done
        (someone labelled it; a spectrum marked unsure is not)."""
        latest = state.labels.latest([i["row"] for i in items], audit)
        out = []
        for i in items:
            votes = latest.get(i["row"], {})
            others = {a: v for a, v in votes.items() if a != who and v is not None}
            out.append({**i, "label": votes.get(who), "others": others,
                        "done": any(v is not None for v in votes.values())})
        return out

    @app.get("/api/queue")
    def queue(audit: bool = False, who: str = Depends(annotator)) -> dict:
        iteration, items = state.items(audit)
        items = with_labels(items, who, audit)
        if audit:  # blind: no model output on the audit page
            items = [{k: v for k, v in i.items() if k != "acquisition_score"} for i in items]
        return {"audit": audit, "iteration": iteration, "items": items,
                "done": sum(i["done"] for i in items)}

    @app.get("/api/next")
    def next_item(audit: bool = False, after: int = -1,
                  who: str = Depends(annotator)) -> JSONResponse:
        """The first spectrum after rank ``after`` (wrapping round) that no one has labelled
        (a skipped one, marked unsure, comes round again), with everything the page shows."""
        _, items = state.items(audit)
        todo = [i for i in with_labels(items, who, audit) if not i["done"]]
        if not todo:
            return JSONResponse({"item": None, "remaining": 0})
        item = next((i for i in todo if i["rank"] > after), todo[0])
        # Plain JSON: the payload is made of JSON types already (the hot path of the page).
        return JSONResponse({"item": item, "remaining": len(todo),
                             "spectrum": spectrum_payload(item["row"], who, audit)})

    def spectrum_payload(row: int, who: str, audit: bool) -> dict:
        try:
            record = state.pool.record(row)
        except KeyError as exc:
            raise HTTPException(404, str(exc.args[0])) from None
        flux = state.pool.flux(row)
        history = [h for h in state.labels.history(row)
                   if h["audit"] == audit and (not audit or h["annotator"] == who)]
        mine = [h for h in history if h["annotator"] == who]
        iteration, _ = state.pool.scores()
        return {
            "row": row,
            "record": {k: record[k] for k in ("id", "obsid", "designation", "ra", "dec", "snr",
                                              "window_snr", "survey_class", "survey_subclass",
                                              "release", "instrument", "path")},
            "wavelength": np.round(state.pool.wavelength, 3).tolist(),
            "flux": [round(float(v), 5) for v in flux],
            # Audit labels are given blind: no model output on that page.
            "probabilities": None if audit else state.pool.probabilities(row),
            "iteration": None if audit else iteration,
            "history": [{"label": h["label"], "annotator": h["annotator"],
                         "time": h["time"].isoformat(), "iteration": h["iteration"],
                         "comment": h["comment"]} for h in history],
            "label": mine[-1]["label"] if mine else None,
        }

    @app.get("/api/spectrum/{row}")
    def spectrum(row: int, audit: bool = False,
                 who: str = Depends(annotator)) -> JSONResponse:
        return JSONResponse(spectrum_payload(row, who, audit))

    @app.get("/api/spectrum/{row}/epochs")
    def epochs(row: int, who: str = Depends(annotator)) -> dict:
        try:
            return {"row": row, "epochs": state.pool.epochs(row)}
        except KeyError as exc:
            raise HTTPException(404, str(exc.args[0])) from None

    @app.get("/api/spectrum/{row}/original")
    def original(row: int, who: str = Depends(annotator)) -> dict:
        try:
            return state.pool.original(row)
        except KeyError as exc:
            raise HTTPException(404, str(exc.args[0])) from None

    # --- labels ----------------------------------------------------------------------------

    @app.post("/api/labels")
    def add_label(body: LabelIn, who: str = Depends(writer)) -> dict:
        if body.label is not None and body.label not in state.classes:
            raise HTTPException(422, f"unknown class {body.label!r}: the project's classes "
                                     f"are {state.classes}")
        try:
            record = state.pool.record(body.row)
        except KeyError as exc:
            raise HTTPException(404, str(exc.args[0])) from None
        if body.spectrum is not None and body.spectrum != record["id"]:
            raise HTTPException(409, f"row {body.row} holds {record['id']!r}, not "
                                     f"{body.spectrum!r}: reload the page")
        iteration, items = state.items(body.audit)
        score = next((i.get("acquisition_score") for i in items if i["row"] == body.row), None)
        number = iteration if iteration is not None else state.pool.scores()[0]
        label_id = state.labels.add(
            record["id"], body.row, body.label, who, iteration=number,
            model_version=None if body.audit else state.model_version(number),
            acquisition_score=score, comment=body.comment, audit=body.audit)
        return {"id": label_id, "row": body.row, "spectrum": record["id"], "label": body.label,
                "annotator": who, "audit": body.audit}

    @app.get("/api/progress")
    def progress(who: str = Depends(annotator)) -> dict:
        tallies = state.labels.tallies()
        per_class = {c: {"training": 0, "audit": 0} for c in state.classes}
        votes = {audit: state.votes(audit) for audit in (False, True)}
        for audit, by_row in votes.items():
            for label in agreed(by_row).values():
                per_class[label]["audit" if audit else "training"] += 1
        disagreements = {row: v for row, v in votes[False].items()
                         if len({x for x in v.values() if x}) > 1}
        out = {"classes": per_class, "annotators": tallies["annotators"],
               "iterations": tallies["iterations"], "disagreements": len(disagreements),
               "labels": tallies["labels"],
               "disagreeing": [{"row": r, "labels": v}
                               for r, v in sorted(disagreements.items())[:200]]}
        for audit, name in ((False, "queue"), (True, "audit")):
            iteration, items = state.items(audit)
            items = with_labels(items, who, audit)
            out[name] = {"iteration": iteration, "size": len(items),
                         "done": sum(i["done"] for i in items)}
        return out

    # --- candidates and search -------------------------------------------------------------

    @app.get("/api/candidates")
    def candidates(threshold: float = Query(0.5, ge=0, le=1), limit: int = Query(500, ge=1),
                   who: str = Depends(annotator)) -> dict:
        iteration, live = state.candidates(threshold)
        page = live.page(agreed(state.votes(False)), limit)
        return {"iteration": iteration, "threshold": threshold, **page}

    @app.get("/api/search")
    def search(q: str = Query(..., min_length=1, max_length=200),
               who: str = Depends(annotator)) -> dict:
        return {"query": q, "items": state.pool.search(q)}

    add_samp_routes(app, state, annotator, writer)

    @app.exception_handler(SpecscoutError)
    def specscout_error(request: Request, exc: SpecscoutError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    return app
