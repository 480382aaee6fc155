"""Simulated-oracle experiments: the active-learning loop with a truth table as the annotator.

For each seed, the pool is split once into a held-out test set (stratified, never queried,
never a training example) and the candidates; every strategy then starts from the same labels
(the project's labelled set and ``initial`` random pool labels) and runs ``iterations`` rounds
of the steps of ``specscout iterate`` - train, score the pool, query ``batch`` - with the
oracle labelling each batch. Each (strategy, seed) runs in a project of its own that reads the
pool (:func:`scratch_project`). After each training the model is evaluated on the test set.
Labels spent = pool labels asked of the oracle.

The figure of merit is the macro-averaged error on the rare classes: the mean over those
classes of 1 - F1 (F1 weighs precision and recall equally; in an archive where 1 % of the
spectra are targets, a classifier with high recall and poor precision buries the targets in
false positives).
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from specscout.archive.project import Project
from specscout.errors import SpecscoutError
from specscout.labels import close_label_store, label_store
from specscout.learn.iterate import query_step, score_step, train_step
from specscout.learn.iterations import iteration_path, load_scores
from specscout.learn.strategies import STRATEGIES
from specscout.learn.train import TrainConfig, stratified_split


@dataclass(frozen=True)
class ExperimentConfig:
    strategies: tuple[str, ...] = ("random", "entropy", "rare")
    seeds: tuple[int, ...] = (0, 1, 2)
    iterations: int = 10
    batch: int = 100
    initial: int = 0  # random pool labels before the first training, besides the labelled set
    use_labelled_set: bool | None = None  # train on the labelled store (None: the project's)
    test_fraction: float = 0.3
    target_error: float = 0.065
    warm_start: bool = True  # fine-tune the previous round's network instead of a new one
    domain: bool | None = None  # train in the survey's domain too (None: the project's)
    mc_passes: int = 10  # for bald
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        model="small-cnn", max_epochs=40, patience=3))

    def __post_init__(self) -> None:
        unknown = set(self.strategies) - set(STRATEGIES)
        if unknown:
            raise ValueError(f"unknown strategies {sorted(unknown)}; choose from "
                             f"{sorted(STRATEGIES)}")


# --- the oracle ---------------------------------------------------------------------------


def truth_classes(project: Project, truth: str | Path, store: str = "pool") -> np.ndarray:
    """Class index of every row of ``store`` from a truth table (Parquet or CSV with columns
    ``id`` and ``class``, as ``specscout simulate`` writes it). Every row must be found."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    truth = Path(truth)
    try:
        table = (pq.read_table(truth, columns=["id", "class"]) if truth.suffix == ".parquet"
                 else pacsv.read_csv(truth).select(["id", "class"]))
    except (OSError, KeyError, pa.ArrowException) as exc:
        raise SpecscoutError(f"{truth}: not a truth table (Parquet or CSV with columns id and "
                             f"class, as 'specscout simulate' writes one): "
                             f"{str(exc).splitlines()[0]}") from None
    cls_of = dict(zip(table["id"].to_pylist(), table["class"].to_pylist(), strict=True))
    classes = list(project.config.classes)
    meta = project.store(store).meta(columns=["row", "id"]).sort_by("row").to_pydict()
    missing = [i for i in meta["id"] if i not in cls_of]
    if missing:
        raise SpecscoutError(f"{len(missing)} spectra of the {store} are not in {truth} "
                             f"(first: {missing[0]})")
    unknown = {cls_of[i] for i in meta["id"]} - set(classes)
    if unknown:
        raise SpecscoutError(f"{truth} has classes {sorted(unknown)} that the project does not "
                             f"know ({classes})")
    return np.array([classes.index(cls_of[i]) for i in meta["id"]], dtype=np.int64)


# --- metrics ------------------------------------------------------------------------------


def evaluate(predicted: np.ndarray, truth: np.ndarray, classes: tuple[str, ...],
             rare: tuple[int, ...]) -> dict:
    """Per-class precision, recall and F1, accuracy, and the macro error on ``rare``."""
    out: dict = {"accuracy": float(np.mean(predicted == truth))}
    for c, name in enumerate(classes):
        tp = int(np.sum((predicted == c) & (truth == c)))
        fp = int(np.sum((predicted == c) & (truth != c)))
        fn = int(np.sum((predicted != c) & (truth == c)))
        out[f"precision_{name}"] = tp / (tp + fp) if tp + fp else 0.0
        out[f"recall_{name}"] = tp / (tp + fn) if tp + fn else 0.0
        out[f"f1_{name}"] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    out["macro_error"] = float(np.mean([1 - out[f"f1_{classes[c]}"] for c in rare]))
    return out


# --- the loop -----------------------------------------------------------------------------

