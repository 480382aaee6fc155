"""Readers: any survey spectrum file -> :class:`~specscout.spectra.spectrum.Spectrum`.

One module per instrument, each registering an ``identify(fits) -> bool`` predicate and a
``read(fits, path) -> Spectrum`` loader with a priority (as specutils' loaders do). The file is
read and parsed once (:mod:`.fitsbytes`); the first reader whose ``identify`` accepts it reads
it. Files no reader knows go to specutils' readers when specutils is installed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from specscout.errors import ReadError
from specscout.spectra.readers.fitsbytes import FitsBytes, FitsError, load_bytes
from specscout.spectra.spectrum import Spectrum


@dataclass(frozen=True)
class Reader:
    name: str
    identify: Callable[[FitsBytes], bool]
    read: Callable[[FitsBytes, str], Spectrum]
    priority: int


REGISTRY: list[Reader] = []


def register(name: str, identify: Callable[[FitsBytes], bool], priority: int = 0):
    """Decorator registering ``read`` under ``name``; higher priority is tried first."""

    def wrap(read: Callable[[FitsBytes, str], Spectrum]) -> Callable[[FitsBytes, str], Spectrum]:
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


def read(path: str | Path) -> Spectrum:
    """Read one spectrum file (FITS, plain or gzip).

    Raises :class:`~specscout.errors.ReadError` naming the path and the reason when the file
    cannot be read.
    """
    path = str(path)
    try:
        fits = _open(path)
    except ReadError as exc:
        if exc.reason == "not-fits":  # maybe a format only specutils knows (ASCII, HDF5...)
            return fallback.read_or_raise(path, exc)
        raise
    reader = _identify(fits, path)
    if reader is None:
        return fallback.read_or_raise(
            path, ReadError(path, "unknown-layout", "no specscout reader identifies this file")
        )
    try:
        return reader.read(fits, path)
    except FitsError as exc:
        raise ReadError(path, exc.reason, exc.detail) from None


# Import the readers so that they register themselves.
from specscout.spectra.readers import fallback, lamost, ondrejov, sdss  # noqa: E402

__all__ = ["REGISTRY", "Reader", "fallback", "identify", "lamost", "ondrejov", "read",
           "register", "sdss"]
