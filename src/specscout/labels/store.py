"""The labels: every label ever given, append-only, with its provenance.

A label row says who labelled which spectrum (by its store id and pool row) as what, when, in
which iteration, under which model and at which acquisition score. Nothing is updated or
deleted: an undo appends a retraction (label NULL). The *current* label of a spectrum is
derived: the latest row of each annotator, and where annotators disagree the spectrum is
reported, not guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from specscout.labels.audit_samples import AuditSamples
from specscout.labels.queue import Queue
from specscout.labels.schema import connect, labels_table, largest, now
from specscout.labels.users import Users


class LabelStore:
    """The label database: the labels themselves (this class), and beside them the query
    batches (:attr:`queue`), the audit draws (:attr:`audit_samples`) and the annotators who may
    log in (:attr:`users`)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = connect(url)
        self.queue = Queue(self.engine)
        self.audit_samples = AuditSamples(self.engine)
        self.users = Users(self.engine)

    def last_id(self, table: sa.Table) -> int | None:
        """The largest id of ``table`` (labels, queue, audit_sample): it changes with every
        row appended, so it tells a cache whether the table has grown."""
        with self.engine.connect() as conn:
            return largest(conn, table.c.id)

    # --- labels ----------------------------------------------------------------------------

    def add(self, spectrum: str, row: int, label: str | None, annotator: str, *,
            iteration: int | None = None, model_version: str | None = None,
            acquisition_score: float | None = None, comment: str = "",
            audit: bool = False) -> int:
        """Append one label (``None`` retracts the annotator's current one). Returns its id."""
        with self.engine.begin() as conn:
            result = conn.execute(labels_table.insert().values(
                spectrum=spectrum, row=int(row), label=label, annotator=annotator,
                time=now(), iteration=iteration, model_version=model_version,
                acquisition_score=acquisition_score, comment=comment, audit=audit))
            return int(result.inserted_primary_key[0])

    def add_many(self, rows: Iterable[dict]) -> int:
        """Append many labels in one transaction (dicts with the columns of ``add``)."""
        values = [{"time": now(), "comment": "", "audit": False, **r} for r in rows]
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
