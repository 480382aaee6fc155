"""Reference catalogues, and what "known" means: an object is known when a catalogue lists
something within its radius of the object's position.

A catalogue is a file (CSV, VOTable or FITS: read whole, once per process, matched with a k-d
tree in memory) or a HATS catalogue directory, matched with LSDB partition by partition on Dask
(a local cluster, an existing one, or threads), so that a catalogue of billions of rows (Gaia)
never has to fit in memory. Either way the match is a left join: every object stays, with the
nearest entry of each catalogue (its type, the columns asked for, the separation) or none.

Proper motion: where a catalogue has ``pmra`` and ``pmdec`` (mas/yr) and its epoch (a
``ref_epoch`` or ``epoch`` column, Julian years), each entry is moved to the epoch of the
object's spectra (their mean MJD) before the separation is measured. The search reaches
:data:`PM_LIMIT` arcsec a year further to find entries that moved into the radius; stars faster
than that (a few hundred in the sky) may be missed. A catalogue without them is matched at its
positions as they are, which the objects table's metadata says.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from specscout.catalogue.objects import chord, unit_vectors
from specscout.errors import SpecscoutError

#: arcsec/yr: how far the search reaches beyond the radius per year between epochs.
PM_LIMIT = 1.0
#: Entries looked at per object when proper motion applies (the nearest may not be, once moved).
PM_NEIGHBOURS = 16
MJD_J2000, DAYS_PER_YEAR = 51544.5, 365.25
RA_NAMES = ("ra", "raj2000", "_raj2000", "ra_icrs", "radeg", "ra_deg")
DEC_NAMES = ("dec", "dej2000", "_dej2000", "de_icrs", "decdeg", "dec_deg", "de")
PM_NAMES = (("pmra", "pm_ra", "pmra_cosdec"), ("pmdec", "pmde", "pm_dec"))
EPOCH_NAMES = ("ref_epoch", "epoch")


def separation(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Angular distances in arcsec (exact at any distance, from unit vectors)."""
    a, b = unit_vectors(ra1, dec1), unit_vectors(ra2, dec2)
    d = np.linalg.norm(a - b, axis=-1)
    return np.degrees(2 * np.arcsin(np.minimum(d / 2, 1.0))) * 3600


@dataclass(frozen=True)
class Reference:
    """A reference catalogue as named: a file or a HATS directory, and its own radius
    (arcsec; None: the command's)."""

    path: Path
    radius: float | None = None

    @property
    def name(self) -> str:
        name = self.path.name
        for suffix in (".gz", ".fits", ".fit", ".csv", ".xml", ".vot", ".ecsv", ".parquet"):
            name = name.removesuffix(suffix)
        return name

    @property
    def hats(self) -> bool:
        return is_hats(self.path)


def reference(spec: str | Path | Reference) -> Reference:
    """``PATH`` or ``PATH@ARCSEC`` (the catalogue's own radius) as a :class:`Reference`."""
    if isinstance(spec, Reference):
        return spec
    text = str(spec)
    m = re.fullmatch(r"(.+)@(\d+(?:\.\d*)?|\.\d+)", text)
    if m and not Path(text).exists():
        radius = float(m.group(2))
        if radius <= 0:
            raise SpecscoutError(f"{text}: a catalogue's radius must be positive")
        return Reference(Path(m.group(1)), radius)
    return Reference(Path(text))


def is_hats(path: Path) -> bool:
    """Whether ``path`` is a HATS catalogue (or a collection of one and its margins)."""
    return path.is_dir() and any((path / f).is_file() for f in (
        "hats.properties", "collection.properties", "properties"))


@dataclass
class Matches:
    """Per position: whether any catalogue has it (``known``), which ones (comma-separated
    names), the type the first of those gives, the smallest separation (arcsec), and per
    catalogue the columns asked for and the separation (``NAME_COLUMN``,
    ``NAME_separation``). ``notes``: a line per catalogue (rows, proper motion)."""

    known: np.ndarray
    catalogue: list[str]
    kind: list[str]
    separation: np.ndarray
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # entries of each catalogue


