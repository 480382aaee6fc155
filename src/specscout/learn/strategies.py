"""Query strategies: which spectra of the pool a human should label next.

Each strategy is a small function ``(probabilities, k, *, rng, ...) -> indices`` that returns
the ``k`` chosen rows of the pool (most wanted first) with their acquisition scores. Inputs are
plain arrays: ``probabilities`` (n, classes); ``mc_probabilities`` (passes, n, classes) from
MC-dropout for BALD; ``embeddings`` (n, features), or a function of rows giving theirs, for the
diverse batch. Ties are broken by row order, so every strategy is deterministic for a given
``rng``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

EPS = 1e-12


def entropy(p: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each row of class probabilities."""
    p = np.asarray(p, dtype=np.float64)
    return -np.sum(p * np.log(np.clip(p, EPS, 1.0)), axis=-1)


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k highest scores (ties: lower row first), in decreasing order."""
    k = min(k, scores.size)
    if k <= 0:
        return np.empty(0, np.int64), np.empty(0)
    part = np.argpartition(-scores, k - 1)[:k] if k < scores.size else np.arange(scores.size)
    # Rows tied with the k-th score but outside the partition would make ties depend on the
    # partition algorithm; include every row at least as good as the k-th and sort stably.
    kth = scores[part].min()
    candidates = np.nonzero(scores >= kth)[0]
    order = candidates[np.lexsort((candidates, -scores[candidates]))][:k]
    return order.astype(np.int64), scores[order]


def query_entropy(probabilities: np.ndarray, k: int, **_) -> tuple[np.ndarray, np.ndarray]:
    """Highest predictive entropy (the reference paper's strategy)."""
    return top_k(entropy(probabilities), k)


def query_margin(probabilities: np.ndarray, k: int, **_) -> tuple[np.ndarray, np.ndarray]:
    """Smallest difference between the two most probable classes."""
    p = np.sort(np.asarray(probabilities, dtype=np.float64), axis=1)
    return top_k(-(p[:, -1] - p[:, -2]), k)


def query_least_confidence(probabilities: np.ndarray, k: int,
                           **_) -> tuple[np.ndarray, np.ndarray]:
    """Lowest probability of the predicted class."""
    return top_k(1.0 - np.max(np.asarray(probabilities, dtype=np.float64), axis=1), k)


def query_random(probabilities: np.ndarray, k: int, *, rng: np.random.Generator,
                 **_) -> tuple[np.ndarray, np.ndarray]:
    """Uniformly at random (the baseline every strategy must beat)."""
    n = len(probabilities)
    rows = rng.choice(n, size=min(k, n), replace=False).astype(np.int64)
    return rows, np.zeros(rows.size)


def bald_scores(mc_probabilities: np.ndarray) -> np.ndarray:
    """Mutual information between prediction and weights (Houlsby et al. 2011):
    H(mean_t p_t) - mean_t H(p_t), from MC-dropout passes (passes, n, classes)."""
    mc = np.asarray(mc_probabilities, dtype=np.float64)
    return entropy(mc.mean(axis=0)) - entropy(mc).mean(axis=0)


def query_bald(probabilities: np.ndarray, k: int, *, mc_probabilities: np.ndarray,
               **_) -> tuple[np.ndarray, np.ndarray]:
    """Highest BALD score (disagreement between MC-dropout passes)."""
    return top_k(bald_scores(mc_probabilities), k)


def k_center_greedy(embeddings: np.ndarray, k: int, first: int = 0) -> np.ndarray:
    """Greedy k-center selection (Sener & Savarese 2018): start from ``first``, then
    repeatedly take the point farthest from those chosen."""
    x = np.asarray(embeddings, dtype=np.float64)
    chosen = [first]
    dist = np.linalg.norm(x - x[first], axis=1)
    dist[first] = -np.inf  # never chosen twice, even among identical spectra
    for _ in range(min(k, len(x)) - 1):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(x - x[nxt], axis=1))
        dist[nxt] = -np.inf
    return np.array(chosen, dtype=np.int64)


