"""The page itself, the one-time launch link, the session, login and logout."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import Field, field_validator

from specscout.web.deps import (
    StateDep,
    Strict,
    annotator,
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


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index(request: Request, state: StateDep, token: str | None = None) -> Response:
    if token is None:
        return HTMLResponse((STATIC / "index.html").read_text())
    if not state.use_launch_token(token):
        return HTMLResponse("<p>This link was used already, or is not this server's: log in "
                            "with a user's token, or restart 'specscout serve' for a new "
                            "link.</p>", status_code=401)
    response = RedirectResponse("/", status_code=303)  # the token leaves the address bar
    new_session(request, response, state, state.config.annotator)
    return response


@router.get("/api/session")
def session(request: Request, state: StateDep) -> dict:
    try:
        who = annotator(request, state)
    except HTTPException:
        who = None
    out = {"annotator": who, "login_required": state.config.auth,
           "csrf": state.csrf(session_of(request, state))}
    if who is None:  # before a login: nothing about the project
        return out
    iteration, _ = state.pool.scores()
    return {**out, "classes": state.classes, "pool": len(state.pool), "iteration": iteration,
            "lines": LINES, "samp": state.config.samp,
            "samp_web_port": state.config.samp_web_port, "project": state.project.path.name}


@router.post("/api/login")
def login(body: LoginIn, request: Request, response: Response, state: StateDep) -> dict:
    check_csrf(request, state)
    if not state.logins.allow(request.client.host if request.client else ""):
        raise HTTPException(429, "too many failed logins: wait a minute")
    if state.labels.users.authenticate(body.token) != body.name:
        state.logins.failed(request.client.host if request.client else "")
        raise HTTPException(401, "wrong name or token")
    if old := session_of(request, state):  # a login replaces the session it came with
        state.labels.users.end_session(old)
    return {"annotator": body.name, "csrf": new_session(request, response, state, body.name)}


@router.post("/api/logout")
def logout(request: Request, response: Response, state: StateDep) -> dict:
    check_csrf(request, state)
    session = session_of(request, state)
    if session:
        state.labels.users.end_session(session)  # the cookie is worthless from now on
    # with the attributes it was set with: a browser keeps a __Host- cookie under TLS that a
    # deletion without Secure does not name
    response.delete_cookie(cookie_name(request, state), httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return {"annotator": None}
