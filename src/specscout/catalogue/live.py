"""The candidate list as a labelling session sees it: kept in memory, and brought up to date
after each new label at the cost of what the labels changed, not of the pool.

The list under the labels of the moment it was built (the model's proposals of one iteration
at one threshold, less the spectra humans labelled, plus those labelled as targets: see
:func:`~specscout.catalogue.candidates.select`; less the spectra of an audit draw, which stay
hidden), its objects and its order by probability are computed once. Later labels change a
few rows; only the objects those rows belong to (or come near) are regrouped
(:meth:`Grouping.change`), and the first page is read off the stored order.
Records (id, designation, ...) are read only for the spectra shown, and kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from specscout.archive.store import Store
from specscout.catalogue.candidates import model_rows, select
from specscout.catalogue.objects import Grouping, unit_vectors
from specscout.catalogue.references import crossmatch

SHOWN = ("id", "designation", "ra", "dec", "snr")


class LiveCandidates:
    def __init__(self, pool: Store, probabilities: np.ndarray, current: dict[int, str], *,
                 names: Sequence[str], threshold: float, targets: Sequence[int],
                 references: Sequence = (), radius_arcsec: float = 3.0,
                 hidden: Iterable[int] = ()) -> None:
        """``hidden``: rows never listed nor counted, whatever their labels (an audit
        draw's, which would say how the model rates them)."""
        self.pool = pool
        self.hidden = frozenset(map(int, hidden))
        self.probabilities = probabilities
        self.names = list(names)
        self.targets = list(targets)
        self.references = tuple(references)
        self.radius = radius_arcsec
        self.threshold = threshold
        self.current = dict(current)
        self.model = model_rows(probabilities, threshold, self.targets)
        self.rows, self.classes, self.human = select(self.model, self.current, self.names,
                                                     self.targets)
        if self.hidden:
            keep = ~np.isin(self.rows, np.fromiter(self.hidden, np.int64, len(self.hidden)))
            self.rows, self.classes, self.human = (self.rows[keep], self.classes[keep],
                                                   self.human[keep])
        p = np.asarray(probabilities[self.rows], dtype=np.float32).reshape(
            len(self.rows), probabilities.shape[1])  # no candidate (a threshold of 1): 0 rows
        self.prob = p[np.arange(len(self.rows)), self.classes]
        self.order = np.argsort(-self.prob, kind="stable")  # most probable first
        self.grouping = Grouping(self.rows, *pool.positions(self.rows), radius_arcsec)
        self._records: dict[int, dict] = {}
        self._known: dict[tuple, tuple[str, str]] = {}  # by the rows of an object

    def changed(self, current: dict[int, str]) -> list[int]:
        """The rows whose label differs from when the list was built."""
        out = [r for r, c in current.items() if self.current.get(r) != c]
        return out + [r for r in self.current if r not in current]

    def _now(self, row: int, current: dict[int, str]) -> tuple[int, str] | None:
        """(class, source) of ``row`` under the labels ``current``, if it is a candidate."""
        if row in self.hidden:
            return None
        label = current.get(row)
        if label is not None:
            c = self.names.index(label)
            return (c, "label") if c in self.targets else None
        at = int(np.searchsorted(self.model[0], row))
        if at < len(self.model[0]) and int(self.model[0][at]) == row:
            return int(self.model[1][at]), "model"
        return None

    def is_candidate(self, row: int, current: dict[int, str]) -> bool:
        """Whether ``row`` is a candidate under the labels ``current``."""
        return self._now(int(row), current) is not None

    def page(self, current: dict[int, str], limit: int = 500) -> dict:
        """The candidate list under the human labels ``current`` ({row: class}): how many
        spectra and objects, and the ``limit`` most probable spectra with their records."""
        changed = np.array(sorted(self.changed(current)), dtype=np.int64)
        at = np.searchsorted(self.rows, changed)
        listed = at < len(self.rows)
        listed[listed] = self.rows[at[listed]] == changed[listed]
        gone = np.zeros(len(self.rows), dtype=bool)
        gone[at[listed]] = True  # a changed row leaves, and comes back as it is now
        now = {int(r): self._now(int(r), current) for r in changed}
        now = {r: v for r, v in now.items() if v is not None}
        added = np.array(sorted(now), dtype=np.int64)
        dirty, local_rows, local = self.grouping.change(gone, added,
                                                        *self.pool.positions(added))
        object_of = dict(zip(local_rows.tolist(), local.tolist(), strict=True))
        spectra = len(self.rows) - int(gone.sum()) + len(added)
        objects = self.grouping.count - len(dirty) + len(set(local.tolist()))
        picked = [(float(self.prob[i]), int(self.rows[i]), int(self.classes[i]),
                   "label" if self.human[i] else "model")
                  for i in self.order[: limit + int(gone.sum())] if not gone[i]]
        picked += [(float(self.probabilities[r][c]), r, c, source)
                   for r, (c, source) in now.items()]
        picked = sorted(picked, key=lambda t: (-t[0], t[1]))[:limit]
        self._read([row for _, row, _, _ in picked])
        objs = [object_of.get(row) for _, row, _, _ in picked]
        objs = [int(self.grouping.objects[np.searchsorted(self.rows, row)]) if o is None else o
                for o, (_, row, _, _) in zip(objs, picked, strict=True)]
        known = self._known_of(objs, object_of)
        items = [{"row": row, **{k: self._records[row][k] for k in SHOWN},
                  "class": self.names[c], "source": source, "object": obj,
                  "known": bool(known[obj][0]), "catalogue": known[obj][0],
                  "catalogue_type": known[obj][1], "probability": round(prob, 4)}
                 for (prob, row, c, source), obj in zip(picked, objs, strict=True)]
        return {"spectra": spectra, "objects": objects, "items": items}

    def rows_now(self, current: dict[int, str]) -> np.ndarray:
        """Every candidate row under the labels ``current``, sorted."""
        changed = np.array(sorted(self.changed(current)), dtype=np.int64)
        keep = self.rows[~np.isin(self.rows, changed)]
        back = [r for r in changed.tolist() if self._now(r, current) is not None]
        return np.union1d(keep, np.array(back, dtype=np.int64))

    def _read(self, rows: list[int]) -> None:
        missing = [r for r in rows if r not in self._records]
        if missing:
            for rec in self.pool.records(missing, SHOWN).to_pylist():
                self._records[rec["row"]] = {k: (None if isinstance(v, float) and v != v
                                                 else v) for k, v in rec.items()}

    def _known_of(self, objs: list[int], local: dict[int, int]) -> dict[int, tuple[str, str]]:
        """(the reference catalogues that list it, the type they give; empty if none) of each
        object, matched at the mean position and epoch of its spectra; objects not seen
        before, as their spectra now stand, are matched in one call."""
        if not self.references:
            return dict.fromkeys(objs, ("", ""))
        members: dict[int, tuple[int, ...]] = {}
        for obj in set(objs):
            if obj >= self.grouping.count:  # regrouped after a label
                members[obj] = tuple(sorted(r for r, o in local.items() if o == obj))
            else:
                members[obj] = tuple(self.rows[self.grouping.members([obj])].tolist())
        todo = sorted({m for m in members.values() if m not in self._known})
        if todo:
            rows = np.array(sorted({r for m in todo for r in m}), dtype=np.int64)
            ra, dec = self.pool.positions(rows)
            found = self.pool.records(rows, ["mjd"])
            mjd_of = dict(zip(found["row"].to_pylist(), found["mjd"].to_pylist(), strict=True))
            at = {int(r): i for i, r in enumerate(rows)}
            ra0, dec0, mjd0 = (np.full(len(todo), np.nan) for _ in range(3))
            for k, m in enumerate(todo):
                i = [at[r] for r in m]
                xyz = unit_vectors(ra[i], dec[i])
                xyz = xyz[np.isfinite(xyz).all(1)].sum(0)
                if np.any(xyz):
                    ra0[k] = np.degrees(np.arctan2(xyz[1], xyz[0])) % 360
                    dec0[k] = np.degrees(np.arctan2(xyz[2], np.hypot(xyz[0], xyz[1])))
                epochs = [v for r in m if (v := mjd_of.get(r)) is not None and v == v]
                mjd0[k] = np.mean(epochs) if epochs else np.nan
            m = crossmatch(ra0, dec0, self.references, self.radius, mjd=mjd0, threads=True)
            self._known.update(zip(todo, zip(m.catalogue, m.kind, strict=True), strict=True))
        return {obj: self._known[m] for obj, m in members.items()}
