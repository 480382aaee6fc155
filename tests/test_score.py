"""Fast inference of the paper's CNN equals the module's; fallbacks where it does not apply."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from specscout.learn.fastcnn import FastPaperCNN, supports
from specscout.learn.model import PaperCNN, SmallCNN
from specscout.learn.score import predict


@pytest.mark.parametrize("seed", [0, 1])
def test_fast_paper_cnn_equals_the_module(seed):
    torch.manual_seed(seed)
    model = PaperCNN().eval()
    x = torch.randn(300, 140)  # not a multiple of the block size
    with torch.inference_mode():
        expected = model(x)
    got = FastPaperCNN(model)(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


def test_predict_uses_the_fast_path_only_where_exact():
    torch.manual_seed(0)
    model = PaperCNN().eval()
    x = np.random.default_rng(0).normal(size=(50, 140)).astype(np.float32)
    fast, _ = predict(model, x, temperature=2.0)
    with torch.inference_mode():
        ref = torch.softmax(model(torch.as_tensor(x)) / 2.0, 1).numpy()
    np.testing.assert_allclose(fast, ref, atol=1e-6)
    assert supports(model) and not supports(PaperCNN(points=144)) and not supports(SmallCNN())
    other = PaperCNN(points=144).eval()  # falls back to the module
    probs, _ = predict(other, np.zeros((3, 144), np.float32))
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-6)


@pytest.mark.parametrize("model", [PaperCNN(), SmallCNN(), PaperCNN(points=144)])
def test_mc_dropout_passes_share_the_features_and_match_whole_passes(model):
    """Each pass through the shared features equals a whole forward pass of the module with
    the same dropout masks (the same random stream)."""
    points = getattr(model, "points", 140)
    x = np.random.default_rng(1).normal(size=(70, points)).astype(np.float32)
    torch.manual_seed(5)
    mean, bald = predict(model, x, temperature=1.5, batch=32, mc_passes=6)
    torch.manual_seed(5)
    model.train()  # whole passes with dropout on, batch by batch as predict draws them
    passes = np.empty((6, 70, 3), np.float32)
    with torch.inference_mode():
        for start in range(0, 70, 32):
            xb = torch.as_tensor(x[start : start + 32])
            for t in range(6):
                passes[t, start : start + 32] = torch.softmax(model(xb) / 1.5, 1).numpy()
    model.eval()
    np.testing.assert_allclose(mean, passes.mean(0), atol=2e-5)
    from specscout.learn.strategies import bald_scores

    np.testing.assert_allclose(bald, bald_scores(passes), atol=2e-5)
    assert np.abs(passes[0] - passes[1]).max() > 1e-4  # dropout was on: the passes differ
