"""The label database's tables, and how a connection to it is opened.

SQLAlchemy: SQLite (WAL, synchronous FULL: a committed label survives a power cut) inside the
project by default, PostgreSQL by URL for a team (its default ``synchronous_commit = on``
promises the same: a commit returns once its WAL record is flushed to disk). Nothing is
updated in place: labels, queue batches and audit draws are appended (a queue batch of an
iteration is replaced whole when that iteration is queried again)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import stat
from pathlib import Path

import sqlalchemy as sa

metadata = sa.MetaData()

labels_table = sa.Table(
    "labels", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("spectrum", sa.String, nullable=False, index=True),  # the store's id
    sa.Column("row", sa.BigInteger, nullable=False, index=True),  # the pool row
    sa.Column("label", sa.String, nullable=True),  # NULL: a retraction (undo)
    sa.Column("annotator", sa.String, nullable=False),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("iteration", sa.Integer, nullable=True),
    sa.Column("model_version", sa.String, nullable=True),
    sa.Column("acquisition_score", sa.Float, nullable=True),
    sa.Column("comment", sa.String, nullable=False, default=""),
    # Audit labels (of random samples drawn to estimate performance) are kept apart: they
    # never train a model, so the estimates stay honest.
    sa.Column("audit", sa.Boolean, nullable=False, default=False),
)

queue_table = sa.Table(
    "queue", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("iteration", sa.Integer, nullable=False, index=True),
    sa.Column("rank", sa.Integer, nullable=False),
    sa.Column("row", sa.BigInteger, nullable=False),
    sa.Column("spectrum", sa.String, nullable=False),
    sa.Column("strategy", sa.String, nullable=False),
    sa.Column("acquisition_score", sa.Float, nullable=False),
    sa.UniqueConstraint("iteration", "row"),
)

audit_table = sa.Table(
    "audit_sample", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("draw", sa.Integer, nullable=False, index=True),
    sa.Column("iteration", sa.Integer, nullable=False),  # whose scores defined the strata
    sa.Column("row", sa.BigInteger, nullable=False),
    sa.Column("spectrum", sa.String, nullable=False),
    sa.Column("stratum", sa.String, nullable=False),
    sa.Column("stratum_size", sa.BigInteger, nullable=False),  # pool rows in the stratum
    sa.Column("time", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("draw", "row"),
)

#: Annotators who may write through the web app: a name and the hash of a random token.
users_table = sa.Table(
    "users", metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("token_hash", sa.String, nullable=False, unique=True),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    # what the user may do in the app (specscout.labels.users.ROLES)
    sa.Column("role", sa.String, nullable=False, server_default="annotator"),
)

#: Web app sessions: the hashes of a random session token (the cookie) and of the secret of
#: the page that opened it (sent in a header), whose it is, how it was opened ("launch": the
#: one-time link, as the project's owner; "login": a user's token), until when. Distinct from
#: the users' tokens: a session expires, ends at logout and can be revoked.
sessions_table = sa.Table(
    "sessions", metadata,
    sa.Column("token_hash", sa.String, primary_key=True),
    sa.Column("annotator", sa.String, nullable=False, index=True),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
    sa.Column("secret_hash", sa.String),  # none: a session of an earlier version, refused
    sa.Column("kind", sa.String),
)

#: A serial per changing table (queue, audit_sample), raised in the transaction that changes
#: it: a cache keyed on it is never fooled by ids that a database reuses after a delete.
serials_table = sa.Table(
    "serials", metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("serial", sa.BigInteger, nullable=False),
)
SERIALS = ("queue", "audit_sample")


def resolve_url(url: str, project_dir: str | Path | None = None) -> str:
    """A relative SQLite path in ``url`` is taken inside the project directory."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and project_dir is not None:
        path = Path(url[len(prefix):])
        if not path.is_absolute():
            return prefix + str(Path(project_dir) / path)
    return url


#: Filesystems shared over a network, where SQLite's locking cannot be trusted.
NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "beegfs",
                       "ceph", "glusterfs", "fuse.sshfs", "fuse.glusterfs", "afs", "9p",
                       "panfs", "orangefs")


def filesystem(path: str | Path, mounts: str | None = None) -> str:
    """The type of the filesystem ``path`` lies on (Linux: from /proc/mounts; "" when it
    cannot be told)."""
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text()
        except OSError:
            return ""
    path = Path(path).resolve()
    best, kind = -1, ""
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = Path(fields[1].replace("\\040", " "))
        if (path == point or point in path.parents) and len(point.parts) > best:
            best, kind = len(point.parts), fields[2]
    return kind


