"""Scoring throughput of the paper's CNN: specscout against plain fp32 eager PyTorch.

Baseline: the network as a torch module, float32, eager, batches of 4096, torch's default
threads (``model(x)`` then softmax). specscout: ``specscout.learn.score.predict`` on the same
spectra in the same run (on a CPU: the Winograd/channels-last evaluation of fastcnn.py). Rounds
are interleaved; ratios are taken within a round and their median reported. For orientation,
eager PyTorch in blocks of 128 (what cache blocking alone gives) and bfloat16 autocast are timed
once.

    python benchmarks/bench_score.py [--spectra 16384] [--rounds 5] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from specscout.learn.model import PaperCNN
from specscout.learn.score import predict


def rate(func, n: int) -> float:
    start = time.perf_counter()
    func()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spectra", type=int, default=16384)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = PaperCNN().eval()
    x = np.random.default_rng(0).normal(size=(args.spectra, 140)).astype(np.float32)
    xt = torch.as_tensor(x)
    device = torch.device(args.device)

    def eager(block: int = 4096, dtype=None) -> None:
        m = model.to(device)
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16,
                                                    enabled=dtype is not None):
            for i in range(0, len(xt), block):
                torch.softmax(m(xt[i : i + block].to(device)).float(), 1).cpu()

    def ours() -> None:
        predict(model, x, batch=4096, device=device)

    eager()
    ours()  # warm up
    print(f"paper CNN (2,481,731 parameters), {args.spectra} spectra of 140 points, "
          f"device {device}, {torch.get_num_threads()} threads")
    print(f"{'round':<7}{'eager fp32 b4096':>18}{'specscout':>12}{'ratio':>8}   (spectra/s)")
    ratios = []
    for r in range(args.rounds):
        base = rate(eager, args.spectra)
        fast = rate(ours, args.spectra)
        ratios.append(fast / base)
        print(f"{r + 1:<7}{base:>18.0f}{fast:>12.0f}{ratios[-1]:>7.2f}x")
    print(f"median ratio {np.median(ratios):.2f}x")
    blocks = rate(lambda: eager(128), args.spectra)
    bf16 = rate(lambda: eager(4096, "bf16"), args.spectra)
    print(f"orientation: eager fp32 in blocks of 128: {blocks:.0f}/s; "
          f"eager bfloat16 autocast b4096: {bf16:.0f}/s")


if __name__ == "__main__":
    main()
