"""Audit samples: random draws of pool spectra, by stratum, to be labelled blind."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from specscout.labels.schema import audit_table, bump, group, largest, now


class AuditSamples:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def add(self, iteration: int, rows: Sequence[int], spectra: Sequence[str],
            strata: Sequence[str], sizes: Sequence[int]) -> int:
        """Record a new random audit draw; returns its number."""
        with self.engine.begin() as conn:
            draw = (largest(conn, audit_table.c.draw) or 0) + 1
            time = now()
            conn.execute(audit_table.insert(), [
                {"draw": draw, "iteration": iteration, "row": int(r), "spectrum": s,
                 "stratum": h, "stratum_size": int(n), "time": time}
                for r, s, h, n in zip(rows, spectra, strata, sizes, strict=True)])
            bump(conn, "audit_sample")
        return draw

    def sample(self, draw: int | None = None) -> list[dict]:
        """The spectra of audit draw ``draw`` (default: the latest)."""
        return group(self.engine, audit_table.c.draw, draw, audit_table.c.id)

    def drawn(self) -> set[int]:
        """Every pool row drawn for an audit, in any draw."""
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(audit_table.c.row).distinct()).scalars())
