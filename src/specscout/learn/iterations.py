"""The iterations of a project on disk: where they are, which are complete, their records and
scores. Light (no deep-learning library): the catalogue, the report and the web app read
iterations through this module; :mod:`.iterate` writes them.

    PROJECT/iterations/0001/
      model.pt        the network, its temperature and the config that made it
      scores.npy      class probabilities of every pool row (float16); bald.npy with MC passes
      query.csv       the query batch: rank, row, id, acquisition score
      iteration.json  what happened: training set, epochs, losses, scoring rate, strategy, timing
      map.npz         the map of the pool in the network's features (``specscout map``)

An iteration's directory appears with its model and record in it (written beside, then
renamed), and every file in it is replaced whole: a run killed at any moment leaves the
iterations as they were, or with one more, complete.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from specscout.archive.atomic import write_text
from specscout.archive.project import Project
from specscout.errors import SpecscoutError

MAP_FILE = "map.npz"


def iterations_dir(project: Project) -> Path:
    return project.path / "iterations"


def iteration_numbers(project: Project) -> list[int]:
    """The iterations with a trained model, oldest first."""
    d = iterations_dir(project)
    if not d.is_dir():
        return []
    return sorted(int(p.name) for p in d.iterdir()
                  if p.name.isdigit() and (p / "model.pt").is_file())


def scored_iterations(project: Project) -> list[int]:
    """The iterations whose model has scored the pool, oldest first."""
    return [n for n in iteration_numbers(project)
            if (iteration_path(project, n) / "scores.npy").exists()]


def iteration_path(project: Project, number: int) -> Path:
    return iterations_dir(project) / f"{number:04d}"


def latest(project: Project) -> int:
    numbers = iteration_numbers(project)
    if not numbers:
        raise SpecscoutError(f"{project.path} has no iteration yet: run 'specscout train'")
    return numbers[-1]


def record(path: Path, **updates) -> dict:
    f = path / "iteration.json"
    info = json.loads(f.read_text()) if f.exists() else {}
    info.update(updates)
    write_text(f, json.dumps(info, indent=2, default=str))
    return info


def load_scores(project: Project, number: int | None = None) -> tuple[int, np.ndarray]:
    """(iteration, its class probabilities of every pool row, memory-mapped float16)."""
    number = number or latest(project)
    path = iteration_path(project, number) / "scores.npy"
    if not path.exists():
        raise SpecscoutError(f"iteration {number} has no scores: run 'specscout score'")
    return number, np.load(path, mmap_mode="r")


def status(project: Project) -> list[dict]:
    """Every iteration's record, oldest first."""
    return [json.loads((iteration_path(project, n) / "iteration.json").read_text())
            for n in iteration_numbers(project)]


def load_map(project: Project, number: int) -> dict | None:
    """The map of iteration ``number`` (:mod:`.map` makes it), or None."""
    path = iteration_path(project, number) / MAP_FILE
    if not path.exists():
        return None
    with np.load(path) as data:
        return {k: data[k] for k in data.files}
