"""The query batches: per iteration, the spectra waiting for a label, by rank."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from specscout.labels.schema import bump, group, queue_table

#: The strategy of spectra added to a batch by hand (they have no acquisition score).
SELECTION = "selection"


class Queue:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def put(self, iteration: int, rows: Sequence[int], spectra: Sequence[str],
            scores: Sequence[float], strategy: str) -> int:
        """Make ``rows`` (most wanted first) the query batch of ``iteration``, replacing an
        earlier batch of that iteration; spectra chosen by hand for it stay, after them."""
        values = [{"iteration": iteration, "rank": i, "row": int(r), "spectrum": s,
                   "strategy": strategy, "acquisition_score": float(a)}
                  for i, (r, s, a) in enumerate(zip(rows, spectra, scores, strict=True))]
        this = queue_table.c.iteration == iteration
        with self.engine.begin() as conn:
            bump(conn, "queue")  # first: it takes the write lock, so changes come one by one
            conn.execute(queue_table.delete().where(this & (queue_table.c.strategy
                                                            != SELECTION)))
            kept = conn.execute(sa.select(queue_table.c.id).where(this).order_by(
                queue_table.c.rank)).scalars().all()
            for k, key in enumerate(kept):  # after the new batch, in their order
                conn.execute(queue_table.update().where(queue_table.c.id == key)
                             .values(rank=len(values) + k))
            if values:
                conn.execute(queue_table.insert(), values)
        return len(values)

    def extend(self, iteration: int | None, rows: Sequence[int], spectra: Sequence[str],
               strategy: str = SELECTION, *, default: int | None = None) -> int:
        """Add ``rows`` (chosen by hand, e.g. on the map) after the end of the batch of
        ``iteration``, leaving out those already in it; returns how many were added.
        ``iteration`` None: the latest batch as it stands when the change is made (a query
        meanwhile cannot leave the rows in a batch no longer served), or ``default`` if there
        is none."""
        with self.engine.begin() as conn:
            bump(conn, "queue")  # first: it takes the write lock, so changes come one by one
            if iteration is None:
                latest = conn.execute(sa.select(sa.func.max(queue_table.c.iteration))).scalar()
                iteration = latest if latest is not None else default
            if iteration is None:
                raise ValueError("no query batch and no iteration to start one")
            have = {r: k for r, k in conn.execute(
                sa.select(queue_table.c.row, queue_table.c.rank)
                .where(queue_table.c.iteration == iteration))}
            first = max(have.values(), default=-1) + 1
            new = [(int(r), s) for r, s in dict(zip(rows, spectra, strict=True)).items()
                   if int(r) not in have]
            if new:
                conn.execute(queue_table.insert(), [
                    {"iteration": iteration, "rank": first + i, "row": r, "spectrum": s,
                     "strategy": strategy, "acquisition_score": 0.0}
                    for i, (r, s) in enumerate(new)])
        return len(new)

    def batch(self, iteration: int | None = None) -> list[dict]:
        """The query batch of ``iteration`` (default: the latest), by rank."""
        return group(self.engine, queue_table.c.iteration, iteration, queue_table.c.rank)
