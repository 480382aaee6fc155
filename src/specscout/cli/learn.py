"""Commands of the active-learning loop: train, score, query, iterate, status, experiment."""

from __future__ import annotations

from pathlib import Path

import click

from specscout.cli.common import (
    SEED,
    WORKERS,
    Device,
    Finite,
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
    click.option("--epochs", type=click.IntRange(1, 100_000), default=200, show_default=True,
                 help="at most"),
    click.option("--patience", type=click.IntRange(1, 10_000), default=None,
                 help="epochs without a better validation loss before stopping (default: 5)"),
    click.option("--batch-size", type=click.IntRange(1, 65_536), default=64, show_default=True,
                 help="examples a training step takes"),
    click.option("--balance", type=click.Choice(["weight", "sample", "none"]), default="weight",
                 show_default=True,
                 help="classes balanced by loss weights, by balanced batches, or not"),
    click.option("--average-epochs", type=Finite(0.0, 1000.0), default=None,
                 help="keep the moving average of the weights over this many epochs (0: the "
                      "last step's weights; default: 1)"),
    click.option("--warm-start", is_flag=True,
                 help="start from the previous iteration's weights"),
    click.option("--domain/--no-domain", default=None,
                 help="train also on lines injected into pool spectra and on pool negatives "
                      "(default: the project's [train] domain)"),
    click.option("--labelled-set/--no-labelled-set", default=None,
                 help="train on the labelled store too (default: [train] labelled_set)"),
    click.option("--networks", type=click.IntRange(1, 16), default=None,
                 help="networks per fold, averaged (default: [train] networks)"))
score_options = options(
    click.option("--score-batch", type=click.IntRange(1, 1 << 20), default=4096,
                 show_default=True, help="spectra a forward pass takes"),
    click.option("--precision", type=click.Choice(["float32", "bfloat16"]), default="float32",
                 show_default=True,
                 help="of the forward passes (bfloat16 pays only where the CPU has it)"),
    click.option("--mc-passes", type=click.IntRange(0, 1000), default=0, show_default=True,
                 help="MC-dropout passes (needed by --strategy bald)"),
    click.option("--workers", type=WORKERS, default=None,
                 help="score on this many local Dask worker processes"),
    click.option("--prior-shift/--no-prior-shift", default=None,
                 help="probabilities relative to the pool's class mix, estimated by EM "
                      "(default: the project's [score] prior_shift)"),
    scheduler_option)
query_options = options(
    click.option("--strategy", type=Named(strategy_names), default="entropy",
                 show_default=True),
    click.option("--batch", type=click.IntRange(1, 100_000), default=100, show_default=True,
                 help="spectra to query"))
common_options = options(
    click.option("--device", type=Device(), default="auto", show_default=True,
                 help="where the network runs: a CUDA GPU of this machine, or the CPU"),
    click.option("--seed", type=SEED, default=0, show_default=True,
                 help="the same seed, the same networks and queries"),
    click.option("--quiet", is_flag=True, help="print nothing but errors"))


def _given(**options) -> dict:
    """The options given (not None): the others keep the training's own defaults."""
    return {k: v for k, v in options.items() if v is not None}


def _train(project, o: dict) -> int:
    from specscout.learn.iterate import clean_unfinished, train_step
    from specscout.learn.iterations import status
    from specscout.learn.train import TrainConfig

    config = TrainConfig(model=o["model"], max_epochs=o["epochs"],
                         batch_size=o["batch_size"], balance=o["balance"], seed=o["seed"],
                         device=o["device"],
                         **_given(average_epochs=o["average_epochs"], patience=o["patience"]))
    gone = clean_unfinished(project)
    if gone and not o["quiet"]:
        print(f"removed what {len(gone)} killed training(s) left: {', '.join(gone)}")
    many = (o["networks"] or project.config.networks) > 1

    def epoch(h: dict) -> None:
        which = "" if h["fold"] is None else f"fold {h['fold']}" + (
            f" network {h['network'] + 1}" if many else "") + ", "
        print(f"  {which}epoch {h['epoch']} ({h['seconds']:.0f} s): training loss "
              f"{h['train_loss']:.4f}, validation loss {h['val_loss']:.4f}"
              + (" (best)" if h["best"] else "")
              + f"; stops after epoch {h['last']} unless it improves", flush=True)

    number = train_step(project, config, warm_start=o["warm_start"], domain=o["domain"],
                        labelled_set=o["labelled_set"], networks=o["networks"],
                        log=None if o["quiet"] else epoch)
    if o["quiet"]:
        return number
    t = status(project)[-1]["train"]
    print(f"iteration {number}: trained {o['model']} on {sum(t['per_class'].values())} "
          f"examples ({counts(t['per_class'])}); best epoch {t['best_epoch']} of "
          f"{t['epochs']}, validation loss {t['val_loss']:.4f}, temperature "
          f"{t['temperature']:.2f}, {t['seconds']:.1f} s")
    print(f"  examples by origin: {counts(t['origins'])}"
          + (f"; injection failures: {counts(t.get('injection_failures') or {}) or 'none'}"
             if t.get("domain") else ""))
    return number


def _score(project, o: dict, number: int | None) -> None:
    from specscout.learn.iterate import score_step

    scores = score_step(project, number, prior_shift=o["prior_shift"],
                        batch=o["score_batch"], precision=o["precision"],
                        mc_passes=o["mc_passes"], workers=o["workers"],
                        scheduler=o["scheduler"], device=o["device"], progress=not o["quiet"])
    if not o["quiet"]:
        print(f"scored {len(scores.probabilities)} spectra in {scores.seconds:.1f} s "
              f"({scores.rate:.0f} spectra/s)")


