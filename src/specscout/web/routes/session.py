"""The page itself, the one-time launch link, the session, login and logout."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import Field, field_validator

from specscout.web.deps import (
    SECRET_HEADER,
    StateDep,
    Strict,
    caller,
    check_csrf,
    clean_text,
    cookie_name,
    new_session,
    session_of,
)
from specscout.web.pool import LINES

STATIC = resources.files("specscout.web") / "static"

router = APIRouter()


class LoginIn(Strict):
    name: str = Field(max_length=64)
    token: str = Field(max_length=200)

    _clean = field_validator("name", "token")(lambda v: clean_text(v))


def end_own_session(request: Request, state) -> None:
    """End the session of the cookie if the request has its secret too: this tab's (another
    tab's session, which shares the cookie, is not this page's to end)."""
    session = session_of(request, state)
    if session and state.labels.users.session(
            session, request.headers.get(SECRET_HEADER, "")) is not None:
        state.labels.users.end_session(session)


class LaunchIn(Strict):
    token: str = Field(max_length=200)

    _clean = field_validator("token")(lambda v: clean_text(v))


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index() -> Response:
    # the one-time link (/?token=...) is the page too: its script trades the token for a
    # session (POST /api/launch), whose secret stays in the tab
    return HTMLResponse((STATIC / "index.html").read_text())


@router.post("/api/launch")
def launch(body: LaunchIn, request: Request, response: Response, state: StateDep) -> dict:
    """The one-time link's session, as the project's owner; the link is used up only once
    the session is stored."""
    check_csrf(request, state)
    state.check_labels()
    secret = state.launch(body.token, lambda: new_session(
        request, response, state, state.config.annotator, "launch"))
    if secret is None:
        raise HTTPException(401, "this link was used already, or is not this server's: log "
                                 "in with a user's token, or restart 'specscout serve' for a "
                                 "new link")
    end_own_session(request, state)  # replaced by the new one
    return {"annotator": state.config.annotator, "role": "owner", "secret": secret}


@router.get("/api/session")
def session(request: Request, state: StateDep) -> dict:
    state.check_labels()
    try:
        who = caller(request, state)
    except HTTPException:
        who = None
    out = {"annotator": who and who.name, "role": who and who.role,
           "login_required": state.config.auth, "csrf": state.csrf(None)}
    if who is None:  # before a login: nothing about the project
        return out
    iteration, _ = state.pool.scores()
    return {**out, "classes": state.classes, "pool": len(state.pool), "iteration": iteration,
            "lines": LINES, "samp": state.config.samp,
            "samp_web_port": state.config.samp_web_port, "project": state.project.path.name}


@router.post("/api/login")
def login(body: LoginIn, request: Request, response: Response, state: StateDep) -> dict:
    check_csrf(request, state)
    state.check_labels()
    if not state.logins.allow(request.client.host if request.client else ""):
        raise HTTPException(429, "too many failed logins: wait a minute")
    found = state.labels.users.authenticate(body.token)
    if found is None or found.name != body.name:
        state.logins.failed(request.client.host if request.client else "")
        raise HTTPException(401, "wrong name or token")
    end_own_session(request, state)  # a login replaces this tab's session
    return {"annotator": body.name, "role": found.role,
            "secret": new_session(request, response, state, body.name)}


@router.post("/api/logout")
def logout(request: Request, response: Response, state: StateDep) -> dict:
    check_csrf(request, state)
    end_own_session(request, state)  # the cookie is worthless from now on
    # with the attributes it was set with: a browser keeps a __Host- cookie under TLS that a
    # deletion without Secure does not name
    response.delete_cookie(cookie_name(request, state), httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return {"annotator": None}
