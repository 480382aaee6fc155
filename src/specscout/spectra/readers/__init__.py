"""Readers: any survey spectrum file -> :class:`~specscout.spectra.spectrum.Spectrum` (or
several, for files that hold more than one).

One module per instrument, each registering an ``identify(fits) -> bool`` predicate and a
``read(fits, path)`` loader with a priority (as specutils' loaders do); a loader returns one
Spectrum, or a list of them. The file is read and parsed once (:mod:`.fitsbytes`); the first
reader whose ``identify`` accepts it reads it. Files no reader knows go to specutils' readers
when specutils is installed. :func:`read_all` gives every spectrum of a file, :func:`read` the
first (a multi-epoch file's coadd).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from specscout.errors import PartError, ReadError
from specscout.spectra.readers.fitsbytes import FitsBytes, FitsError, load_bytes
from specscout.spectra.spectrum import Spectrum


@dataclass(frozen=True)
class Reader:
    name: str
    identify: Callable[[FitsBytes], bool]
    read: Callable[[FitsBytes, str], Spectrum | list[Spectrum]]
    priority: int


REGISTRY: list[Reader] = []


def register(name: str, identify: Callable[[FitsBytes], bool], priority: int = 0):
    """Decorator registering ``read`` under ``name``; higher priority is tried first."""

    def wrap(read: Callable) -> Callable:
        REGISTRY.append(Reader(name, identify, read, priority))
        REGISTRY.sort(key=lambda r: -r.priority)
        return read

    return wrap


def _open(path: str) -> FitsBytes:
    try:
        return FitsBytes(load_bytes(path))
    except FitsError as exc:
        raise ReadError(path, exc.reason, exc.detail) from None
    except OSError as exc:
        raise ReadError(path, "io", exc.strerror or str(exc)) from None


def _identify(fits: FitsBytes, path: str) -> Reader | None:
    for reader in REGISTRY:
        try:
            if reader.identify(fits):
                return reader
        except FitsError as exc:
            raise ReadError(path, exc.reason, exc.detail) from None
    return None


def identify(path: str | Path) -> str:
    """The name of the reader that would read ``path`` (``specutils`` for the fallback)."""
    path = str(path)
    fits = _open(path)
    reader = _identify(fits, path)
    return reader.name if reader else "specutils"


def read_all(path: str | Path, failed: list[PartError] | None = None) -> list[Spectrum]:
    """Every spectrum of one file (FITS, plain or gzip), in the file's order.

    Raises :class:`~specscout.errors.ReadError` naming the path and the reason when the file
    cannot be read. In a file of several spectra, one that cannot be read while others can
    (a damaged exposure table) is left out, and its :class:`~specscout.errors.PartError` is
    appended to ``failed`` when given.
    """
    path = str(path)
    try:
        fits = _open(path)
    except ReadError as exc:
        if exc.reason == "not-fits" and fallback.may_read(path):  # ASCII, HDF5...
            return [fallback.read_or_raise(path, exc)]
        raise
    reader = _identify(fits, path)
    if reader is None:
        try:
            fits.check_structure()
        except FitsError as exc:
            raise ReadError(path, exc.reason, exc.detail) from None
        return [fallback.read_or_raise(
            path, ReadError(path, "unknown-layout", "no specscout reader identifies this file"))]
    try:
        found = reader.read(fits, path)
    except FitsError as exc:
        raise ReadError(path, exc.reason, exc.detail) from None
    except (ValueError, TypeError, IndexError, KeyError, OverflowError, ZeroDivisionError) as exc:
        # values no reader foresaw (a damaged file): reported, never a crash of the caller
        raise ReadError(path, "malformed", f"{reader.name} reader: {type(exc).__name__}: "
                                           f"{exc}") from None
    found = found if isinstance(found, list) else [found]
    spectra = [s for s in found if not isinstance(s, PartError)]
    errors = [s for s in found if isinstance(s, PartError)]
    if not spectra:
        if errors:
            raise ReadError(path, errors[0].reason, errors[0].detail)
        raise ReadError(path, "no-flux", f"the {reader.name} reader found no spectrum in it")
    if failed is not None:
        failed.extend(errors)
    return spectra


def read(path: str | Path) -> Spectrum:
    """The first spectrum of one file that reads: for a file of several epochs, their coadd
    (or, when the coadd's tables are damaged, the first exposure).

    Raises :class:`~specscout.errors.ReadError` naming the path and the reason when the file
    cannot be read.
    """
    return read_all(path)[0]


# Import the readers so that they register themselves.
from specscout.spectra.readers import (  # noqa: E402
    desi,
    fallback,
    lamost,
    lamost_mrs,
    ondrejov,
    sdss,
)

__all__ = ["REGISTRY", "Reader", "desi", "fallback", "identify", "lamost", "lamost_mrs",
           "ondrejov", "read", "read_all", "register", "sdss"]
