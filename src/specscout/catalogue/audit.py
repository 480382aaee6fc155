"""Honest estimates of the candidate list: precision AND recall, with intervals, from random
audit samples of predicted positives and predicted negatives.

The pool rows without a training label are split into strata by the model's scores: for each
target class c the rows it proposes as candidates of c (``candidate:c``), and the rest by the
largest target-class probability q (``rest:q<0.01``, ``rest:0.01-0.1``, ``rest:q>=0.1``). A
simple random sample is drawn in every stratum (the negatives by Neyman allocation with the
model's expected target fraction) and labelled by a human (kept apart from the training
labels). Rows labelled for training are known exactly and enter the estimates as such.

For class c with L_c training labels of c, candidate stratum K and strata h of sizes N_h where a
fraction p_hc of the sample is of class c:
    precision_c = (L_c + N_K p_Kc) / (L_c + N_K)
    recall_c    = (L_c + N_K p_Kc) / (L_c + sum_h N_h p_hc)
    count_c     =  L_c + sum_h N_h p_hc           (such objects in the whole archive)
Precision depends on one binomial proportion: its interval is the Clopper-Pearson (exact)
interval. Recall and the count combine strata: their limits are percentiles of the same
quantities with every stratum's fraction drawn from the Beta distributions whose quantiles are
that stratum's Clopper-Pearson limits (Beta(x, n - x + 1) for a lower, Beta(x + 1, n - x) for
an upper limit), so that a stratum where no target was seen can still hold none. Like the
Clopper-Pearson interval, these cover at least their nominal rate. A stratum sampled
completely is known exactly.
``coverage`` checks the nominal rate on a simulation, where the truth of every row is known.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import beta

from specscout.archive.atomic import write_text
from specscout.archive.project import Project
from specscout.errors import SpecscoutError
from specscout.labels import label_store
from specscout.learn.iterations import iteration_numbers, iteration_path, load_scores
from specscout.learn.predictions import chunks, model_candidates

REST_EDGES = (0.01, 0.1)


@dataclass(frozen=True)
class Strata:
    names: tuple[str, ...]
    of_row: np.ndarray  # stratum index of every pool row, -1 for rows with a training label
    sizes: np.ndarray  # rows per stratum
    expected: np.ndarray  # the model's mean probability of a target class, per stratum

    def neyman(self) -> np.ndarray:
        """Neyman allocation weights N_h sqrt(p_h (1 - p_h)), with the model's p_h: the
        sample goes where the count of targets is most uncertain."""
        p = np.clip(self.expected, 1e-6, 1 - 1e-6)
        return self.sizes * np.sqrt(p * (1 - p))

    def rows(self, h: int) -> np.ndarray:
        return np.nonzero(self.of_row == h)[0]


def strata(probabilities: np.ndarray, classes: tuple[str, ...], labelled: np.ndarray,
           threshold: float = 0.5) -> Strata:
    """Strata of the pool rows (``labelled``: rows with a training label, left out)."""
    targets = range(1, len(classes))
    names = [f"candidate:{classes[c]}" for c in targets]
    names += [f"rest:q<{REST_EDGES[0]}", f"rest:{REST_EDGES[0]}-{REST_EDGES[1]}",
              f"rest:q>={REST_EDGES[1]}"]
    of_row = np.empty(len(probabilities), dtype=np.int8)
    target_p = np.empty(len(probabilities), dtype=np.float32)
    for start, p in chunks(probabilities):
        best, is_cand = model_candidates(p, threshold)
        q = p[:, 1:].max(1)
        rest = len(classes) - 1 + np.digitize(q, REST_EDGES)
        of_row[start : start + len(p)] = np.where(is_cand, best - 1, rest)
        target_p[start : start + len(p)] = p[:, 1:].sum(1)
    of_row[np.asarray(labelled, dtype=np.int64)] = -1
    keep = of_row >= 0
    sizes = np.bincount(of_row[keep], minlength=len(names))
    sums = np.bincount(of_row[keep], weights=target_p[keep], minlength=len(names))
    expected = np.divide(sums, sizes, out=np.zeros(len(names)), where=sizes > 0)
    return Strata(tuple(names), of_row, sizes, expected)


def allocate(sizes: np.ndarray, n_classes: int, positives: int, negatives: int,
             weights: np.ndarray | None = None) -> np.ndarray:
    """Sample size per stratum: ``positives`` in each candidate stratum, ``negatives`` over
    the rest strata in proportion to ``weights`` (default: equal); what a small stratum cannot
    take goes to the others."""
    sizes = np.asarray(sizes, dtype=np.int64)
    k = n_classes - 1
    want = np.minimum(np.array([positives] * k + [0] * (len(sizes) - k)), sizes)
    w = np.ones(len(sizes)) if weights is None else np.asarray(weights, dtype=float).copy()
    w[:k] = 0.0
    left = negatives
    while left > 0:
        open_ = (want < sizes) & (np.arange(len(sizes)) >= k)
        if not open_.any():
            break
        share = np.where(open_, w, 0.0)
        share = share / share.sum() if share.sum() > 0 else open_ / open_.sum()
        # Largest remainders, so that the shares add up to what is left.
        raw = share * left
        take = np.floor(raw).astype(np.int64)
        for h in np.argsort(-(raw - take), kind="stable")[: left - take.sum()]:
            take[h] += 1
        take = np.minimum(take, sizes - want)
        if take.sum() == 0:
            break
        want += take
        left -= int(take.sum())
    return want


def draw_rows(s: Strata, sample: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """A simple random sample of ``sample[h]`` rows in every stratum h."""
    return [np.sort(rng.choice(s.rows(h), size=int(sample[h]), replace=False))
            for h in range(len(s.names))]


def clopper_pearson(x: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """The Clopper-Pearson (exact binomial) interval of a proportion x / n."""
    if n == 0:
        return 0.0, 1.0
    a = (1 - level) / 2
    lo = beta.ppf(a, x, n - x + 1) if x > 0 else 0.0
    hi = beta.ppf(1 - a, x + 1, n - x) if x < n else 1.0
    return float(lo), float(hi)


def _bound_draws(x: np.ndarray, n: np.ndarray, sizes: np.ndarray, rng: np.random.Generator,
                 draws: int) -> tuple[np.ndarray, np.ndarray]:
    """Draws of every stratum's fraction from the two Beta distributions whose quantiles are
    the Clopper-Pearson limits: Beta(x, n - x + 1) for lower and Beta(x + 1, n - x) for upper
    bounds (degenerate at 0 and 1 where x = 0 or x = n). Exact for strata seen whole."""
    shape = (draws, len(sizes))
    low = np.zeros(shape)
    high = np.ones(shape)
    some = x > 0
    low[:, some] = rng.beta(x[some], n[some] - x[some] + 1, size=(draws, int(some.sum())))
    short = x < n
    high[:, short] = rng.beta(x[short] + 1, n[short] - x[short],
                              size=(draws, int(short.sum())))
    exact = (n >= sizes) & (sizes > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(n > 0, x / np.maximum(n, 1), 0.0)
    low[:, exact] = high[:, exact] = frac[exact]
    low[:, sizes == 0] = high[:, sizes == 0] = 0.0
    return low, high


def estimate(sizes: np.ndarray, sampled: np.ndarray, counts: np.ndarray,
             labelled: np.ndarray, level: float = 0.95, draws: int = 20000,
             seed: int = 0) -> list[dict]:
    """Per target class c (1..): precision, recall and count with intervals.

    ``sizes[h]``: rows in stratum h; ``sampled[h]``: audit labels in it; ``counts[h, c]``: of
    those, how many are of class c; ``labelled[c]``: training labels of class c. Stratum c - 1
    is the candidate stratum of class c."""
    rng = np.random.default_rng(seed)
    sizes = np.asarray(sizes, dtype=float)
    n = np.asarray(sampled, dtype=float)
    lo_q, hi_q = 50 * (1 - level), 50 * (1 + level)
    out = []
    for c in range(1, counts.shape[1]):
        k = c - 1
        x = counts[:, c].astype(float)
        p_hat = np.where(n > 0, x / np.maximum(n, 1), 0.0)
        low, high = _bound_draws(x, n, sizes, rng, draws)
        others = np.arange(len(sizes)) != k
        # tp = L + N_K p_K and missed = sum over the other strata: recall = tp / (tp + missed)
        # grows with tp and falls with missed, so its lower limit pairs low tp with high missed.
        tp_low, tp_high = labelled[c] + sizes[k] * low[:, k], labelled[c] + sizes[k] * high[:, k]
        missed_low, missed_high = low[:, others] @ sizes[others], high[:, others] @ sizes[others]
        tp = labelled[c] + sizes[k] * p_hat[k]
        missed = p_hat[others] @ sizes[others]
        listed = labelled[c] + sizes[k]
        exact_k = n[k] >= sizes[k]
        p_lo, p_hi = (p_hat[k], p_hat[k]) if exact_k else clopper_pearson(x[k], n[k], level)
        out.append({
            "class_index": c, "listed": int(listed), "audited_candidates": int(n[k]),
            "audited_rest": int(n.sum() - n[k]),
            # Undefined (None) when nothing is listed, or nothing exists to be found.
            "precision": float(tp / listed) if listed else None,
            "precision_interval": [float((labelled[c] + sizes[k] * b) / listed)
                                   for b in (p_lo, p_hi)] if listed else None,
            "recall": float(tp / (tp + missed)) if tp + missed else None,
            "recall_interval": [
                float(np.percentile(_ratio(tp_low, missed_high), lo_q)),
                float(np.percentile(_ratio(tp_high, missed_low), hi_q))],
            "count": float(tp + missed),
            "count_interval": [float(np.percentile(tp_low + missed_low, lo_q)),
                               float(np.percentile(tp_high + missed_high, hi_q))],
        })
    return out


def show(value: float | None, interval: list[float] | None, digits: int = 3) -> str:
    """'0.912 [0.850, 0.951]', or 'undefined' where nothing was listed or exists."""
    if value is None or interval is None:
        return "undefined"
    return f"{value:.{digits}f} [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"


def _ratio(tp: np.ndarray, missed: np.ndarray) -> np.ndarray:
    total = tp + missed
    return np.divide(tp, total, out=np.ones_like(tp), where=total > 0)


def truth_values(truth: np.ndarray, s: Strata, classes: tuple[str, ...]) -> list[dict]:
    """The true precision, recall and count of every target class, from every row's truth."""
    out = []
    labelled = s.of_row < 0
    for c in range(1, len(classes)):
        listed = (labelled & (truth == c)) | (s.of_row == c - 1)
        is_c = truth == c
        tp = int(np.sum(listed & is_c))
        out.append({"precision": tp / max(int(listed.sum()), 1),
                    "recall": tp / max(int(is_c.sum()), 1), "count": int(is_c.sum())})
    return out


