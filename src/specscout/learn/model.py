"""Network definitions, by name. The default is the reference paper's CNN.

Every model maps a batch of spectra ``(batch, points)`` to class logits ``(batch, classes)``
in three stages: ``features`` (convolutions, no dropout), ``head`` (dense layers with dropout)
and ``out``; ``embed`` gives the penultimate features the diversity strategies use. MC-dropout
passes share what precedes the first dropout of ``head`` (see
:func:`specscout.learn.score.predict`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv1d(cin, cout, kernel_size=3), nn.ReLU()]  # valid padding, as the paper


class PaperCNN(nn.Module):
    """Skoda, Podsztavek & Tvrdik (2020): 6 conv + 3 max-pool + 3 dense layers.

    Conv1D(64,3) x2, MaxPool(2), Conv1D(128,3) x2, MaxPool(2), Conv1D(256,3) x2, MaxPool(2),
    Flatten, Dense 512, Dropout 0.5, Dense 512, Dropout 0.5, Dense(classes). ReLU, valid
    padding; 2,481,731 parameters for 140 points and 3 classes.
    """

    def __init__(self, points: int = 140, classes: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        self.points = points
        self.features = nn.Sequential(
            *_conv(1, 64), *_conv(64, 64), nn.MaxPool1d(2),
            *_conv(64, 128), *_conv(128, 128), nn.MaxPool1d(2),
            *_conv(128, 256), *_conv(256, 256), nn.MaxPool1d(2),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.features(torch.zeros(1, 1, points)).shape[1]
        self.head = nn.Sequential(
            nn.Linear(flat, 512), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(512, 512), nn.ReLU(), nn.Dropout(dropout),
        )
        self.out = nn.Linear(512, classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.device.type == "cpu":
            return self.head(as_products(self.features, x))
        return self.head(self.features(x.unsqueeze(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.embed(x))


def as_products(features: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``features(x.unsqueeze(1))`` of kernel-3 convolutions, ReLUs, pools of 2 and a
    flatten, evaluated channels-last with each convolution as one matrix product over the
    three shifted copies of its input: the same function (to float32 rounding), whose
    backward pass takes 12-20 % less time per training step on 2 AVX2 cores than oneDNN's
    convolution's (benchmarks/bench_train.py)."""
    h = x.unsqueeze(-1)  # (batch, length, channels)
    for layer in features:
        if isinstance(layer, nn.Conv1d):
            if (layer.kernel_size, layer.stride, layer.padding, layer.dilation, layer.groups,
                    layer.bias is None) != ((3,), (1,), (0,), (1,), 1, False):
                raise TypeError(f"no product form of {layer}")
            n, length, _ = h.shape
            shifted = torch.cat([h[:, k : length - 2 + k] for k in range(3)], dim=-1)
            weight = layer.weight.permute(2, 1, 0).reshape(-1, layer.out_channels)
            h = torch.addmm(layer.bias, shifted.reshape(-1, shifted.shape[-1]), weight
                            ).reshape(n, length - 2, -1)
        elif isinstance(layer, nn.ReLU):
            h = torch.relu(h)
        elif isinstance(layer, nn.MaxPool1d) and (
                layer.kernel_size, layer.stride, layer.padding, layer.dilation,
                layer.ceil_mode) in ((2, 2, 0, 1, False), ((2,), (2,), (0,), (1,), False)):
            n, length, c = h.shape
            h = h[:, : length // 2 * 2].reshape(n, length // 2, 2, c).amax(2)
        elif isinstance(layer, nn.Flatten) and (layer.start_dim, layer.end_dim) == (1, -1):
            h = h.transpose(1, 2).flatten(1)  # the channels-first order of the module
        else:
            raise TypeError(f"no product form of {layer}")
    return h


class SmallCNN(nn.Module):
    """A lighter network (~60 k parameters): three conv blocks and global average pooling.
    Much faster to train and score; a baseline against the paper's network."""

    def __init__(self, points: int = 140, classes: int = 3, dropout: float = 0.3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(64, 128, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool1d(1), nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Linear(128, 128), nn.ReLU(), nn.Dropout(dropout))
        self.out = nn.Linear(128, classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.unsqueeze(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.embed(x))


#: Architectures by name: ``MODELS[name](points=..., classes=...)``.
MODELS: dict[str, Callable[..., nn.Module]] = {"paper-cnn": PaperCNN, "small-cnn": SmallCNN}


def build(name: str, points: int, classes: int) -> nn.Module:
    try:
        return MODELS[name](points=points, classes=classes)
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}") from None


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