def crossmatch(ra: np.ndarray, dec: np.ndarray, references: Iterable,
               radius_arcsec: float, *, columns: Sequence[str] = (),
               mjd: np.ndarray | None = None, workers: int | None = None,
               scheduler: str | None = None, threads: bool = False) -> Matches:
    """Match positions (degrees) against ``references`` (paths, ``PATH@ARCSEC`` or
    :class:`Reference`), each within its own radius or ``radius_arcsec``. ``columns``: brought
    over from each catalogue that has them. ``mjd``: the epoch of each position (for proper
    motions). HATS catalogues run on Dask: ``threads`` in this process, else a local cluster
    of ``workers`` or the cluster at ``scheduler``."""
    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    n = len(ra)
    mjd = np.full(n, np.nan) if mjd is None else np.asarray(mjd, float)
    out = Matches(np.zeros(n, bool), [""] * n, [""] * n, np.full(n, np.nan))
    refs = [reference(r) for r in references]
    names = [r.name for r in refs]
    if len(set(names)) < len(names):
        raise SpecscoutError(f"two reference catalogues named alike ({', '.join(names)}): "
                             f"their columns would be confused; name one otherwise")
    ok = np.isfinite(ra) & np.isfinite(dec)
    where = np.nonzero(ok)[0]
    hats = any(r.hats for r in refs) and len(where)
    from specscout.archive.cluster import dask_client

    with (nullcontext() if not hats or threads else dask_client(workers, scheduler)):
        for ref in refs:
            radius = ref.radius or radius_arcsec
            found = (_hats_pairs if ref.hats else _file_pairs)(
                ref, ra[ok], dec[ok], mjd[ok], radius, columns)
            at, sep, kind, extra, note = _nearest(found, ra[ok], dec[ok], mjd[ok], radius)
            out.notes.append(f"{ref.name}: {note}, radius {radius:g} arcsec")
            out.rows[ref.name] = found.rows
            k = where[at]
            out.known[k] = True
            for i, t, s in zip(k.tolist(), kind.tolist(), sep.tolist(), strict=True):
                out.catalogue[i] = ",".join(filter(None, [out.catalogue[i], ref.name]))
                out.kind[i] = out.kind[i] or str(t)
                if not s >= out.separation[i]:  # also where it is still NaN
                    out.separation[i] = s
            column = np.full(n, np.nan)
            column[k] = sep
            out.columns[f"{ref.name}_separation"] = column
            for name, values in extra.items():
                full = np.full(n, np.nan) if values.dtype.kind in "fiub" else \
                    np.full(n, "", dtype=object)
                full[k] = values
                out.columns[f"{ref.name}_{name}"] = full
    return out


# --- pairs within the search radius, from a file or a HATS catalogue -----------------------


@dataclass
class _Pairs:
    """Entries near query positions: the query index of each pair and the entry's position,
    proper motion (mas/yr, NaN if none), epoch (Julian year), type and chosen columns."""

    query: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    pmra: np.ndarray
    pmdec: np.ndarray
    epoch: np.ndarray
    kind: np.ndarray
    columns: dict[str, np.ndarray]
    rows: int  # entries in the catalogue (for the notes)
    has_pm: bool
    remark: str = ""


#: Catalogue epochs assumed where they cannot be read before matching (a HATS catalogue).
EPOCHS = (1990.0, 2030.0)


def _search(radius: float, mjd: np.ndarray, epochs: tuple[float, float] | None
            ) -> tuple[float, int]:
    """(search radius, neighbours to look at): wider, and more, where entries may move
    between their catalogue's ``epochs`` (first, last) and the spectra's."""
    if epochs is None or not np.isfinite(mjd).any():
        return radius, 1
    year = (mjd - MJD_J2000) / DAYS_PER_YEAR + 2000.0
    years = max(np.nanmax(np.abs(year - epochs[0])), np.nanmax(np.abs(year - epochs[1])))
    return radius + PM_LIMIT * float(years), PM_NEIGHBOURS


