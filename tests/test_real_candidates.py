"""On the real LAMOST files: a model trained on simulated spectra (the labelled set and
oracle labels of a simulated survey) finds the three real emission-line stars among the
normal stars, and the catalogue commands run end to end on them."""

from __future__ import annotations

import csv

import numpy as np
import pyarrow.parquet as pq

from specscout.archive.project import Project
from specscout.catalogue.candidates import build
from specscout.cli import main

EMISSION = ("bt-cmi", "spec-56265-VB069N07V2_sp04-027", "spec-55959-GAC_094N27_V3_sp16-125")


def test_the_real_emission_line_stars_are_found(shared_data, tmp_path, capsys):
    p = str(tmp_path / "p")
    assert main(["init", p]) == 0
    assert main(["simulate", str(tmp_path / "ond"), "--kind", "labelled", "--n", "300",
                 "--seed", "7", "--quiet", "--workers", "2"]) == 0
    assert main(["simulate", str(tmp_path / "sim"), "--n", "3000", "--emission", "0.08",
                 "--double-peak", "0.03", "--seed", "8", "--quiet", "--workers", "2"]) == 0
    assert main(["ingest", p, str(shared_data / "lamost"), str(shared_data / "pairs" / "lamost"),
                 str(tmp_path / "sim"), "--quiet", "--workers", "2"]) == 0
    assert main(["ingest", p, str(tmp_path / "ond"), "--labels",
                 str(tmp_path / "ond" / "labels.csv"), "--degrade-to", "1531", "--quiet",
                 "--workers", "2"]) == 0
    # The simulated survey's spectra, labelled by the truth as an annotator would.
    truth = pq.read_table(tmp_path / "sim" / "truth.parquet", columns=["id", "class"])
    with (tmp_path / "oracle.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "label"])
        w.writerows(zip(truth["id"].to_pylist(), truth["class"].to_pylist(), strict=True))
    assert main(["labels", "import", p, str(tmp_path / "oracle.csv")]) == 0
    assert main(["iterate", p, "--no-domain", "--model", "small-cnn", "--epochs", "40",
                 "--patience", "8", "--quiet", "--batch", "10"]) == 0
    cat = build(Project(p), references=(shared_data / "catalogs" /
                                        "hou2016-emission-line-stars-subset.csv",))
    real = cat.spectra[["-SIM" not in str(i) for i in cat.spectra["id"]]]
    ids = set(real["id"])
    assert set(EMISSION) <= ids, sorted(ids)
    normal = len(ids - set(EMISSION))
    print(f"real normal stars among the candidates: {normal} of 206")
    assert main(["candidates", p, "--out", str(tmp_path / "c.xml")]) == 0
    assert main(["report", p]) == 0
    assert np.all(np.isfinite(np.asarray(real["ra"], float)))


def test_trained_in_the_survey_domain_the_first_model_lists_few_normal_stars(shared_data,
                                                                             tmp_path):
    """Every real LAMOST LRS spectrum here as the pool, no label on any of them, no labelled
    set: the first network, trained on lines injected into the pool's own spectra and on
    pool negatives (cross-fitted), finds the four real emission-line stars, ranks them above
    nearly every one of the 237 normal stars and lists few of those at 0.5.

    Measured with seed 0 (benchmarks/bench_real.py option b) on an AVX-512 CPU: 2 normal
    stars listed, 1 ranked above the weakest of the four; before injected lines had to show
    in emission to be positives, 12 and 3 there, 7 and 0 on an AVX2 CPU (the kernels round
    differently and training lands elsewhere; each is deterministic on its CPU). The labelled
    set alone lists 18-36 of them over three seeds on the AVX-512 CPU (mean 27)."""
    from specscout.learn.iterate import score_step, train_step
    from specscout.learn.train import TrainConfig

    p = str(tmp_path / "p")
    assert main(["init", p]) == 0
    assert main(["ingest", p, str(shared_data / "lamost"), str(shared_data / "lamost-extra"),
                 str(shared_data / "pairs" / "lamost"), "--quiet", "--workers", "2"]) == 0
    project = Project(p)
    number = train_step(project, TrainConfig(model="paper-cnn", seed=0), domain=True)
    p_target = score_step(project, number).probabilities.astype(np.float32)[:, 1:].sum(1)
    ids = project.store("pool").meta(columns=["row", "id"]).sort_by("row")["id"].to_pylist()
    four = np.isin(ids, [*EMISSION, "spec-55862-B6212_sp01-006"])
    assert four.sum() == 4
    normal_listed = int((p_target[~four] > 0.5).sum())
    above_weakest = int((p_target[~four] > p_target[four].min()).sum())
    print(f"found {(p_target[four] > 0.5).sum()} of 4; normal stars listed: {normal_listed}, "
          f"ranked above the weakest of the four: {above_weakest} of {(~four).sum()}")
    assert (p_target[four] > 0.5).all()
    assert above_weakest <= 5
    assert normal_listed <= 10  # 4.2 %, against the labelled set's 11.5 % on average
