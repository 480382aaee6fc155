"""``specscout report``: a static HTML page with PNG figures of a project's state.

learning.png   per iteration: validation loss, the model's predicted counts, audit estimates
labels.png     labels per class and iteration (cumulative)
probabilities.png  histograms of every target class's probability over the pool
gallery.png    candidate spectra, new objects first
sky.png        the candidates on the sky, new and known
reliability.png  the probabilities against the latest audit's labels
"""

from __future__ import annotations

import html
import time
from pathlib import Path

import numpy as np

from specscout.archive.project import Project
from specscout.catalogue.audit import estimates_by_iteration, reliability, show
from specscout.catalogue.candidates import Catalogue, build
from specscout.labels import label_store
from specscout.learn.iterations import load_scores, status
from specscout.learn.predictions import chunks

HALPHA = 6564.61


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_figure(project: Project, path: Path, audits: dict[int, dict]) -> None:
    plt = _plt()
    its = status(project)
    classes = tuple(project.config.classes)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), constrained_layout=True)
    x = [it["iteration"] for it in its]
    axes[0].plot(x, [it.get("train", {}).get("val_loss", np.nan) for it in its], "o-")
    axes[0].set_title("validation loss")
    for c in classes[1:]:
        axes[1].plot(x, [it.get("score", {}).get("predicted", {}).get(c, np.nan) for it in its],
                     "o-", label=c)
    axes[1].set_yscale("log")
    axes[1].set_title("spectra predicted per class")
    axes[1].legend(fontsize=8)
    for c in classes[1:]:
        for metric, marker in (("precision", "o"), ("recall", "s")):
            pts = [(n, a["classes"][c]) for n, a in sorted(audits.items())
                   if c in a["classes"] and a["classes"][c][metric] is not None]
            if not pts:
                continue
            n = [p[0] for p in pts]
            v = np.array([p[1][metric] for p in pts])
            lo = v - np.array([p[1][f"{metric}_interval"][0] for p in pts])
            hi = np.array([p[1][f"{metric}_interval"][1] for p in pts]) - v
            axes[2].errorbar(n, v, yerr=[lo, hi], fmt=marker + "-", capsize=3,
                             label=f"{c} {metric}")
    axes[2].set_ylim(0, 1.02)
    axes[2].set_title("audit estimates (95 % intervals)")
    if audits:
        axes[2].legend(fontsize=7)
    for ax in axes:
        ax.set_xlabel("iteration")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def reliability_figure(r: dict, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 4.2), constrained_layout=True)
    ax.plot([0, 1], [0, 1], ":", color="grey", label="calibrated")
    b = r["bins"]
    ax.plot([x["predicted"] for x in b], [x["observed"] for x in b], "o-", label="audit")
    for x in b:
        ax.annotate(str(x["audited"]), (x["predicted"], x["observed"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("P(target) by the model")
    ax.set_ylabel("fraction labelled a target (strata weighted)")
    ax.set_title(f"reliability: iteration {r['iteration']}, audit {r['draw']} "
                 f"({r['audited']} labels)", fontsize=9)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _churn_table(project: Project) -> str:
    rows = ["<table><tr><th>iteration</th><th>candidates</th><th>added</th><th>dropped</th>"
            "</tr>"]
    for it in status(project):
        c = it.get("score", {}).get("churn")
        if c:
            rows.append(f"<tr><td>{it['iteration']}</td><td>{c['candidates']}</td>"
                        f"<td>{c['added']}</td><td>{c['dropped']}</td></tr>")
    return "".join(rows) + "</table><p>Candidates at probability 0.5, as scored.</p>"


def labels_figure(project: Project, path: Path) -> None:
    plt = _plt()
    its = status(project)
    classes = tuple(project.config.classes)
    fig, ax = plt.subplots(figsize=(6, 3.6), constrained_layout=True)
    x = np.array([it["iteration"] for it in its])
    bottom = np.zeros(len(x))
    for c in classes:
        v = np.array([it.get("train", {}).get("per_class", {}).get(c, 0) for it in its])
        ax.bar(x, v, bottom=bottom, label=c)
        bottom += v
    ax.set_xlabel("iteration")
    ax.set_ylabel("training labels")
    ax.set_title("labels per class (labelled set + pool labels)")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def probability_figure(project: Project, number: int, path: Path) -> None:
    plt = _plt()
    classes = tuple(project.config.classes)
    _, probs = load_scores(project, number)
    fig, ax = plt.subplots(figsize=(6, 3.6), constrained_layout=True)
    bins = np.linspace(0, 1, 41)
    hist = np.zeros((len(classes), len(bins) - 1))  # one pass over the pool
    for _, p in chunks(probs):
        for i in range(1, len(classes)):
            hist[i] += np.histogram(p[:, i], bins)[0]
    for i, c in enumerate(classes[1:], start=1):
        ax.stairs(hist[i], bins, label=c)
    ax.set_yscale("log")
    ax.set_xlabel("calibrated probability")
    ax.set_ylabel("pool spectra")
    ax.set_title(f"iteration {number}: {len(probs):,} spectra")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def gallery_figure(project: Project, cat: Catalogue, path: Path, n: int = 24) -> int:
    plt = _plt()
    objects = cat.objects
    order = sorted(range(len(objects)), key=lambda i: (bool(objects["known"][i]),
                                                       -float(objects["snr"][i] or 0)))[:n]
    cols = 4
    rows = max(1, -(-len(order) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.2 * rows), squeeze=False,
                             constrained_layout=True)
    wave = project.config.grid.wavelength
    pool = project.store("pool")
    first_row = {int(o): int(r) for o, r in zip(cat.spectra["object"][::-1],
                                                cat.spectra["row"][::-1], strict=True)}
    flux = pool.flux(np.array([first_row[int(objects["object"][i])] for i in order],
                              dtype=np.int64)) if order else []
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, i, f in zip(axes.flat, order, flux, strict=False):
        ax.set_axis_on()
        ax.plot(wave, f, lw=0.8, color="k")
        ax.axvline(HALPHA, color="r", lw=0.6, ls=":")
        tag = "known" if objects["known"][i] else "new"
        kind = ""
        if "kind" in objects.colnames:
            ew = float(objects["ha_ew"][i])
            kind = f", {objects['kind'][i]}" + (f" EW {ew:+.1f} A" if np.isfinite(ew) else "")
        ax.set_title(f"{objects['designation'][i]}\n{objects['class'][i]}{kind}, {tag}, "
                     f"{objects['n_spectra'][i]} sp.", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return len(order)


def _catalogue_table(cat: Catalogue) -> str:
    """Per reference catalogue: the objects it knows, and how it was matched."""
    notes = cat.objects.meta.get("catalogues", [])
    if not notes:
        return "<p>No reference catalogue: every object is new.</p>"
    names = [n.split(":", 1)[0] for n in notes]
    found = [",".join(sorted(set(str(c).split(",")))) for c in cat.objects["catalogue"]]
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td>"
        f"<td>{sum(name in f.split(',') for f in found)}</td>"
        f"<td>{html.escape(note.split(':', 1)[1].strip())}</td></tr>"
        for name, note in zip(names, notes, strict=True))
    return ("<table><tr><th>reference catalogue</th><th>objects known there</th>"
            f"<th>matched</th></tr>{rows}</table>")


def sky_figure(cat: Catalogue, path: Path) -> None:
    plt = _plt()
    o = cat.objects
    fig = plt.figure(figsize=(7, 3.8), constrained_layout=True)
    ax = fig.add_subplot(projection="aitoff")
    ra = np.asarray(o["ra"], float)
    dec = np.asarray(o["dec"], float)
    lon = -np.radians(np.where(ra > 180, ra - 360, ra))  # east to the left, as on the sky
    known = np.asarray(o["known"], bool)
    ax.scatter(lon[~known], np.radians(dec[~known]), s=6, label=f"new ({int((~known).sum())})")
    ax.scatter(lon[known], np.radians(dec[known]), s=10, marker="x",
               label=f"known ({int(known.sum())})")
    ax.grid(True, lw=0.3)
    ax.set_xticklabels([])
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("candidate objects (RA increases to the left)", fontsize=9)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(project: Project, out: str | Path | None = None, *, threshold: float = 0.5,
          radius_arcsec: float = 3.0, references: tuple[str | Path, ...] = (),
          columns: tuple[str, ...] = (), workers: int | None = None,
          scheduler: str | None = None, kinds: tuple[str, ...] | None = None,
          flagged: bool = True, lines: bool = True) -> Path:
    """Write the report to ``out`` (default PROJECT/report/); returns index.html's path.
    ``references``, ``columns``, ``workers``, ``scheduler``: the cross-match; ``kinds``,
    ``flagged``, ``lines``: the kinds listed, as
    :func:`~specscout.catalogue.candidates.build`."""
    out = Path(out) if out else project.path / "report"
    out.mkdir(parents=True, exist_ok=True)
    its = status(project)
    number = max((it["iteration"] for it in its if it.get("score")), default=None)
    audits = estimates_by_iteration(project)
    learning_figure(project, out / "learning.png", audits)
    labels_figure(project, out / "labels.png")
    parts = [f"<h1>specscout report: {html.escape(project.path.name)}</h1>",
             f"<p>{time.strftime('%Y-%m-%d %H:%M')} &middot; pool "
             f"{len(project.store('pool')):,} spectra &middot; labelled set "
             f"{len(project.store('labelled')):,} &middot; pool labels "
             f"{len(label_store(project).current()):,} &middot; iterations {len(its)}</p>",
             "<h2>Learning</h2><img src='learning.png'><img src='labels.png'>"]
    if number is not None:
        probability_figure(project, number, out / "probabilities.png")
        cat = build(project, threshold=threshold, radius_arcsec=radius_arcsec,
                    references=references, iteration=number, columns=columns,
                    workers=workers, scheduler=scheduler, kinds=kinds, flagged=flagged,
                    lines=lines)
        shown = gallery_figure(project, cat, out / "gallery.png")
        sky_figure(cat, out / "sky.png")
        from specscout.catalogue.candidates import write as write_table

        write_table(cat.objects, out / "candidates.xml")
        write_table(cat.objects, out / "candidates.csv")
        known = int(np.sum(cat.objects["known"]))
        parts += [f"<h2>Candidates (iteration {number}, threshold {threshold})</h2>",
                  f"<p>{len(cat.spectra)} spectra of {len(cat.objects)} objects: "
                  f"{len(cat.objects) - known} new, {known} known. Tables: "
                  "<a href='candidates.xml'>VOTable</a>, <a href='candidates.csv'>CSV</a>.</p>",
                  _class_table(cat), _kind_table(project, cat), _catalogue_table(cat),
                  "<img src='probabilities.png'><img src='sky.png'>",
                  f"<h3>Gallery ({shown} objects, new first)</h3><img src='gallery.png'>"]
    if number is not None:
        parts += ["<h3>Churn: candidates added and dropped since the iteration before</h3>",
                  _churn_table(project)]
    parts.append("<h2>Audit estimates</h2>" + (_audit_table(audits) if audits else
                 "<p>No audit yet: <code>specscout audit PROJECT --draw</code>.</p>"))
    if label_store(project).audit_samples.sample():
        r = reliability(project)
        if r["bins"]:
            reliability_figure(r, out / "reliability.png")
            parts.append("<h3>Reliability</h3><img src='reliability.png'>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>specscout report</title>"
            "<style>body{font-family:sans-serif;max-width:1300px;margin:auto;padding:1em}"
            "img{max-width:100%}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}</style></head>"
            "<body>" + "\n".join(parts) + "</body></html>")
    (out / "index.html").write_text(page)
    return out / "index.html"


def _class_table(cat: Catalogue) -> str:
    rows = ["<table><tr><th>class</th><th>objects</th><th>spectra</th><th>new</th>"
            "<th>known</th></tr>"]
    for c in dict.fromkeys(cat.objects["class"]):
        o = cat.objects[cat.objects["class"] == c]
        known = int(np.sum(o["known"]))
        rows.append(f"<tr><td>{html.escape(str(c))}</td><td>{len(o)}</td>"
                    f"<td>{int(np.sum(o['n_spectra']))}</td><td>{len(o) - known}</td>"
                    f"<td>{known}</td></tr>")
    return "".join(rows) + "</table>"


def _kind_table(project: Project, cat: Catalogue) -> str:
    """Objects per kind of emission (their lead spectrum's, docs/lines.md), with the median
    H-alpha net equivalent width; and the model's candidates set aside by their kind."""
    o = cat.objects
    rows = ["<h3>Kinds of emission</h3><table><tr><th>kind</th><th>objects</th><th>new</th>"
            "<th>known</th><th>median net EW (A)</th><th>profiles</th></tr>"]
    for kind in dict.fromkeys(o["kind"]) if "kind" in o.colnames else ():
        sel = o[o["kind"] == kind]
        known = int(np.sum(sel["known"]))
        ew = np.asarray(sel["ha_ew"], float)
        median = f"{np.nanmedian(ew):+.2f}" if np.isfinite(ew).any() else "-"
        profiles = ", ".join(f"{p} {n}" for p, n in zip(
            *np.unique([str(v) for v in sel["profile"] if v], return_counts=True),
            strict=True))
        flag = " (flagged)" if project.config.targets.get(str(kind)) == "flag" else ""
        rows.append(f"<tr><td>{html.escape(str(kind))}{flag}</td><td>{len(sel)}</td>"
                    f"<td>{len(sel) - known}</td><td>{known}</td><td>{median}</td>"
                    f"<td>{html.escape(profiles)}</td></tr>")
    rows.append("</table>")
    if cat.set_aside:
        rows.append("<p>The model's candidates set aside by their measured kind (not "
                    "listed; <code>--kind all</code> lists them): "
                    + html.escape(", ".join(f"{k} {n}" for k, n in cat.set_aside.items()))
                    + ".</p>")
    return "".join(rows)


def _audit_table(audits: dict[int, dict]) -> str:
    rows = ["<table><tr><th>iteration</th><th>class</th><th>precision</th><th>recall</th>"
            "<th>in the archive</th><th>audited</th></tr>"]
    for n, a in sorted(audits.items()):
        for c, e in a["classes"].items():
            rows.append(
                f"<tr><td>{n}</td><td>{html.escape(c)}</td>"
                f"<td>{show(e['precision'], e['precision_interval'])}</td>"
                f"<td>{show(e['recall'], e['recall_interval'])}</td>"
                f"<td>{show(e['count'], e['count_interval'], 0)}</td>"
                f"<td>{a['labelled']} of {a['drawn']}</td></tr>")
    return "".join(rows) + "</table><p>95 % intervals: Clopper-Pearson for precision; " \
        "recall and counts from the strata's Clopper-Pearson limits.</p>"
