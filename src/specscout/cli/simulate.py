"""Commands that make data with known truth: simulate, demo."""

from __future__ import annotations

import click

from specscout.cli.common import (
    PROBABILITY,
    SEED,
    WORKERS,
    Finite,
    Named,
    counts,
    model_names,
    quiet_option,
    scheduler_option,
    strategy_names,
    workers_option,
)


@click.command()
@click.argument("out")
@click.option("--n", type=click.IntRange(1, 100_000_000), default=1000, show_default=True,
              help="number of spectra")
@click.option("--kind", type=click.Choice(["survey", "labelled"]), default="survey",
              show_default=True,
              help="a LAMOST-like survey, or an Ondrejov-like labelled set (R 13000, air, "
                   "CCD700 raw layout, the paper's 47/41/12 % class mix)")
@click.option("--layout", type=click.Choice(["dr1", "dr2", "dr9", "mrs"]), default="dr2",
              show_default=True, help="LAMOST layout of the survey's files (dr1, dr2-dr8, dr9+ "
              "low resolution; mrs: medium resolution, a coadd and 3 exposures a file)")
@click.option("--no-gzip", is_flag=True, help="survey files not gzipped")
@click.option("--gzip", is_flag=True, help="labelled-set files gzipped")
@click.option("--emission", type=PROBABILITY, default=None,
              help="fraction of emission spectra (survey default 0.01)")
@click.option("--double-peak", type=PROBABILITY, default=None,
              help="fraction of double-peak spectra (survey default 0.003)")
@click.option("--snr", type=Finite(1.0, 10_000.0), default=None,
              help="median signal-to-noise (default: the instrument's: 42 for LAMOST, 150 for "
                   "the labelled set)")
@click.option("--repeats", type=Finite(0.0, 1.0, max_open=True), default=0.0,
              show_default=True,
              help="survey: chance that a spectrum revisits an earlier one's star")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="the same seed, the same spectra")
@click.option("--overwrite", is_flag=True,
              help="write into OUT even if it holds files: its FITS files, truth table and "
                   "labels are removed first")
@workers_option
@scheduler_option
@quiet_option
def simulate(out, n, kind, layout, no_gzip, gzip, emission, double_peak, snr, repeats, seed,
             overwrite, workers, scheduler, quiet) -> int:
    """Write a simulated survey or labelled set with its truth table (real MILES
    photospheres, injected H-alpha)."""
    import time
    from pathlib import Path

    import pyarrow.parquet as pq

    from specscout.errors import SpecscoutError
    from specscout.simulate import PAPER_MIX, SurveyConfig, simulate_labelled, simulate_survey

    here = Path(out)
    if here.exists() and not here.is_dir():
        raise SpecscoutError(f"{out} is a file, not a folder for the simulated spectra")
    if here.is_dir() and any(here.iterdir()) and not overwrite:
        raise SpecscoutError(f"{out} is not empty: give a new folder, or --overwrite to "
                             f"replace what a simulation wrote there")
    if here.is_dir() and overwrite:  # what an earlier simulation wrote, and nothing else
        from specscout.archive.ingest import FITS_SUFFIXES

        for path in sorted(here.rglob("*"), reverse=True):  # files before their folders
            if path.is_file() and (path.name.endswith(FITS_SUFFIXES)
                                   or path.name in ("truth.parquet", "labels.csv")):
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
    start = time.perf_counter()
    default = {"emission": 0.01, "double-peak": 0.003} if kind == "survey" else PAPER_MIX
    fractions = {"emission": default["emission"] if emission is None else emission,
                 "double-peak": default["double-peak"] if double_peak is None else double_peak}
    if sum(fractions.values()) > 1:
        raise click.BadParameter(f"--emission and --double-peak add up to "
                                 f"{sum(fractions.values()):g}: at most 1")
    config = SurveyConfig(n=n, seed=seed, fractions=fractions, snr_median=snr,
                          repeats=repeats if kind == "survey" else 0.0)
    if kind == "survey":
        truth = simulate_survey(out, config, layout=layout, compress=not no_gzip,
                                workers=workers, scheduler=scheduler, progress=not quiet)
    else:
        truth = simulate_labelled(out, config, compress=gzip, workers=workers,
                                  scheduler=scheduler, progress=not quiet)
    classes = pq.read_table(truth, columns=["class"])["class"].value_counts().to_pylist()
    spectra = sum(c["counts"] for c in classes)
    what = f"{n} spectra" if spectra == n else f"{n} files ({spectra} spectra)"
    if quiet:
        return 0
    print(f"wrote {what} to {out} in {time.perf_counter() - start:.1f} s "
          f"({counts({c['values']: c['counts'] for c in classes})}); truth in "
          f"{Path(out) / Path(truth).name}")
    if kind == "labelled":
        labels = Path(out) / "labels.csv"
        print(f"labels in {labels}: ingest them with 'specscout ingest PROJECT {out} "
              f"--labels {labels} --degrade-to 1531'")
    return 0


@click.command()
@click.argument("out", default="specscout-demo")
@click.option("--survey", type=click.IntRange(100, 10_000_000), default=20000,
              show_default=True, help="survey spectra")
@click.option("--labelled", type=click.IntRange(50, 1_000_000), default=500, show_default=True,
              help="labelled-set spectra")
@click.option("--iterations", type=click.IntRange(1, 100), default=4, show_default=True,
              help="query rounds the simulated annotator labels")
@click.option("--batch", type=click.IntRange(1, 10_000), default=100, show_default=True,
              help="spectra queried a round")
@click.option("--strategy", type=Named(strategy_names), default="rare", show_default=True)
@click.option("--model", type=Named(model_names), default="paper-cnn", show_default=True)
@click.option("--epochs", type=click.IntRange(1, 10_000), default=30, show_default=True,
              help="at most, per training")
@click.option("--workers", type=WORKERS, default=None, help="local Dask workers")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--layout", type=click.Choice(["dr2", "mrs"]), default="dr2", show_default=True,
              help="the survey's files: LAMOST LRS, or LAMOST MRS (a coadd and three "
                   "exposures per file, matched down to LRS: preset lamost-mrs-as-lrs)")
@quiet_option
def demo(out, survey, labelled, iterations, batch, strategy, model, epochs, workers,
         seed, layout, quiet) -> int:
    """The whole job on a simulated archive: simulate, ingest, iterate with a simulated
    annotator, audit, catalogue, report. OUT is a new directory."""
    from specscout.demo import DemoConfig, run

    run(out, DemoConfig(survey=survey, labelled=labelled, iterations=iterations, batch=batch,
                        strategy=strategy, model=model, max_epochs=epochs, workers=workers,
                        seed=seed, layout=layout), log=None if quiet else print)
    return 0


COMMANDS = [simulate, demo]
