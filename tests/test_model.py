"""The networks: the paper's architecture exactly, and the others by name."""

from __future__ import annotations

import pytest
import torch

from specscout.learn.model import MODELS, PaperCNN, build, count_parameters


def test_paper_cnn_has_the_papers_parameters_and_shapes():
    torch.manual_seed(0)
    model = PaperCNN(points=140, classes=3)
    # 6 conv (256 + 12,352 + 24,704 + 49,280 + 98,560 + 196,864) + dense 3584x512, 512x512, 512x3.
    assert count_parameters(model) == 2_481_731
    x = torch.randn(7, 140)
    assert model.features(x.unsqueeze(1)).shape == (7, 14 * 256)
    assert model.embed(x).shape == (7, 512)
    assert model(x).shape == (7, 3)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv1d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256]
    assert all(c.kernel_size == (3,) and c.padding == (0,) for c in convs)
    drops = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert drops == [0.5, 0.5]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_by_name(name):
    model = build(name, points=140, classes=3)
    assert model(torch.zeros(2, 140)).shape == (2, 3)
    with pytest.raises(ValueError, match="unknown model"):
        build("transformer-xxl", 140, 3)