def column_named(names: Sequence[str], options: Sequence[str]) -> str | None:
    """The first of ``options`` among the column ``names`` (any case), as it is written."""
    lower = {c.lower(): c for c in names}
    return next((lower[o] for o in options if o in lower), None)


def _type_column(names: Sequence[str]) -> str | None:
    lower = {c.lower(): c for c in names}
    return next((lower[c] for c in lower if "objtype" in c), None) or next(
        (lower[c] for c in lower if "type" in c or c in ("class", "otype")), None)


@dataclass(frozen=True)
class _Table:
    ra: np.ndarray
    dec: np.ndarray
    kind: np.ndarray
    pmra: np.ndarray | None
    pmdec: np.ndarray | None
    epoch: np.ndarray | None
    table: object  # the astropy Table, for the columns asked for
    ok: np.ndarray  # its rows with a position
    tree: cKDTree | None

    def column(self, name: str) -> np.ndarray | None:
        """Column ``name`` of the rows with a position (None if the table has none)."""
        return _values(self.table[name])[self.ok] if name in self.table.colnames else None


def read_file(path: str | Path) -> _Table:
    """A reference catalogue file (CSV, VOTable or FITS) with RA/Dec columns in degrees or
    sexagesimal text, and a type column if it has one; read once per process and file
    version."""
    path = Path(path)
    if not path.is_file():
        raise SpecscoutError(f"{path}: no such catalogue file or HATS catalogue")
    st = path.stat()
    return _read_file(path.resolve(), st.st_mtime_ns, st.st_size)


def read_table(path: Path):
    """The astropy Table of a CSV, VOTable or FITS file, or a clear error."""
    from astropy.table import Table

    suffix = path.name.lower().removesuffix(".gz").rsplit(".", 1)[-1]
    fmt = {"csv": "ascii.csv", "xml": "votable", "vot": "votable", "ecsv": "ascii.ecsv"}.get(
        suffix)
    try:
        return Table.read(path, format=fmt) if fmt else Table.read(path)
    except Exception as exc:
        raise SpecscoutError(f"{path}: cannot read it as a table ({exc})") from exc


def positions(table, path: Path) -> tuple[np.ndarray, np.ndarray, str, str]:
    """(ra, dec in degrees, the RA and Dec column names) of a table."""
    ra, dec = column_named(table.colnames, RA_NAMES), column_named(table.colnames, DEC_NAMES)
    if ra is None or dec is None:
        raise SpecscoutError(f"{path}: no RA/Dec columns among {table.colnames}")
    if table[ra].dtype.kind in "US":
        from astropy import units as u
        from astropy.coordinates import SkyCoord

        coords = SkyCoord(table[ra], table[dec], unit=(u.hourangle, u.deg))
        return coords.ra.deg, coords.dec.deg, ra, dec
    return (np.asarray(table[ra].filled(np.nan) if hasattr(table[ra], "filled") else
                       table[ra], float),
            np.asarray(table[dec].filled(np.nan) if hasattr(table[dec], "filled") else
                       table[dec], float), ra, dec)


def _values(column) -> np.ndarray:
    if column.dtype.kind in "fiub":
        return np.asarray(column.filled(np.nan) if hasattr(column, "filled") else column,
                          float)
    return np.array(["" if v is np.ma.masked else str(v) for v in column], dtype=object)


@cache
def _read_file(path: Path, mtime: int, size: int) -> _Table:
    table = read_table(path)
    ra, dec, _, _ = positions(table, path)
    kind = _type_column(table.colnames)
    pm = [column_named(table.colnames, names) for names in PM_NAMES]
    epoch = column_named(table.colnames, EPOCH_NAMES)
    ok = np.isfinite(ra) & np.isfinite(dec)
    has_pm = all(pm) and epoch is not None

    def column(name: str | None) -> np.ndarray | None:
        return _values(table[name])[ok] if name else None

    return _Table(ra[ok] % 360, dec[ok],
                  column(kind) if kind else np.full(int(ok.sum()), "", dtype=object),
                  column(pm[0]) if has_pm else None, column(pm[1]) if has_pm else None,
                  column(epoch) if has_pm else None, table, ok,
                  cKDTree(unit_vectors(ra[ok], dec[ok])) if ok.any() else None)


