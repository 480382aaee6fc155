"""Acquisition: the spectra the model asks a human about next.

One function serves both the project's iterations (``specscout query``) and the
simulated-oracle experiments: a strategy of :mod:`.strategies` on the probabilities of the
rows still open, given what it needs besides (the BALD scores of MC-dropout passes; for the
diverse batch, embeddings of its candidates only, never of the whole pool).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from specscout.errors import SpecscoutError
from specscout.learn.strategies import STRATEGIES, query, top_k


def embedder(model, flux_of: Callable[[np.ndarray], np.ndarray]
             ) -> Callable[[np.ndarray], np.ndarray]:
    """A function of rows giving the network's penultimate features of those spectra
    (``flux_of(rows)`` reads them)."""
    import torch

    def embed(rows: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.as_tensor(np.asarray(flux_of(rows), dtype=np.float32))
            return model.eval().embed(x).numpy()

    return embed


def acquire(strategy: str, probabilities: np.ndarray, k: int, *, rng: np.random.Generator,
            target: tuple[int, ...], bald: np.ndarray | None = None,
            model=None,
            flux_of: Callable[[np.ndarray], np.ndarray] | None = None,
            ) -> tuple[np.ndarray, np.ndarray]:
    """(indices into ``probabilities``, acquisition scores) of the ``k`` spectra that
    ``strategy`` asks for, most wanted first. ``bald``: BALD scores (for ``bald``);
    ``model`` and ``flux_of(indices)``: the network and the spectra (for ``diverse`` and
    ``unusual``)."""
    if strategy not in STRATEGIES:
        raise SpecscoutError(f"unknown strategy {strategy!r}; choose from {sorted(STRATEGIES)}")
    if strategy == "bald":
        if bald is None:
            raise SpecscoutError("bald needs MC-dropout scores: 'specscout score --mc-passes 10'")
        return top_k(np.asarray(bald, dtype=np.float64), k)
    inputs: dict = {}
    if strategy in ("diverse", "unusual"):
        inputs["embeddings"] = embedder(model, flux_of)
    return query(strategy, probabilities, k, rng=rng, target=target, **inputs)
