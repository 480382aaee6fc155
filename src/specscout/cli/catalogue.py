"""Commands that deliver: candidates, audit, report."""

from __future__ import annotations

import click

from specscout.cli.common import (
    ARCSEC,
    SEED,
    THRESHOLD,
    WORKERS,
    Finite,
    counts,
    iteration_option,
    open_project,
    options,
    project_argument,
    quiet_option,
    scheduler_option,
)

catalogue_option = options(
    click.option("--catalogue", multiple=True, metavar="PATH[@ARCSEC]",
                 help="reference catalogue: CSV, VOTable or FITS with RA/Dec, or a HATS "
                      "catalogue directory (matched with LSDB on Dask); @ARCSEC: its own "
                      "radius; repeatable"),
    click.option("--columns", default="", metavar="A,B,...",
                 help="catalogue columns to bring over (as CATALOGUE_COLUMN), where a "
                      "catalogue has them"),
    click.option("--workers", type=WORKERS, default=None,
                 help="local Dask workers for HATS catalogues (default: one per core)"),
    scheduler_option)
threshold_option = click.option("--threshold", type=THRESHOLD, default=0.5, show_default=True,
                                help="least probability of a target class")
kind_options = options(
    click.option("--kind", default="", metavar="K,...",
                 help="list the model's candidates of these measured kinds only: stellar, "
                      "nebular, core, artefact, none, unknown, or all (default: the kinds "
                      "the project's [targets] teaches as targets, and unknown)"),
    click.option("--flagged/--no-flagged", default=True, show_default=True,
                 help="list the kinds [targets] sets to 'flag' (nebular by default)"),
    click.option("--lines/--no-lines", default=True, show_default=True,
                 help="measure the candidates' lines on their files (without: every kind "
                      "unknown)"))



def _proposed(project, iteration: int, threshold: float) -> int:
    """How many pool spectra the model of ``iteration`` proposes as candidates."""
    from specscout.learn.iterations import load_scores
    from specscout.learn.predictions import chunks, model_candidates

    _, probabilities = load_scores(project, iteration)
    return sum(int(model_candidates(p, threshold)[1].sum()) for _, p in chunks(probabilities))


@click.command()
@project_argument
@threshold_option
@click.option("--radius", type=ARCSEC, default=3.0, show_default=True,
              help="arcsec: spectra this close are one object; cross-match radius")
@catalogue_option
@click.option("--classes", default=None, metavar="A,B,...",
              help="target classes (default: all but the first)")
@iteration_option
@click.option("--out", multiple=True, metavar="FILE",
              help="write the objects (and FILE-spectra) as .xml (VOTable), .fits, .csv, "
                   ".ecsv or .parquet; repeatable")
@click.option("--samp", is_flag=True,
              help="send the objects table to TOPCAT etc. through the running SAMP hub")
@kind_options
@quiet_option
def candidates(project, threshold, radius, catalogue, columns, workers, scheduler, classes,
               iteration, out, samp, kind, flagged, lines, quiet) -> int:
    """The candidate catalogue: objects of the target classes, their H-alpha measured and
    their kind of emission told, cross-matched against reference catalogues."""
    from pathlib import Path

    from specscout.catalogue.candidates import build, write

    p = open_project(project)
    cat = build(p, threshold=threshold, radius_arcsec=radius, references=catalogue,
                iteration=iteration,
                classes=tuple(c.strip() for c in classes.split(",")) if classes else None,
                columns=_names(columns), workers=workers, scheduler=scheduler,
                kinds=_names(kind) or None, flagged=flagged, lines=lines, progress=not quiet)
    objects, spectra = cat.objects, cat.spectra
    say = (lambda *_: None) if quiet else print
    by_label = int(sum(s == "label" for s in spectra["source"])) if len(spectra) else 0
    say(f"iteration {cat.iteration}, threshold {cat.threshold}: {len(spectra)} candidate "
        f"spectra of {len(objects)} objects ({by_label} by a label, "
        f"{len(spectra) - by_label} proposed by the model and listed)")
    if not classes and not kind:  # the model's proposals as 'status' counts them
        proposed = _proposed(p, cat.iteration, cat.threshold)
        aside = sum(cat.set_aside.values())
        listed = len(spectra) - by_label
        say(f"  the model proposes {proposed} ('status' counts these): {listed} listed, "
            f"{aside} set aside by their measured kind, {proposed - listed - aside} "
            f"labelled by people (a label wins)")
    for cls in dict.fromkeys(objects["class"]):
        o = objects[objects["class"] == cls]
        known = int(sum(o["known"]))
        say(f"  {cls:<14} {int(sum(o['n_spectra']))} spectra of {len(o)} objects: "
              f"{len(o) - known} new, {known} known")
    if len(spectra):
        import numpy as np

        say("  by kind (spectra): " + counts(
            {k + (" (flagged)" if p.config.targets.get(k) == "flag" else ""): int(n)
             for k, n in zip(*np.unique(np.asarray(spectra["kind"]), return_counts=True),
                             strict=True)}))
    if cat.set_aside:
        say(f"  set aside (the model's, not listed by their measured kind; --kind all "
              f"lists them): {counts(cat.set_aside)}")
    for note in objects.meta.get("catalogues", []):
        say(f"  matched {note}")
    for name in out:
        path = write(objects, name)
        stem = path.with_name(path.stem + "-spectra" + path.suffix)
        write(spectra, stem)
        say(f"wrote {path} (objects) and {stem} (spectra)")
    if samp:
        from specscout.catalogue.samp import send_table

        votable = next((Path(o) for o in out if Path(o).suffix in (".xml", ".vot")), None)
        if votable is None:
            votable = write(objects, p.path / "candidates.xml")
        sent = send_table(votable, name=f"specscout candidates ({p.path.name})")
        say(f"sent {votable} by SAMP to: {', '.join(sent) or 'no client that loads tables'}")
    return 0


