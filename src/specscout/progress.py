"""Progress bars on a terminal only: piped or logged, a command prints its one summary line
per stage instead of a bar redrawn in place."""

from __future__ import annotations

import sys


def progress_bar(total: int, unit: str, desc: str | None = None, **options):
    """A tqdm bar on stderr when stderr is a terminal; otherwise None."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, **options)
