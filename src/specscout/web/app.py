"""The labelling web app: a FastAPI application over a project.

The page (``static/``) is one HTML file, its script and style, and uPlot for the plots; nothing
is fetched from the internet. The API under ``/api`` (one router per part of the page,
:mod:`.routes`, over the shared :class:`.state.State`) serves the queue, spectra, search,
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

import asyncio
import contextlib
import logging
import re
import threading

import sqlalchemy as sa
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.middleware.trustedhost import TrustedHostMiddleware

from specscout.archive.project import Project
from specscout.catalogue.samp import SampLink
from specscout.errors import SpecscoutError
from specscout.labels.store import agreed
from specscout.web import work
from specscout.web.deps import COOKIE
from specscout.web.lines import AT_START
from specscout.web.routes import candidates, labels, pool_map, samp, session, spectra
from specscout.web.routes.session import STATIC
from specscout.web.state import (
    DEFAULT_THRESHOLD,
    LOOPBACK_HOSTS,
    AppConfig,
    Bounded,
    State,
    is_loopback,
)
from specscout.web.work import WorkerLost

log = logging.getLogger(__name__)

__all__ = ["COOKIE", "LOOPBACK_HOSTS", "MAX_BODY", "AppConfig", "Bounded", "create_app",
           "is_loopback"]

#: Request bodies larger than this are refused (a label is a few hundred bytes).
MAX_BODY = 64 * 1024
#: Reads given up at their deadline that may still run before new reads are refused (of
#: the 40 threads that serve the endpoints).
GIVEN_UP = 4
#: Seconds the app waits, as it stops, for reads given up at their deadline to end.
STOP_WAIT_S = 5


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


class SecurityHeaders:
    """The security headers on every answer, a 500 that a bug raised included (logged here);
    ``no-store`` on the API. A plain ASGI middleware: Starlette's ``@app.middleware`` costs
    a task and two streams a request."""

    def __init__(self, app, policy: str) -> None:
        self.app, self.policy = app, policy

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        api = scope["path"].startswith("/api/")
        started = False

        async def with_headers(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = self.policy
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
                if api:  # labels and sessions: never cached
                    headers["Cache-Control"] = "no-store"
                else:  # the page and its script: checked again after an upgrade
                    headers.setdefault("Cache-Control", "no-cache")
                if scope.get("scheme") == "https":
                    headers["Strict-Transport-Security"] = "max-age=31536000"
            await send(message)

        try:
            await self.app(scope, receive, with_headers)
        except Exception:  # a bug: logged here, and the answer keeps the headers above
            if started:  # too late for an answer of its own: the server logs it
                raise
            log.exception("%s %s failed", scope.get("method"), scope["path"])
            await JSONResponse({"detail": "internal error (logged by the server)"},
                               status_code=500)(scope, receive, with_headers)


class Deadline:
    """A read (GET, HEAD) that takes longer than ``seconds`` is answered 503 then: the
    annotator hears at once, and the work goes on in its thread to its end (each endpoint's
    limits bound it), its own answer dropped. While :data:`GIVEN_UP` such reads still run,
    a new read is answered 503 at once, so that reads given up cannot take every thread
    from the writes. Writes always finish: a label cut off would leave its sender not
    knowing whether it was kept."""

    def __init__(self, app, seconds: float, running: set[asyncio.Future]) -> None:
        self.app, self.seconds = app, seconds
        self.running = running  # reads given up, still at work (the app waits for them)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        if len(self.running) >= GIVEN_UP:
            return await JSONResponse(
                {"detail": f"{len(self.running)} earlier requests are still at work: try "
                           f"again in a moment"}, status_code=503)(scope, receive, send)
        started, late = False, False

        async def unless_late(message) -> None:
            nonlocal started
            if late:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        work = asyncio.ensure_future(self.app(scope, receive, unless_late))
        done, _ = await asyncio.wait({work}, timeout=self.seconds)
        if done or started:
            return await work
        late = True
        self.running.add(work)
        work.add_done_callback(self._ended)
        log.warning("%s %s took over %g s: answered 503", scope["method"], scope["path"],
                    self.seconds)
        await JSONResponse({"detail": f"this took over {self.seconds:g} s and was given up: "
                                      f"try a smaller request"},
                           status_code=503)(scope, receive, send)

    def _ended(self, work: asyncio.Future) -> None:
        self.running.discard(work)
        if not work.cancelled() and work.exception() is not None:
            exc = work.exception()
            log.error("a request given up at its deadline then failed",
                      exc_info=(type(exc), exc, exc.__traceback__))


def warm(state: State) -> None:
    """What the first pages need, made at start-up: the candidate list at the default
    threshold (about a second on a pool of millions), the labelled spectra's features for
    the neighbours (seconds with thousands of labels: the cheaper one first), then the line
    measurements of the most probable candidates (kept in the project). A failure is logged,
    and shows on the first request that needs it."""
    def lines() -> None:  # the candidates' lines, most probable first, in the worker
        _, live = state.candidates(DEFAULT_THRESHOLD)
        rows = live.rows[live.order[:AT_START]].tolist()
        for i in range(0, len(rows), work.LINES_TASK):  # a task at a time: searches go too
            # (a page meanwhile measures its own: it is not left waiting for the worker)
            task = rows[i : i + work.LINES_TASK]
            try:
                measured, kept = state.worker.submit(work.measure_lines, task).result()
                state.lines.hold(measured, kept)
            except Exception as exc:  # these candidates are left to the pages
                if state.worker.closed:
                    return  # the app is stopping
                log.warning("could not measure candidates' lines at start-up: %s", exc)
                if isinstance(exc, WorkerLost):
                    return

    for name, make in (("candidate list", lambda: state.candidates(DEFAULT_THRESHOLD)[1].page(
            agreed(state.votes(False)))), ("neighbours", state.neighbours),
            ("candidates' line measurements", lines)):
        try:
            make()
        except Exception as exc:  # a start-up nicety must not stop the app
            log.warning("could not prepare the %s at start-up: %s", name, exc)


def create_app(project: Project, config: AppConfig | None = None) -> FastAPI:
    config = config or AppConfig()
    if not config.auth and config.allowed_hosts is None:
        raise SpecscoutError("an app without authentication serves loopback only")
    state = State(project, config)
    if config.require_login and not state.labels.users.names():
        raise SpecscoutError("logins are required but there are no users: add one with "
                             f"'specscout user add {project.path} NAME'")
    if config.samp:
        state.samp = SampLink(on_message=lambda mtype, params: samp.page_event(
            state, mtype, params))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if state.samp is not None:  # listen to the VO tools from the start, if a hub runs
            with contextlib.suppress(SpecscoutError, OSError):
                state.samp.connect()
        threading.Thread(target=warm, args=(state,), daemon=True).start()
        yield
        if state.given_up:  # reads given up at their deadline end before what they use
            await asyncio.wait(set(state.given_up), timeout=STOP_WAIT_S)
        state.worker.close()
        state.lines.keep()
        if state.samp is not None:
            state.samp.close()

    app = FastAPI(title="specscout", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.specscout = state
    if config.allowed_hosts:  # refuses DNS-rebinding pages that call themselves 127.0.0.1
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=config.allowed_hosts)
    app.add_middleware(BodyLimit, limit=MAX_BODY)

    # the page may talk to the annotator's own SAMP hub (Web Profile), and to nothing else
    hub = (f" http://localhost:{config.samp_web_port} http://127.0.0.1:{config.samp_web_port}"
           if config.samp_web_port else "")
    policy = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
              f"connect-src 'self'{hub}; frame-ancestors 'none'")

    app.add_middleware(Deadline, seconds=config.deadline_s, running=state.given_up)
    app.add_middleware(SecurityHeaders, policy=policy)

    for module in (session, labels, spectra, candidates, pool_map, samp):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.exception_handler(SpecscoutError)
    def specscout_error(request: Request, exc: SpecscoutError) -> JSONResponse:
        return JSONResponse({"detail": without_paths(str(exc))}, status_code=400)

    @app.exception_handler(sa.exc.DBAPIError)
    def database_down(request: Request, exc: sa.exc.DBAPIError) -> JSONResponse:
        # read-only, locked too long, damaged, a server gone: said, never acknowledged
        log.error("the label database failed on %s %s: %s", request.method, request.url.path,
                  exc.orig)
        return JSONResponse({"detail": "the label database cannot be used now (the server's "
                                       "log says why): this request was not acknowledged; "
                                       "try again, or tell whoever runs 'specscout serve'"},
                            status_code=503)

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # where and why, never the input itself: it may not even be encodable
        return JSONResponse({"detail": [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
             "type": str(e.get("type", ""))} for e in exc.errors()]}, status_code=422)

    return app


def without_paths(text: str) -> str:
    """``text`` with every absolute path cut to its last part: how the server's disks are
    laid out is not the client's business (the file's name says which one)."""
    return re.sub(r"(?<![\w.:/])/(?:[^\s'\"/]+/)+(?=[^\s'\"/])", "", text)