#: The oracle's name in a run's label store.
ORACLE = "truth"


def scratch_project(project: Project, path: Path) -> Project:
    """A project at ``path`` that reads ``project``'s pool and labelled stores (links, never
    written) and has a label store and iterations of its own: one run of the experiment."""
    if path.exists():
        shutil.rmtree(path)  # a run starts afresh; the links are removed, not followed
    run = Project.init(path, replace(project.config, labels_url="sqlite:///labels.db"))
    for name in ("pool", "labelled"):
        if (project.path / name).exists():
            (path / name).symlink_to((project.path / name).resolve(), target_is_directory=True)
    return run


def _label(run: Project, rows: np.ndarray, y: np.ndarray, number: int | None = None,
           scores: list[float] | None = None) -> None:
    """The oracle labels pool ``rows`` with their true classes, through the label store."""
    classes = run.config.classes
    ids = run.store("pool").ids(rows)
    label_store(run).add_many(
        {"spectrum": ids[k], "row": int(r), "label": classes[y[r]], "annotator": ORACLE,
         "iteration": number, "acquisition_score": None if scores is None else scores[k]}
        for k, r in enumerate(rows))


def run(project: Project, y: np.ndarray, config: ExperimentConfig, workdir: str | Path,
        log: Callable[[dict], None] | None = None) -> list[dict]:
    """The experiment on ``project``'s pool with true classes ``y`` (one per pool row). Every
    (strategy, seed) is a project of its own under ``workdir`` (:func:`scratch_project`),
    driven through the steps of ``specscout iterate`` (:func:`.iterate.train_step`,
    :func:`.iterate.score_step`, :func:`.iterate.query_step`), the oracle labelling each
    batch in its label store. Returns one row per (strategy, seed, round)."""
    classes = tuple(project.config.classes)
    rare = tuple(range(1, len(classes)))
    workdir = Path(workdir)
    results = []
    for seed in config.seeds:
        rng = np.random.default_rng(seed)
        candidates, test = stratified_split(y, config.test_fraction, rng)
        start = np.sort(rng.choice(candidates, size=config.initial, replace=False))
        workdir.mkdir(parents=True, exist_ok=True)
        np.save(workdir / f"test-seed{seed}.npy", test)  # the held-out rows, for the record
        first: tuple[Path, dict] | None = None  # round 0 is the same for every strategy
        for strategy in config.strategies:
            run_ = scratch_project(project, workdir / f"{strategy}-seed{seed}")
            _label(run_, start, y)
            asked = start.tolist()
            for round_ in range(config.iterations + 1):
                t0 = time.perf_counter()
                if round_ == 0 and first is not None:
                    shutil.copytree(first[0], iteration_path(run_, 1))
                    number, scored = 1, first[1]
                else:
                    train = replace(config.train, seed=seed * 1000)
                    number = train_step(run_, train, warm_start=config.warm_start,
                                        domain=config.domain,
                                        labelled_set=config.use_labelled_set, exclude=test)
                    score_step(run_, number, device=config.train.device)
                    _, probs = load_scores(run_, number)
                    t = json.loads((iteration_path(run_, number) / "iteration.json")
                                   .read_text())["train"]
                    scored = {"train_seconds": t["seconds"], "epochs": t["epochs"],
                              **evaluate(np.asarray(probs[test], np.float32).argmax(1),
                                         y[test], classes, rare)}
                    if round_ == 0:
                        first = workdir / f"round0-seed{seed}", scored
                        if first[0].exists():
                            shutil.rmtree(first[0])
                        shutil.copytree(iteration_path(run_, number), first[0])
                rows = np.array(asked, dtype=np.int64)
                row = {"strategy": strategy, "seed": seed, "round": round_,
                       "labels": len(asked), "found": {classes[c]: int(np.sum(y[rows] == c))
                                                       for c in rare}, **scored}
                if round_ < config.iterations:
                    if strategy == "bald":  # its MC-dropout scores, after the evaluation
                        score_step(run_, number, mc_passes=config.mc_passes,
                                   device=config.train.device)
                    # each strategy's own stream, the same whichever strategies run beside it
                    query_seed = int(np.random.SeedSequence(
                        [seed, sorted(STRATEGIES).index(strategy), round_]).generate_state(1)[0])
                    batch = query_step(run_, strategy, config.batch, number, seed=query_seed,
                                       exclude=test)
                    picked = np.array([b["row"] for b in batch], dtype=np.int64)
                    _label(run_, picked, y, number, [b["acquisition_score"] for b in batch])
                    row["queried"] = picked.tolist()  # in memory only, not in curves.csv
                    asked.extend(picked.tolist())
                row["seconds"] = round(time.perf_counter() - t0, 2)
                results.append(row)
                if log:
                    log(row)
            close_label_store(run_)  # its connections are not needed again
    return results