def _query(project, o: dict, number: int | None) -> None:
    from specscout.learn.iterate import query_step
    from specscout.learn.iterations import latest

    number = number or latest(project)
    batch = query_step(project, o["strategy"], o["batch"], number, seed=o["seed"])
    if o["quiet"]:
        return
    if len(batch) < o["batch"]:
        print(f"queued {len(batch)} of the {o['batch']} asked: "
              + ("every spectrum of the pool is" if not batch else "all the others are")
              + f" labelled, or queued in an earlier iteration (or drawn for the audit); "
                f"the strategy {o['strategy']} finds no more")
        if not batch:
            return
    else:
        print(f"queued {len(batch)} spectra by {o['strategy']} for labelling")
    print(f"  listed in {project.path / 'iterations' / f'{number:04d}' / 'query.csv'}; label "
          f"them in 'specscout serve {project.path}' or with 'specscout labels import "
          f"{project.path} CSV'")


@click.command()
@project_argument
@train_options
@common_options
def train(project, **o) -> int:
    """Train a new model on every label."""
    p = open_project(project, shared=True)
    with p.lock("train"):
        _train(p, o)
    return 0


@click.command()
@project_argument
@iteration_option
@score_options
@common_options
def score(project, iteration, **o) -> int:
    """Score the pool with the latest model."""
    p = open_project(project, shared=True)
    with p.lock("score"):
        _score(p, o, iteration)
    return 0


@click.command()
@project_argument
@iteration_option
@query_options
@common_options
def query(project, iteration, **o) -> int:
    """Choose the next spectra to label."""
    p = open_project(project, shared=True)
    with p.lock("query"):
        _query(p, o, iteration)
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
    with p.lock("iterate"):
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
                f"{sum(t.get('per_class', {}).values())} examples, val loss "
                f"{t.get('val_loss', float('nan')):.4f}, {t.get('seconds', 0):.0f} s")
        if s:
            line += (f" | scored {s['rows']} at {s['spectra_per_s']:.0f}/s; predicted "
                     + counts(s["predicted"]))
        c = s.get("churn")
        if c:  # the model's own proposals: 'candidates' lists them as labels and kinds say
            line += (f" | the model proposes {c['candidates']} (+{c['added']} "
                     f"-{c['dropped']}) before labels and kinds")
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
@click.option("--seeds", type=click.IntRange(1, 100), default=3, show_default=True,
              help="repeats of every strategy, seeds 0..N-1")
@click.option("--iterations", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="query rounds")
@click.option("--batch", type=click.IntRange(1, 100_000), default=100, show_default=True,
              help="spectra queried per iteration")
@click.option("--initial", type=click.IntRange(0, 10_000_000), default=0, show_default=True,
              help="random pool labels to start from, besides the labelled set")
@click.option("--no-labelled-set", is_flag=True,
              help="start from --initial random pool labels only")
@click.option("--test-fraction", type=Finite(0.0, 1.0, min_open=True, max_open=True),
              default=0.3, show_default=True,
              help="of the pool, held out for evaluation")
@click.option("--target-error", type=Finite(0.0, 1.0, min_open=True, max_open=True),
              default=0.065, show_default=True,
              help="the macro error on the rare classes whose cost in labels is counted")
@click.option("--model", type=Named(model_names), default="small-cnn", show_default=True)
@click.option("--epochs", type=click.IntRange(1, 100_000), default=40, show_default=True,
              help="at most, per training")
@click.option("--patience", type=click.IntRange(1, 10_000), default=3, show_default=True,
              help="epochs without a better validation loss before stopping")
@click.option("--batch-size", type=click.IntRange(1, 65_536), default=64, show_default=True,
              help="examples a training step takes")
@click.option("--average-epochs", type=Finite(0.0, 1000.0), default=None,
              help="moving average of the weights over this many epochs (0: none; default: 1)")
@click.option("--cold-start", is_flag=True,
              help="train a new network every round instead of fine-tuning")
@click.option("--domain/--no-domain", default=None,
              help="train in the survey's domain too (default: the project's [train] domain)")
@click.option("--device", type=Device(), default="auto", show_default=True,
              help="where the networks run")
@click.option("--quiet", is_flag=True, help="print nothing but the summary and errors")
def experiment(project, truth, out, strategies, seeds, iterations, batch, initial,
               no_labelled_set, test_fraction, target_error, model, epochs, patience,
               batch_size, average_epochs, cold_start, domain, device, quiet) -> int:
    """Run the loop (train, score, query) with a truth table as the oracle, for several
    strategies and seeds, each in a project of its own under OUT/runs; write learning
    curves."""
    from specscout.errors import SpecscoutError
    from specscout.learn.experiment import ExperimentConfig, run_project
    from specscout.learn.strategies import STRATEGIES
    from specscout.learn.train import TrainConfig

    names = tuple(s.strip() for s in strategies.split(","))
    unknown = [s for s in names if s not in STRATEGIES]
    if unknown or not names:
        raise click.BadParameter(f"{', '.join(unknown) or strategies!r}: strategies are "
                                 f"{', '.join(sorted(STRATEGIES))}",
                                 param_hint="'--strategies'")
    if Path(out).exists() and (not Path(out).is_dir() or any(Path(out).iterdir())):
        raise SpecscoutError(f"{out} is not an empty folder: an experiment writes its runs, "
                             f"curves and summary into a new one")
    config = ExperimentConfig(
        strategies=names, seeds=tuple(range(seeds)),
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
