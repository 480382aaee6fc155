"""Commands on a project and its stores: init, ingest, info."""

from __future__ import annotations

import click

from specscout.cli.common import (
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
@click.option("--window", nargs=2, type=float, metavar="START STOP", default=None,
              help="vacuum wavelength window in Angstrom (default: the preset's)")
@click.option("--points", type=int, default=None, help="points of the grid (default: the "
              "preset's)")
@click.option("--resolution", type=float, default=None, metavar="R",
              help="degrade every spectrum to this resolving power (default: the preset's)")
@click.option("--classes", default=None, metavar="A,B,...",
              help="class names, background first (default: other,emission,double-peak)")
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32")
def init(project, preset, window, points, resolution, classes, dtype) -> int:
    """Create a discovery project directory."""
    from specscout.archive.project import Project, ProjectConfig
    from specscout.spectra.grid import Grid

    base = ProjectConfig.preset(preset, dtype=dtype)
    start, stop = window or (base.grid.start, base.grid.stop)
    config = ProjectConfig.preset(
        preset, grid=Grid(start, stop, points or base.grid.points), dtype=dtype,
        resolution=resolution or base.resolution,
        classes=tuple(c.strip() for c in classes.split(",")) if classes else base.classes)
    created = Project.init(project, config)
    print(f"created project {created.path} (edit {created.path / 'specscout.toml'} to change it)")
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
@click.option("--degrade-from", type=float, default=None, metavar="R",
              help="resolving power of the files (default: the reader's)")
@click.option("--degrade-to", type=float, default=None, metavar="R",
              help="degrade to this resolving power (e.g. a labelled set to the survey's)")
@click.option("--labels", default=None, metavar="CSV",
              help="a labelled set: CSV with path or id, and label; goes to the labelled "
                   "store, apart from the pool")
@click.option("--label-map", default=None, metavar="FROM=TO,...",
              help="translate the CSV's labels to class names; TO empty drops the row")
@click.option("--retry-failed", is_flag=True,
              help="read again the files that failed before (an I/O error, a worker that "
                   "died)")
@click.option("--batch-size", type=int, default=256, show_default=True,
              help="files a task reads (lower it for files of hundreds of spectra)")
@quiet_option
def ingest(project, paths, workers, scheduler, degrade_from, degrade_to, labels, label_map,
           retry_failed, batch_size, quiet) -> int:
    """Read and preprocess spectrum files into the project.

    PATHS are directories (recursive), glob patterns, lists of paths (.txt) or files."""
    from specscout.archive.ingest import ingest as run
    from specscout.archive.ingest import load_labels
    from specscout.archive.project import Project

    p = Project(project)
    config = p.config.preprocess(degrade_from, degrade_to)
    known = load_labels(labels, p.config.classes, _label_map(label_map)) if labels else None
    store = p.store("labelled" if known is not None else "pool")
    summary = run(store, paths, config, workers=workers, scheduler=scheduler,
                  part_rows=p.config.part_rows, batch_size=batch_size, labels=known,
                  retry_failed=retry_failed, progress=not quiet)
    print(f"{store.path}: {summary}")
    print(f"{store.path} now holds {len(store)} spectra from {store.files} files")
    return 0


@click.command()
@project_argument
@click.option("--failures", is_flag=True, help="list every failed or flagged file")
def info(project, failures) -> int:
    """What the project holds, and what could not be ingested."""
    from specscout.archive.project import Project

    p = Project(project)
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


@click.command()
@click.argument("out")
@click.option("--service", required=True, metavar="URL",
              help="the SSA service's base URL (e.g. found in the VO registry with "
                   "pyvo.registry.search(servicetype='ssa', keywords=...))")
@click.option("--ids", default=None, metavar="CSV",
              help="the publisher's dataset ids to fetch (an 'id' column; a 'label' column "
                   "is carried into OUT/fetched.csv)")
@click.option("--pos", nargs=2, type=float, default=None, metavar="RA DEC",
              help="or: what the service holds around this position (degrees)")
@click.option("--size", type=float, default=0.01, show_default=True,
              help="radius of the region around --pos (degrees)")
@click.option("--time", "time_range", nargs=2, default=None, metavar="START END",
              help="with --pos: observed between these ISO 8601 times")
@click.option("--workers", type=int, default=8, show_default=True,
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