def _file_pairs(ref: Reference, ra, dec, mjd, radius, columns) -> _Pairs:
    t = read_file(ref.path)
    has_pm = t.pmra is not None
    known = has_pm and np.isfinite(t.epoch).any()
    reach, k = _search(radius, mjd, (np.nanmin(t.epoch), np.nanmax(t.epoch)) if known
                       else None)
    chosen = {c: v for c in columns if (v := t.column(c)) is not None}
    if t.tree is None or not len(ra):
        query = np.empty(0, np.int64)
        idx = np.empty(0, np.int64)
    else:
        dist, idx = t.tree.query(unit_vectors(ra, dec), k=k, distance_upper_bound=chord(reach))
        dist, idx = dist.reshape(len(ra), k), idx.reshape(len(ra), k)
        hit = np.isfinite(dist)
        query = np.nonzero(hit)[0]
        idx = idx[hit]
    nan = np.full(len(idx), np.nan)
    return _Pairs(query, t.ra[idx], t.dec[idx], t.pmra[idx] if has_pm else nan,
                  t.pmdec[idx] if has_pm else nan, t.epoch[idx] if has_pm else nan,
                  t.kind[idx], {c: v[idx] for c, v in chosen.items()}, len(t.ra), has_pm)


def _hats_pairs(ref: Reference, ra, dec, mjd, radius, columns) -> _Pairs:
    try:
        import lsdb
        import pandas as pd
    except ImportError:
        raise SpecscoutError(f"{ref.path} is a HATS catalogue: matching it needs LSDB "
                             f"(pip install 'specscout[hats]')") from None
    quiet_hats()
    try:
        catalog = lsdb.open_catalog(ref.path)
    except Exception as exc:
        raise SpecscoutError(f"{ref.path}: cannot open it as a HATS catalogue ({exc})") from exc
    info = catalog.hc_structure.catalog_info
    names = list(getattr(catalog, "all_columns", catalog.columns))
    ra_name, dec_name = info.ra_column, info.dec_column
    kind = _type_column([c for c in names if c not in (ra_name, dec_name)])
    pm = [column_named(names, options) for options in PM_NAMES]
    epoch = column_named(names, EPOCH_NAMES)
    has_pm = all(pm) and epoch is not None
    wanted = [c for c in columns if c in names]
    load = list(dict.fromkeys([ra_name, dec_name, *([kind] if kind else []), *wanted,
                               *([*pm, epoch] if has_pm else [])]))
    catalog = lsdb.open_catalog(ref.path, columns=load)
    rows = int(info.total_rows or 0)
    remark = ""
    reach, k = _search(radius, mjd, EPOCHS if has_pm else None)
    if catalog.margin is None:
        remark = ("; it has no margin cache, so entries just across a partition's border from "
                  "an object may be missed (specscout catalogue import makes one)")
    else:
        margin = float(catalog.margin.hc_structure.catalog_info.margin_threshold)
        if radius > margin:
            raise SpecscoutError(f"{ref.path}: its margin cache serves radii up to {margin:g} "
                                 f"arcsec, not {radius:g}: choose a smaller radius or make a "
                                 f"wider margin")
        if reach > margin:
            reach = margin
            remark = (f"; the search for moving entries stops at the margin cache "
                      f"({margin:g} arcsec)")
    if not len(ra):
        return _Pairs(np.empty(0, np.int64), *(np.empty(0) for _ in range(5)),
                      np.empty(0, object), {}, rows, has_pm, remark)
    left = lsdb.from_dataframe(
        pd.DataFrame({"q_": np.arange(len(ra)), "ra_": ra % 360, "dec_": dec}),
        ra_column="ra_", dec_column="dec_", catalog_name="specscout", margin_threshold=None)
    try:
        xm = left.crossmatch(catalog, radius_arcsec=reach, n_neighbors=k,
                             suffixes=("", "_ref"), suffix_method="overlapping_columns")
        # on the Dask client of this process if there is one (see crossmatch), else threads
        found = xm.compute(progress_bar=False)
    except RuntimeError as exc:
        # LSDB refuses to align catalogues whose sky coverages are disjoint: no pairs
        if "do not overlap" not in str(exc):
            raise
        return _Pairs(np.empty(0, np.int64), *(np.empty(0) for _ in range(5)),
                      np.empty(0, object), {c: np.empty(0) for c in wanted}, rows, has_pm,
                      remark + "; it does not cover the sky of these objects")
    out = {c: found[c + "_ref"] if c + "_ref" in found.columns else found[c] for c in load}
    query = found["q_"].to_numpy(np.int64)
    nan = np.full(len(query), np.nan)

    def values(name: str) -> np.ndarray:
        col = out[name]
        if col.dtype.kind in "fiub":
            return col.to_numpy(float, na_value=np.nan)
        return col.astype(object).where(col.notna(), "").astype(str).to_numpy(object)

    return _Pairs(query, values(ra_name), values(dec_name),
                  values(pm[0]) if has_pm else nan, values(pm[1]) if has_pm else nan,
                  values(epoch) if has_pm else nan,
                  values(kind) if kind else np.full(len(query), "", dtype=object),
                  {c: values(c) for c in wanted}, rows, has_pm, remark)


