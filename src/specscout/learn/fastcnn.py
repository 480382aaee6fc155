"""Fast CPU inference for the paper's CNN: the same function, fewer multiplications.

Scoring 4 million spectra is the hot path of the whole method. On CPUs without bf16 hardware
(e.g. AVX2 only) PyTorch's eager Conv1d on batches of 4096 leaves the GEMM units underused.
This module evaluates the identical network differently (benchmarks/bench_score.py):

- activations in channels-last layout (batch, length, channels), processed in blocks of 128
  spectra that stay in cache;
- every kernel-3 convolution after the first by Winograd's minimal filtering F(2,3)
  (Lavin & Gray 2016): two outputs from four products instead of six, as four matrix
  products over all channels, i.e. 1.5x fewer multiply-adds;
- each max-pool folded into the Winograd output transform (max of the two outputs of a tile);
- the dense weights permuted once so that the channels-last flatten matches the paper's order.

The outputs equal the module's to float32 rounding (tests/test_score.py). Dropout is inactive
at inference; MC-dropout passes share everything before the first dropout (the convolutions
and the first dense layer) and repeat the rest.
"""

from __future__ import annotations

import torch

from specscout.learn.model import PaperCNN

BLOCK = 128


class FastPaperCNN:
    """Inference-only evaluation of a :class:`~specscout.learn.model.PaperCNN`'s weights."""

    def __init__(self, model: PaperCNN) -> None:
        convs = [m for m in model.features if isinstance(m, torch.nn.Conv1d)]
        first = convs[0]
        self.w0 = first.weight.detach().permute(2, 1, 0).reshape(3, -1).contiguous()
        self.bias = [c.bias.detach().clone() for c in convs]
        self.u = []  # Winograd-transformed filters, four (Cin, Cout) matrices per layer
        for c in convs[1:]:
            g0, g1, g2 = c.weight.detach().permute(2, 1, 0)  # each (Cin, Cout)
            self.u.append([t.contiguous() for t in
                           (g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2)])
        dense1, dense2, out = model.head[0], model.head[3], model.out
        self.dropout = model.head[2].p
        channels = convs[-1].out_channels
        length = dense1.in_features // channels
        # The paper flattens (channels, length); here activations are (length, channels).
        w1 = dense1.weight.detach().reshape(-1, channels, length).permute(0, 2, 1)
        self.w1 = w1.reshape(dense1.out_features, -1).t().contiguous()
        self.b1 = dense1.bias.detach().clone()
        self.w2, self.b2 = dense2.weight.detach().t().contiguous(), dense2.bias.detach().clone()
        self.w3, self.b3 = out.weight.detach().t().contiguous(), out.bias.detach().clone()

    def _winograd(self, d: tuple[torch.Tensor, ...], layer: int, pool: bool):
        """One convolution by F(2,3) on tiles (d0, d1, d2, d3), each (batch, tiles, Cin).
        Returns the pooled output (batch, tiles, Cout), or, unpooled, the even and odd outputs
        as two streams, which the next layer's tiles take without interleaving them."""
        d0, d1, d2, d3 = d
        b, tiles, c = d0.shape
        m1, m2, m3, m4 = (torch.mm(v.reshape(b * tiles, c), u) for v, u in
                          zip((d0 - d2, d1 + d2, d2 - d1, d1 - d3), self.u[layer - 1],
                              strict=True))
        even = m1.add_(m2).add_(m3)  # outputs 2t
        odd = m2.sub_(m3).sub_(m4)  # outputs 2t + 1
        bias = self.bias[layer]
        if pool:  # max(relu(a + bias), relu(c + bias)) == relu(max(a, c) + bias)
            return torch.relu_(torch.maximum(even, odd).add_(bias)).reshape(b, tiles, -1)
        return (torch.relu_(even.add_(bias)).reshape(b, tiles, -1),
                torch.relu_(odd.add_(bias)).reshape(b, tiles, -1))

    @staticmethod
    def _tiles(h: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """F(2,3) input tiles of a (batch, length, channels) signal."""
        n = (h.shape[1] - 2) // 2
        return tuple(h[:, k : k + 2 * n : 2] for k in range(4))

    @staticmethod
    def _stream_tiles(even: torch.Tensor, odd: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The same tiles from a signal held as its even and odd samples."""
        return even[:, :-1], odd[:, :-1], even[:, 1:], odd[:, 1:]

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        b, length = x.shape
        cols = torch.stack([x[:, k : length - 2 + k] for k in range(3)], dim=2)
        h = torch.relu_(torch.addmm(self.bias[0], cols.reshape(-1, 3), self.w0))
        h = h.reshape(b, length - 2, -1)
        h = self._winograd(self._tiles(h), 1, pool=True)
        h = self._winograd(self._tiles(h), 2, pool=False)
        h = self._winograd(self._stream_tiles(*h), 3, pool=True)
        h = self._winograd(self._tiles(h), 4, pool=False)
        h = self._winograd(self._stream_tiles(*h), 5, pool=True)
        return h.reshape(b, -1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The flattened convolutional features of spectra ``x``, on cache-sized blocks."""
        with torch.inference_mode():
            return torch.cat([self._features(x[i : i + BLOCK])
                              for i in range(0, len(x), BLOCK)])

    def dense(self, h: torch.Tensor) -> torch.Tensor:
        """The first dense layer (the largest), which precedes every dropout."""
        with torch.inference_mode():
            return torch.relu_(torch.addmm(self.b1, h, self.w1))

    def rest(self, h: torch.Tensor, dropout: bool = False) -> torch.Tensor:
        """Logits from the first dense layer's output; ``dropout``: one MC-dropout pass, so
        that passes share everything before the first dropout."""
        with torch.inference_mode():
            if dropout:
                h = torch.nn.functional.dropout(h, self.dropout, training=True)
            h = torch.relu_(torch.addmm(self.b2, h, self.w2))
            if dropout:
                h = torch.nn.functional.dropout(h, self.dropout, training=True)
            return torch.addmm(self.b3, h, self.w3)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of spectra ``x`` (batch, points), float32 on the CPU. The convolutions run
        on cache-sized blocks; the dense layers, whose weights are the large operand, on the
        whole batch at once."""
        return self.rest(self.dense(self.features(x)))


def supports(model: torch.nn.Module) -> bool:
    """Whether ``model`` can be evaluated here: a PaperCNN whose Winograd layers all see even
    lengths, which holds when the grid has points = 4 (mod 8), as the default 140."""
    return isinstance(model, PaperCNN) and model.points % 8 == 4
