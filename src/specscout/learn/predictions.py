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


def churn(before: np.ndarray, after: np.ndarray, threshold: float = 0.5) -> dict[str, int]:
    """How the candidate list changed from one iteration's probabilities to the next's
    (both in pool order; rows the pool gained since count as added)."""
    added = dropped = total = 0
    for start, p in chunks(after):
        _, now = model_candidates(p, threshold)
        total += int(now.sum())
        k = max(0, min(len(p), len(before) - start))
        if k:
            _, old = model_candidates(np.asarray(before[start : start + k], np.float32),
                                      threshold)
            added += int((now[:k] & ~old).sum())
            dropped += int((old & ~now[:k]).sum())
        added += int(now[k:].sum())
    return {"candidates": total, "added": added, "dropped": dropped}
