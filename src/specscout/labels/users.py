"""Annotators who may label through the web app: a name, and the hash of a random token; and
the app's sessions, each a random token of its own that expires and ends at logout."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets

import sqlalchemy as sa

from specscout.errors import SpecscoutError
from specscout.labels.schema import now, sessions_table, users_table

USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def token_hash(token: str) -> str:
    # Tokens are 32 random bytes: a plain hash is enough (nothing to brute-force).
    return hashlib.sha256(token.encode()).hexdigest()


class Users:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def add(self, name: str) -> str:
        """Register an annotator; returns their token (shown once, stored only as a hash)."""
        if not USER_NAME.fullmatch(name):
            raise SpecscoutError(f"user name {name!r}: use letters, digits and . _ @ - "
                                 f"(at most 64)")
        token = secrets.token_urlsafe(32)
        try:
            with self.engine.begin() as conn:
                conn.execute(users_table.insert().values(
                    name=name, token_hash=token_hash(token), created=now()))
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

    def names(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(users_table.c.name)
                                     .order_by(users_table.c.name)).scalars())

    def authenticate(self, token: str) -> str | None:
        """The name of the user whose token this is, or None."""
        q = sa.select(users_table.c.name).where(users_table.c.token_hash == token_hash(token))
        with self.engine.connect() as conn:
            return conn.execute(q).scalar()

    # --- sessions --------------------------------------------------------------------------

    def open_session(self, name: str, hours: float) -> str:
        """A new session of ``name`` for ``hours``; returns its token (stored as a hash).
        Expired sessions are removed on the way."""
        token, start = secrets.token_urlsafe(32), now()
        with self.engine.begin() as conn:
            conn.execute(sessions_table.delete().where(sessions_table.c.expires < start))
            conn.execute(sessions_table.insert().values(
                token_hash=token_hash(token), annotator=name, created=start,
                expires=start + dt.timedelta(hours=hours)))
        return token

    def session(self, token: str) -> str | None:
        """Whose session this is, or None (unknown, ended or expired)."""
        q = sa.select(sessions_table.c.annotator, sessions_table.c.expires).where(
            sessions_table.c.token_hash == token_hash(token))
        with self.engine.connect() as conn:
            found = conn.execute(q).first()
        if found is None:
            return None
        expires = found.expires if found.expires.tzinfo else found.expires.replace(
            tzinfo=dt.UTC)  # SQLite gives naive datetimes back
        return found.annotator if expires > now() else None

    def end_session(self, token: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sessions_table.delete().where(
                sessions_table.c.token_hash == token_hash(token)))