def _tally(s: Strata, rows: np.ndarray, labels: np.ndarray, n_classes: int
           ) -> tuple[np.ndarray, np.ndarray]:
    sampled = np.bincount(s.of_row[rows], minlength=len(s.names))
    counts = np.zeros((len(s.names), n_classes), dtype=np.int64)
    np.add.at(counts, (s.of_row[rows], labels), 1)
    return sampled, counts


def coverage(probabilities: np.ndarray, truth: np.ndarray, classes: tuple[str, ...],
             labelled: np.ndarray, *, threshold: float = 0.5, positives: int = 50,
             negatives: int = 150, repeats: int = 200, level: float = 0.95,
             seed: int = 0) -> dict:
    """How often the intervals of ``repeats`` independent audits (labelled from ``truth``)
    contain the true values. ``labelled``: rows with training labels (their labels are the
    truth)."""
    s = strata(probabilities, classes, labelled, threshold)
    true = truth_values(truth, s, classes)
    lab_counts = np.bincount(truth[labelled], minlength=len(classes))
    rng = np.random.default_rng(seed)
    hits = {(c, m): 0 for c in range(1, len(classes)) for m in ("precision", "recall", "count")}
    widths = {k: [] for k in hits}
    for r in range(repeats):
        sample = np.concatenate(draw_rows(s, allocate(s.sizes, len(classes), positives,
                                                      negatives, s.neyman()), rng))
        sampled, counts = _tally(s, sample, truth[sample], len(classes))
        for e in estimate(s.sizes, sampled, counts, lab_counts, level, draws=4000, seed=r):
            c = e["class_index"]
            for m in ("precision", "recall", "count"):
                a, b = e[f"{m}_interval"]
                hits[(c, m)] += a - 1e-12 <= true[c - 1][m] <= b + 1e-12
                widths[(c, m)].append(b - a)
    return {classes[c]: {m: {"true": true[c - 1][m], "coverage": hits[(c, m)] / repeats,
                             "median_width": float(np.median(widths[(c, m)]))}
                         for m in ("precision", "recall", "count")}
            for c in range(1, len(classes))} | {"repeats": repeats, "level": level,
                                                "strata": dict(zip(s.names,
                                                                   map(int, s.sizes),
                                                                   strict=True))}


