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
        return self.head(self.features(x.unsqueeze(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.embed(x))


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