@cache
def quiet_hats() -> None:
    """Once per process: hats and LSDB log routine notes ("found collection", partitions
    computed from files) as warnings on the root logger; they are dropped there, and nothing
    else is."""
    import warnings

    def not_theirs(record: logging.LogRecord) -> bool:
        return not any(f"{os.sep}{name}{os.sep}" in record.pathname for name in ("hats", "lsdb"))

    logging.getLogger().addFilter(not_theirs)
    for module in ("hats", "lsdb"):
        warnings.filterwarnings("ignore", category=UserWarning, module=rf"{module}(\..*)?$")


def _nearest(p: _Pairs, ra, dec, mjd, radius: float):
    """Per query position, the nearest entry within ``radius`` (after proper motion, where it
    applies): (query indices, separations, types, columns, a note)."""
    era, edec = p.ra.astype(float), p.dec.astype(float)
    note = f"{p.rows:,} rows" if p.rows else "catalogue"
    if p.has_pm and np.isfinite(mjd).any():
        years = (mjd[p.query] - MJD_J2000) / DAYS_PER_YEAR + 2000.0 - p.epoch
        move = np.isfinite(years) & np.isfinite(p.pmra) & np.isfinite(p.pmdec)
        years = np.where(move, years, 0.0)
        cos = np.maximum(np.cos(np.radians(edec)), 1e-9)
        era = era + np.nan_to_num(p.pmra) * years / 3.6e6 / cos  # pmra is mu_alpha cos(dec)
        edec = np.clip(edec + np.nan_to_num(p.pmdec) * years / 3.6e6, -90, 90)
        note += ", proper motion applied to the spectra's epochs"
    elif p.has_pm:
        note += ", positions as listed (the spectra have no epoch)"
    else:
        note += ", positions as listed (no proper motion and epoch columns)"
    note += p.remark
    sep = separation(ra[p.query], dec[p.query], era, edec) if len(p.query) else np.empty(0)
    inside = sep <= radius
    order = np.lexsort((sep[inside], p.query[inside]))
    q, s = p.query[inside][order], sep[inside][order]
    first = np.r_[True, q[1:] != q[:-1]] if len(q) else np.empty(0, bool)
    pick = np.nonzero(inside)[0][order][first]
    return (q[first], s[first], p.kind[pick],
            {c: v[pick] for c, v in p.columns.items()}, note)
