"""Query strategies on small arrays, against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from specscout.learn.strategies import (
    bald_scores,
    entropy,
    k_center_greedy,
    query,
)

P = np.array([
    [1.0, 0.0, 0.0],     # 0: certain other
    [0.5, 0.5, 0.0],     # 1: entropy ln 2, margin 0
    [1 / 3, 1 / 3, 1 / 3],  # 2: maximal entropy ln 3
    [0.6, 0.3, 0.1],     # 3
    [0.1, 0.2, 0.7],     # 4: likely double-peak, fairly sure
    [0.2, 0.45, 0.35],   # 5: likely a target class, unsure
])


def test_entropy_by_hand():
    h = entropy(P)
    assert h[0] == pytest.approx(0.0)
    assert h[1] == pytest.approx(math.log(2))
    assert h[2] == pytest.approx(math.log(3))
    assert h[3] == pytest.approx(-(0.6 * math.log(0.6) + 0.3 * math.log(0.3)
                                   + 0.1 * math.log(0.1)))


def test_entropy_strategy_ranks_by_entropy():
    rows, scores = query("entropy", P, 3)
    # ln3 = 1.099 (row 2); row 5: 1.0487; row 3: 0.898; row 4: 0.802; row 1: 0.693.
    assert rows.tolist() == [2, 5, 3]
    assert scores[0] == pytest.approx(math.log(3))


def test_margin_and_least_confidence_by_hand():
    rows, scores = query("margin", P, 2)
    # margins: 1, 0, 0, 0.3, 0.5, 0.1 -> rows 1 and 2 tie at 0: row order breaks the tie.
    assert rows.tolist() == [1, 2] and scores.tolist() == [0.0, 0.0]
    rows, scores = query("least-confidence", P, 2)
    # 1 - max p: 0, 0.5, 0.667, 0.4, 0.3, 0.55
    assert rows.tolist() == [2, 5]
    assert scores == pytest.approx([2 / 3, 0.55])


def test_random_is_reproducible_and_distinct():
    a, _ = query("random", P, 4, rng=np.random.default_rng(1))
    b, _ = query("random", P, 4, rng=np.random.default_rng(1))
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 4


def test_bald_by_hand():
    # Two passes that disagree completely on row 0 and agree on row 1.
    mc = np.array([[[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]],
                   [[0.0, 1.0, 0.0], [0.5, 0.5, 0.0]]])
    s = bald_scores(mc)
    assert s[0] == pytest.approx(math.log(2))  # H(0.5, 0.5) - mean(0, 0)
    assert s[1] == pytest.approx(0.0)          # H(0.5, 0.5) - ln 2
    rows, _ = query("bald", mc.mean(axis=0), 1, mc_probabilities=mc)
    assert rows.tolist() == [0]
    with pytest.raises(ValueError, match="needs mc_probabilities"):
        query("bald", P, 1)


def test_k_center_greedy_by_hand():
    x = np.array([[0.0, 0.0], [0.1, 0.0], [10.0, 0.0], [5.0, 0.0], [10.0, 0.1]])
    # From 0: farthest is 4 (10.0005), then the point farthest from {0, 4}: 3 (5.0 from 0).
    assert k_center_greedy(x, 3).tolist() == [0, 4, 3]


def test_diverse_batch_skips_near_duplicates():
    p = np.array([[0.34, 0.33, 0.33], [0.34, 0.33, 0.33], [0.4, 0.3, 0.3], [0.9, 0.05, 0.05]])
    emb = np.array([[0.0, 0.0], [0.0, 0.001], [3.0, 4.0], [1.0, 1.0]])
    rows, _ = query("diverse", p, 2, embeddings=emb, pool_factor=2)
    # The two most uncertain candidates are 0 and 1 (2 more uncertain than 3); 1 duplicates
    # 0, so the second pick is the far candidate among the 4 = 2*2 most uncertain: row 2.
    assert rows.tolist() == [0, 2]


def test_rare_hunter_by_hand():
    rows, scores = query("rare", P, 2)
    h = entropy(P) / math.log(3)
    target = P[:, 1] + P[:, 2]
    expected = target * h
    assert scores == pytest.approx(sorted(expected, reverse=True)[:2])
    # Row 2 (maximally unsure, 2/3 target) and row 5 (unsure, 0.8 target) beat the sure row 4.
    assert set(rows.tolist()) == {2, 5}


def test_unknown_strategy():
    with pytest.raises(ValueError, match="unknown strategy"):
        query("psychic", P, 1)


def test_k_larger_than_pool():
    rows, _ = query("entropy", P, 100)
    assert sorted(rows.tolist()) == list(range(len(P)))


def test_diverse_batch_of_identical_spectra_has_no_repeats():
    # Archives hold copies (a file ingested under two names): the batch still has k rows.
    p = np.tile([[0.4, 0.3, 0.3]], (50, 1))
    emb = np.zeros((50, 8))
    rows, _ = query("diverse", p, 10, embeddings=emb, pool_factor=3)
    assert len(rows) == len(set(rows.tolist())) == 10
