"""Commands of the active-learning loop: train, score, query, iterate, status, experiment."""

from __future__ import annotations

import click

from specscout.cli.common import (
    Named,
    counts,
    iteration_option,
    model_names,
    open_project,
    options,
    project_argument,
    scheduler_option,
    strategy_names,
)

train_options = options(
    click.option("--model", type=Named(model_names), default="paper-cnn", show_default=True),
    click.option("--epochs", type=int, default=200, show_default=True, help="at most"),
    click.option("--patience", type=int, default=None,
                 help="epochs without a better validation loss before stopping (default: 5)"),
    click.option("--batch-size", type=int, default=64, show_default=True),
    click.option("--balance", type=click.Choice(["weight", "sample", "none"]), default="weight"),
    click.option("--average-epochs", type=click.FloatRange(min=0), default=None,
                 help="keep the moving average of the weights over this many epochs (0: the "
                      "last step's weights; default: 1)"),
    click.option("--warm-start", is_flag=True,
                 help="start from the previous iteration's weights"),
    click.option("--domain/--no-domain", default=None,
                 help="train also on lines injected into pool spectra and on pool negatives "
                      "(default: the project's [train] domain)"),
    click.option("--labelled-set/--no-labelled-set", default=None,
                 help="train on the labelled store too (default: [train] labelled_set)"),
    click.option("--networks", type=int, default=None,
                 help="networks per fold, averaged (default: [train] networks)"))
score_options = options(
    click.option("--score-batch", type=int, default=4096, show_default=True),
    click.option("--precision", type=click.Choice(["float32", "bfloat16"]), default="float32"),
    click.option("--mc-passes", type=int, default=0,
                 help="MC-dropout passes (needed by --strategy bald)"),
    click.option("--workers", type=int, default=None,
                 help="score on this many local Dask worker processes"),
    click.option("--prior-shift/--no-prior-shift", default=None,
                 help="probabilities relative to the pool's class mix, estimated by EM "
                      "(default: the project's [score] prior_shift)"),
    scheduler_option)
query_options = options(
    click.option("--strategy", type=Named(strategy_names), default="entropy",
                 show_default=True),
    click.option("--batch", type=int, default=100, show_default=True,
                 help="spectra to query"))
common_options = options(
    click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda"),
    click.option("--seed", type=int, default=0),
    click.option("--quiet", is_flag=True))


def _given(**options) -> dict:
    """The options given (not None): the others keep the training's own defaults."""
    return {k: v for k, v in options.items() if v is not None}


def _train(project, o: dict) -> int:
    from specscout.learn.iterate import train_step
    from specscout.learn.iterations import status
    from specscout.learn.train import TrainConfig

    config = TrainConfig(model=o["model"], max_epochs=o["epochs"],
                         batch_size=o["batch_size"], balance=o["balance"], seed=o["seed"],
                         device=o["device"],
                         **_given(average_epochs=o["average_epochs"], patience=o["patience"]))
    number = train_step(project, config, warm_start=o["warm_start"], domain=o["domain"],
                        labelled_set=o["labelled_set"], networks=o["networks"])
    t = status(project)[-1]["train"]
    print(f"iteration {number}: trained {o['model']} on {sum(t['per_class'].values())} labels "
          f"({counts(t['per_class'])}); best epoch {t['best_epoch']} of {t['epochs']}, "
          f"validation loss {t['val_loss']:.4f}, temperature {t['temperature']:.2f}, "
          f"{t['seconds']:.1f} s")
    if t.get("domain"):
        print(f"  examples by origin: {counts(t['origins'])}; injection failures: "
              f"{counts(t.get('injection_failures') or {}) or 'none'}")
    return number


def _score(project, o: dict, number: int | None) -> None:
    from specscout.learn.iterate import score_step

    scores = score_step(project, number, prior_shift=o["prior_shift"],
                        batch=o["score_batch"], precision=o["precision"],
                        mc_passes=o["mc_passes"], workers=o["workers"],
                        scheduler=o["scheduler"], device=o["device"], progress=not o["quiet"])
    print(f"scored {len(scores.probabilities)} spectra in {scores.seconds:.1f} s "
          f"({scores.rate:.0f} spectra/s)")


def _query(project, o: dict, number: int | None) -> None:
    from specscout.learn.iterate import query_step
    from specscout.learn.iterations import latest

    number = number or latest(project)
    batch = query_step(project, o["strategy"], o["batch"], number, seed=o["seed"])
    print(f"queued {len(batch)} spectra by {o['strategy']} for labelling "
          f"(listed in iterations/{number:04d}/query.csv; give their labels with "
          f"'specscout labels import PROJECT CSV')")


@click.command()
@project_argument
@train_options
@common_options
def train(project, **o) -> int:
    """Train a new model on every label."""
    _train(open_project(project, shared=True), o)
    return 0


@click.command()
@project_argument
@iteration_option
@score_options
@common_options
def score(project, iteration, **o) -> int:
    """Score the pool with the latest model."""
    _score(open_project(project, shared=True), o, iteration)
    return 0


@click.command()
@project_argument
@iteration_option
@query_options
@common_options
def query(project, iteration, **o) -> int:
    """Choose the next spectra to label."""
    _query(open_project(project, shared=True), o, iteration)
    return 0