@click.command()
@project_argument
@click.option("--draw", is_flag=True, help="draw a new audit sample")
@click.option("--positives", type=click.IntRange(1, 1_000_000), default=50, show_default=True,
              help="per candidate class")
@click.option("--negatives", type=click.IntRange(1, 1_000_000), default=150, show_default=True,
              help="over the other strata")
@threshold_option
@iteration_option
@click.option("--truth", default=None,
              help="simulations: label the sample from this truth table")
@click.option("--level", type=Finite(0.5, 0.9999), default=0.95, show_default=True,
              help="confidence level of the intervals")
@click.option("--coverage", type=click.IntRange(0, 100_000), default=0, metavar="N",
              help="simulations: repeat N audits labelled from --truth and report how often "
                   "the intervals hold the true values")
@click.option("--seed", type=SEED, default=0, show_default=True, help="of the random draw")
def audit(project, draw, positives, negatives, threshold, iteration, truth, level, coverage,
          seed) -> int:
    """Estimate precision and recall from random audit samples."""
    from specscout.catalogue import audit as estimates
    from specscout.errors import SpecscoutError

    p = open_project(project)
    if coverage:
        if not truth:
            raise SpecscoutError("--coverage needs --truth: the true class of every pool "
                                 "spectrum")
        number, result = estimates.coverage_project(
            p, truth, iteration=iteration, threshold=threshold, positives=positives,
            negatives=negatives, repeats=coverage, level=level, seed=seed)
        print(f"{coverage} independent audits of iteration {number} ({positives} per "
              f"candidate class, {negatives} others), labelled from the truth: how often the "
              f"{100 * level:.0f} % intervals hold the true value")
        print("  strata: " + counts(result["strata"]))
        for cls in p.config.classes[1:]:
            r = result[cls]
            print(f"  {cls:<14} " + "   ".join(
                f"{m} {r[m]['coverage']:.3f} (true {r[m]['true']:.3g}, median width "
                f"{r[m]['median_width']:.3g})" for m in ("precision", "recall", "count")))
        return 0
    if draw:
        d = estimates.draw(p, positives=positives, negatives=negatives, threshold=threshold,
                           iteration=iteration, seed=seed)
        print(f"audit draw {d['draw']} from iteration {d['iteration']}: {d['rows']} spectra "
              f"({counts(d['strata'])} rows per stratum)")
        print(f"fill in the label column of {d['csv']} and run "
              f"'specscout labels import {project} {d['csv']} --audit'")
        if not truth:
            return 0
    if truth:
        n = estimates.label_from_truth(p, truth)
        print(f"labelled {n} audit spectra from {truth}")
    est = estimates.estimate_project(p, level=level)
    print(f"audit draw {est['draw']} (iteration {est['iteration']}): {est['labelled']} of "
          f"{est['drawn']} labelled; {100 * est['level']:.0f} % intervals")
    show = estimates.show
    for cls, e in est["classes"].items():
        print(f"  {cls:<14} precision {show(e['precision'], e['precision_interval'])}  "
              f"recall {show(e['recall'], e['recall_interval'])}  in the archive "
              f"{show(e['count'], e['count_interval'], 0)}  ({e['listed']} listed)")
    return 0


@click.command()
@project_argument
@click.option("--out", default=None, help="directory (default PROJECT/report)")
@threshold_option
@click.option("--radius", type=ARCSEC, default=3.0, show_default=True,
              help="arcsec: spectra this close are one object; cross-match radius")
@catalogue_option
@kind_options
def report(project, out, threshold, radius, catalogue, columns, workers, scheduler, kind,
           flagged, lines) -> int:
    """A static HTML page with figures of the project."""
    from specscout.catalogue.report import write

    index = write(open_project(project), out, threshold=threshold, radius_arcsec=radius,
                  references=catalogue, columns=_names(columns), workers=workers,
                  scheduler=scheduler, kinds=_names(kind) or None, flagged=flagged,
                  lines=lines)
    print(f"report: {index}")
    return 0


def _names(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(",") if c.strip())


@click.group()
def catalogue() -> None:
    """Reference catalogues."""


@catalogue.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.argument("out", type=click.Path())
@click.option("--margin", type=ARCSEC, default=60.0, show_default=True,
              help="arcsec: the margin cache kept beside each partition (the largest "
                   "cross-match radius it serves exactly)")
@click.option("--workers", type=WORKERS, default=None,
              help="local Dask workers (default: one per core)")
@scheduler_option
@quiet_option
def import_(file, out, margin, workers, scheduler, quiet) -> int:
    """Turn a catalogue FILE (CSV, VOTable, FITS with RA/Dec) into a HATS catalogue OUT
    (with its margin cache), for fast matching: --catalogue OUT."""
    from specscout.catalogue.convert import import_hats

    info = import_hats(file, out, margin_arcsec=margin, workers=workers, scheduler=scheduler,
                       progress=not quiet)
    if not quiet:
        print(f"wrote {out}: {info['rows']:,} rows in {info['partitions']} partitions, "
              f"margin {margin:g} arcsec ({info['seconds']:.1f} s)")
    return 0


COMMANDS = [candidates, audit, report, catalogue]
