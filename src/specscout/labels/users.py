"""Annotators who may label through the web app: a name, and the hash of a random token."""

from __future__ import annotations

import hashlib
import re
import secrets

import sqlalchemy as sa

from specscout.errors import SpecscoutError
from specscout.labels.schema import now, users_table

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
        with self.engine.begin() as conn:
            if not conn.execute(users_table.delete().where(users_table.c.name == name)).rowcount:
                raise SpecscoutError(f"no user {name!r}")

    def names(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(users_table.c.name)
                                     .order_by(users_table.c.name)).scalars())

    def authenticate(self, token: str) -> str | None:
        """The name of the user whose token this is, or None."""
        q = sa.select(users_table.c.name).where(users_table.c.token_hash == token_hash(token))
        with self.engine.connect() as conn:
            return conn.execute(q).scalar()
