"""Who is asking: the app's dependencies for reading and for writing requests, and sessions.

Every request carries a session (a cookie) or a user's token (``Authorization: Bearer``);
``AppConfig.auth = False`` (loopback only) lets every request in as the local annotator. A
write from the page carries the session's CSRF token in a header and, when the browser sends
an Origin, comes from the app's own origin.
"""

from __future__ import annotations

import math
import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict

from specscout.web.state import State

#: The session cookie's name begins so; the rest names the project (:func:`cookie_name`).
COOKIE = "specscout_session"


def cookie_name(request: Request, state: State) -> str:
    """The session cookie's name: one per project, since a browser sends a host's cookies to
    every port of it (another app on this host must not receive this one's session), and
    with the ``__Host-`` prefix over TLS (no subdomain can set or shadow it)."""
    return ("__Host-" if request.url.scheme == "https" else "") + f"{COOKIE}_{state.cookie_id}"


def session_of(request: Request, state: State) -> str | None:
    """The session cookie of ``request``, if it has one."""
    return request.cookies.get(cookie_name(request, state))


def get_state(request: Request) -> State:
    return request.app.state.specscout


#: The app's state as an endpoint parameter: ``state: StateDep``.
StateDep = Annotated[State, Depends(get_state)]


def annotator(request: Request, state: StateDep) -> str:
    """The name a request reads and writes as; 401 without a valid session or token."""
    config = state.config
    if not config.auth:
        return config.annotator
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        name = state.labels.users.authenticate(auth[7:])
        if name is None:
            raise HTTPException(401, "unknown or revoked user token")
        return name
    session = session_of(request, state)
    if session:
        name = state.labels.users.session(session)
        if name is None:
            raise HTTPException(401, "the session has expired or ended: log in again")
        return name
    raise HTTPException(401, "log in first: open the link 'specscout serve' printed, or log "
                             "in with a user's token ('specscout user add')")


def check_csrf(request: Request, state: State) -> None:
    sent = request.headers.get("x-csrf-token", "")
    expected = state.csrf(session_of(request, state))
    if not secrets.compare_digest(sent.encode(), expected.encode()):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page")
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(403, f"cross-site request from {origin} refused")


def writer(request: Request, who: Annotated[str, Depends(annotator)], state: StateDep) -> str:
    """A state-changing request: from the app's own page, or with a bearer token."""
    if not request.headers.get("authorization", "").lower().startswith("bearer "):
        check_csrf(request, state)
    return who


def new_session(request: Request, response: Response, state: State, name: str) -> str:
    """Open a session of ``name`` in a cookie; returns its CSRF token."""
    hours = state.config.session_hours
    session = state.labels.users.open_session(name, hours)
    response.set_cookie(cookie_name(request, state), session, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https",
                        max_age=math.ceil(hours * 3600))
    return state.csrf(session)


#: The dependencies as endpoint parameters: ``who: Who`` (reads), ``who: Writer`` (writes).
Who = Annotated[str, Depends(annotator)]
Writer = Annotated[str, Depends(writer)]


class Strict(BaseModel):
    """A request body: every field of its own type (a row is a number, not true nor "1"),
    no field the endpoint does not know."""

    model_config = ConfigDict(strict=True, extra="forbid")


#: Characters a comment may not hold: controls but tab and newline, bidirectional
#: overrides and isolates (which make a comment read otherwise than it is stored).
UNSAFE = {*map(chr, range(0x20)), "\x7f", *map(chr, range(0x80, 0xA0)),
          *map(chr, range(0x202A, 0x202F)),
          *map(chr, range(0x2066, 0x206A))} - {"\t", "\n"}


def clean_text(value: str) -> str:
    """``value`` if it is text a person would write; a ValueError naming the first character
    that is not (a control or bidirectional character, an unpaired surrogate)."""
    for k, c in enumerate(value):
        if c in UNSAFE or 0xD800 <= ord(c) <= 0xDFFF:
            raise ValueError(f"character {k + 1} (U+{ord(c):04X}) is not allowed")
    return value
