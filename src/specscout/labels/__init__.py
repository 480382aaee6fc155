"""The labels humans give, and what waits for them: the label store, the query batches, the
audit samples, the annotators; CSV import and export.

:func:`label_store` opens a project's label database once per process and shares it.
"""

from __future__ import annotations

import contextlib
import os
import threading

import sqlalchemy as sa

from specscout.archive.project import Project
from specscout.errors import SpecscoutError
from specscout.labels.schema import resolve_url
from specscout.labels.store import LabelStore

__all__ = ["CATALOGUE_ANNOTATOR", "LabelStore", "close_label_store", "close_label_stores",
           "label_store", "resolve_url"]

#: The annotator of labels taken from a reference catalogue is this prefix and its name.
CATALOGUE_ANNOTATOR = "catalogue:"

_OPEN: dict[str, tuple[tuple | None, LabelStore]] = {}
_LOCK = threading.Lock()


#: In a project whose label database is an SQLite file: the file's path once it was made.
#: A project that had one never gets a new, empty one silently.
MADE = ".labels-made"


def label_store(project: Project) -> LabelStore:
    """The label store of ``project`` (the ``[labels] url`` of its config), opened once per
    process: every caller shares its engine and connection pool. An SQLite file that was
    replaced or removed since (a project made again at the same path) is opened anew; one
    that this project had and that has gone is refused (its labels would be lost)."""
    url = resolve_url(project.config.labels_url, project.path.resolve())
    with _LOCK:
        cached = _OPEN.get(url)
        identity = _identity(url)
        if cached is not None and cached[0] == identity:
            return cached[1]
        if cached is not None:
            cached[1].engine.dispose()
        made = project.path / MADE
        file = _file(url)
        if identity == ("missing",) and made.is_file() and made.read_text().strip() == file:
            raise SpecscoutError(
                f"the label database {file} has gone, but this project had one: restore it "
                f"from a backup; or remove {made} to start again with no labels (and then "
                f"'specscout labels import' an export, if you have one)")
        store = LabelStore(url)
        if file is not None and not (made.is_file() and made.read_text().strip() == file):
            with contextlib.suppress(OSError):  # a read-only project: nothing to protect
                made.write_text(file + "\n")
        _OPEN[url] = (_identity(url), store)
        return store


def close_label_store(project: Project) -> None:
    """Close the label store of ``project`` if this process opened it (a scratch project
    that is done with)."""
    url = resolve_url(project.config.labels_url, project.path.resolve())
    with _LOCK:
        cached = _OPEN.pop(url, None)
    if cached is not None:
        cached[1].engine.dispose()


def close_label_stores() -> None:
    """Close every label store this process opened."""
    with _LOCK:
        for _, store in _OPEN.values():
            store.engine.dispose()
        _OPEN.clear()


def _file(url: str) -> str | None:
    """The file of an SQLite URL (its query, e.g. ``?timeout=30``, left out); None for a
    server or an in-memory database."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return parsed.database


def _identity(url: str) -> tuple | None:
    """Which file an SQLite URL names now (device, inode); None for a server."""
    file = _file(url)
    if file is None:
        return None
    try:
        st = os.stat(file)
    except FileNotFoundError:
        return ("missing",)
    return st.st_dev, st.st_ino
