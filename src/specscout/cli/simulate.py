"""Commands that make data with known truth: simulate, demo."""

from __future__ import annotations

import click

from specscout.cli.common import counts, quiet_option, scheduler_option, workers_option


@click.command()
@click.argument("out")
@click.option("--n", type=int, default=1000, show_default=True, help="number of spectra")
@click.option("--kind", type=click.Choice(["survey", "labelled"]), default="survey",
              help="a LAMOST-like survey, or an Ondrejov-like labelled set (R 13000, air, "
                   "CCD700 raw layout, the paper's 47/41/12 % class mix)")
@click.option("--layout", type=click.Choice(["dr1", "dr2", "dr9", "mrs"]), default="dr2",
              show_default=True, help="LAMOST layout of the survey's files (dr1, dr2-dr8, dr9+ "
              "low resolution; mrs: medium resolution, a coadd and 3 exposures a file)")
@click.option("--no-gzip", is_flag=True, help="survey files not gzipped")
@click.option("--gzip", is_flag=True, help="labelled-set files gzipped")
@click.option("--emission", type=float, default=None,
              help="fraction of emission spectra (survey default 0.01)")
@click.option("--double-peak", type=float, default=None,
              help="fraction of double-peak spectra (survey default 0.003)")
@click.option("--snr", type=float, default=None, help="median signal-to-noise")
@click.option("--repeats", type=float, default=0.0,
              help="survey: chance that a spectrum revisits an earlier one's star")
@click.option("--seed", type=int, default=0)
@workers_option
@scheduler_option
@quiet_option
def simulate(out, n, kind, layout, no_gzip, gzip, emission, double_peak, snr, repeats, seed,
             workers, scheduler, quiet) -> int:
    """Write a simulated survey or labelled set with its truth table (real MILES
    photospheres, injected H-alpha)."""
    import time
    from pathlib import Path

    import pyarrow.parquet as pq

    from specscout.simulate import PAPER_MIX, SurveyConfig, simulate_labelled, simulate_survey

    start = time.perf_counter()
    default = {"emission": 0.01, "double-peak": 0.003} if kind == "survey" else PAPER_MIX
    fractions = {"emission": default["emission"] if emission is None else emission,
                 "double-peak": default["double-peak"] if double_peak is None else double_peak}
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
    print(f"wrote {what} to {out} in {time.perf_counter() - start:.1f} s "
          f"({counts({c['values']: c['counts'] for c in classes})}); truth in {truth}")
    if kind == "labelled":
        labels = Path(out) / "labels.csv"
        print(f"labels in {labels}: ingest them with 'specscout ingest PROJECT {out} "
              f"--labels {labels} --degrade-to 1531'")
    return 0


@click.command()
@click.argument("out", default="specscout-demo")
@click.option("--survey", type=int, default=20000, show_default=True, help="survey spectra")
@click.option("--labelled", type=int, default=1000, show_default=True,
              help="labelled-set spectra")
@click.option("--iterations", type=int, default=4, show_default=True)
@click.option("--batch", type=int, default=100, show_default=True)
@click.option("--strategy", default="rare", show_default=True)
@click.option("--model", default="paper-cnn", show_default=True)
@click.option("--epochs", type=int, default=30, show_default=True, help="at most, per training")
@click.option("--workers", type=int, default=None, help="local Dask workers")
@click.option("--seed", type=int, default=0)
@click.option("--layout", type=click.Choice(["dr2", "mrs"]), default="dr2", show_default=True,
              help="the survey's files: LAMOST LRS, or LAMOST MRS (a coadd and three "
                   "exposures per file, matched down to LRS: preset lamost-mrs-as-lrs)")
def demo(out, survey, labelled, iterations, batch, strategy, model, epochs, workers,
         seed, layout) -> int:
    """The whole job on a simulated archive: simulate, ingest, iterate with a simulated
    annotator, audit, catalogue, report. OUT is a new directory."""
    from specscout.demo import DemoConfig, run

    run(out, DemoConfig(survey=survey, labelled=labelled, iterations=iterations, batch=batch,
                        strategy=strategy, model=model, max_epochs=epochs, workers=workers,
                        seed=seed, layout=layout))
    return 0


COMMANDS = [simulate, demo]