# --- on a project -------------------------------------------------------------------------


def draw(project: Project, *, positives: int = 50, negatives: int = 150,
         threshold: float = 0.5, iteration: int | None = None, seed: int = 0) -> dict:
    """Draw a new audit sample from the scores of ``iteration`` and record it in the label
    store; writes it as ``audit-NNN.csv`` in the iteration's directory, too."""
    classes = tuple(project.config.classes)
    number, probs = load_scores(project, iteration)
    labels = label_store(project)
    training = labels.current()
    labelled = np.array(sorted(training), dtype=np.int64)
    s = strata(probs, classes, labelled, threshold)
    picked = draw_rows(s, allocate(s.sizes, len(classes), positives, negatives, s.neyman()),
                       np.random.default_rng(seed))
    rows = np.concatenate(picked)
    # Shuffled so that the annotator cannot tell the strata apart by their order.
    order = np.random.default_rng(seed + 1).permutation(len(rows))
    rows = rows[order]
    ids = project.store("pool").ids(rows)
    strata_of = [s.names[s.of_row[r]] for r in rows]
    number_draw = labels.audit_samples.add(number, rows, ids, strata_of,
                                          [int(s.sizes[s.of_row[r]]) for r in rows])
    path = iteration_path(project, number) / f"audit-{number_draw:03d}.csv"
    text = io.StringIO()
    w = csv.writer(text)
    w.writerow(["row", "id", "label"])
    for r, id_ in zip(rows, ids, strict=True):
        w.writerow([int(r), id_, ""])
    write_text(path, text.getvalue())
    write_text(iteration_path(project, number) / f"audit-{number_draw:03d}.json", json.dumps(
        {"draw": number_draw, "threshold": threshold, "positives": positives,
         "negatives": negatives, "seed": seed,
         # The rows known exactly when the strata were made (later labels do not count).
         "training_labels": {c: sum(v == c for v in training.values()) for c in classes},
         "strata": dict(zip(s.names, map(int, s.sizes), strict=True))}, indent=2))
    return {"draw": number_draw, "iteration": number, "rows": len(rows), "csv": path,
            "strata": dict(zip(s.names, map(int, s.sizes), strict=True))}


