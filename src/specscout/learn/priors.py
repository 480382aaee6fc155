"""Probabilities for the survey: the class priors of the pool, and the model's probabilities
made relative to them.

A network's probabilities are posteriors under the class mix it was trained on (with a
balanced loss: equal priors over the classes it saw). The survey's mix is different (about 1 %
targets), so a probability of 0.5 on the training mix is far less on the sky. Temperature
scaling cannot correct that; the prior shift is corrected by Bayes' rule, with the pool's
priors estimated by the EM algorithm of Saerens, Latinne & Decaestecker (2002, Neural
Computation 14, 21) on the pool's own scores.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

#: No class's prior is taken below this (a class EM drives to zero could never come back).
FLOOR = 1e-6


def shift(probabilities: np.ndarray, trained: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Posteriors under priors ``trained`` re-weighted to priors ``target`` (Bayes' rule)."""
    ratio = np.asarray(target, np.float64) / np.maximum(np.asarray(trained, np.float64), FLOOR)
    p = np.asarray(probabilities, np.float64) * ratio
    return (p / p.sum(1, keepdims=True)).astype(np.float32)


def em_priors(chunks, trained: np.ndarray, tol: float = 1e-6,
              max_iter: int = 200) -> tuple[np.ndarray, int]:
    """The pool's class priors by EM on its posteriors. ``chunks``: a callable returning an
    iterator of (n, classes) arrays of the model's probabilities (so that a pool of millions is
    read in pieces, each pass in bounded memory). Returns (priors, iterations)."""
    trained = np.maximum(np.asarray(trained, np.float64), FLOOR)
    trained = trained / trained.sum()
    priors = trained.copy()
    for it in range(1, max_iter + 1):
        total, n = np.zeros_like(priors), 0
        for p in chunks():
            total += shift(p, trained, priors).sum(0, dtype=np.float64)
            n += len(p)
        if not n:
            return trained, 0
        new = np.maximum(total / n, FLOOR)
        new /= new.sum()
        if np.abs(new - priors).max() < tol:
            return new, it
        priors = new
    return priors, max_iter


def in_chunks(probabilities: np.ndarray, size: int = 1 << 18) -> Iterator[np.ndarray]:
    for i in range(0, len(probabilities), size):
        yield np.asarray(probabilities[i : i + size])