def sqlite_warning(url: str) -> str | None:
    """A warning when the label database is an SQLite file on a network filesystem (its
    locks do not hold there: labels written at once can be lost), else None."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return None
    kind = filesystem(Path(url[len(prefix):]).parent)
    if kind in NETWORK_FILESYSTEMS:
        return (f"warning: the label database {url[len(prefix):]} is SQLite on a network "
                f"filesystem ({kind}), where its locking is unsafe: give the project a "
                f"PostgreSQL database ([labels] url in specscout.toml) before annotators or "
                f"cluster jobs write to it at once")
    return None


#: Connections an engine keeps open, made as needed, and at most (the web app's 40 request
#: threads, each with one): on PostgreSQL, mind the server's max_connections.
POOL_SIZE, POOL_MOST = 32, 40


def connect(url: str) -> sa.Engine:
    """An engine on the label database at ``url``, its tables created or upgraded."""
    memory = url.startswith("sqlite") and sa.make_url(url).database in (None, "", ":memory:")
    # a connection for each of the app's request threads at once: beyond the pool's size
    # each is opened (its pragmas run) and closed again per request
    engine = sa.create_engine(url, future=True, **({} if memory else {
        "pool_size": POOL_SIZE, "max_overflow": POOL_MOST - POOL_SIZE}))
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        _private(Path(engine.url.database))
    if engine.dialect.name == "sqlite":
        @sa.event.listens_for(engine, "connect")
        def _pragmas(conn, _record) -> None:  # WAL: readers never block the writer
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # FULL: a label acknowledged to the page survives a power cut (labels arrive
            # at human rates, so the extra fsync per commit costs nothing that matters)
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()
    metadata.create_all(engine)
    _upgrade(engine)
    return engine


def _private(path: Path) -> None:
    """Create the SQLite file readable by its owner only (SQLite gives its -wal and -shm
    files the same mode), or by the group too where the folder is the group's."""
    if path.exists() or not path.parent.is_dir():
        return
    folder = path.parent.stat().st_mode
    group = folder & stat.S_ISGID and folder & 0o070 == 0o070 and not folder & 0o002
    mode = 0o660 if group else 0o600
    with contextlib.suppress(FileExistsError):  # another process made it meanwhile
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        os.fchmod(fd, mode)  # whatever the umask
        os.close(fd)


def _upgrade(engine: sa.Engine) -> None:
    """Add the columns and rows that label stores made by earlier versions lack."""
    added = {"labels": ("audit BOOLEAN NOT NULL DEFAULT FALSE",),
             "users": ("role VARCHAR NOT NULL DEFAULT 'annotator'",),
             "sessions": ("secret_hash VARCHAR", "kind VARCHAR")}
    inspector = sa.inspect(engine)
    for table, columns in added.items():
        have = {c["name"] for c in inspector.get_columns(table)}
        for column in columns:
            if column.split()[0] not in have:
                try:
                    with engine.begin() as conn:
                        conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column}"))
                except sa.exc.DBAPIError:  # another process upgrading at once added it
                    if column.split()[0] not in {c["name"] for c in
                                                 sa.inspect(engine).get_columns(table)}:
                        raise
    for name in SERIALS:
        with contextlib.suppress(sa.exc.IntegrityError), engine.begin() as conn:
            if conn.execute(sa.select(serials_table.c.serial)
                            .where(serials_table.c.name == name)).first() is None:
                conn.execute(serials_table.insert().values(name=name, serial=0))


def bump(conn: sa.Connection, name: str) -> None:
    """Raise the serial of ``name`` (in the caller's transaction)."""
    conn.execute(serials_table.update().where(serials_table.c.name == name)
                 .values(serial=serials_table.c.serial + 1))


def read_serial(engine: sa.Engine, name: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(serials_table.c.serial)
                                .where(serials_table.c.name == name)).scalar() or 0)


def read_serials(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {name: int(serial or 0) for name, serial in conn.execute(
            sa.select(serials_table.c.name, serials_table.c.serial))}


def largest(conn: sa.Connection, column: sa.Column) -> int | None:
    return conn.execute(sa.select(sa.func.max(column))).scalar()


def group(engine: sa.Engine, column: sa.Column, value: int | None,
          order: sa.Column) -> list[dict]:
    """The rows of ``column``'s table whose ``column`` is ``value`` (default: the largest
    there is), in ``order``: one query batch, one audit draw."""
    with engine.connect() as conn:
        value = value or largest(conn, column)
        if value is None:
            return []
        q = sa.select(column.table).where(column == value).order_by(order)
        return [dict(r._mapping) for r in conn.execute(q)]


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
