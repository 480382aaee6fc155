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
