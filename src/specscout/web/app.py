"""The labelling web app: a FastAPI application over a project.

The page (``static/``) is one HTML file, its script and style, and uPlot for the plots; nothing
is fetched from the internet. The API under ``/api`` serves the queue, spectra, search,
candidates and progress, and appends labels to the label store the moment they arrive.

Safety: every request carries a session (a cookie) or a user's token (``Authorization:
Bearer``, for scripts), on every address. A session comes from the one-time link that
``specscout serve`` prints (it labels as the local annotator) or from the login form (a user's
name and token, ``specscout user add``); it is a random token of its own, stored as a hash,
that expires and ends at logout. ``auth=False`` (``--no-auth``, loopback only) opens the app
to every local user. Writes from the page carry a CSRF token bound to the session, in a header
(which a cross-site form cannot set) and, when the browser sends an Origin, come from the
app's own origin. Audit spectra are blind in the server: no model output for them on any
endpoint while they are in the latest audit draw, nor another annotator's audit label. The
client never names a file, and is never told a server path: spectra are addressed by pool row.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import PurePath
from urllib.parse import urlsplit

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.middleware.trustedhost import TrustedHostMiddleware

from specscout.archive.project import Project
from specscout.catalogue.live import LiveCandidates
from specscout.catalogue.samp import SampLink
from specscout.errors import SpecscoutError
from specscout.labels import LabelStore, label_store
from specscout.labels.store import agreed
from specscout.learn.iterations import iteration_path
from specscout.web.pool import LINES, PoolView
from specscout.web.samp_routes import add_samp_routes, page_event

COOKIE = "specscout_session"
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]", "::1"]
STATIC = resources.files("specscout.web") / "static"
#: Labels changed since the candidate list was built, beyond which it is built again.
REBUILD_AFTER = 2000
#: Request bodies larger than this are refused (a label is a few hundred bytes).
MAX_BODY = 64 * 1024
#: Tables sent to SAMP tools that the app keeps serving, the latest first.
SENT_TABLES = 64


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class AppConfig:
    annotator: str = "local"  # who labels through the launch link (or everyone, without auth)
    require_login: bool = False  # no launch link: only users' logins
    allowed_hosts: list[str] | None = field(default_factory=lambda: list(LOOPBACK_HOSTS))
    samp: bool = True
    catalogues: tuple[str, ...] = ()  # reference catalogues the candidates are matched with
    auth: bool = True  # False: open to every local user (loopback only)
    session_hours: float = 12.0
    launch_token: str | None = None  # of the one-time link; made at random when None


class Bounded(OrderedDict):
    """A dict that forgets its oldest entries beyond ``size``."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes (413), declared or streamed."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await JSONResponse({"detail": f"request body over {self.limit} bytes"},
                                      status_code=413)(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, f"request body over {self.limit} bytes")
            return message

        return await self.app(scope, counted, send)


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
        self.secret = secrets.token_bytes(32)  # CSRF tokens are HMACs of sessions under it
        self.launch_token = (config.launch_token or secrets.token_urlsafe(24)) if (
            config.auth and not config.require_login) else None
        self.key = secrets.token_urlsafe(24)  # in the URLs handed to SAMP tools
        self.samp = (SampLink(on_message=lambda mtype, params: page_event(self, mtype,
                                                                          params))
                     if config.samp else None)
        self.sent_tables: dict[str, list[int]] = Bounded(SENT_TABLES)  # SAMP id -> rows
        self._versions: dict[int, str] = {}
        self._candidates: dict[tuple, LiveCandidates] = {}
        self._votes: dict[bool, tuple[int, dict]] = {}
        self._items: dict[bool, tuple] = {}
        self._blind: tuple[int, frozenset[int]] = (-1, frozenset())
        self._lock = threading.Lock()

    def csrf(self, session: str | None) -> str:
        """The CSRF token of a session (cookie value; None before login)."""
        return hmac.new(self.secret, (session or "").encode(), "sha256").hexdigest()

    def blind(self) -> frozenset[int]:
        """The rows of the latest audit draw: no model output is sent for them."""
        stamp = self.labels.serial("audit_sample")
        if self._blind[0] != stamp:
            self._blind = (stamp, frozenset(s["row"] for s in
                                            self.labels.audit_samples.sample()))
        return self._blind[1]

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
        stamp = self.labels.serial("audit_sample" if audit else "queue")
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
    if not config.auth and config.allowed_hosts is None:
        raise SpecscoutError("an app without authentication serves loopback only")
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
    app.add_middleware(BodyLimit, limit=MAX_BODY)

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
        if not config.auth:
            return config.annotator
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            name = state.labels.users.authenticate(auth[7:])
            if name is None:
                raise HTTPException(401, "unknown or revoked user token")
            return name
        session = request.cookies.get(COOKIE)
        if session:
            name = state.labels.users.session(session)
            if name is None:
                raise HTTPException(401, "the session has expired or ended: log in again")
            return name
        raise HTTPException(401, "log in first: open the link 'specscout serve' printed, or "
                                 "log in with a user's token ('specscout user add')")

    def writer(request: Request, who: str = Depends(annotator)) -> str:
        """A state-changing request: from the app's own page, or with a bearer token."""
        if not request.headers.get("authorization", "").lower().startswith("bearer "):
            check_csrf(request)
        return who

    def check_csrf(request: Request) -> None:
        sent = request.headers.get("x-csrf-token", "")
        expected = state.csrf(request.cookies.get(COOKIE))
        if not secrets.compare_digest(sent.encode(), expected.encode()):
            raise HTTPException(403, "missing or wrong CSRF token: reload the page")
        origin = request.headers.get("origin")
        if origin and urlsplit(origin).netloc != request.headers.get("host"):
            raise HTTPException(403, f"cross-site request from {origin} refused")

    # --- the page --------------------------------------------------------------------------

    def new_session(request: Request, response: Response, name: str) -> str:
        """Open a session of ``name`` in a cookie; its CSRF token."""
        session = state.labels.users.open_session(name, config.session_hours)
        response.set_cookie(COOKIE, session, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https",
                            max_age=max(1, int(config.session_hours * 3600)))
        return state.csrf(session)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(request: Request, token: str | None = None) -> Response:
        if token is None:
            return HTMLResponse((STATIC / "index.html").read_text())
        with state._lock:  # the launch link opens one session, once
            ok = state.launch_token is not None and secrets.compare_digest(
                token.encode(), state.launch_token.encode())
            if ok:
                state.launch_token = None
        if not ok:
            return HTMLResponse("<p>This link was used already, or is not this server's: log "
                                "in with a user's token, or restart 'specscout serve' for a "
                                "new link.</p>", status_code=401)
        response = RedirectResponse("/", status_code=303)  # the token leaves the address bar
        new_session(request, response, config.annotator)
        return response

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/api/session")
    def session(request: Request) -> dict:
        try:
            who = annotator(request)
        except HTTPException:
            who = None
        iteration, _ = state.pool.scores()
        return {"annotator": who, "login_required": config.auth,
                "classes": state.classes, "csrf": state.csrf(request.cookies.get(COOKIE)),
                "pool": len(state.pool),
                "iteration": iteration, "lines": LINES, "samp": config.samp,
                "project": state.project.path.name}

    @app.post("/api/login")
    def login(body: LoginIn, request: Request, response: Response) -> dict:
        check_csrf(request)
        if state.labels.users.authenticate(body.token) != body.name:
            raise HTTPException(401, "wrong name or token")
        return {"annotator": body.name, "csrf": new_session(request, response, body.name)}

    @app.post("/api/logout")
    def logout(request: Request, response: Response) -> dict:
        check_csrf(request)
        session = request.cookies.get(COOKIE)
        if session:
            state.labels.users.end_session(session)  # the cookie is worthless from now on
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
            # audit labels are blind to each other too
            others = {} if audit else {a: v for a, v in votes.items()
                                       if a != who and v is not None}
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
        blind = audit or row in state.blind()
        return {
            "row": row,
            "record": {**{k: record[k] for k in ("id", "obsid", "designation", "ra", "dec",
                                                 "snr", "window_snr", "survey_class",
                                                 "survey_subclass", "release", "instrument")},
                       "file": PurePath(record["path"]).name},  # the name, not the path
            "wavelength": np.round(state.pool.wavelength, 3).tolist(),
            "flux": [round(float(v), 5) for v in flux],
            # Audit labels are given blind: no model output for an audit spectrum.
            "probabilities": None if blind else state.pool.probabilities(row),
            "iteration": None if blind else iteration,
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
            data = state.pool.original(row)
        except KeyError as exc:
            raise HTTPException(404, str(exc.args[0])) from None
        path = data.pop("path")
        if "error" in data:
            data["error"] = data["error"].replace(path, PurePath(path).name)
        return {**data, "file": PurePath(path).name}

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
        blind = state.blind()
        shown = [i for i in page["items"] if i["row"] not in blind]
        return {"iteration": iteration, "threshold": threshold, **page, "items": shown,
                "withheld": len(page["items"]) - len(shown)}  # audit spectra: blind

    @app.get("/api/search")
    def search(q: str = Query(..., min_length=1, max_length=200),
               who: str = Depends(annotator)) -> dict:
        return {"query": q, "items": state.pool.search(q)}

    add_samp_routes(app, state, annotator, writer)

    @app.exception_handler(SpecscoutError)
    def specscout_error(request: Request, exc: SpecscoutError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    return app
