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
from specscout.labels.schema import connect, labels_table, now, read_serial, read_serials
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

    def serials(self) -> dict[str, int]:
        """:meth:`serial` of every name, in one query."""
        return read_serials(self.engine)

    def serial(self, name: str) -> int:
        """A number raised with every change of the query batches (``queue``) or the audit
        draws (``audit_sample``): it tells a cache whether they changed."""
        return read_serial(self.engine, name)

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

    def votes(self, audit: bool = False) -> dict[int, dict[str, str | None]]:
        """{pool row: {annotator: their latest label}} (``None``: retracted or unsure);
        training labels, or with ``audit`` the audit labels."""
        t = labels_table
        latest = (sa.select(sa.func.max(t.c.id).label("id")).where(t.c.audit == audit)
                  .group_by(t.c.row, t.c.annotator).subquery())
        q = sa.select(t.c.row, t.c.annotator, t.c.label).join(latest, t.c.id == latest.c.id)
        out: dict[int, dict[str, str | None]] = {}
        with self.engine.connect() as conn:
            for row, annotator, label in conn.execute(q):
                out.setdefault(row, {})[annotator] = label
        return out

    def since(self, after: int, audit: bool = False) -> list[tuple[int, int, str, str | None]]:
        """(id, row, annotator, label) of the label rows appended after id ``after``, oldest
        first: what a reader that has seen the labels up to ``after`` has to catch up on."""
        t = labels_table
        q = (sa.select(t.c.id, t.c.row, t.c.annotator, t.c.label)
             .where(t.c.id > after, t.c.audit == audit).order_by(t.c.id))
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(q)]

    def tallies(self) -> dict:
        """Label rows (retractions left out) per annotator, training and audit; training labels
        per iteration and class; and all label rows."""
        t = labels_table
        given = t.c.label.is_not(None)
        with self.engine.connect() as conn:
            per_annotator: dict[str, dict[str, int]] = {}
            for who, audit, n in conn.execute(
                    sa.select(t.c.annotator, t.c.audit, sa.func.count()).where(given)
                    .group_by(t.c.annotator, t.c.audit)):
                per_annotator.setdefault(who, {"training": 0, "audit": 0})[
                    "audit" if audit else "training"] = n
            per_iteration: dict[str, dict[str, int]] = {}
            for it, label, n in conn.execute(
                    sa.select(t.c.iteration, t.c.label, sa.func.count())
                    .where(given, t.c.audit.is_(False)).group_by(t.c.iteration, t.c.label)):
                per_iteration.setdefault(str(it or 0), {})[label] = n
            rows = conn.execute(sa.select(sa.func.count()).select_from(t)).scalar()
        return {"annotators": per_annotator, "iterations": per_iteration, "labels": rows}

    def current(self, audit: bool = False) -> dict[int, str]:
        """{pool row: label} where every annotator's latest label agrees (retractions and
        disagreements are left out); training labels, or with ``audit`` the audit labels."""
        return agreed(self.votes(audit))

    def disagreements(self, audit: bool = False) -> dict[int, dict[str, str]]:
        """{pool row: {annotator: label}} where annotators' latest labels differ."""
        return {row: v for row, v in self.votes(audit).items()
                if len({x for x in v.values() if x}) > 1}

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


def agreed(votes: dict[int, dict[str, str | None]]) -> dict[int, str]:
    """{row: label} of the rows whose annotators all give one label (none retracted)."""
    out = {}
    for row, by in votes.items():
        labels = set(by.values())
        if len(labels) == 1 and None not in labels:
            out[row] = next(iter(labels))
    return out
