"""What the command modules share: options that several commands take, and small helpers."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import click

from specscout.spectra.grid import Grid

#: The projects a command opened: where its error log goes.
OPENED: list = []


class Named(click.ParamType):
    """One of the names of a registry (models, strategies), looked up only when a command
    parses it or shows its help, so that ``specscout --help`` imports no heavy library."""

    name = "name"

    def __init__(self, names: Callable[[], Iterable[str]]) -> None:
        self._names = names

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[" + "|".join(sorted(self._names())) + "]"

    def convert(self, value, param, ctx) -> str:
        names = sorted(self._names())
        if value not in names:
            self.fail(f"{value!r} is not one of {', '.join(names)}", param, ctx)
        return value


class Finite(click.FloatRange):
    """A number within a range, and finite: click's ``FloatRange`` lets NaN through every
    bound (NaN compares false with all of them) and infinity through an open one."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class Device(click.ParamType):
    """Where a network runs: ``auto`` (a CUDA GPU if this machine has one, else the CPU),
    ``cpu``, ``cuda`` or ``cuda:N``; a GPU this machine does not have is refused here, not
    after an hour's work."""

    name = "device"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[auto|cpu|cuda|cuda:N|mps]"

    def convert(self, value, param, ctx) -> str:
        value = str(value).strip().lower()
        if value in ("auto", "cpu"):
            return value
        if value == "mps":  # Apple silicon
            import torch

            if not torch.backends.mps.is_available():
                self.fail("this machine has no Apple GPU (mps) for torch "
                          f"{torch.__version__}: use --device cpu (or auto)", param, ctx)
            return value
        index = value.removeprefix("cuda").removeprefix(":") if value.startswith("cuda") \
            else None
        if index is None or not (index == "" or index.isdigit()):
            self.fail(f"{value!r} is not one of auto, cpu, cuda, cuda:N, mps", param, ctx)
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            self.fail(f"this machine has no CUDA GPU for torch {torch.__version__}: use "
                      f"--device cpu (or auto)", param, ctx)
        if index and int(index) >= count:
            self.fail(f"{value!r}: this machine has {count} CUDA GPU(s), cuda:0 to "
                      f"cuda:{count - 1}", param, ctx)
        return value


#: Types of the options that several commands share, bounded where they enter.
WORKERS = click.IntRange(1, 1024)
SEED = click.IntRange(0, 2**32 - 1)
PORT = click.IntRange(0, 65535)  # 0: a free one
ITERATION = click.IntRange(1, 10**6)
PROBABILITY = Finite(0.0, 1.0)
THRESHOLD = Finite(0.0, 1.0, min_open=True)
ARCSEC = Finite(0.0, 3600.0, min_open=True)  # a match or grouping radius, up to a degree
RESOLVING_POWER = Finite(100.0, 1e6)
WAVELENGTH = Finite(1000.0, 100_000.0)  # Angstrom
POINTS = click.IntRange(8, 100_000)


def model_names() -> Iterable[str]:
    from specscout.learn.model import MODELS

    return MODELS


def strategy_names() -> Iterable[str]:
    from specscout.learn.strategies import STRATEGIES

    return STRATEGIES


def grid_options(func):
    """--window START STOP and --points: the wavelength grid."""
    default = Grid()
    func = click.option("--points", type=POINTS, default=default.points, show_default=True,
                        help="points of the grid")(func)
    return click.option("--window", nargs=2, type=WAVELENGTH, metavar="START STOP",
                        default=(default.start, default.stop), show_default=True,
                        callback=check_window,
                        help="vacuum wavelength window in Angstrom")(func)


def check_window(ctx, param, value):
    """A window whose start lies below its stop (None passes)."""
    if value is not None and not value[0] < value[1]:
        raise click.BadParameter(f"the start ({value[0]:g}) must lie below the stop "
                                 f"({value[1]:g})", ctx, param)
    return value


def grid(window: tuple[float, float], points: int) -> Grid:
    return Grid(window[0], window[1], points)


project_argument = click.argument("project")
iteration_option = click.option("--iteration", type=ITERATION, default=None,
                                help="default: the latest")
quiet_option = click.option("--quiet", is_flag=True, help="print nothing but errors")
workers_option = click.option("--workers", type=WORKERS, default=None,
                              help="local Dask worker processes (default: one per core)")
scheduler_option = click.option("--scheduler", default=None, metavar="ADDRESS",
                                help="an existing dask.distributed scheduler, e.g. "
                                     "tcp://host:8786")


def open_project(path: str, shared: bool = False):
    """The project at ``path``; ``shared``: a command that writes labels or queues beside
    other processes, which is warned when the label database cannot take that."""
    from specscout.archive.project import Project

    project = Project(path)
    OPENED.append(project.path)
    if shared:
        from specscout.labels.schema import resolve_url, sqlite_warning

        warning = sqlite_warning(resolve_url(project.config.labels_url, project.path))
        if warning:
            click.echo(warning, err=True)
    return project


def counts(items: dict) -> str:
    """'a 1, b 2'"""
    return ", ".join(f"{k} {v}" for k, v in items.items())


def options(*decorators):
    """Several click options as one decorator (options shared by commands)."""
    def apply(func):
        for d in reversed(decorators):
            func = d(func)
        return func
    return apply
