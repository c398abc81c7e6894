"""The benchmark report: a self-contained HTML page and a Markdown summary from a benchmark folder.

Numbers first (leaderboards with mean ± sd over runs, 95% bootstrap CIs over images, permutation p-values
against the top model with Holm and max-T control), then plots (bars with CIs, per-class heatmap, Nemenyi
critical-difference diagram, example patches). The HTML embeds its plots as base64 PNG and has no
external assets, so it can be mailed or attached to a paper as one file.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field

from cellprobe import atomic
from cellprobe.bench import layout, plots, stats
from cellprobe.config import StrictModel

# Leaderboard columns, in order, when the results have them: (summary key, label).
HEADLINE = (
    ("pq", "PQ (image-avg.)"),
    ("bpq", "bPQ (tissue-avg.)"),
    ("bpq_image", "bPQ (image-avg.)"),
    ("mpq", "mPQ (tissue-avg.)"),
    ("mpq_image", "mPQ (image-avg.)"),
    ("mpq_plus", "mPQ+ (pooled)"),
    ("r2", "R²"),
    ("f1_detection", "F1_d"),
)
PER_CLASS = ("f1_per_class", "pq_per_class")  # per-class metric used for the per-class table and heatmap
PRIMARY = ("mpq_plus", "mpq", "pq", "bpq")  # the ranking metric, first present
GROUPS = ("histopathology", "general")


#: the fewest bootstrap resamples or permutations a report accepts: with n permutations the smallest p-value
#: is 1/(n+1), and 20 is the fewest for which it falls below the usual 0.05 (fewer say nothing; 0 printed p = 1)
MIN_RESAMPLES = 20


class ReportOptions(StrictModel):
    """Resampling sizes of the report's statistics."""

    n_boot: int = Field(1000, ge=MIN_RESAMPLES)
    n_perm: int = Field(1000, ge=MIN_RESAMPLES)
    alpha: float = Field(0.05, gt=0, lt=1)
    seed: int = 0
    max_examples: int = Field(3, ge=0)
    all_pairs_up_to: int = Field(6, ge=1)  # all pairwise tests up to this many models, else each model vs the top


@dataclass
class DatasetReport:
    name: str
    fmt: str
    models: list[str]
    metrics: list[tuple[str, str]]
    primary: str
    runs: pd.DataFrame
    estimate: pd.DataFrame  # (models, metric keys) run-averaged point estimates
    ci_lo: pd.DataFrame
    ci_hi: pd.DataFrame
    tests: pd.DataFrame  # paired tests
    boot: stats.Bootstrap | None
    notes: list[str] = field(default_factory=list)
    figures: dict[str, bytes] = field(default_factory=dict)


