"""Objects: spectra grouped by position (friends of friends).

Spectra within ``radius`` of each other are one object, as several visits of one star are.
Positions are unit vectors; neighbours come from a k-d tree (scipy), and spectra at exactly the
same position (one star observed, or one file ingested, many times) are merged before any
pair is formed, so a star with thousands of spectra costs one point. :class:`Grouping` keeps
the objects of one set of spectra and gives those of a slightly different set (some spectra
gone, some new) by regrouping only the objects the difference touches.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree


def unit_vectors(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    ra, dec = np.radians(np.asarray(ra, float)), np.radians(np.asarray(dec, float))
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=1)


def chord(radius_arcsec: float) -> float:
    """The straight-line distance between unit vectors ``radius_arcsec`` apart."""
    return 2 * math.sin(math.radians(radius_arcsec / 3600) / 2)


def group(ra: np.ndarray, dec: np.ndarray, radius_arcsec: float) -> np.ndarray:
    """Object number (0..) of each position, numbered in the order of first appearance:
    friends of friends within ``radius_arcsec``. A spectrum without a position is an object
    of its own."""
    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    n = len(ra)
    labels = np.empty(n, dtype=np.int64)
    known = np.isfinite(ra) & np.isfinite(dec)
    if known.any():
        xyz = np.ascontiguousarray(unit_vectors(ra[known], dec[known]))
        # identical positions by their bytes: 4x faster than np.unique(axis=0)
        _, first, back = np.unique(xyz.view(np.dtype((np.void, xyz.itemsize * 3))).ravel(),
                                   return_index=True, return_inverse=True)
        unique = xyz[first]
        pairs = cKDTree(unique).query_pairs(chord(radius_arcsec), output_type="ndarray")
        graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                           shape=(len(unique), len(unique)))
        _, comp = connected_components(graph, directed=False)
        labels[known] = comp[back.ravel()]
    top = labels[known].max() + 1 if known.any() else 0
    labels[~known] = top + np.arange(int((~known).sum()))
    return _first_seen(labels)


def _first_seen(labels: np.ndarray) -> np.ndarray:
    """The same partition, numbered by each group's first element."""
    if not len(labels):
        return labels
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inverse.ravel()]


class Grouping:
    """The objects of a set of spectra (rows, sorted, with positions), kept so that those of
    a set differing by a few rows come at the cost of the difference."""

    def __init__(self, rows: np.ndarray, ra: np.ndarray, dec: np.ndarray,
                 radius_arcsec: float) -> None:
        self.rows = np.asarray(rows, np.int64)
        self.ra, self.dec = np.asarray(ra, float), np.asarray(dec, float)
        self.radius = radius_arcsec
        self.objects = group(self.ra, self.dec, radius_arcsec)
        self.count = int(self.objects.max()) + 1 if len(self.objects) else 0
        known = np.isfinite(self.ra) & np.isfinite(self.dec)
        self._tree = cKDTree(unit_vectors(self.ra[known], self.dec[known])) if known.any() \
            else None
        self._tree_rows = np.nonzero(known)[0]
        # The members of each object: indices sorted by object, and where each object starts.
        self._members = np.argsort(self.objects, kind="stable")
        self._starts = np.searchsorted(self.objects[self._members], np.arange(self.count + 1))

    def members(self, objects) -> np.ndarray:
        """Indices (into ``rows``) of the spectra of ``objects``."""
        return np.concatenate([self._members[self._starts[o] : self._starts[o + 1]]
                               for o in objects] or [np.empty(0, np.int64)])

    def change(self, gone: np.ndarray, added: np.ndarray, ra: np.ndarray, dec: np.ndarray
               ) -> tuple[set[int], np.ndarray, np.ndarray]:
        """What becomes of the objects without the spectra ``gone`` (a mask over ``rows``)
        and with the rows ``added`` (at ``ra``, ``dec``): (the objects touched, the rows
        regrouped, their object numbers, counted on from :attr:`count`). The other objects
        stay as they are."""
        ra, dec = np.asarray(ra, float), np.asarray(dec, float)
        dirty = set(self.objects[gone].tolist())
        ok = np.isfinite(ra) & np.isfinite(dec)
        if self._tree is not None and ok.any():
            for near in self._tree.query_ball_point(unit_vectors(ra[ok], dec[ok]),
                                                    chord(self.radius)):
                dirty.update(self.objects[self._tree_rows[near]].tolist())
        redo = self.members(sorted(dirty))
        redo = redo[~gone[redo]]
        rows = np.concatenate([self.rows[redo], np.asarray(added, np.int64)])
        objects = group(np.r_[self.ra[redo], ra], np.r_[self.dec[redo], dec], self.radius)
        return dirty, rows, objects + self.count

    def regroup(self, removed: np.ndarray, added: np.ndarray, ra: np.ndarray,
                dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, object numbers) of this set without the rows ``removed`` and with the rows
        ``added`` (at ``ra``, ``dec``)."""
        gone = np.isin(self.rows, np.asarray(removed, np.int64))
        dirty, rows, objects = self.change(gone, added, ra, dec)
        keep = ~gone & ~np.isin(self.objects, list(dirty))
        rows = np.concatenate([self.rows[keep], rows])
        objects = np.concatenate([self.objects[keep], objects])
        order = np.argsort(rows, kind="stable")
        return rows[order], objects[order]