@click.command()
@project_argument
@train_options
@score_options
@query_options
@common_options
def iterate(project, **o) -> int:
    """Train, score and query."""
    p = open_project(project, shared=True)
    number = _train(p, o)
    _score(p, o, number)
    _query(p, o, number)
    return 0


@click.command()
@project_argument
def status(project) -> int:
    """The project's iterations."""
    from specscout.labels import label_store
    from specscout.learn.iterations import status as iterations

    p = open_project(project)
    labels = label_store(p)
    print(f"project {p.path}: pool {len(p.store('pool'))} spectra, labelled set "
          f"{len(p.store('labelled'))}, pool labels {len(labels.current())} "
          f"({len(labels.disagreements())} disagreements)")
    for it in iterations(p):
        t, s, q = it.get("train", {}), it.get("score", {}), it.get("query", {})
        line = (f"  {it['iteration']:>4}  {t.get('config', {}).get('model', '?')}: "
                f"{sum(t.get('per_class', {}).values())} labels, val loss "
                f"{t.get('val_loss', float('nan')):.4f}, {t.get('seconds', 0):.0f} s")
        if s:
            line += (f" | scored {s['rows']} at {s['spectra_per_s']:.0f}/s; predicted "
                     + counts(s["predicted"]))
        c = s.get("churn")
        if c:
            line += f" | candidates {c['candidates']} (+{c['added']} -{c['dropped']})"
        if q:
            line += f" | queried {q['queued']} by {q['strategy']}"
        print(line)
    return 0


@click.command()
@project_argument
@click.option("--truth", required=True,
              help="truth table of the pool (id, class), e.g. a simulation's truth.parquet")
@click.option("--out", required=True,
              help="directory for curves.csv/png, summary.json and runs/ (made anew)")
@click.option("--strategies", default="random,entropy,rare", show_default=True,
              help="comma-separated")
@click.option("--seeds", type=int, default=3, show_default=True)
@click.option("--iterations", type=int, default=10, show_default=True)
@click.option("--batch", type=int, default=100, show_default=True,
              help="spectra queried per iteration")
@click.option("--initial", type=int, default=0,
              help="random pool labels to start from, besides the labelled set")
@click.option("--no-labelled-set", is_flag=True,
              help="start from --initial random pool labels only")
@click.option("--test-fraction", type=float, default=0.3, show_default=True,
              help="of the pool, held out for evaluation")
@click.option("--target-error", type=float, default=0.065, show_default=True)
@click.option("--model", type=Named(model_names), default="small-cnn", show_default=True)
@click.option("--epochs", type=int, default=40, show_default=True, help="at most, per training")
@click.option("--patience", type=int, default=3, show_default=True)
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--average-epochs", type=click.FloatRange(min=0), default=None,
              help="moving average of the weights over this many epochs (0: none; default: 1)")
@click.option("--cold-start", is_flag=True,
              help="train a new network every round instead of fine-tuning")
@click.option("--domain/--no-domain", default=None,
              help="train in the survey's domain too (default: the project's [train] domain)")
@click.option("--device", default="auto")
@click.option("--quiet", is_flag=True)
def experiment(project, truth, out, strategies, seeds, iterations, batch, initial,
               no_labelled_set, test_fraction, target_error, model, epochs, patience,
               batch_size, average_epochs, cold_start, domain, device, quiet) -> int:
    """Run the loop (train, score, query) with a truth table as the oracle, for several
    strategies and seeds, each in a project of its own under OUT/runs; write learning
    curves."""
    from specscout.learn.experiment import ExperimentConfig, run_project
    from specscout.learn.train import TrainConfig

    config = ExperimentConfig(
        strategies=tuple(strategies.split(",")), seeds=tuple(range(seeds)),
        iterations=iterations, batch=batch, initial=initial,
        use_labelled_set=False if no_labelled_set else None, test_fraction=test_fraction,
        target_error=target_error, warm_start=not cold_start, domain=domain,
        train=TrainConfig(model=model, max_epochs=epochs, patience=patience,
                          batch_size=batch_size, device=device,
                          **_given(average_epochs=average_epochs)))

    def log(row: dict) -> None:
        if not quiet:
            print(f"  {row['strategy']:<16} seed {row['seed']} round {row['round']:>2}: "
                  f"{row['labels']:>5} labels, macro error {row['macro_error']:.3f} "
                  f"({row['seconds']:.0f} s)", flush=True)

    info = run_project(open_project(project), truth, out, config, log)
    print(f"{len(config.strategies)} strategies x {len(config.seeds)} seeds in "
          f"{info['seconds']:.0f} s; curves in {out}/curves.csv and curves.png")
    print(f"pool labels needed to reach macro error <= {config.target_error} on the rare "
          f"classes (median over seeds; '-' = not reached within "
          f"{config.initial + config.iterations * config.batch}):")
    for name, reach in info["to_target"].items():
        median = reach["median"]
        print(f"  {name:<16} {'-' if median is None else f'{median:.0f}':>6}   final "
              f"error {info['final_error'][name]:.3f}")
    if "to_random_final" in info:
        print(f"labels needed to reach random's final error ({info['random_final_error']:.3f}):")
        for name, reach in info["to_random_final"].items():
            median = reach["median"]
            print(f"  {name:<16} {'-' if median is None else f'{median:.0f}':>6}")
    return 0


COMMANDS = [train, score, query, iterate, status, experiment]
