"""One full active-learning iteration on a large pool: train + score + query, timed.

The pool: N rows (default 1,000,000) made from 4,000 simulated LAMOST spectra (real MILES
photospheres, 1 % emission, 0.3 % double-peak) put through the real preprocessing, each row a
copy with fresh noise (sigma 0.02 in normalised units), committed to a project's store in parts.
The labelled set: 2,000 simulated Ondrejov-like spectra (the paper's class mix) ingested with
resolution matching. Then ``train`` (the paper's CNN) + ``score`` + ``query`` (entropy, 100),
as ``specscout iterate`` runs them, with the peak memory of this process.

    python benchmarks/bench_iteration.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from specscout.archive.ingest import ingest, load_labels
from specscout.archive.project import Project
from specscout.learn.iterate import query_step, score_step, train_step
from specscout.learn.train import TrainConfig
from specscout.simulate import (
    LAMOST,
    SurveyConfig,
    draw,
    load_templates,
    render,
    simulate_labelled,
)
from specscout.spectra.preprocess import PreprocessConfig, prepare
from specscout.spectra.spectrum import Meta, Spectrum
from specscout.spectra.writers import lamost_wavelength


def base_spectra(n: int, seed: int = 0) -> np.ndarray:
    templates, wave = load_templates(), lamost_wavelength()
    config, pre = SurveyConfig(seed=seed), PreprocessConfig()
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        truth = draw(rng, config, LAMOST, templates)
        flux, ivar, mask, _ = render(truth, templates, LAMOST, wave, rng, config)
        s = Spectrum(wave, flux.astype(np.float32), ivar.astype(np.float32), mask != 0,
                     "vacuum", Meta(id=str(i), path="", instrument="", layout=""))
        p = prepare(s, pre)
        if p.ok:
            out.append(p.flux)
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--labelled", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        project = Project.init(tmp / "p")
        t0 = time.perf_counter()
        base = base_spectra(4000)
        rng = np.random.default_rng(1)
        store = project.store()
        part = 65536
        for start in range(0, args.rows, part):
            n = min(part, args.rows - start)
            rows = base[rng.integers(0, len(base), n)] + rng.normal(0, 0.02, (n, 140))
            store.commit(rows.astype(np.float32), [
                {"path": f"synthetic/{start + i}", "id": f"syn-{start + i}", "status": "ok",
                 "flags": 0, "reason": "", "detail": ""} for i in range(n)])
        simulate_labelled(tmp / "ond", SurveyConfig(n=args.labelled, seed=3,
                                                    fractions={"emission": 0.41,
                                                               "double-peak": 0.12}))
        labels = load_labels(tmp / "ond" / "labels.csv", project.config.classes)
        ingest(project.store("labelled"), [tmp / "ond"], project.config.preprocess(None, 1531),
               labels=labels, progress=False)
        print(f"pool {len(project.store())} rows, labelled set {len(project.store('labelled'))}"
              f" (setup {time.perf_counter() - t0:.0f} s)")
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t = time.perf_counter()
        # the rows are copies with fresh noise, not files: nothing to inject lines into
        number = train_step(project, TrainConfig(model="paper-cnn"), domain=False)
        t_train = time.perf_counter() - t
        t = time.perf_counter()
        scores = score_step(project, number)
        t_score = time.perf_counter() - t
        t = time.perf_counter()
        batch = query_step(project, "entropy", 100, number)
        t_query = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    total = t_train + t_score + t_query
    print(f"train {t_train:.0f} s | score {t_score:.0f} s ({scores.rate:.0f} spectra/s) | "
          f"query {t_query:.1f} s ({len(batch)} queued) | iteration {total:.0f} s = "
          f"{total / 60:.1f} min")
    print(f"peak RSS of this process: {peak:.0f} MB (before the iteration: {rss0:.0f} MB)")


if __name__ == "__main__":
    main()
