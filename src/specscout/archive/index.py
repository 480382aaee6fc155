"""The indexes of a store part: sorted arrays that answer "is this file in the store?",
"which rows have this id, obsid or designation?" and "which rows lie near this position?"
without reading the metadata.

Each part keeps three NumPy files beside its data, written with it and never changed:

    paths.npy   sorted 64-bit hashes of the paths of every file the part processed
    keys.npy    (hash, row) sorted by hash: the hashes of "id:...", "obsid:..." and
                "designation:..." (the position part, see :func:`designation_key`)
    sky.npy     (pixel, row, ra, dec) sorted by pixel: HEALPix (nside 1024, nested, 3.4')
                of each pooled spectrum with a position

They are memory-mapped when read, so a lookup is a binary search per part whatever the part's
size. A 64-bit hash can collide: lookups confirm every hit against the metadata.
"""

from __future__ import annotations

import hashlib
import operator
import re
from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa

#: HEALPix resolution of the positional index (nested ordering).
NSIDE = 1024
KEY_DTYPE = np.dtype([("hash", "<u8"), ("row", "<i8")])
SKY_DTYPE = np.dtype([("pixel", "<i8"), ("row", "<i8"), ("ra", "<f8"), ("dec", "<f8")])
#: What precedes the position part of a designation ("LAMOST " of "LAMOST J063715.90+...").
_DESIGNATION_PREFIX, _KEEP = r"^.*\s(J\d{4})", r"\1"


def hash64(texts: Iterable[str]) -> np.ndarray:
    """64-bit hashes (BLAKE2b) of texts."""
    return np.array([int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(),
                                    "little") for t in texts], dtype=np.uint64)


def path_hash(paths: Sequence[str]) -> np.ndarray:
    """64-bit hashes of file paths: the store remembers which files it has seen by these."""
    return hash64(paths)


def designation_key(designation: str) -> str:
    """The position part of a designation, upper case ("J063715.90+271356.5" of
    "LAMOST J063715.90+271356.5"); the whole text when it has none."""
    return re.sub(_DESIGNATION_PREFIX, _KEEP, designation.strip().upper())


def key_text(key: str, value) -> str:
    """What is hashed for ``value`` of ``key`` (id, obsid or designation)."""
    if key == "designation":
        value = designation_key(str(value))
    elif key == "obsid":
        value = integer(value)
    return f"{key}:{value}"


