"""The label store: every label ever given, append-only, with its provenance; and the queue of
spectra waiting for a label.

SQLAlchemy: SQLite (WAL) inside the project by default, PostgreSQL by URL for a team. A label
row says who labelled which spectrum (by its store id and row) as what, when, in which
iteration, under which model and at which acquisition score. Nothing is updated or deleted: an
undo appends a retraction (label NULL). The *current* label of a spectrum is derived: the latest
row of each annotator, and where annotators disagree the spectrum is reported, not guessed.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path

import sqlalchemy as sa

from specscout.errors import SpecscoutError

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
)

USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def _token_hash(token: str) -> str:
    # Tokens are 32 random bytes: a plain hash is enough (nothing to brute-force).
    return hashlib.sha256(token.encode()).hexdigest()


def resolve_url(url: str, project_dir: str | Path | None = None) -> str:
    """A relative SQLite path in ``url`` is taken inside the project directory."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and project_dir is not None:
        path = Path(url[len(prefix):])
        if not path.is_absolute():
            return prefix + str(Path(project_dir) / path)
    return url


def _largest(conn, column) -> int | None:
    return conn.execute(sa.select(sa.func.max(column))).scalar()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LabelStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = sa.create_engine(url, future=True)
        if self.engine.dialect.name == "sqlite":
            @sa.event.listens_for(self.engine, "connect")
            def _pragmas(conn, _record) -> None:  # WAL: readers never block the writer
                cur = conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA busy_timeout=10000")
                cur.close()
        metadata.create_all(self.engine)
        self._upgrade()

    def _upgrade(self) -> None:
        """Add the columns that label stores made by earlier versions lack."""
        columns = {c["name"] for c in sa.inspect(self.engine).get_columns("labels")}
        if "audit" not in columns:
            with self.engine.begin() as conn:
                conn.execute(sa.text("ALTER TABLE labels ADD COLUMN audit BOOLEAN NOT NULL "
                                     "DEFAULT FALSE"))

    def last_id(self, table: sa.Table) -> int | None:
        """The largest id of ``table`` (labels, queue, audit_sample): it changes with every
        row appended, so it tells a cache whether the table has grown."""
        with self.engine.connect() as conn:
            return _largest(conn, table.c.id)

    # --- labels ----------------------------------------------------------------------------

    def add(self, spectrum: str, row: int, label: str | None, annotator: str, *,
            iteration: int | None = None, model_version: str | None = None,
            acquisition_score: float | None = None, comment: str = "",
            audit: bool = False) -> int:
        """Append one label (``None`` retracts the annotator's current one). Returns its id."""
        with self.engine.begin() as conn:
            result = conn.execute(labels_table.insert().values(
                spectrum=spectrum, row=int(row), label=label, annotator=annotator,
                time=_now(), iteration=iteration, model_version=model_version,
                acquisition_score=acquisition_score, comment=comment, audit=audit))
            return int(result.inserted_primary_key[0])

    def add_many(self, rows: Iterable[dict]) -> int:
        """Append many labels in one transaction (dicts with the columns of ``add``)."""
        values = [{"time": _now(), "comment": "", "audit": False, **r} for r in rows]
        if not values:
            return 0
        with self.engine.begin() as conn:
            conn.execute(labels_table.insert(), values)
        return len(values)

    def history(self, row: int | None = None) -> list[dict]:
        """Every label row (of one pool row), oldest first."""
        q = sa.select(labels_table).order_by(labels_table.c.id)
        if row is not None:
            q = q.where(labels_table.c.row == int(row))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def _latest_per_annotator(self, audit: bool = False) -> list[dict]:
        t = labels_table
        latest = (sa.select(t.c.row, t.c.annotator, sa.func.max(t.c.id).label("id"))
                  .where(t.c.audit == audit).group_by(t.c.row, t.c.annotator).subquery())
        q = sa.select(t).join(latest, t.c.id == latest.c.id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def current(self, audit: bool = False) -> dict[int, str]:
        """{pool row: label} where every annotator's latest label agrees (retractions and
        disagreements are left out); training labels, or with ``audit`` the audit labels."""
        votes: dict[int, set[str | None]] = {}
        for r in self._latest_per_annotator(audit):
            votes.setdefault(r["row"], set()).add(r["label"])
        return {row: next(iter(v)) for row, v in votes.items()
                if len(v - {None}) == 1 and None not in v}

    def disagreements(self, audit: bool = False) -> dict[int, dict[str, str]]:
        """{pool row: {annotator: label}} where annotators' latest labels differ."""
        by_row: dict[int, dict[str, str | None]] = {}
        for r in self._latest_per_annotator(audit):
            by_row.setdefault(r["row"], {})[r["annotator"]] = r["label"]
        return {row: v for row, v in by_row.items() if len({x for x in v.values() if x}) > 1}

    def latest(self, rows: Sequence[int], audit: bool = False
               ) -> dict[int, dict[str, str | None]]:
        """{pool row: {annotator: their latest label}} for those of ``rows`` that anyone has
        labelled (``None``: retracted, or marked unsure)."""
        t = labels_table
        rows = [int(r) for r in rows]
        if not rows:
            return {}
        ids = (sa.select(sa.func.max(t.c.id)).where(t.c.audit == audit, t.c.row.in_(rows))
               .group_by(t.c.row, t.c.annotator).scalar_subquery())
        q = sa.select(t.c.row, t.c.annotator, t.c.label).where(t.c.id.in_(ids))
        out: dict[int, dict[str, str | None]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(q):
                out.setdefault(r.row, {})[r.annotator] = r.label
        return out

    # --- users -----------------------------------------------------------------------------

    def add_user(self, name: str) -> str:
        """Register an annotator; returns their token (shown once, stored only as a hash)."""
        if not USER_NAME.fullmatch(name):
            raise SpecscoutError(f"user name {name!r}: use letters, digits and . _ @ - "
                                 f"(at most 64)")
        token = secrets.token_urlsafe(32)
        try:
            with self.engine.begin() as conn:
                conn.execute(users_table.insert().values(
                    name=name, token_hash=_token_hash(token), created=_now()))
        except sa.exc.IntegrityError:
            raise SpecscoutError(f"user {name!r} exists; remove them first to issue a new "
                                 f"token") from None
        return token

    def remove_user(self, name: str) -> None:
        with self.engine.begin() as conn:
            if not conn.execute(users_table.delete().where(users_table.c.name == name)).rowcount:
                raise SpecscoutError(f"no user {name!r}")

    def users(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(users_table.c.name)
                                     .order_by(users_table.c.name)).scalars())

    def authenticate(self, token: str) -> str | None:
        """The name of the user whose token this is, or None."""
        q = sa.select(users_table.c.name).where(users_table.c.token_hash == _token_hash(token))
        with self.engine.connect() as conn:
            return conn.execute(q).scalar()

    # --- CSV -------------------------------------------------------------------------------

    def export_csv(self, path: str | Path) -> int:
        rows = self.history()
        with Path(path).open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=[c.name for c in labels_table.columns])
            writer.writeheader()
            for r in rows:
                writer.writerow({**r, "time": r["time"].isoformat() if r["time"] else ""})
        return len(rows)

    def import_csv(self, path: str | Path, store, classes: Sequence[str],
                   annotator: str = "csv", audit: bool = False) -> int:
        """Labels from a CSV with a ``label`` column and one of ``row``, ``id``, ``obsid`` or
        ``designation`` naming pooled spectra of ``store``. Every line must resolve to exactly
        one spectrum and a known class, or nothing is imported."""
        import pyarrow.compute as pc

        path = Path(path)
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            fields = set(reader.fieldnames or ())
            key = next((k for k in ("row", "id", "obsid", "designation") if k in fields), None)
            if "label" not in fields or key is None:
                raise SpecscoutError(f"{path}: needs a 'label' column and one of row, id, "
                                     f"obsid, designation; has {sorted(fields)}")
            lines = list(enumerate(reader, start=2))
        meta = store.meta(columns=["row", "id", "obsid", "designation"])
        column = meta[key]
        out = []
        for line, rec in lines:
            label = rec["label"].strip()
            if label not in classes:
                raise SpecscoutError(f"{path}:{line}: label {label!r} is not one of "
                                     f"{list(classes)}")
            value = rec[key].strip()
            target = int(value) if key in ("row", "obsid") else value
            hits = meta.filter(pc.equal(column, target))
            if len(hits) != 1:
                raise SpecscoutError(f"{path}:{line}: {key} {value!r} matches {len(hits)} "
                                     f"pooled spectra, not one")
            out.append({"spectrum": hits["id"][0].as_py(), "row": hits["row"][0].as_py(),
                        "label": label, "annotator": annotator, "audit": audit,
                        "comment": rec.get("comment", "") or ""})
        return self.add_many(out)

    # --- the queue -------------------------------------------------------------------------

    def enqueue(self, iteration: int, rows: Sequence[int], spectra: Sequence[str],
                scores: Sequence[float], strategy: str) -> int:
        values = [{"iteration": iteration, "rank": i, "row": int(r), "spectrum": s,
                   "strategy": strategy, "acquisition_score": float(a)}
                  for i, (r, s, a) in enumerate(zip(rows, spectra, scores, strict=True))]
        with self.engine.begin() as conn:
            conn.execute(queue_table.delete().where(queue_table.c.iteration == iteration))
            if values:
                conn.execute(queue_table.insert(), values)
        return len(values)

    def queue(self, iteration: int | None = None) -> list[dict]:
        """The query batch of ``iteration`` (default: the latest), by rank."""
        with self.engine.connect() as conn:
            iteration = iteration or _largest(conn, queue_table.c.iteration)
            if iteration is None:
                return []
            q = (sa.select(queue_table).where(queue_table.c.iteration == iteration)
                 .order_by(queue_table.c.rank))
            return [dict(r._mapping) for r in conn.execute(q)]

    # --- audit samples ---------------------------------------------------------------------

    def add_audit_sample(self, iteration: int, rows: Sequence[int], spectra: Sequence[str],
                         strata: Sequence[str], sizes: Sequence[int]) -> int:
        """Record a new random audit draw; returns its number."""
        with self.engine.begin() as conn:
            draw = (_largest(conn, audit_table.c.draw) or 0) + 1
            now = _now()
            conn.execute(audit_table.insert(), [
                {"draw": draw, "iteration": iteration, "row": int(r), "spectrum": s,
                 "stratum": h, "stratum_size": int(n), "time": now}
                for r, s, h, n in zip(rows, spectra, strata, sizes, strict=True)])
        return draw

    def audit_sample(self, draw: int | None = None) -> list[dict]:
        """The spectra of audit draw ``draw`` (default: the latest)."""
        with self.engine.connect() as conn:
            draw = draw or _largest(conn, audit_table.c.draw)
            if draw is None:
                return []
            q = (sa.select(audit_table).where(audit_table.c.draw == draw)
                 .order_by(audit_table.c.id))
            return [dict(r._mapping) for r in conn.execute(q)]