# --- summaries ----------------------------------------------------------------------------


def labels_to_reach(results: list[dict], target: float) -> dict[str, dict]:
    """Per strategy: the labels each seed spent before the macro error first fell to
    ``target`` (None where it never did within the budget), and their median."""
    out: dict[str, dict] = {}
    for strategy in dict.fromkeys(r["strategy"] for r in results):
        per_seed = {}
        for seed in dict.fromkeys(r["seed"] for r in results):
            curve = [r for r in results if r["strategy"] == strategy and r["seed"] == seed]
            reached = [r["labels"] for r in curve if r["macro_error"] <= target]
            per_seed[seed] = min(reached) if reached else None
        values = list(per_seed.values())
        out[strategy] = {"per_seed": per_seed,
                         "median": (float(np.median(values)) if None not in values else None)}
    return out


def summary(results: list[dict], target: float) -> dict:
    """Labels to reach ``target``, and, as a relative measure, labels to reach the error
    random sampling ends with (median over seeds of its last round)."""
    out = {"target_error": target, "to_target": labels_to_reach(results, target)}
    last = max(r["round"] for r in results)
    final = {s: float(np.median([r["macro_error"] for r in results
                                 if r["strategy"] == s and r["round"] == last]))
             for s in dict.fromkeys(r["strategy"] for r in results)}
    out["final_error"] = final
    if "random" in final:
        out["random_final_error"] = final["random"]
        out["to_random_final"] = labels_to_reach(results, final["random"])
    return out


def write_csv(results: list[dict], path: Path) -> None:
    flat = [{k: v for k, v in r.items() if k not in ("found", "queried")}
            | {f"found_{c}": n for c, n in r["found"].items()} for r in results]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(flat[0]))
        writer.writeheader()
        writer.writerows(flat)


def plot(results: list[dict], classes: tuple[str, ...], path: Path, target: float) -> None:
    """Learning curves: median over seeds with the min-max band, for the macro error and each
    rare class's recall and precision."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rare = classes[1:]
    panels = [("macro_error", "macro error on rare classes (1 - F1)")]
    panels += [(f"recall_{c}", f"recall: {c}") for c in rare]
    panels += [(f"precision_{c}", f"precision: {c}") for c in rare]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6),
                             constrained_layout=True)
    for strategy in dict.fromkeys(r["strategy"] for r in results):
        rows = [r for r in results if r["strategy"] == strategy]
        rounds = sorted({r["round"] for r in rows})
        for ax, (key, title) in zip(axes, panels, strict=True):
            per_round = [[r for r in rows if r["round"] == k] for k in rounds]
            labels = [np.median([r["labels"] for r in rs]) for rs in per_round]
            values = np.array([[r[key] for r in rs] for rs in per_round])
            (line,) = ax.plot(labels, np.median(values, axis=1), label=strategy)
            ax.fill_between(labels, values.min(axis=1), values.max(axis=1),
                            color=line.get_color(), alpha=0.2)
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("pool labels spent")
    axes[0].axhline(target, color="grey", ls="--", lw=1)
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=8)
    seeds = len({r["seed"] for r in results})
    fig.suptitle(f"median and range over {seeds} seed{'s' * (seeds > 1)}", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_project(project: Project, truth: str | Path, out: str | Path,
                config: ExperimentConfig, log: Callable[[dict], None] | None = None) -> dict:
    """The experiment on a project's pool with ``truth`` as the oracle; writes
    ``curves.csv``, ``curves.png`` and ``summary.json`` under ``out``, and each run's
    project under ``out/runs``."""
    out = Path(out)
    classes = tuple(project.config.classes)
    pool = project.store("pool")
    if not len(pool):
        raise SpecscoutError(f"{project.path} has an empty pool: ingest a survey first")
    y = truth_classes(project, truth)
    use = project.config.labelled_set if config.use_labelled_set is None else \
        config.use_labelled_set
    labelled = len(project.store("labelled")) if use else 0
    if not labelled and config.initial == 0:
        raise SpecscoutError("no labelled set in the project: give --initial N random labels")
    out.mkdir(parents=True, exist_ok=True)  # once everything it needs is there
    start = time.perf_counter()
    results = run(project, y, config, out / "runs", log)
    info = {"config": asdict(config), "pool": len(pool), "pool_classes": {
        c: int(np.sum(y == i)) for i, c in enumerate(classes)},
        "labelled_set": labelled,
        "seconds": round(time.perf_counter() - start, 1),
        **summary(results, config.target_error)}
    write_csv(results, out / "curves.csv")
    plot(results, classes, out / "curves.png", config.target_error)
    (out / "summary.json").write_text(json.dumps(info, indent=2, default=str))
    return info
