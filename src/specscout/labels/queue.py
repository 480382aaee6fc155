"""The query batches: per iteration, the spectra waiting for a label, by rank."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from specscout.labels.schema import bump, group, queue_table


class Queue:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def put(self, iteration: int, rows: Sequence[int], spectra: Sequence[str],
            scores: Sequence[float], strategy: str) -> int:
        """Make ``rows`` (most wanted first) the query batch of ``iteration``, replacing an
        earlier batch of that iteration."""
        values = [{"iteration": iteration, "rank": i, "row": int(r), "spectrum": s,
                   "strategy": strategy, "acquisition_score": float(a)}
                  for i, (r, s, a) in enumerate(zip(rows, spectra, scores, strict=True))]
        with self.engine.begin() as conn:
            conn.execute(queue_table.delete().where(queue_table.c.iteration == iteration))
            if values:
                conn.execute(queue_table.insert(), values)
            bump(conn, "queue")
        return len(values)

    def batch(self, iteration: int | None = None) -> list[dict]:
        """The query batch of ``iteration`` (default: the latest), by rank."""
        return group(self.engine, queue_table.c.iteration, iteration, queue_table.c.rank)