def build_report(
    bench_dir: str | Path,
    out_dir: str | Path | None = None,
    options: ReportOptions | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` into ``out_dir`` (default: the benchmark folder)."""
    options = options or ReportOptions()
    bench_dir = Path(bench_dir)
    out_dir = Path(out_dir) if out_dir else bench_dir
    results = layout.read_results(bench_dir)
    datasets = [
        _dataset_report(name, rows, options, progress)
        for name, rows in results.groupby("dataset", sort=True)
    ]
    across = _across(datasets, results, options)
    md = _markdown(bench_dir, datasets, across, options)
    page = _html(bench_dir, datasets, across, options)
    atomic.write_text(out_dir / "report.md", md)
    atomic.write_text(out_dir / "report.html", page)
    return out_dir / "report.html", out_dir / "report.md"


def _dataset_report(name: str, rows: pd.DataFrame, options: ReportOptions,
                    progress: Callable[[str, int, int], None] | None) -> DatasetReport:
    fmt = str(rows["format"].iloc[0])
    class_names = list(rows["class_names"].iloc[0]) if "class_names" in rows else None
    per_class_key = next((k for k in PER_CLASS if any(c.startswith(f"{k}.") for c in rows.columns)), None)
    metrics = [(k, label) for k, label in HEADLINE if k in rows.columns and rows[k].notna().any()]
    if per_class_key:
        metrics += [(c, f"{'F1' if per_class_key.startswith('f1') else 'PQ'} {c.split('.', 1)[1]}")
                    for c in rows.columns if c.startswith(f"{per_class_key}.")]
    keys = [k for k, _ in metrics]
    primary = next(k for k in (*PRIMARY, *keys) if k in keys)
    means = rows.groupby("model")[keys].mean()
    models = list(means.sort_values(primary, ascending=False).index)
    report = DatasetReport(name, fmt, models, metrics, primary, rows, means.loc[models],
                           means.loc[models] * np.nan, means.loc[models] * np.nan, pd.DataFrame(), None)
    per_image = pd.concat([layout.read_per_image(r.cell_dir, r.model, r.fold, r.seed)
                           for r in rows.itertuples()], ignore_index=True)
    aggregate = layout.aggregator(fmt, class_names)
    try:
        al = stats.align(per_image, models=models)
    except ValueError as exc:
        report.notes.append(f"No CIs or tests: the models were not evaluated on the same runs and images ({exc}).")
        return report
    tick = _ticker(progress, f"{name}: bootstrap", options.n_boot)
    boot = stats.bootstrap(al, aggregate, keys, n_boot=options.n_boot, seed=options.seed, progress=tick)
    lo, hi = boot.ci(options.alpha)
    report.boot = boot
    report.ci_lo = pd.DataFrame(lo, index=list(al.models), columns=keys).loc[models]
    report.ci_hi = pd.DataFrame(hi, index=list(al.models), columns=keys).loc[models]
    if len(models) > 1:
        pairs = (list(zip(*np.triu_indices(len(models), 1), strict=True))
                 if len(models) <= options.all_pairs_up_to else [(0, j) for j in range(1, len(models))])
        tick = _ticker(progress, f"{name}: permutation tests", options.n_perm)
        report.tests = stats.paired_tests(al, aggregate, keys, [(models[i], models[j]) for i, j in pairs],
                                          n_perm=options.n_perm, seed=options.seed, boot=boot,
                                          alpha=options.alpha, progress=tick)
    n_images = al.n_images
    report.notes.append(f"{n_images} test images, {len(al.runs)} run(s) per model "
                        f"(fold × seed: {', '.join('/'.join(map(str, r)) for r in al.runs)}).")
    return report


def _ticker(progress, label: str, total: int):
    if progress is None:
        return None
    count = [0]

    def tick(n: int) -> None:
        count[0] += n
        progress(label, count[0], total)

    return tick


@dataclass
class Across:
    friedman: stats.FriedmanResult | None
    metric: str
    table: pd.DataFrame
    gaps: list[tuple[str, str, stats.ContrastResult]]  # (dataset or "all", metric, result)
    figure: bytes | None
    notes: list[str]


def _across(datasets: list[DatasetReport], results: pd.DataFrame, options: ReportOptions) -> Across:
    notes: list[str] = []
    metric = next((k for k in PRIMARY if all(k in [m for m, _ in d.metrics] for d in datasets)), None)
    if metric is None and datasets:
        metric = datasets[0].primary
    table = pd.DataFrame({d.name: d.estimate[metric] for d in datasets if metric in d.estimate}).T
    friedman, figure = None, None
    if len(table) < 2:
        notes.append("One dataset: no ranking across datasets (Friedman/Nemenyi needs several).")
    elif table.shape[1] >= 2:
        full = table.dropna(axis=1, how="any")
        friedman = stats.friedman_nemenyi(full, alpha=options.alpha)
        figure = plots.cd_diagram(friedman)
        if len(full) < 2 or full.shape[1] < 3:
            notes.append("Friedman's test needs ≥ 3 models on ≥ 2 datasets; ranks and CD are shown for reading "
                         "only.")
    gaps: list[tuple[str, str, stats.ContrastResult]] = []
    groups = (results.drop_duplicates("model").set_index("model")["group"].to_dict()
              if "group" in results.columns else {})
    if set(GROUPS) <= set(groups.values()):
        parts = []
        for d in datasets:
            if d.boot is None:
                continue
            weights = stats.group_weights({m: groups.get(m, "") for m in d.boot.models}, *GROUPS)
            gaps.append((d.name, d.primary, stats.contrast(d.boot, weights, d.primary, options.alpha)))
            if d.primary == metric:
                parts.append((d.boot, weights))
        if len(parts) > 1:
            gaps.append(("all datasets", metric, stats.pooled_contrast(parts, metric, options.alpha)))
    else:
        notes.append("The gap (histopathology − general-purpose encoders) needs encoders of both groups.")
    return Across(friedman, metric or "", table, gaps, figure, notes)


# ---------------------------------------------------------------- formatting


def _num(x: float, digits: int = 3) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _p(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "–"
    return f"{p:.3f}" if p >= 0.001 else "<0.001"


def _cell(d: DatasetReport, model: str, key: str) -> tuple[str, str, str]:
    runs = d.runs[d.runs["model"] == model][key]
    sd = runs.std(ddof=1) if len(runs) > 1 else float("nan")
    mean = f"{_num(runs.mean())}" + (f" ± {_num(sd)}" if math.isfinite(sd) else "")
    ci = f"[{_num(d.ci_lo.loc[model, key])}, {_num(d.ci_hi.loc[model, key])}]"
    p = ""
    if not d.tests.empty and model != d.models[0]:
        t = d.tests[(d.tests["metric"] == key) & (d.tests["a"] == d.models[0]) & (d.tests["b"] == model)]
        if len(t):
            text = _p(t["p_holm"].iloc[0])
            p = f"p{text}" if text.startswith("<") else f"p={text}"
    return mean, ci, p


def _leaderboard_md(d: DatasetReport) -> str:
    head = "| model | " + " | ".join(label for _, label in d.metrics) + " |"
    lines = [head, "|" + " --- |" * (len(d.metrics) + 1)]
    for model in d.models:
        cells = [" ".join(x for x in _cell(d, model, k) if x) for k, _ in d.metrics]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _tests_md(d: DatasetReport) -> str:
    if d.tests.empty:
        return "_No paired tests (one model, or models not on the same images)._"
    labels = dict(d.metrics)
    lines = ["| metric | A | B | A − B [95% CI] | p | p (Holm) | p (max-T) |", "|" + " --- |" * 7]
    for r in d.tests.itertuples():
        lines.append(f"| {labels[r.metric]} | {r.a} | {r.b} | {_num(r.diff)} [{_num(r.ci_lo)}, {_num(r.ci_hi)}] "
                     f"| {_p(r.p)} | {_p(r.p_holm)} | {_p(r.p_maxt)} |")
    return "\n".join(lines)


def _method_text(options: ReportOptions) -> str:
    return (f"Values: mean ± sd over runs (folds × seeds); [95% CI] percentile bootstrap over test images "
            f"({options.n_boot} resamples, stratified by tissue and fold, pooled metrics re-aggregated); "
            f"p: two-sided paired sign-flip permutation test against the top model ({options.n_perm} "
            f"permutations, images swapped between the two models), Holm-adjusted within each metric "
            f"(max-T in the pairwise table). Significance level {options.alpha}.")


def _markdown(bench_dir: Path, datasets: list[DatasetReport], across: Across, options: ReportOptions) -> str:
    out = [f"# cellprobe benchmark report: {bench_dir.name}", "", f"_{date.today().isoformat()}_. "
           + _method_text(options), ""]
    for d in datasets:
        out += [f"## {d.name}", "", f"Ranked by {dict(d.metrics)[d.primary]}. " + " ".join(d.notes), "",
                _leaderboard_md(d), "", "### Paired comparisons", "", _tests_md(d), ""]
    out += ["## Across datasets", ""]
    if across.friedman is not None:
        f = across.friedman
        out += [f"Average rank by {across.metric} over {f.n_datasets} dataset(s) (1 = best): "
                + ", ".join(f"{m} {r:.2f}" for m, r in f.ranks.items())
                + f". Friedman χ² = {_num(f.statistic, 2)}, p = {_p(f.pvalue)}; Nemenyi CD "
                  f"(α = {f.alpha}) = {_num(f.cd, 2)}.", ""]
    for ds, metric, g in across.gaps:
        out.append(f"- Gap (histopathology − general) on {ds}, {metric}: {_num(g.estimate)} "
                   f"[{_num(g.ci_lo)}, {_num(g.ci_hi)}], p = {_p(g.p)}")
    out += [*(f"_{n}_" for n in across.notes), ""]
    return "\n".join(out)


# ---------------------------------------------------------------- HTML

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;
color:#222;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:1em 0;font-size:.85em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right;vertical-align:top}
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}
td .ci{color:#555;font-size:.9em}td .p{color:#8a2be2;font-size:.9em}
tr.top td{background:#eef7ee}.note{color:#555;font-size:.9em}img{max-width:100%;margin:.5em 0}
"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _leaderboard_html(d: DatasetReport) -> str:
    head = "<tr><th>model</th>" + "".join(f"<th>{html.escape(label)}</th>" for _, label in d.metrics) + "</tr>"
    rows = []
    for i, model in enumerate(d.models):
        cells = []
        for k, _ in d.metrics:
            mean, ci, p = _cell(d, model, k)
            cells.append(f"<td>{mean}<br><span class=ci>{ci}</span>"
                         + (f"<br><span class=p>{p}</span>" if p else "") + "</td>")
        rows.append(f"<tr{' class=top' if i == 0 else ''}><td>{html.escape(model)}</td>{''.join(cells)}</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _tests_html(d: DatasetReport) -> str:
    if d.tests.empty:
        return "<p class=note>No paired tests (one model, or models not on the same images).</p>"
    labels = dict(d.metrics)
    head = ("<tr><th>metric</th><th>A</th><th>B</th><th>A − B</th><th>95% CI</th><th>p</th><th>p (Holm)</th>"
            "<th>p (max-T)</th></tr>")
    rows = "".join(
        f"<tr><td>{html.escape(labels[r.metric])}</td><td>{html.escape(r.a)}</td><td>{html.escape(r.b)}</td>"
        f"<td>{_num(r.diff)}</td><td>[{_num(r.ci_lo)}, {_num(r.ci_hi)}]</td><td>{_p(r.p)}</td>"
        f"<td>{_p(r.p_holm)}</td><td>{_p(r.p_maxt)}</td></tr>" for r in d.tests.itertuples())
    return f"<table>{head}{rows}</table>"


def _html(bench_dir: Path, datasets: list[DatasetReport], across: Across, options: ReportOptions) -> str:
    parts = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>cellprobe report: "
             f"{html.escape(bench_dir.name)}</title><style>{CSS}</style></head><body>",
             f"<h1>cellprobe benchmark report: {html.escape(bench_dir.name)}</h1>",
             f"<p class=note>{date.today().isoformat()}. {html.escape(_method_text(options))}</p>"]
    for d in datasets:
        keys = [k for k, _ in d.metrics]
        headline = [k for k, _ in HEADLINE if k in keys]
        class_keys = [k for k in keys if "." in k]
        parts += [f"<h2>{html.escape(d.name)}</h2>",
                  f"<p>Ranked by {html.escape(dict(d.metrics)[d.primary])}; the top model is shaded. "
                  + html.escape(" ".join(d.notes)) + "</p>", _leaderboard_html(d),
                  "<h3>Paired comparisons</h3>", _tests_html(d),
                  _img(plots.metric_bars(d.estimate, d.ci_lo, d.ci_hi, headline, dict(d.metrics), d.name),
                       f"{d.name}: metrics with 95% CIs")]
        if class_keys:
            parts.append(_img(plots.class_heatmap(d.estimate[class_keys], d.name), f"{d.name}: per-class"))
        examples = plots.examples_figure(d.runs, d.models, options.max_examples)
        if examples is not None:
            parts += ["<h3>Example test patches</h3>", _img(examples, f"{d.name}: example patches")]
    parts.append("<h2>Across datasets</h2>")
    if across.friedman is not None:
        f = across.friedman
        parts.append(f"<p>Average rank by {html.escape(across.metric)} over {f.n_datasets} dataset(s), 1 = best. "
                     f"Friedman χ² = {_num(f.statistic, 2)}, p = {_p(f.pvalue)}; Nemenyi critical difference "
                     f"(α = {f.alpha}) = {_num(f.cd, 2)}: models joined by a bar do not differ "
                     f"significantly.</p>")
        parts.append(_img(across.figure, "critical-difference diagram"))
    if across.gaps:
        rows = "".join(f"<tr><td>{html.escape(ds)}</td><td>{html.escape(m)}</td><td>{_num(g.estimate)}</td>"
                       f"<td>[{_num(g.ci_lo)}, {_num(g.ci_hi)}]</td><td>{_p(g.p)}</td></tr>"
                       for ds, m, g in across.gaps)
        parts.append("<h3>The gap: histopathology − general-purpose encoders</h3><table><tr><th>data</th>"
                     f"<th>metric</th><th>gap</th><th>95% CI</th><th>p</th></tr>{rows}</table>")
    parts += [f"<p class=note>{html.escape(n)}</p>" for n in across.notes]
    parts.append("</body></html>")
    return "\n".join(parts)

