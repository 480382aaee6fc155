"""Annotators who may label through the web app: a name, a role and the hash of a random
token; and the app's sessions, each a random token of its own (the cookie) with the secret of
the page that opened it (sent in a header), which expires, ends at logout and can be revoked."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from typing import NamedTuple

import sqlalchemy as sa

from specscout.errors import SpecscoutError
from specscout.labels.schema import now, sessions_table, users_table

USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")

#: What each role may do in the app. Everyone may read and send to VO tools; an annotator
#: labels the queue, candidates and the audit sample; an auditor labels the audit sample
#: only (blind, and never training); the owner also adds spectra to the queue. The one-time
#: link of ``specscout serve`` opens an owner's session (whoever can run it owns the project).
ROLES = ("owner", "annotator", "auditor")
LABELS_TRAINING = ("owner", "annotator")
CHANGES_QUEUE = ("owner",)


class Caller(NamedTuple):
    """Who a request comes from, and in what role."""

    name: str
    role: str


def token_hash(token: str) -> str:
    # Tokens are 32 random bytes: a plain hash is enough (nothing to brute-force).
    return hashlib.sha256(token.encode()).hexdigest()


def _role(role: str) -> str:
    if role not in ROLES:
        raise SpecscoutError(f"role {role!r}: choose one of {', '.join(ROLES)}")
    return role


def _aware(when: dt.datetime) -> dt.datetime:
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)  # SQLite gives naive ones


class Users:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def add(self, name: str, role: str = "annotator") -> str:
        """Register an annotator; returns their token (shown once, stored only as a hash)."""
        if not USER_NAME.fullmatch(name):
            raise SpecscoutError(f"user name {name!r}: use letters, digits and . _ @ - "
                                 f"(at most 64)")
        token = secrets.token_urlsafe(32)
        try:
            with self.engine.begin() as conn:
                conn.execute(users_table.insert().values(
                    name=name, token_hash=token_hash(token), created=now(), role=_role(role)))
        except sa.exc.IntegrityError:
            raise SpecscoutError(f"user {name!r} exists; remove them first to issue a new "
                                 f"token") from None
        return token

    def remove(self, name: str) -> None:
        """Remove a user, and end their sessions."""
        with self.engine.begin() as conn:
            if not conn.execute(users_table.delete().where(users_table.c.name == name)).rowcount:
                raise SpecscoutError(f"no user {name!r}")
            conn.execute(sessions_table.delete().where(sessions_table.c.annotator == name))

    def set_role(self, name: str, role: str) -> None:
        """Give a user another role; it holds from their next request on."""
        with self.engine.begin() as conn:
            if not conn.execute(users_table.update().where(users_table.c.name == name)
                                .values(role=_role(role))).rowcount:
                raise SpecscoutError(f"no user {name!r}")

    def names(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(users_table.c.name)
                                     .order_by(users_table.c.name)).scalars())

    def roles(self) -> dict[str, str]:
        """{name: role} of every user."""
        with self.engine.connect() as conn:
            return dict(conn.execute(sa.select(users_table.c.name, users_table.c.role)
                                     .order_by(users_table.c.name)).all())

    def authenticate(self, token: str) -> Caller | None:
        """The user whose token this is, or None."""
        q = sa.select(users_table.c.name, users_table.c.role).where(
            users_table.c.token_hash == token_hash(token))
        with self.engine.connect() as conn:
            found = conn.execute(q).first()
        return None if found is None else Caller(found.name, found.role)

    # --- sessions --------------------------------------------------------------------------

    def open_session(self, name: str, hours: float, kind: str = "login") -> tuple[str, str]:
        """A new session of ``name`` for ``hours``, opened by a ``kind`` ("launch": the
        one-time link; "login"); returns its token (for the cookie) and the page's secret
        (for the header), both stored as hashes. Expired sessions are removed on the way."""
        token, secret, start = secrets.token_urlsafe(32), secrets.token_urlsafe(32), now()
        with self.engine.begin() as conn:
            conn.execute(sessions_table.delete().where(sessions_table.c.expires < start))
            conn.execute(sessions_table.insert().values(
                token_hash=token_hash(token), secret_hash=token_hash(secret), annotator=name,
                kind=kind, created=start, expires=start + dt.timedelta(hours=hours)))
        return token, secret

    def session(self, token: str, secret: str) -> Caller | None:
        """Who a session is (the owner for a launch link's), given its cookie and its page's
        secret; None when unknown, ended, revoked, expired or the secret is not its own."""
        s, u = sessions_table.c, users_table.c
        q = (sa.select(s.annotator, s.expires, s.secret_hash, s.kind, u.role)
             .select_from(sessions_table.outerjoin(users_table, u.name == s.annotator))
             .where(s.token_hash == token_hash(token)))
        with self.engine.connect() as conn:
            found = conn.execute(q).first()
        if (found is None or found.secret_hash is None or _aware(found.expires) <= now()
                or not secrets.compare_digest(found.secret_hash, token_hash(secret))):
            return None
        if found.kind == "launch":
            return Caller(found.annotator, "owner")
        return None if found.role is None else Caller(found.annotator, found.role)

    def end_session(self, token: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sessions_table.delete().where(
                sessions_table.c.token_hash == token_hash(token)))

    def sessions(self) -> list[dict]:
        """The sessions that have not expired, oldest first: an id (the start of the token's
        hash, which names it to :meth:`revoke`), whose, how opened, when, until when."""
        s = sessions_table.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(s.token_hash, s.annotator, s.kind, s.created,
                                          s.expires).order_by(s.created)).all()
        return [{"id": r.token_hash[:12], "annotator": r.annotator,
                 "opened_by": r.kind or "an earlier version", "created": _aware(r.created),
                 "expires": _aware(r.expires)} for r in rows if _aware(r.expires) > now()]

    def revoke(self, ids: tuple[str, ...] = (), annotator: str | None = None,
               every: bool = False) -> int:
        """End sessions at once: those whose id (:meth:`sessions`) is one of ``ids``, every
        session of ``annotator``, or ``every`` session. Returns how many ended; an id that
        names no session, or more than one, is refused and nothing ends."""
        s = sessions_table.c
        with self.engine.begin() as conn:
            hashes = set()
            for i in ids:
                if not re.fullmatch(r"[0-9a-f]{6,64}", i):
                    raise SpecscoutError(f"session id {i!r}: the hex id 'specscout user "
                                         f"sessions' shows")
                found = conn.execute(sa.select(s.token_hash)
                                     .where(s.token_hash.startswith(i))).scalars().all()
                if len(found) != 1:
                    raise SpecscoutError(f"session id {i!r} names {len(found) or 'no'} "
                                         f"sessions" + (": give more of it" if found else ""))
                hashes.add(found[0])
            ended = 0
            if hashes:
                ended += conn.execute(sessions_table.delete()
                                      .where(s.token_hash.in_(hashes))).rowcount
            if annotator is not None:
                ended += conn.execute(sessions_table.delete()
                                      .where(s.annotator == annotator)).rowcount
            if every:
                ended += conn.execute(sessions_table.delete()).rowcount
        return ended