def label_from_truth(project: Project, truth: str | Path, draw_number: int | None = None,
                     annotator: str = "truth") -> int:
    """Simulations: label an audit sample from the truth table (the simulated oracle)."""
    from specscout.learn.experiment import truth_classes

    classes = tuple(project.config.classes)
    labels = label_store(project)
    sample = labels.audit_samples.sample(draw_number)
    if not sample:
        raise SpecscoutError("no audit sample yet: run 'specscout audit PROJECT --draw'")
    y = truth_classes(project, truth)
    return labels.add_many([{"spectrum": r["spectrum"], "row": r["row"], "audit": True,
                             "label": classes[y[r["row"]]], "annotator": annotator,
                             "iteration": r["iteration"]} for r in sample])


def estimate_project(project: Project, draw_number: int | None = None,
                     level: float = 0.95) -> dict:
    """Estimates from an audit draw (default: the latest) and its audit labels; written to
    ``audit-NNN-estimates.json`` beside the draw."""
    classes = tuple(project.config.classes)
    labels = label_store(project)
    sample = labels.audit_samples.sample(draw_number)
    if not sample:
        raise SpecscoutError("no audit sample yet: run 'specscout audit PROJECT --draw'")
    number, draw_no = sample[0]["iteration"], sample[0]["draw"]
    info = json.loads((iteration_path(project, number) / f"audit-{draw_no:03d}.json")
                      .read_text())
    names = list(info["strata"])
    sizes = np.array([info["strata"][h] for h in names])
    audit = labels.current(audit=True)
    sampled = np.zeros(len(names), dtype=np.int64)
    counts = np.zeros((len(names), len(classes)), dtype=np.int64)
    for r in sample:
        lab = audit.get(r["row"])
        if lab is not None:
            h = names.index(r["stratum"])
            sampled[h] += 1
            counts[h, classes.index(lab)] += 1
    lab_counts = np.array([info["training_labels"][c] for c in classes])
    results = estimate(sizes, sampled, counts, lab_counts, level)
    out = {"draw": draw_no, "iteration": number, "level": level,
           "threshold": info["threshold"], "drawn": len(sample), "labelled": int(sampled.sum()),
           "strata": {h: {"size": int(sizes[i]), "audited": int(sampled[i]),
                          **{c: int(counts[i, j]) for j, c in enumerate(classes)}}
                      for i, h in enumerate(names)},
           "classes": {classes[e["class_index"]]: e for e in results}}
    write_text(iteration_path(project, number) / f"audit-{draw_no:03d}-estimates.json",
               json.dumps(out, indent=2))
    return out


