"""A discovery project on disk: its config, the pool store, the labelled store.

    PROJECT/
      specscout.toml   the config (grid, preprocessing, classes, store, label database)
      pool/            the store of the survey's spectra (see specscout.archive.store)
      labelled/        the store of the labelled training spectra, kept apart from the pool
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from specscout.errors import SpecscoutError
from specscout.spectra.grid import Grid
from specscout.spectra.preprocess import PreprocessConfig

CONFIG_NAME = "specscout.toml"
#: The file a command that writes iterations holds (:meth:`Project.lock`).
LOCK_NAME = ".lock"
#: What a kind of emission can be to a project (``[targets]``).
SETTINGS = ("target", "flag", "other")
DEFAULT_CLASSES = ("other", "emission", "double-peak")

_TEMPLATE = """\
# specscout project configuration

# Classes of the network's output, in order; the first is the background class.
classes = [{classes}]

[grid]
# The window (vacuum Angstrom) and the number of points every spectrum is resampled onto.
start = {grid.start}
stop = {grid.stop}
points = {grid.points}

[preprocess]
# "minmax" (to [-1, 1], as Skoda et al. 2020) or "continuum".
normalisation = "{normalisation}"
# Spectra with more masked grid pixels than this fraction are flagged, not pooled.
max_masked_fraction = {max_masked_fraction}
# Spectra whose median signal-to-noise in the window is below this are flagged.
min_snr = {min_snr}
# The resolving power every spectrum is degraded to before resampling; 0 keeps each file's
# own (e.g. 1531 makes LAMOST MRS or Ondrejov spectra look like LAMOST LRS ones).
resolution = {resolution}

[store]
# "float32" or "float16" for the preprocessed spectra.
dtype = "{dtype}"
# Spectra per committed part of the store (the unit of work lost to a killed ingest).
part_rows = {part_rows}

[labels]
# SQLAlchemy URL of the label database; a relative sqlite path is inside the project.
url = "{labels_url}"

[train]
# Train also in the survey's own domain: lines injected into real pool spectra as the
# positives (this many per target class), pool spectra as the negatives (this many).
domain = {domain}
injected = {injected}
negatives = {negatives}
# Train also on the labelled store (e.g. an Ondrejov set, resolution matched).
labelled_set = {labelled_set}
# Networks per fold (other seeds, same examples), their probabilities averaged.
networks = {networks}
# Pool spectra with an artefact added (cosmic-ray spikes, zero or bad pixel runs, sky
# residuals), taught as "other".
artefacts = {artefacts}

[targets]
# What each kind of H-alpha emission is (stellar emission is always a target):
# "target" (found and listed), "flag" (found and listed, flagged: 'candidates --no-flagged'
# leaves them out) or "other" (taught as not a target, not listed).
# nebular: a star seen through an H II region (narrow H-alpha with [N II]).
nebular = "{nebular}"
# core: an emission core inside an absorption line (shell stars, weak Ae, chromospheres).
core = "{core}"

