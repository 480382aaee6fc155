"""Who is asking: the app's dependencies for reading and for writing requests, and sessions.

Every request carries a session or a user's token (``Authorization: Bearer``);
``AppConfig.auth = False`` (loopback only) lets every request in as the local annotator. A
session is two secrets: a cookie, and the secret of the page that opened it, which the page
keeps in its tab (``sessionStorage``) and sends in the ``X-Session-Secret`` header. A cookie
alone opens nothing: another program on this host that receives it (browsers send a host's
cookies to every port) cannot use it. The header also makes every write a request that a
cross-site page cannot forge; a write from the page, when the browser sends an Origin, must
come from the app's own origin. Before a session (logging in, the one-time link) the page
sends the project's login token in ``X-CSRF-Token``.
"""

from __future__ import annotations

import math
import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict

from specscout.labels.users import CHANGES_QUEUE, LABELS_TRAINING, Caller
from specscout.web.state import State

#: The session cookie's name begins so; the rest names the project (:func:`cookie_name`).
COOKIE = "specscout_session"
#: The header in which the page sends its session's secret.
SECRET_HEADER = "X-Session-Secret"


def cookie_name(request: Request, state: State) -> str:
    """The session cookie's name: one per project, since a browser sends a host's cookies to
    every port of it (another app on this host must not receive this one's session), and
    with the ``__Host-`` prefix over TLS (no subdomain can set or shadow it)."""
    return ("__Host-" if request.url.scheme == "https" else "") + f"{COOKIE}_{state.cookie_id}"


def session_of(request: Request, state: State) -> str | None:
    """The session cookie of ``request``, if it has one."""
    return request.cookies.get(cookie_name(request, state))


# The dependencies that do no I/O are coroutines: run on the event loop, each spares the
# request a trip through the thread pool (which a team's load makes costly).


async def get_state(request: Request) -> State:
    return request.app.state.specscout


#: The app's state as an endpoint parameter: ``state: StateDep``.
StateDep = Annotated[State, Depends(get_state)]


def caller(request: Request, state: StateDep) -> Caller:
    """Who a request comes from; 401 without a valid session (cookie and secret) or token."""
    config = state.config
    state.check_labels()
    if not config.auth:
        return Caller(config.annotator, "owner")
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        found = state.labels.users.authenticate(auth[7:])
        if found is None:
            raise HTTPException(401, "unknown or revoked user token")
        return found
    session = session_of(request, state)
    if session:
        found = state.labels.users.session(session, request.headers.get(SECRET_HEADER, ""))
        if found is None:
            raise HTTPException(401, "this page's session has expired or ended (or was "
                                     "revoked, or opened in another tab): log in again")
        return found
    raise HTTPException(401, "log in first: open the link 'specscout serve' printed, or log "
                             "in with a user's token ('specscout user add')")


async def annotator(who: Annotated[Caller, Depends(caller)]) -> str:
    """The name a request reads and writes as."""
    return who.name


def check_csrf(request: Request, state: State) -> None:
    """A request before a session (log in, the one-time link, log out): it carries the
    login token, which a cross-site form cannot send."""
    sent = request.headers.get("x-csrf-token", "")
    if not secrets.compare_digest(sent.encode(), state.csrf(None).encode()):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page")
    same_origin(request)


def same_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(403, f"cross-site request from {origin} refused")


async def writer(request: Request, who: Annotated[Caller, Depends(caller)],
           state: StateDep) -> Caller:
    """A state-changing request: from the app's own page (its session's secret is in a
    header: a cross-site form cannot send one; without authentication, the login token
    is), or with a bearer token."""
    if not state.config.auth:
        check_csrf(request, state)
    same_origin(request)
    return who


async def queue_changer(who: Annotated[Caller, Depends(writer)]) -> Caller:
    """A request that changes the queue: the owner's."""
    if who.role not in CHANGES_QUEUE:
        raise HTTPException(403, f"{who.name} is an {who.role}: only the project's owner "
                                 f"changes the queue")
    return who


def may_label(who: Caller, audit: bool) -> None:
    """403 unless ``who`` may write a label of the queue (``audit`` False) or the audit."""
    if not audit and who.role not in LABELS_TRAINING:
        raise HTTPException(403, f"{who.name} is an {who.role}: an auditor labels the audit "
                                 f"sample only")


def new_session(request: Request, response: Response, state: State, name: str,
                kind: str = "login") -> str:
    """Open a session of ``name`` with its cookie; returns the page's secret."""
    hours = state.config.session_hours
    session, secret = state.labels.users.open_session(name, hours, kind)
    response.set_cookie(cookie_name(request, state), session, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https",
                        max_age=math.ceil(hours * 3600))
    return secret


#: The dependencies as endpoint parameters: ``who: Who`` (reads, a name), ``who: Writer``
#: (writes, a :class:`Caller`), ``who: QueueChanger`` (the owner's writes to the queue).
Who = Annotated[str, Depends(annotator)]
Writer = Annotated[Caller, Depends(writer)]
QueueChanger = Annotated[Caller, Depends(queue_changer)]


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
