"""What the command modules share: options that several commands take, and small helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import click

from specscout.spectra.grid import Grid


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


def model_names() -> Iterable[str]:
    from specscout.learn.model import MODELS

    return MODELS


def strategy_names() -> Iterable[str]:
    from specscout.learn.strategies import STRATEGIES

    return STRATEGIES


def grid_options(func):
    """--window START STOP and --points: the wavelength grid."""
    default = Grid()
    func = click.option("--points", type=int, default=default.points, show_default=True,
                        help="points of the grid")(func)
    return click.option("--window", nargs=2, type=float, metavar="START STOP",
                        default=(default.start, default.stop), show_default=True,
                        help="vacuum wavelength window in Angstrom")(func)


def grid(window: tuple[float, float], points: int) -> Grid:
    return Grid(window[0], window[1], points)


project_argument = click.argument("project")
iteration_option = click.option("--iteration", type=int, default=None,
                                help="default: the latest")
quiet_option = click.option("--quiet", is_flag=True, help="no progress bar")
workers_option = click.option("--workers", type=int, default=None,
                              help="local Dask worker processes (default: one per core)")
scheduler_option = click.option("--scheduler", default=None, metavar="ADDRESS",
                                help="an existing dask.distributed scheduler, e.g. "
                                     "tcp://host:8786")


def open_project(path: str, shared: bool = False):
    """The project at ``path``; ``shared``: a command that writes labels or queues beside
    other processes, which is warned when the label database cannot take that."""
    from specscout.archive.project import Project

    project = Project(path)
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