[score]
# Make the probabilities relative to the pool's class mix (estimated by EM on its scores,
# Saerens et al. 2002) rather than the training set's. Off by default: on the real LAMOST
# spectra the estimate is too low for the first networks and hides real targets (README).
prior_shift = {prior_shift}
"""


@dataclass(frozen=True)
class ProjectConfig:
    classes: tuple[str, ...] = DEFAULT_CLASSES
    grid: Grid = field(default_factory=Grid)
    normalisation: str = "minmax"
    max_masked_fraction: float = 0.2
    min_snr: float = 2.0
    dtype: str = "float32"
    part_rows: int = 4096
    labels_url: str = "sqlite:///labels.db"
    resolution: float | None = None  # degrade every spectrum to this resolving power
    domain: bool = True
    injected: int = 1500
    negatives: int = 4000
    labelled_set: bool = True
    networks: int = 1
    artefacts: int = 500
    nebular: str = "flag"
    core: str = "target"
    prior_shift: bool = False

    def __post_init__(self) -> None:
        if self.dtype not in ("float32", "float16"):
            raise SpecscoutError(f"store dtype must be float32 or float16, not {self.dtype!r}")
        if len(set(self.classes)) != len(self.classes) or len(self.classes) < 2:
            raise SpecscoutError(f"classes must be two or more distinct names: {self.classes}")
        for kind in ("nebular", "core"):
            if getattr(self, kind) not in SETTINGS:
                raise SpecscoutError(f"targets.{kind} must be one of {', '.join(SETTINGS)}, "
                                     f"not {getattr(self, kind)!r}")
        if self.resolution is not None and not 100 <= self.resolution <= 1e6:
            raise SpecscoutError(f"preprocess.resolution must be 0 (keep each file's) or "
                                 f"100-1000000, not {self.resolution:g}")
        for name, low, high in BOUNDS:
            number = getattr(self, name)
            if not (math.isfinite(number) and low <= number <= high):
                raise SpecscoutError(f"{SECTION_OF[name]}.{name} must be {low:g}-{high:g}, "
                                     f"not {number!r}")

    @property
    def targets(self) -> dict[str, str]:
        """What each kind of emission is: "target", "flag" or "other"."""
        return {"stellar": "target", "nebular": self.nebular, "core": self.core}

    @classmethod
    def preset(cls, name: str, **overrides) -> ProjectConfig:
        """The configuration of a preset (``PRESETS``), with ``overrides``."""
        if name not in PRESETS:
            raise SpecscoutError(f"unknown preset {name!r}: one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def preprocess(self, degrade_from: float | None = None,
                   degrade_to: float | None = None) -> PreprocessConfig:
        return PreprocessConfig(grid=self.grid, normalisation=self.normalisation,
                                degrade_from=degrade_from,
                                degrade_to=degrade_to or self.resolution,
                                max_masked_fraction=self.max_masked_fraction,
                                min_snr=self.min_snr)

    def to_toml(self) -> str:
        return _TEMPLATE.format(
            classes=", ".join(f'"{c}"' for c in self.classes), grid=self.grid,
            normalisation=self.normalisation, max_masked_fraction=self.max_masked_fraction,
            min_snr=self.min_snr, dtype=self.dtype, part_rows=self.part_rows,
            labels_url=self.labels_url, resolution=self.resolution or 0,
            domain=str(self.domain).lower(), injected=self.injected, negatives=self.negatives,
            labelled_set=str(self.labelled_set).lower(), networks=self.networks,
            artefacts=self.artefacts, nebular=self.nebular, core=self.core,
            prior_shift=str(self.prior_shift).lower())

    @classmethod
    def from_toml(cls, text: str, source: str = "config") -> ProjectConfig:
        try:
            raw = tomllib.loads(text)
            _check_keys(raw)
            grid, pre = raw.get("grid", {}), raw.get("preprocess", {})
            store, labels = raw.get("store", {}), raw.get("labels", {})
            train, score = raw.get("train", {}), raw.get("score", {})
            targets = raw.get("targets", {})
            default = cls()
            return cls(
                classes=tuple(raw.get("classes", default.classes)),
                grid=Grid(float(grid.get("start", default.grid.start)),
                          float(grid.get("stop", default.grid.stop)),
                          int(grid.get("points", default.grid.points))),
                normalisation=str(pre.get("normalisation", default.normalisation)),
                max_masked_fraction=float(pre.get("max_masked_fraction",
                                                  default.max_masked_fraction)),
                min_snr=float(pre.get("min_snr", default.min_snr)),
                resolution=float(pre.get("resolution", 0)) or None,
                dtype=str(store.get("dtype", default.dtype)),
                part_rows=int(store.get("part_rows", default.part_rows)),
                labels_url=str(labels.get("url", default.labels_url)),
                domain=_flag(train.get("domain", default.domain), "train.domain"),
                injected=int(train.get("injected", default.injected)),
                negatives=int(train.get("negatives", default.negatives)),
                labelled_set=_flag(train.get("labelled_set", default.labelled_set),
                                   "train.labelled_set"),
                networks=int(train.get("networks", default.networks)),
                artefacts=int(train.get("artefacts", default.artefacts)),
                nebular=str(targets.get("nebular", default.nebular)),
                core=str(targets.get("core", default.core)),
                prior_shift=_flag(score.get("prior_shift", default.prior_shift),
                                  "score.prior_shift"),
            )
        except (tomllib.TOMLDecodeError, ValueError, TypeError, SpecscoutError) as exc:
            raise SpecscoutError(f"{source}: {exc}") from None


#: The keys of specscout.toml, by section ("" for the top level).
KEYS = {"": {"classes", "grid", "preprocess", "store", "labels", "train", "score", "targets"},
        "grid": {"start", "stop", "points"},
        "preprocess": {"normalisation", "max_masked_fraction", "min_snr", "resolution"},
        "store": {"dtype", "part_rows"}, "labels": {"url"},
        "train": {"domain", "injected", "negatives", "labelled_set", "networks", "artefacts"},
        "score": {"prior_shift"}, "targets": {"nebular", "core"}}
#: Numbers of the config and their bounds (the command line's own).
BOUNDS = (("max_masked_fraction", 0, 1), ("min_snr", 0, 1e4), ("part_rows", 1, 1 << 24),
          ("injected", 1, 10_000_000), ("negatives", 1, 10_000_000), ("networks", 1, 16),
          ("artefacts", 0, 10_000_000))
SECTION_OF = {"max_masked_fraction": "preprocess", "min_snr": "preprocess",
              "part_rows": "store", "injected": "train", "negatives": "train",
              "networks": "train", "artefacts": "train"}


def _check_keys(raw: dict) -> None:
    """Refuse a key specscout does not know (a misspelt one would be ignored silently),
    naming the nearest it knows."""
    from difflib import get_close_matches

    for section, known in KEYS.items():
        table = raw if not section else raw.get(section, {})
        if not isinstance(table, dict):
            raise ValueError(f"[{section}] must be a table of keys")
        for key in table:
            if key in known or (not section and key in KEYS):
                continue
            near = get_close_matches(key, sorted(known), n=1)
            where = f"{section}.{key}" if section else key
            hint = (f": did you mean {near[0]}?" if near
                    else f" (known: {', '.join(sorted(known))})")
            raise ValueError(f"unknown key {where}{hint}")


def _flag(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, not {value!r}")
    return value


#: Starting points for ``specscout init --preset``: the window, its points and the
#: resolution. LAMOST LRS as the reference paper; LAMOST MRS at its native sampling
#: (0.15 A a pixel, R ~ 7500); LAMOST MRS matched to LRS, so that one model serves both.
PRESETS = {
    "lamost-lrs": {"grid": Grid(), "resolution": None},
    "lamost-mrs": {"grid": Grid(6519.0, 6732.0, 1412), "resolution": 7500.0},
    "lamost-mrs-as-lrs": {"grid": Grid(), "resolution": 1531.0},
}


class Project:
    """A project directory. ``Project(path)`` opens an existing one; :meth:`init` makes one."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        config_path = self.path / CONFIG_NAME
        if not config_path.is_file():
            raise SpecscoutError(f"{self.path} is not a specscout project (no {CONFIG_NAME}); "
                                 f"create one with 'specscout init {self.path}'")
        self.config = ProjectConfig.from_toml(config_path.read_text(), str(config_path))
        # Validates the preprocessing options early, with the config file named.
        try:
            self.config.preprocess()
        except ValueError as exc:
            raise SpecscoutError(f"{config_path}: {exc}") from None

    @classmethod
    def init(cls, path: str | Path, config: ProjectConfig | None = None) -> Project:
        path = Path(path)
        if (path / CONFIG_NAME).exists():
            raise SpecscoutError(f"{path} is already a specscout project")
        if not path.exists():
            path.mkdir(parents=True)
            # private: labels, sessions and scores are the team's (a group that shares a
            # project opens it with chmod -R g+rwX,g+s; docs/labelling.md)
            path.chmod(0o700)
        (path / CONFIG_NAME).write_text((config or ProjectConfig()).to_toml())
        return cls(path)

    @contextmanager
    def lock(self, command: str) -> Iterator[None]:
        """Hold this project for ``command`` (one that writes iterations: train, score, query,
        iterate, map): another such command meanwhile is refused, told who holds it. The
        lock is the operating system's (``flock``), so a killed holder never leaves one
        behind."""
        import fcntl
        import os
        import socket
        import time

        fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 512, 0).decode(errors="replace").strip()
                raise SpecscoutError(f"{self.path} is busy: {holder or 'another command'} "
                                     f"holds it; run this once it has ended") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"'specscout {command}' (process {os.getpid()} on "
                          f"{socket.gethostname()}, since "
                          f"{time.strftime('%Y-%m-%d %H:%M:%S')})\n".encode(), 0)
            yield
        finally:
            os.close(fd)  # and with it the lock

    @property
    def pool_path(self) -> Path:
        return self.path / "pool"

    @property
    def labelled_path(self) -> Path:
        return self.path / "labelled"

    def store(self, name: str = "pool"):
        """The store ``pool`` or ``labelled`` (created empty when absent)."""
        from specscout.archive.store import Store

        if name not in ("pool", "labelled"):
            raise SpecscoutError(f"unknown store {name!r}: pool or labelled")
        return Store.open_or_create(self.path / name, points=self.config.grid.points,
                                    dtype=self.config.dtype)
