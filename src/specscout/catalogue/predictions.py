"""What the model proposes: the candidate rule, and an iteration's probabilities read in
chunks (the candidate catalogue, the audit's strata and the report all use both)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

CHUNK = 1 << 20


def chunks(probabilities: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, float32 block) over a (memory-mapped) probability array."""
    for start in range(0, len(probabilities), CHUNK):
        yield start, np.asarray(probabilities[start : start + CHUNK], dtype=np.float32)


def model_candidates(p: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(most probable class, whether the model proposes it as a candidate) of each row of
    ``p``: a class other than the first, whose probability is at least ``threshold``."""
    best = p.argmax(1)
    return best, (best > 0) & (p.max(1) >= threshold)
