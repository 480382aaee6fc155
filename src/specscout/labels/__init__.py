"""The labels humans give, and what waits for them: the label store, the query batches, the
audit samples, the annotators; CSV import and export.

:func:`label_store` opens a project's label database once per process and shares it.
"""

from __future__ import annotations

import os
import threading

from specscout.archive.project import Project
from specscout.labels.schema import resolve_url
from specscout.labels.store import LabelStore

__all__ = ["CATALOGUE_ANNOTATOR", "LabelStore", "close_label_store", "close_label_stores",
           "label_store", "resolve_url"]

#: The annotator of labels taken from a reference catalogue is this prefix and its name.
CATALOGUE_ANNOTATOR = "catalogue:"

_OPEN: dict[str, tuple[tuple | None, LabelStore]] = {}
_LOCK = threading.Lock()


def label_store(project: Project) -> LabelStore:
    """The label store of ``project`` (the ``[labels] url`` of its config), opened once per
    process: every caller shares its engine and connection pool. An SQLite file that was
    replaced or removed since (a project made again at the same path) is opened anew."""
    url = resolve_url(project.config.labels_url, project.path.resolve())
    with _LOCK:
        cached = _OPEN.get(url)
        if cached is not None and cached[0] == _identity(url):
            return cached[1]
        if cached is not None:
            cached[1].engine.dispose()
        store = LabelStore(url)
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


def _identity(url: str) -> tuple | None:
    """Which file an SQLite URL names now (device, inode); None for a server."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return None
    try:
        st = os.stat(url[len(prefix):])
    except FileNotFoundError:
        return ("missing",)
    return st.st_dev, st.st_ino
