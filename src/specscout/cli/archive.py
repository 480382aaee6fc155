"""Commands on a project and its stores: init, ingest, info."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from specscout.cli.common import (
    POINTS,
    RESOLVING_POWER,
    WAVELENGTH,
    Finite,
    check_window,
    open_project,
    project_argument,
    quiet_option,
    scheduler_option,
    workers_option,
)


@click.command()
@project_argument
@click.option("--preset", type=click.Choice(["lamost-lrs", "lamost-mrs", "lamost-mrs-as-lrs"]),
              default="lamost-lrs", show_default=True,
              help="the window, points and resolution of a survey: LAMOST LRS as the paper; "
                   "LAMOST MRS at its native sampling (1412 points, R 7500); MRS matched to LRS "
                   "(140 points, R 1531), so that one model serves both")
@click.option("--window", nargs=2, type=WAVELENGTH, metavar="START STOP", default=None,
              callback=check_window,
              help="vacuum wavelength window in Angstrom (default: the preset's)")
@click.option("--points", type=POINTS, default=None, help="points of the grid (default: the "
              "preset's)")
@click.option("--resolution", type=RESOLVING_POWER, default=None, metavar="R",
              help="degrade every spectrum to this resolving power (default: the preset's)")
@click.option("--classes", default=None, metavar="A,B,...",
              help="class names, background first (default: other,emission,double-peak)")
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32",
              show_default=True, help="how the store keeps the preprocessed spectra")
def init(project, preset, window, points, resolution, classes, dtype) -> int:
    """Create a discovery project directory."""
    from specscout.archive.project import Project, ProjectConfig
    from specscout.spectra.grid import Grid

    base = ProjectConfig.preset(preset, dtype=dtype)
    start, stop = window or (base.grid.start, base.grid.stop)
    names = tuple(c.strip() for c in classes.split(",")) if classes is not None else base.classes
    if any(not c for c in names):
        raise click.BadParameter(f"{classes!r}: class names, comma-separated, none empty",
                                 param_hint="'--classes'")
    config = ProjectConfig.preset(
        preset, grid=Grid(start, stop, base.grid.points if points is None else points),
        dtype=dtype, resolution=base.resolution if resolution is None else resolution,
        classes=names)
    Project.init(project, config)
    shown = Path(project)  # as the user gave it
    print(f"created project {shown} (edit {shown / 'specscout.toml'} to change it)")
    return 0


def _label_map(text: str | None) -> dict[str, str] | None:
    from specscout.errors import SpecscoutError

    if not text:
        return None
    pairs = [item.split("=", 1) for item in text.split(",")]
    if any(len(p) != 2 for p in pairs):
        raise SpecscoutError(f"--label-map wants FROM=TO,FROM=TO..., got {text!r}")
    return {k.strip(): v.strip() for k, v in pairs}


@click.command()
@project_argument
@click.argument("paths", nargs=-1, required=True)
@workers_option
@scheduler_option
@click.option("--degrade-from", type=RESOLVING_POWER, default=None, metavar="R",
              help="resolving power of the files (default: the reader's)")
@click.option("--degrade-to", type=RESOLVING_POWER, default=None, metavar="R",
              help="degrade to this resolving power (e.g. a labelled set to the survey's)")
@click.option("--labels", default=None, metavar="CSV",
              help="a labelled set: CSV with path or id, and label; goes to the labelled "
                   "store, apart from the pool")
@click.option("--label-map", default=None, metavar="FROM=TO,...",
              help="translate the CSV's labels to class names; TO empty drops the row")
@click.option("--retry-failed", is_flag=True,
              help="read again the files that failed before (an I/O error, a worker that "
                   "died)")
@click.option("--files-per-task", "--batch-size", "files_per_task",
              type=click.IntRange(1, 100_000), default=256, show_default=True,
              help="files a Dask task reads (lower it for files of hundreds of spectra)")
@quiet_option
def ingest(project, paths, workers, scheduler, degrade_from, degrade_to, labels, label_map,
           retry_failed, files_per_task, quiet) -> int:
    """Read and preprocess spectrum files into the project.

    PATHS are directories (recursive), glob patterns, lists of paths (.txt) or files."""
    from specscout.archive.ingest import check_labels, check_sources, load_labels
    from specscout.archive.ingest import ingest as run

    p = open_project(project)
    config = p.config.preprocess(degrade_from, degrade_to)
    known = load_labels(labels, p.config.classes, _label_map(label_map)) if labels else None
    check_sources(paths)
    if known is not None and degrade_to is None and config.degrade_to is None:
        _warn_resolution(p, paths)
    store = p.store("labelled" if known is not None else "pool")
    if known is not None:
        newly = check_labels(store, known)
        if newly and not retry_failed:
            print(f"specscout: warning: {newly} files stored before without a label have one "
                  f"now: --retry-failed takes them in", file=sys.stderr)
    summary = run(store, paths, config, workers=workers, scheduler=scheduler,
                  part_rows=p.config.part_rows, batch_size=files_per_task, labels=known,
                  retry_failed=retry_failed, progress=not quiet)
    if not quiet:
        shown = Path(project) / store.path.name  # as the user gave it
        print(f"{shown}: {summary}")
        print(f"{shown} now holds {len(store)} spectra from {store.files} files")
    return 0


def _warn_resolution(project, paths) -> None:
    """Warn where a labelled set is ingested at a resolving power far above the survey's:
    the network would learn lines sharper than the survey shows (--degrade-to matches
    them)."""
    from specscout.archive.ingest import iter_paths
    from specscout.errors import SpecscoutError
    from specscout.spectra.measure import resolving_power
    from specscout.spectra.readers import read_all

    pool = project.store("pool")
    try:
        first = next(iter_paths(paths), None)
        labelled = resolving_power(read_all(first)[0]) if first else float("nan")
        survey = (resolving_power(read_all(pool.records([0], ["path"])["path"][0].as_py())[0])
                  if len(pool) else float("nan"))
    except (SpecscoutError, OSError, ValueError, IndexError):
        return  # no warning where nothing can tell: the ingest itself says what fails
    if labelled > 1.5 * survey:
        click.echo(f"warning: the labelled set's spectra are at R {labelled:.0f}, the survey's "
                   f"at R {survey:.0f}: give --degrade-to {survey:.0f} to match them (the "
                   f"network would learn lines sharper than the survey shows)", err=True)


@click.command()
@project_argument
@click.option("--failures", is_flag=True, help="list every failed or flagged file")
def info(project, failures) -> int:
    """What the project holds, and what could not be ingested."""
    p = open_project(project)
    c = p.config
    print(f"project {p.path}\n  grid {c.grid.start:g}-{c.grid.stop:g} A, "
          f"{c.grid.points} points; normalisation {c.normalisation}; store {c.dtype}\n"
          f"  classes {', '.join(c.classes)}\n  labels {c.labels_url}")
    for name in ("pool", "labelled"):
        store = p.store(name)
        summary = store.summary("label" if name == "labelled" else "release")
        s = summary["status"]
        print(f"{name}: {len(store)} spectra; files {store.files}: ingested {s['ok']}, "
              f"flagged {s['flagged']}, failed {s['failed']}")
        if summary["by"]:
            print(f"  by {summary['key']}: " + ", ".join(
                f"{k or '?'} {v}" for k, v in sorted(summary["by"].items(), key=lambda i:
                                                    str(i[0]))))
        failed = store.failures()
        if len(failed):
            print("  not pooled: " + ", ".join(f"{k} {v}" for k, v in
                                               summary["reasons"].items()))
            shown = failed if failures else failed.slice(0, 10)
            for r in shown.to_pylist():
                detail = f" ({r['detail']})" if r["detail"] else ""
                print(f"    {r['status']:<8}{r['path']}: {r['reason']}{detail}")
            if len(shown) < len(failed):
                print(f"    ... {len(failed) - len(shown)} more (--failures lists all)")
    return 0


def _position(value):
    """RA 0-360 and Dec -90..90 (degrees), or None."""
    if value is not None and not (0 <= value[0] < 360 and -90 <= value[1] <= 90):
        raise click.BadParameter(f"{value[0]:g} {value[1]:g}: RA 0-360 and Dec -90..90 "
                                 f"degrees", param_hint="'--pos'")
    return value


@click.command()
@click.argument("out")
@click.option("--service", required=True, metavar="URL",
              help="the SSA service's base URL (e.g. found in the VO registry with "
                   "pyvo.registry.search(servicetype='ssa', keywords=...))")
@click.option("--ids", default=None, metavar="CSV",
              help="the publisher's dataset ids to fetch (an 'id' column; a 'label' column "
                   "is carried into OUT/fetched.csv)")
@click.option("--pos", nargs=2, type=Finite(-90.0, 360.0), default=None, metavar="RA DEC",
              callback=lambda ctx, param, value: _position(value),
              help="or: what the service holds around this position (degrees)")
@click.option("--size", type=Finite(0.0, 90.0, min_open=True), default=0.01,
              show_default=True, help="radius of the region around --pos (degrees)")
@click.option("--time", "time_range", nargs=2, default=None, metavar="START END",
              help="with --pos: observed between these ISO 8601 times")
@click.option("--workers", type=click.IntRange(1, 64), default=8, show_default=True,
              help="downloads at once")
def fetch(out, service, ids, pos, size, time_range, workers) -> int:
    """Download spectra from a Virtual Observatory archive (IVOA SSA) into OUT; resumable."""
    from specscout.archive.fetch import fetch as run
    from specscout.archive.fetch import read_ids
    from specscout.errors import SpecscoutError

    if not ids and pos is None:
        raise SpecscoutError("say what to fetch: --ids CSV, or --pos RA DEC")
    summary = run(service, out, ids=read_ids(ids) if ids else (), pos=pos, size=size,
                  time_range=time_range, workers=workers)
    print(f"{out}: {summary}")
    print(f"files listed in {out}/fetched.csv (id, path, label): ingest them with "
          f"'specscout ingest PROJECT {out} --labels {out}/fetched.csv'")
    return 1 if summary.failed else 0


COMMANDS = [init, ingest, info, fetch]