def integer(value) -> int:
    """``value`` as a whole number (an int, or text of digits); ValueError otherwise."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{value!r} is not a whole number") from None


def asked_values(key: str, values: Iterable) -> list:
    """The values of a lookup by ``key``, each once, in the type its index keys: whole
    numbers for row and obsid (out of int64's range, nothing can match: dropped; not a whole
    number: ValueError), text otherwise."""
    if key in ("row", "obsid"):
        values = [v for v in map(integer, values) if -2**63 <= v < 2**63]
    else:
        values = [str(v) for v in values]
    return list(dict.fromkeys(values))


def confirmed(key: str, values: Sequence, found: pa.Table) -> pa.Table:
    """Of the records ``found`` by a hash of ``key``, those whose own value is one of
    ``values`` (a hash hit is confirmed), as a table of ``value`` (as asked), ``row``, ``id``."""
    asked: dict = {}
    for v in values:
        asked.setdefault(key_text(key, v), []).append(v)
    out: dict[str, list] = {"value": [], "row": [], "id": []}
    for row, id_, v in zip(found["row"].to_pylist(), found["id"].to_pylist(),
                           found[key].to_pylist(), strict=True):
        for value in asked.get(key_text(key, v), ()) if v is not None else ():
            out["value"].append(value)
            out["row"].append(row)
            out["id"].append(id_)
    return pa.table({"value": pa.array(out["value"], pa.int64() if key == "obsid"
                                       else pa.string()),
                     "row": pa.array(out["row"], pa.int64()),
                     "id": pa.array(out["id"], pa.string())})


def key_entries(rows: np.ndarray, ids: Sequence, obsids: Sequence,
                designations: Sequence) -> np.ndarray:
    """The keys.npy array of pooled spectra."""
    texts, owners = [], []
    for row, i, o, d in zip(rows, ids, obsids, designations, strict=True):
        for key, value in (("id", i), ("obsid", o), ("designation", d)):
            if value is not None and value == value and value != "":  # skip None, NaN, ""
                texts.append(key_text(key, value))
                owners.append(row)
    return _sorted(hash64(texts), np.asarray(owners, dtype=np.int64), KEY_DTYPE, "hash")


def pixels(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """HEALPix pixels (nested, :data:`NSIDE`) of positions in degrees."""
    from astropy import units as u
    from astropy_healpix import HEALPix

    return HEALPix(NSIDE, order="nested").lonlat_to_healpix(
        np.asarray(ra, float) * u.deg, np.asarray(dec, float) * u.deg).astype(np.int64)


def sky_entries(rows: np.ndarray, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """The sky.npy array of pooled spectra (those without a position are left out)."""
    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    ok = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90)
    out = np.zeros(int(ok.sum()), dtype=SKY_DTYPE)
    out["ra"], out["dec"] = ra[ok] % 360, dec[ok]
    out["pixel"], out["row"] = pixels(out["ra"], out["dec"]), np.asarray(rows, np.int64)[ok]
    out.sort(order=["pixel", "row"], kind="stable")
    return out


#: A cone is looked up in at most about this many pixels: a large one at a coarser level.
CONE_PIXELS = 64


def cone_ranges(ra: float, dec: float, radius_arcsec: float) -> tuple[np.ndarray, np.ndarray]:
    """[lo, hi) ranges of index pixels that cover a cone: its pixels at the finest level
    where it touches about :data:`CONE_PIXELS` of them (nested ids: a coarse pixel p holds
    the fine ones p * f ... (p + 1) * f - 1), so that a cone of degrees costs what one of
    arcseconds does."""
    from astropy import units as u
    from astropy_healpix import HEALPix

    share = (1 - np.cos(np.radians(min(radius_arcsec / 3600, 180.0)))) / 2  # of the sky
    nside = NSIDE
    while nside > 1 and 12 * nside * nside * share > CONE_PIXELS:
        nside //= 2
    coarse = np.asarray(HEALPix(nside, order="nested").cone_search_lonlat(
        ra * u.deg, dec * u.deg, radius_arcsec * u.arcsec), dtype=np.int64)
    f = (NSIDE // nside) ** 2
    return coarse * f, (coarse + 1) * f


def find_ranges(entries: np.ndarray, field: str, lo: np.ndarray, hi: np.ndarray
                ) -> np.ndarray:
    """The ``entries`` (sorted by ``field``) whose ``field`` lies in one of [lo, hi)."""
    if not len(entries) or not len(lo):
        return entries[:0]
    column = entries[field]
    return _slices(entries, np.searchsorted(column, lo, side="left"),
                   np.searchsorted(column, hi, side="left"))


def _slices(entries: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``entries[start:end]`` of each pair, joined (the empty ones left out)."""
    keep = ends > starts
    if not keep.any():
        return entries[:0]
    return np.concatenate([np.asarray(entries[i:j]) for i, j in
                           zip(starts[keep], ends[keep], strict=True)])


def _sorted(keys: np.ndarray, rows: np.ndarray, dtype: np.dtype, field: str) -> np.ndarray:
    out = np.zeros(len(keys), dtype=dtype)
    out[field] = keys
    out["row"] = rows
    out.sort(order=[field, "row"], kind="stable")
    return out


def find(entries: np.ndarray, field: str, wanted: np.ndarray) -> np.ndarray:
    """The ``entries`` (sorted by ``field``) whose ``field`` is in ``wanted``."""
    if not len(entries) or not len(wanted):
        return entries[:0]
    column = entries[field]
    return _slices(entries, np.searchsorted(column, wanted, side="left"),
                   np.searchsorted(column, wanted, side="right"))


def contains(sorted_hashes: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """Whether each of ``hashes`` is in ``sorted_hashes``."""
    if not len(sorted_hashes):
        return np.zeros(len(hashes), dtype=bool)
    i = np.searchsorted(sorted_hashes, hashes)
    i[i == len(sorted_hashes)] = 0
    return sorted_hashes[i] == hashes


class HashSet:
    """A growing set of 64-bit hashes as a few sorted blocks whose sizes at least double from
    one to the next (merged like a binary counter), so that adding a block and testing a
    batch cost O(log n) per hash however large the set grows."""

    def __init__(self, hashes: np.ndarray | None = None) -> None:
        self.blocks: list[np.ndarray] = []
        if hashes is not None and len(hashes):
            self.add(hashes)

    def __len__(self) -> int:
        return sum(len(b) for b in self.blocks)

    def add(self, hashes: np.ndarray) -> None:
        block = np.sort(np.asarray(hashes, dtype=np.uint64))
        while self.blocks and len(self.blocks[-1]) <= 2 * len(block):
            block = np.sort(np.concatenate([self.blocks.pop(), block]), kind="stable")
        self.blocks.append(block)

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        hashes = np.asarray(hashes, dtype=np.uint64)
        found = np.zeros(len(hashes), dtype=bool)
        for block in self.blocks:
            found |= contains(block, hashes)
        return found