def query_diverse(probabilities: np.ndarray, k: int, *,
                  embeddings: np.ndarray | Callable[[np.ndarray], np.ndarray],
                  pool_factor: int = 10, **_) -> tuple[np.ndarray, np.ndarray]:
    """Uncertain and diverse: the ``pool_factor * k`` highest-entropy spectra, thinned to
    ``k`` by k-center greedy on their embeddings (starting from the most uncertain).
    ``embeddings``: of every row, or a function of rows giving theirs, so that only these
    candidates are ever embedded."""
    rows, scores = top_k(entropy(probabilities), pool_factor * k)
    emb = embeddings(rows) if callable(embeddings) else np.asarray(embeddings)[rows]
    picked = k_center_greedy(emb, k, first=0)
    return rows[picked], scores[picked]


def query_rare(probabilities: np.ndarray, k: int, *, target: tuple[int, ...] = (1, 2),
               **_) -> tuple[np.ndarray, np.ndarray]:
    """Rare-class hunter: uncertain AND likely to be of a target class. The score is the
    probability of the target classes times the normalised entropy, so confident "other"
    spectra (the bulk of an archive) and confident targets both rank low."""
    p = np.asarray(probabilities, dtype=np.float64)
    uncertainty = entropy(p) / np.log(p.shape[1])
    return top_k(p[:, list(target)].sum(axis=1) * uncertainty, k)


def isolation(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """How isolated each row of ``features`` is among them, 0-1 (1 the most): the anomaly
    score of an isolation forest (Liu, Ting & Zhou 2008; scikit-learn's), scaled by rank so
    that it reads the same whatever the features' scale."""
    from sklearn.ensemble import IsolationForest

    x = np.asarray(features, dtype=np.float32)
    if len(x) < 2:
        return np.zeros(len(x))
    forest = IsolationForest(n_estimators=200, random_state=seed).fit(x)
    score = -forest.score_samples(x)  # higher: fewer splits isolate it
    return np.argsort(np.argsort(score, kind="stable"), kind="stable") / (len(x) - 1)


def query_unusual(probabilities: np.ndarray, k: int, *,
                  embeddings: np.ndarray | Callable[[np.ndarray], np.ndarray],
                  target: tuple[int, ...] = (1, 2), pool_factor: int = 20,
                  **_) -> tuple[np.ndarray, np.ndarray]:
    """The unusual first: of the ``pool_factor * k`` spectra most likely of a target class,
    the ``k`` whose shapes are the most isolated in the network's features
    (:func:`isolation`), so that an annotator sees the odd ones early (the reference paper's
    "objects with unusual spectral properties"). Only these are ever embedded."""
    p = np.asarray(probabilities, dtype=np.float64)[:, list(target)].sum(axis=1)
    rows, _ = top_k(p, pool_factor * k)
    if not rows.size:
        return rows, np.empty(0)
    emb = embeddings(rows) if callable(embeddings) else np.asarray(embeddings)[rows]
    odd = isolation(emb)
    order = np.lexsort((rows, -odd))[:k]
    return rows[order], odd[order]


#: Strategies by name, as ``specscout query --strategy NAME`` takes them.
STRATEGIES: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "entropy": query_entropy,
    "margin": query_margin,
    "least-confidence": query_least_confidence,
    "random": query_random,
    "bald": query_bald,
    "diverse": query_diverse,
    "rare": query_rare,
    "unusual": query_unusual,
}
#: What each strategy needs besides the probabilities.
NEEDS = {"bald": "mc_probabilities", "diverse": "embeddings", "unusual": "embeddings"}


def query(strategy: str, probabilities: np.ndarray, k: int, *,
          rng: np.random.Generator | None = None, **inputs) -> tuple[np.ndarray, np.ndarray]:
    """Run strategy ``strategy``; ``inputs`` are ``mc_probabilities``, ``embeddings`` or
    ``target`` as the strategy needs."""
    try:
        func = STRATEGIES[strategy]
    except KeyError:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {sorted(STRATEGIES)}") \
            from None
    need = NEEDS.get(strategy)
    if need and inputs.get(need) is None:
        raise ValueError(f"strategy {strategy!r} needs {need}")
    return func(probabilities, k, rng=rng or np.random.default_rng(0), **inputs)
