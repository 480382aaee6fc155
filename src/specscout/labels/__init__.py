"""The labels humans give, and what waits for them: the label store, the query batches, the
audit samples, the annotators; CSV import and export.

:func:`label_store` opens a project's label database once per process and shares it.
"""

from __future__ import annotations

from functools import cache

from specscout.archive.project import Project
from specscout.labels.schema import resolve_url
from specscout.labels.store import LabelStore

__all__ = ["LabelStore", "label_store", "resolve_url"]


def label_store(project: Project) -> LabelStore:
    """The label store of ``project`` (the ``[labels] url`` of its config), opened once per
    process: every caller shares its engine and connection pool."""
    return _open(resolve_url(project.config.labels_url, project.path.resolve()))


@cache
def _open(url: str) -> LabelStore:
    return LabelStore(url)