def coverage_project(project: Project, truth: str | Path, *, iteration: int | None = None,
                     **options) -> tuple[int, dict]:
    """(iteration, :func:`coverage` of its scores) with ``truth`` as every row's class and the
    project's training labels left out of the strata."""
    from specscout.learn.experiment import truth_classes

    number, probs = load_scores(project, iteration)
    labelled = np.array(sorted(label_store(project).current()), dtype=np.int64)
    return number, coverage(probs, truth_classes(project, truth),
                            tuple(project.config.classes), labelled, **options)


def reliability(project: Project, draw_number: int | None = None, bins: int = 10) -> dict:
    """The reliability of the probabilities against an audit draw's labels: per bin of the
    model's probability that a spectrum is a target, the fraction of the audited spectra
    labelled a target. The draw is stratified, so each audited spectrum stands for its
    stratum's size over its stratum's audited count (a weighted, unbiased fraction)."""
    classes = tuple(project.config.classes)
    labels = label_store(project)
    sample = labels.audit_samples.sample(draw_number)
    if not sample:
        raise SpecscoutError("no audit sample yet: run 'specscout audit PROJECT --draw'")
    number = sample[0]["iteration"]
    _, probs = load_scores(project, number)
    audit = labels.current(audit=True)
    done = [r for r in sample if audit.get(r["row"]) is not None]
    per_stratum: dict[str, int] = {}
    for r in done:
        per_stratum[r["stratum"]] = per_stratum.get(r["stratum"], 0) + 1
    rows = np.array([r["row"] for r in done], dtype=np.int64)
    q = np.asarray(probs[rows], np.float32)[:, 1:].sum(1) if rows.size else np.empty(0)
    target = np.array([classes.index(audit[r["row"]]) > 0 for r in done], dtype=float)
    weight = np.array([r["stratum_size"] / per_stratum[r["stratum"]] for r in done])
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(q, edges) - 1, 0, bins - 1)
    out = []
    for b in range(bins):
        m = which == b
        if m.any():
            w = weight[m]
            out.append({"low": float(edges[b]), "high": float(edges[b + 1]),
                        "audited": int(m.sum()), "predicted": float(np.average(q[m], weights=w)),
                        "observed": float(np.average(target[m], weights=w))})
    return {"iteration": number, "draw": sample[0]["draw"], "audited": len(done), "bins": out}


def estimates_by_iteration(project: Project) -> dict[int, dict]:
    """The latest audit estimates (:func:`estimate_project`) of every iteration that has one."""
    out = {}
    for n in iteration_numbers(project):
        found = sorted(iteration_path(project, n).glob("audit-*-estimates.json"))
        if found:
            out[n] = json.loads(found[-1].read_text())
    return out
