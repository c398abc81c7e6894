"""The benchmark report: a self-contained HTML page and a Markdown summary from a benchmark folder.

Numbers first (leaderboards with mean ± sd over runs, 95% bootstrap CIs over images, permutation p-values
against the top model with Holm and max-T control), then plots (bars with CIs, per-class heatmap, Nemenyi
critical-difference diagram, example patches). The HTML embeds its plots as base64 PNG and has no
external assets, so it can be mailed or attached to a paper as one file.

Every metric is labelled with its aggregation (image-averaged, pooled, tissue-averaged; PanNuke's
tissue-averaged bPQ/mPQ come with their sd over tissues). Every CI and test states its number of independent
units (source images, else images). With fewer than ``ReportOptions.min_units`` of them, or when the paired
test's design cannot reach p < α at all (:func:`cellprobe.bench.stats.min_attainable_p`), the report says so in
place of the p-values, marks the CIs unreliable (†) and shades no winner; otherwise a metric's best model is
highlighted only where its paired tests against every other model reach Holm p < α.
"""

from __future__ import annotations

import base64
import html
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from cellprobe import atomic
from cellprobe.bench import layout, plots, stats
from cellprobe.config import Seed, StrictModel, read_json
from cellprobe.data.io import refuse_output_inside
from cellprobe.data.validate import DataWarning
from cellprobe.errors import InputError
from cellprobe.hashing import file_sha256
from cellprobe.run.run_folder import owning_run, refuse_inside_run

# Leaderboard columns, in order, when the results have them: (summary key, label).
HEADLINE = (
    ("pq", "PQ (image-avg.)"),
    ("bpq", "bPQ (tissue-avg.)"),
    ("bpq_image", "bPQ (image-avg.)"),
    ("mpq", "mPQ (tissue-avg.)"),
    ("mpq_image", "mPQ (image-avg.)"),
    ("mpq_plus", "mPQ+ (pooled)"),
    ("r2", "R² (class-avg.)"),
    ("f1_detection", "F1_d (pooled)"),
)
#: PanNuke's tissue-averaged metrics are reported with their sd over tissues: (metric, column key, label)
TISSUE_SD = (("bpq", "bpq_tissue_sd", "bPQ sd over tissues"), ("mpq", "mpq_tissue_sd", "mPQ sd over tissues"))
AGGREGATIONS = (
    "image-avg. = per-image values averaged over the test images",
    "pooled = matches (TP, FP, FN, IoU sums, detection pairs) summed over all test images before the ratio",
    "tissue-avg. = PanNuke's official value: averaged over images within each tissue, then over tissues",
    "sd over tissues = sample sd of those per-tissue values",
    "class-avg. = averaged over classes (R²: per class over the images' nucleus counts)",
)
CI_MARK, P_MARK = "†", "‡"
PER_CLASS = ("f1_per_class", "pq_per_class")  # per-class metric used for the per-class table and heatmap
PRIMARY = ("mpq_plus", "mpq", "pq", "bpq")  # the ranking metric, first present
GROUPS = ("histopathology", "general")


#: the fewest bootstrap resamples or permutations a report accepts: with n permutations the smallest p-value
#: is 1/(n+1), and 20 is the fewest for which it falls below the usual 0.05 (fewer say nothing; 0 printed p = 1)
MIN_RESAMPLES = 20
#: the most: each resample re-aggregates every model and metric, and its draws are held at once, so a billion
#: would exhaust memory after hours; 100,000 puts the Monte-Carlo error of a p-value below 0.001
MAX_RESAMPLES = 100_000


class ReportOptions(StrictModel):
    """Resampling sizes of the report's statistics and when their results are too thin to be read."""

    n_boot: int = Field(1000, ge=MIN_RESAMPLES, le=MAX_RESAMPLES)
    n_perm: int = Field(1000, ge=MIN_RESAMPLES, le=MAX_RESAMPLES)
    alpha: float = Field(0.05, gt=0, lt=1)
    seed: Seed = 0
    max_examples: int = Field(3, ge=0)
    all_pairs_up_to: int = Field(6, ge=1)  # all pairwise tests up to this many models, else each model vs the top
    # with fewer independent units (source images, else images) CIs are marked unreliable, p-values withheld
    # and no winner is shaded
    min_units: int = Field(10, ge=1)


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
    unit: str = stats.UNIT_IMAGE  # what an independent unit is
    n_units: int | None = None  # None: no CIs or tests
    min_p: float = float("nan")  # the smallest p-value the paired tests' design can give
    ci_caveat: str | None = None  # why the CIs are unreliable (None: they are not)
    p_caveat: str | None = None  # why no p-value is given (None: they are)
    descriptive: list[tuple[str, str, str]] = field(default_factory=list)  # (after metric, column, label)
    winners: dict[str, str] = field(default_factory=dict)  # metric → model supported as its best
    trained_on: str = ""  # the dataset the cells trained on
    test_data: str = ""  # the dataset scored (another than trained_on: a test-only dataset of the benchmark)

    @property
    def cross(self) -> bool:
        """Scores of models trained on another dataset."""
        return self.test_data != self.trained_on


def section_name(trained_on: str, test_data: str) -> str:
    """A report section: the dataset scored, and where its models trained when that is another dataset."""
    return test_data if test_data == trained_on else f"{test_data} (trained on {trained_on})"


def build_report(
    bench_dir: str | Path,
    out_dir: str | Path | None = None,
    options: ReportOptions | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` into ``out_dir`` (default: the benchmark folder). Files of those
    names that an earlier report of this benchmark did not write as they are now (a user's notes, a hand edit,
    another benchmark's report) are replaced only with ``overwrite``; checked before any work."""
    options = options or ReportOptions()
    bench_dir = Path(bench_dir)
    run = owning_run(bench_dir)
    if run is not None:  # said as what it is, not as a place the report may not go
        where = "is" if run == bench_dir.resolve() else "is inside"
        raise InputError(bench_dir, f"{where} the run folder {run}, not a benchmark folder: report reads the folder "
                                    "`cellprobe bench` wrote (a run is scored with `cellprobe evaluate`)")
    out_dir = atomic.output_folder(out_dir or bench_dir, create=False)
    check_report_target(out_dir, bench_dir, overwrite)
    results = layout.read_results(bench_dir)
    layout.check_runs_unchanged(bench_dir)
    paired = results.groupby(["dataset", "test_data"])["model"].nunique().max() > 1
    if not paired and options.non_default("n_perm"):
        raise InputError("--n-perm", "every dataset of this benchmark has one model: no paired test runs, so the "
                                     "number of permutations would change nothing; leave it out")
    in_domain = results["test_data"] == results["dataset"]
    # in-domain sections first, then each training dataset's test-only (cross-dataset) sections
    groups = sorted(results.groupby(["dataset", "test_data"], sort=True), key=lambda g: g[0][0] != g[0][1])
    datasets = [_dataset_report(section_name(trained, test), rows, options, progress, trained, test)
                for (trained, test), rows in groups]
    across = _across([d for d in datasets if not d.cross], results[in_domain], options)
    transfer = _transfer(datasets)
    missing = _unfinished_note(bench_dir)
    if missing is not None:
        warnings.warn(f"{bench_dir}: {missing}", DataWarning, stacklevel=2)
    md = _markdown(bench_dir, datasets, across, options, transfer, missing)
    page = _html(bench_dir, datasets, across, options, transfer, missing)
    _write_report_files(out_dir, bench_dir, {"report.md": md.encode(), "report.html": page.encode()})
    return out_dir / "report.html", out_dir / "report.md"


def _write_report_files(out_dir: Path, bench_dir: Path, contents: dict[str, bytes]) -> None:
    """Write the report files and their record. The record first lists, per file, the digest it held and the
    one about to be written, so that a report killed between its files (report.md new, report.html old) is
    still recognised as this benchmark's by the rerun; then the files; then the record of what was written."""
    import hashlib

    record_path, bench = out_dir / REPORT_RECORD, _bench_seen_from(out_dir, bench_dir)
    try:  # checked before any work; one unreadable here is being replaced with --overwrite
        earlier = _read_record(record_path) if record_path.is_file() else {}
    except InputError:
        earlier = {}
    recorded = earlier.get("files") if earlier.get("bench") == bench and isinstance(earlier.get("files"), dict) else {}
    new = {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()}
    pending = {name: sorted({*_recorded_digests(recorded.get(name)), digest}) for name, digest in new.items()}
    atomic.write_json(record_path, {"bench": bench, "files": pending})
    for name, data in contents.items():
        atomic.write_bytes(out_dir / name, data)
    atomic.write_json(record_path, {"bench": bench, "files": new})


def _recorded_digests(entry: Any) -> list[str]:
    """The digests a record allows for a file: one, or (while a report was being written) the old and new."""
    if isinstance(entry, str):
        return [entry]
    return [d for d in entry if isinstance(d, str)] if isinstance(entry, list) else []


def _unfinished_note(bench_dir: Path) -> str | None:
    """What the report does not cover: the cells of the folder's matrix (its bench.yaml) with no finished
    result, the failed ones counted apart; None when every cell is finished. A report of a running or partly
    failed benchmark is useful, but its tables must not pass for the whole matrix."""
    from cellprobe.bench.matrix import expand, unfinished_cells

    config = layout.read_config(bench_dir)
    if config is None:
        return None
    missing = unfinished_cells(bench_dir, config)
    if not missing:
        return None
    failed = sum(f for _, f in missing)
    shown = ", ".join(c.cell_id for c, _ in missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3
                                                             else "")
    return (f"{len(missing)} of {len(list(expand(config)))} cells of the benchmark's matrix have no result "
            f"({failed} failed: see their error.txt; the others unfinished): {shown}. The tables cover finished "
            "cells only.")


#: the files a report writes, and its record of them: which benchmark, and each file's sha256 as written
REPORT_FILES = ("report.md", "report.html")
REPORT_RECORD = ".cellprobe-report.json"
#: how each report file opens (format with the bench folder's name): also how one is recognised without a record
MD_HEADING = "# cellprobe benchmark report: {}"
HTML_TITLE = "<title>cellprobe report: {}</title>"


def _bench_seen_from(out_dir: Path, bench_dir: Path) -> str:
    """The benchmark folder relative to the report's folder: a bench folder copied or moved together with its
    report (``.`` when the report is in it) still holds its own report."""
    return os.path.relpath(bench_dir.resolve(), out_dir.resolve())


def _written_by_report(path: Path, bench_dir: Path) -> bool:
    """Whether ``path`` (report.md or report.html, with no record beside it) opens as cellprobe's report of
    ``bench_dir`` does: reports written before the record existed are the benchmark's own."""
    if not path.is_file():  # a pipe would be waited on forever
        return False
    try:
        with open(path, encoding="utf-8") as f:
            head = f.read(2000)
    except (OSError, UnicodeDecodeError):
        return False
    return any(head.startswith(MD_HEADING.format(name) + "\n") or (
        head.startswith("<!DOCTYPE html>") and HTML_TITLE.format(html.escape(name)) in head)
        for name in {bench_dir.name, bench_dir.resolve().name})


def _read_record(path: Path) -> dict:
    """The report record at ``path`` ({} where there is none). One that cannot be read is refused rather than
    taken as absent: nothing would then show whose the report files beside it are."""
    if not path.exists():
        return {}
    try:
        record = read_json(path, "report record")
    except InputError as exc:
        record, problem = None, exc.problem
    else:
        problem = "is not a report record (a JSON object)"
    if not isinstance(record, dict):
        raise InputError(path, f"{problem}; so the report beside it may not be this benchmark's: move them, or "
                               "replace them with `cellprobe report --overwrite`")
    return record


def check_report_target(out_dir: Path, bench_dir: Path, overwrite: bool = False) -> None:
    """An InputError naming the first of :data:`REPORT_FILES` in ``out_dir`` that is not a file (a folder: not
    even ``overwrite`` replaces it) or, without ``overwrite``, that the record there does not show as written,
    unchanged, by a report of ``bench_dir``."""
    refuse_inside_run(out_dir, itself=True)  # a run folder holds one run: a report there reads as the run's
    inside = Path(out_dir).resolve()
    if inside != Path(bench_dir).resolve() and inside.is_relative_to(Path(bench_dir).resolve()):
        raise InputError(out_dir, f"is inside the benchmark folder {bench_dir}, where cellprobe keeps its cells and "
                                  "feature caches: give the benchmark folder itself (the default) or a folder "
                                  "outside it")
    config = layout.read_config(bench_dir)
    for source in () if config is None else (*config.datasets, *config.test_datasets):
        refuse_output_inside(out_dir, source.path)  # the benchmark's data: only read, never written into
    for name in (*REPORT_FILES, REPORT_RECORD):
        path = out_dir / name
        if atomic.in_the_way(path):
            raise InputError(path, "is in the way of the report (not a file); move it, or give --out another folder")
    if overwrite:
        return
    record = _read_record(out_dir / REPORT_RECORD)
    ours = record.get("bench") == _bench_seen_from(out_dir, bench_dir)
    files = record.get("files") if ours and isinstance(record.get("files"), dict) else {}
    for name in REPORT_FILES:
        path = out_dir / name
        if not (path.exists() or path.is_symlink()):
            continue
        if not record and _written_by_report(path, bench_dir):  # before records (or a report killed before its
            continue                                            # record): a report of this bench, by its heading
        if not (path.is_file() and file_sha256(path) in _recorded_digests(files.get(name))):
            raise InputError(path, "exists and is not a report of this benchmark as cellprobe wrote it (your own "
                                   "file, an edited report, or another benchmark's); move it, or replace it with "
                                   "`cellprobe report --overwrite`, or give --out another folder")


def _dataset_report(name: str, rows: pd.DataFrame, options: ReportOptions,
                    progress: Callable[[str, int, int], None] | None, trained_on: str = "",
                    test_data: str = "") -> DatasetReport:
    fmt = str(rows["format"].iloc[0])
    class_names = list(rows["class_names"].iloc[0]) if "class_names" in rows else None
    # the results table holds every section's columns: a section's per-class ones are those of its own classes
    own = [c for c in rows.columns if "." not in c or (class_names is not None and c.split(".", 1)[1] in class_names)
           or (class_names is None and rows[c].notna().any())]
    per_class_key = next((k for k in PER_CLASS if any(c.startswith(f"{k}.") for c in own)), None)
    metrics = [(k, label) for k, label in HEADLINE if k in rows.columns and rows[k].notna().any()]
    if per_class_key:
        metrics += [(c, _per_class_label(per_class_key, c.split(".", 1)[1], fmt))
                    for c in own if c.startswith(f"{per_class_key}.")]
    keys = [k for k, _ in metrics]
    primary = next(k for k in (*PRIMARY, *keys) if k in keys)
    means = rows.groupby("model")[keys].mean()
    models = list(means.sort_values(primary, ascending=False).index)
    report = DatasetReport(name, fmt, models, metrics, primary, rows, means.loc[models],
                           means.loc[models] * np.nan, means.loc[models] * np.nan, pd.DataFrame(), None,
                           trained_on=trained_on, test_data=test_data)
    if "scoring" in rows and str(rows["scoring"].iloc[0]).startswith("class-agnostic"):
        report.notes.append(f"Scored {rows['scoring'].iloc[0]}.")
    report.notes += _missing_notes(rows, metrics)
    tables = [layout.read_per_image(r["cell_dir"], r["model"], r["fold"], r["seed"], fmt, list(r["class_names"]),
                                    {k: r[k] for k, _ in metrics})
              for _, r in rows.iterrows()]
    if fmt == "pannuke" and all("tissue" in t.columns for t in tables):
        spread = pd.DataFrame([_tissue_sd(t, class_names) for t in tables], index=rows.index)
        report.runs = rows.assign(**{c: spread[c] for c in spread.columns})
        report.descriptive = [(k, c, label) for k, c, label in TISSUE_SD if k in keys]
    per_image = pd.concat(tables, ignore_index=True)
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
    report.unit, report.n_units = al.unit, al.n_units
    report.min_p = stats.min_attainable_p(al.n_units, options.n_perm)
    report.ci_caveat, report.p_caveat = _design_caveats(al.n_units, al.unit, options)
    report.notes.append(_units_note(report, options))
    lone = int((np.bincount(al.group_strata()) == 1).sum())
    if lone:
        report.notes.append(f"{lone} of the {int(al.strata.max()) + 1} resampling strata (tissue × fold) hold a "
                            f"single {al.unit}, which every bootstrap resample repeats: the CIs leave out its "
                            "variation.")
    report.winners = _winners(report, options.alpha)
    return report


def _missing_notes(rows: pd.DataFrame, metrics: list[tuple[str, str]]) -> list[str]:
    """Runs without a value (NaN) for a metric, said out loud: a model's mean ± sd of that metric is over its
    other runs only (the CIs and tests re-aggregate the per-image tables and are not affected)."""
    notes, undefined = [], []
    for key, label in metrics:
        missing = rows[rows[key].isna()]
        if missing.empty:
            continue
        if len(missing) == len(rows):  # undefined for every run (e.g. a class absent from the test images)
            undefined.append(label)
            continue
        cells = ", ".join(f"{r.model} fold {r.fold} seed {r.seed}" for r in missing.itertuples())
        notes.append(f"{label}: no value (NaN) in {len(missing)} run(s) ({cells}); the mean ± sd of that model "
                     "is over its other runs only.")
    if undefined:
        notes.append(f"No value (NaN) in any run: {', '.join(undefined)} (undefined on these test "
                     "images, e.g. a class none of them holds).")
    return notes


def _per_class_label(per_class_key: str, name: str, fmt: str) -> str:
    """A per-class column's label with its aggregation: detection F1 pools pairs over images; PQ per class is
    pooled in CoNIC (as mPQ+) and image-averaged in PanNuke."""
    if per_class_key.startswith("f1"):
        return f"F1 {name} (pooled)"
    return f"PQ {name} ({'image-avg.' if fmt == 'pannuke' else 'pooled'})"


def _tissue_sd(per_image: pd.DataFrame, class_names: list[str] | None) -> dict[str, float]:
    """Sample sd over tissues of one run's per-tissue bPQ and mPQ (the metrics module's official per-tissue
    values; NaN with fewer than two tissues)."""
    from cellprobe.metrics.aggregate import aggregate_pannuke

    columns = [*per_image.select_dtypes("number").columns, "tissue"]
    per_tissue = aggregate_pannuke(per_image[columns].reset_index(drop=True), class_names=class_names)["per_tissue"]
    out = {}
    for metric, column, _ in TISSUE_SD:
        values = pd.Series([v[metric] for v in per_tissue.values()], dtype=float).dropna()
        out[column] = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
    return out


def _units(n: int, unit: str) -> str:
    return f"{n} {unit}{'' if n == 1 else 's'}"


def _design_caveats(n_units: int, unit: str, options: ReportOptions) -> tuple[str | None, str | None]:
    """(why the CIs are unreliable, why no p-value is given) for a design of ``n_units`` units; None when not.

    The CIs are unreliable with fewer than ``min_units`` units, or so few that no sign-flip test over them
    could reach α. p-values are withheld in both cases, and also when the permutations alone cannot reach α.
    """
    units = _units(n_units, unit)
    by_units = math.ldexp(1.0, 1 - n_units) if n_units >= 1 else 1.0  # exact test's floor, 2/2^n
    by_perm = 1.0 / (options.n_perm + 1)
    ci = None
    if n_units < options.min_units:
        ci = f"only {units} (fewer than {options.min_units} independent units)"
    elif by_units >= options.alpha:
        ci = f"only {units} (too few for any paired test over them to reach p < {options.alpha:g})"
    if stats.min_attainable_p(n_units, options.n_perm) >= options.alpha:  # = max(by_units, by_perm)
        limit = units if by_units >= by_perm else f"{options.n_perm} permutations"
        return ci, f"cannot reach p < {options.alpha:g} with {limit}"
    if ci is not None:
        return ci, f"only {units}, fewer than {options.min_units}"
    return None, None


def _units_note(d: DatasetReport, options: ReportOptions) -> str:
    together = ("patches of one source image are resampled and sign-flipped together"
                if d.unit == stats.UNIT_SOURCE else "the per-image rows name no source image, so each image is "
                "its own unit")
    exact = d.n_units is not None and stats.enumerates(d.n_units, options.n_perm)
    how = "all sign patterns enumerated" if exact else f"{options.n_perm} random sign flips"
    holm = _holm_floor(d)
    if len(d.models) < 2:  # no paired test runs: no p-value to bound
        return f"Independent units of every CI: {_units(d.n_units or 0, d.unit)} ({together})."
    return (f"Independent units of every CI and test: {_units(d.n_units or 0, d.unit)} ({together}); the "
            f"smallest p-value a paired test over them can give is {d.min_p:.3g} ({how})"
            + (f", Holm-adjusted over {_comparisons(d)} comparisons {holm:.3g}." if _comparisons(d) > 1 else "."))


def _comparisons(d: DatasetReport) -> int:
    """Comparisons per metric: the size of each Holm family."""
    return 0 if d.tests.empty else int((d.tests["metric"] == d.tests["metric"].iloc[0]).sum())


def _holm_floor(d: DatasetReport) -> float:
    """The smallest Holm-adjusted p-value the design can give: the family size times the smallest p."""
    return min(1.0, max(_comparisons(d), 1) * d.min_p)


def _winners(d: DatasetReport, alpha: float) -> dict[str, str]:
    """Each metric's best model, where the paired tests support it: its Holm p against every other model is
    below ``alpha``, in its favour. None at all when the design withholds p-values."""
    if d.p_caveat is not None or d.tests.empty or len(d.models) < 2:
        return {}
    out = {}
    for key, _ in d.metrics:
        est = d.estimate[key]
        if est.isna().any():
            continue
        best = str(est.idxmax())
        supported = True
        for other in d.models:
            if other == best:
                continue
            t = d.tests[(d.tests["metric"] == key) & (((d.tests["a"] == best) & (d.tests["b"] == other))
                                                      | ((d.tests["a"] == other) & (d.tests["b"] == best)))]
            if t.empty:
                supported = False
                break
            row = t.iloc[0]
            favours = row["diff"] > 0 if row["a"] == best else row["diff"] < 0
            if not (favours and row["p_holm"] < alpha):
                supported = False
                break
        if supported:
            out[key] = best
    return out


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


@dataclass
class Transfer:
    """In-domain and cross-dataset scores side by side: per training dataset, each model's ``metric`` with its
    CI on its own test split and on each test-only dataset (the sections' own estimates and CIs)."""

    metric: str
    tables: dict[str, list[DatasetReport]]  # training dataset → [in-domain section, cross sections...]


#: the metric compared across datasets: class-agnostic scoring of other data keeps PQ, not the per-class ones
TRANSFER_METRIC = "pq"


def _transfer(datasets: list[DatasetReport]) -> Transfer | None:
    cross = [d for d in datasets if d.cross]
    if not cross:
        return None
    tables: dict[str, list[DatasetReport]] = {}
    for d in cross:
        home = [x for x in datasets if not x.cross and x.test_data == d.trained_on]
        tables.setdefault(d.trained_on, home[:1]).append(d)
    return Transfer(TRANSFER_METRIC, tables)


def _transfer_rows(t: Transfer, trained: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """(column names, [(model, cells)]) of one training dataset's side-by-side table."""
    sections = t.tables[trained]
    models = list(dict.fromkeys(m for d in sections for m in d.models))
    rows = []
    for model in models:
        cells = []
        for d in sections:
            if model not in d.models or t.metric not in d.estimate:
                cells.append("–")
                continue
            mean, ci, _ = _cell(d, model, t.metric)
            cells.append(f"{mean} {ci}".strip())
        rows.append((model, cells))
    names = [("in-domain: " if not d.cross else "") + d.test_data for d in sections]
    return names, rows


def _transfer_md(t: Transfer) -> list[str]:
    out = ["## In-domain and cross-dataset", "",
           f"{t.metric.upper()} with its 95% CI on each dataset, by the dataset the decoders trained on (same "
           "statistics as the sections above; other data is scored class-agnostic where its classes differ).", ""]
    for trained in t.tables:
        names, rows = _transfer_rows(t, trained)
        out += [f"### Trained on {trained}", "", "| model | " + " | ".join(names) + " |",
                "|---|" + "---|" * len(names)]
        out += [f"| {model} | " + " | ".join(cells) + " |" for model, cells in rows]
        out.append("")
    return out


def _transfer_html(t: Transfer) -> str:
    parts = ["<h2>In-domain and cross-dataset</h2>",
             f"<p>{html.escape(t.metric.upper())} with its 95% CI on each dataset, by the dataset the decoders "
             "trained on (same statistics as the sections above; other data is scored class-agnostic where its "
             "classes differ).</p>"]
    for trained in t.tables:
        names, rows = _transfer_rows(t, trained)
        head = "<tr><th>model</th>" + "".join(f"<th>{html.escape(n)}</th>" for n in names) + "</tr>"
        body = "".join(f"<tr><td>{html.escape(m)}</td>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
                       + "</tr>" for m, cells in rows)
        parts += [f"<h3>Trained on {html.escape(trained)}</h3>", f"<table>{head}{body}</table>"]
    return "\n".join(parts)


# ---------------------------------------------------------------- formatting


def _num(x: float, digits: int = 3) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _p(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "–"
    return f"{p:.3f}" if p >= 0.001 else "<0.001"


def _columns(d: DatasetReport) -> list[tuple[str, str, bool]]:
    """The leaderboard's columns: (key, label, tested), each descriptive column right after its metric."""
    out = []
    for key, label in d.metrics:
        out.append((key, label, True))
        out += [(column, text, False) for metric, column, text in d.descriptive if metric == key]
    return out


def _cell(d: DatasetReport, model: str, key: str, tested: bool = True) -> tuple[str, str, str]:
    runs = d.runs[d.runs["model"] == model][key]
    sd = runs.std(ddof=1) if len(runs) > 1 else float("nan")
    mean = f"{_num(runs.mean())}" + (f" ± {_num(sd)}" if math.isfinite(sd) else "")
    if not tested:
        return mean, "", ""
    lo, hi = d.ci_lo.loc[model, key], d.ci_hi.loc[model, key]
    ci = f"[{_num(lo)}, {_num(hi)}]"
    if d.ci_caveat and (math.isfinite(lo) or math.isfinite(hi)):
        ci += CI_MARK
    p = ""
    if not d.tests.empty and model != d.models[0]:
        t = d.tests[(d.tests["metric"] == key) & (d.tests["a"] == d.models[0]) & (d.tests["b"] == model)]
        if len(t):
            if d.p_caveat:
                p = f"p n/a{P_MARK}"
            else:
                text = _p(t["p_holm"].iloc[0])
                p = f"p{text}" if text.startswith("<") else f"p={text}"
    return mean, ci, p


def _ranking_text(d: DatasetReport, options: ReportOptions, highlight: str) -> str:
    """What the order and the highlighting of the leaderboard mean, and why no winner is highlighted."""
    text = f"Ranked by the point estimate of {dict(d.metrics)[d.primary]}. "
    if d.winners:
        return text + (f"{highlight}: a metric's best model, where its paired tests against every other model "
                       f"reach Holm p < {options.alpha:g}.")
    if len(d.models) < 2:
        return text + "One model: no winner."
    if d.n_units is None or d.tests.empty:
        return text + "No winner is highlighted: no paired tests."
    if d.p_caveat:
        return text + f"No winner is highlighted: the paired tests {d.p_caveat}."
    if _holm_floor(d) >= options.alpha:
        return text + (f"No winner is highlighted: with {_comparisons(d)} comparisons per metric and "
                       f"{options.n_perm} permutations the Holm-adjusted p cannot go below "
                       f"{_holm_floor(d):.3g} (more permutations would allow it).")
    return text + (f"No winner is highlighted: no model's paired tests against every other model reach Holm "
                   f"p < {options.alpha:g}.")


def _footnotes(d: DatasetReport) -> list[str]:
    notes = []
    if d.ci_caveat:
        notes.append(f"{CI_MARK} CI unreliable: {d.ci_caveat}; a percentile bootstrap over so few units "
                     "understates the uncertainty.")
    if d.p_caveat and not d.tests.empty:
        notes.append(f"{P_MARK} No p-value: {d.p_caveat} (the smallest p-value this design can give is "
                     f"{d.min_p:.3g}).")
    return notes


def _test_p_text(d: DatasetReport) -> str:
    """What stands in the p columns of the paired-tests table when p-values are withheld."""
    if d.p_caveat and d.p_caveat.startswith("cannot"):
        return d.p_caveat
    return f"no p-value: {d.p_caveat}"


def _leaderboard_md(d: DatasetReport) -> str:
    columns = _columns(d)
    head = "| model | " + " | ".join(label for _, label, _ in columns) + " |"
    lines = [head, "|" + " --- |" * (len(columns) + 1)]
    for model in d.models:
        cells = []
        for k, _, tested in columns:
            mean, ci, p = _cell(d, model, k, tested)
            if d.winners.get(k) == model:
                mean = f"**{mean}**"
            cells.append(" ".join(x for x in (mean, ci, p) if x))
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _tests_md(d: DatasetReport) -> str:
    if d.tests.empty:
        return "_No paired tests (one model, or models not on the same images)._"
    labels = dict(d.metrics)
    mark = CI_MARK if d.ci_caveat else ""
    lines = ["| metric | A | B | A − B [95% CI] | n units | p | p (Holm) | p (max-T) |", "|" + " --- |" * 8]
    for r in d.tests.itertuples():
        ps = (f"{_test_p_text(d)} | – | –" if d.p_caveat
              else f"{_p(r.p)} | {_p(r.p_holm)} | {_p(r.p_maxt)}")
        lines.append(f"| {labels[r.metric]} | {r.a} | {r.b} | {_num(r.diff)} [{_num(r.ci_lo)}, {_num(r.ci_hi)}]"
                     f"{mark} | {r.n_units} | {ps} |")
    return "\n".join(lines)


def _method_text(options: ReportOptions) -> str:
    return (f"Values: mean ± sd over runs (folds × seeds); [95% CI] percentile bootstrap over the independent "
            f"units, source images where the test patches name them, else images ({options.n_boot} resamples, "
            f"stratified by tissue and fold, pooled metrics re-aggregated); p: two-sided paired sign-flip "
            f"permutation test against the top model ({options.n_perm} permutations, or every sign pattern when "
            f"there are fewer, units swapped between the two models), Holm-adjusted within each metric (max-T "
            f"in the pairwise table). Significance level {options.alpha}. With fewer than {options.min_units} "
            f"independent units, or when the test cannot reach p < {options.alpha:g} at all (over n units the "
            f"smallest two-sided p is max(2/2^n, 1/(permutations + 1))), CIs are marked {CI_MARK}, p-values are "
            f"withheld ({P_MARK}) and no winner is highlighted. Aggregation: " + "; ".join(AGGREGATIONS) + ".")


def _gap_unit(datasets: list[DatasetReport], ds: str) -> str:
    """The unit of a gap: its dataset's, or for the pooled gap the datasets' common unit."""
    units = {d.unit for d in datasets if d.name == ds or ds not in {x.name for x in datasets}}
    return units.pop() if len(units) == 1 else "independent unit"


def _gap_caveat(g: stats.ContrastResult, unit: str, options: ReportOptions) -> str | None:
    """Why a gap's CI is unreliable and its p-value withheld (None: it is not). The gap's p-value inverts a
    bootstrap interval, which over few units can be small for no reason: withheld whenever the CI is
    unreliable."""
    if g.n_units is None:
        return None
    return _design_caveats(g.n_units, unit, options)[0]


def _gap_units(g: stats.ContrastResult, unit: str) -> str:
    return "–" if g.n_units is None else _units(g.n_units, unit)


def _markdown(bench_dir: Path, datasets: list[DatasetReport], across: Across, options: ReportOptions,
              transfer: Transfer | None = None, missing: str | None = None) -> str:
    out = [MD_HEADING.format(bench_dir.name), "", f"_{date.today().isoformat()}_. "
           + _method_text(options), ""]
    out += [f"**Incomplete benchmark:** {missing}", ""] if missing else []
    for d in datasets:
        out += [f"## {d.name}", "", _ranking_text(d, options, "Bold") + " " + " ".join(d.notes), "",
                _leaderboard_md(d), ""]
        out += [*(f"_{n}_  " for n in _footnotes(d)), ""] if _footnotes(d) else []
        out += ["### Paired comparisons", "", _tests_md(d), ""]
    out += _transfer_md(transfer) if transfer else []
    out += ["## Across datasets", ""]
    if across.friedman is not None:
        f = across.friedman
        out += [f"Average rank by {across.metric} over {f.n_datasets} dataset(s) (1 = best): "
                + ", ".join(f"{m} {r:.2f}" for m, r in f.ranks.items())
                + f". Friedman χ² = {_num(f.statistic, 2)}, p = {_p(f.pvalue)}; Nemenyi CD "
                  f"(α = {f.alpha}) = {_num(f.cd, 2)}.", ""]
    for ds, metric, g in across.gaps:
        unit = _gap_unit(datasets, ds)
        caveat = _gap_caveat(g, unit, options)
        p = f"no p-value{P_MARK}, CI unreliable{CI_MARK}: {caveat}" if caveat else f"p = {_p(g.p)}"
        out.append(f"- Gap (histopathology − general) on {ds}, {metric}: {_num(g.estimate)} "
                   f"[{_num(g.ci_lo)}, {_num(g.ci_hi)}]{CI_MARK if caveat else ''} over {_gap_units(g, unit)}, "
                   f"{p}")
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
td .ci{color:#555;font-size:.9em}td .p{color:#8a2be2;font-size:.9em}td.untested{color:#8a2be2;text-align:left}
td.best{background:#eef7ee;font-weight:bold}.note{color:#555;font-size:.9em}img{max-width:100%;margin:.5em 0}
"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _leaderboard_html(d: DatasetReport) -> str:
    columns = _columns(d)
    head = "<tr><th>model</th>" + "".join(f"<th>{html.escape(label)}</th>" for _, label, _ in columns) + "</tr>"
    rows = []
    for model in d.models:
        cells = []
        for k, _, tested in columns:
            mean, ci, p = _cell(d, model, k, tested)
            best = " class=best" if d.winners.get(k) == model else ""
            cells.append(f"<td{best}>{mean}" + (f"<br><span class=ci>{ci}</span>" if ci else "")
                         + (f"<br><span class=p>{p}</span>" if p else "") + "</td>")
        name = " class=best" if d.winners.get(d.primary) == model else ""
        rows.append(f"<tr><td{name}>{html.escape(model)}</td>{''.join(cells)}</tr>")
    notes = "".join(f"<p class=note>{html.escape(n)}</p>" for n in _footnotes(d))
    return f"<table>{head}{''.join(rows)}</table>{notes}"


def _tests_html(d: DatasetReport) -> str:
    if d.tests.empty:
        return "<p class=note>No paired tests (one model, or models not on the same images).</p>"
    labels = dict(d.metrics)
    mark = CI_MARK if d.ci_caveat else ""
    head = ("<tr><th>metric</th><th>A</th><th>B</th><th>A − B</th><th>95% CI</th><th>n units</th><th>p</th>"
            "<th>p (Holm)</th><th>p (max-T)</th></tr>")
    rows = "".join(
        f"<tr><td>{html.escape(labels[r.metric])}</td><td>{html.escape(r.a)}</td><td>{html.escape(r.b)}</td>"
        f"<td>{_num(r.diff)}</td><td>[{_num(r.ci_lo)}, {_num(r.ci_hi)}]{mark}</td><td>{r.n_units}</td>"
        + (f"<td colspan=3 class=untested>{html.escape(_test_p_text(d))}</td>" if d.p_caveat
           else f"<td>{_p(r.p)}</td><td>{_p(r.p_holm)}</td><td>{_p(r.p_maxt)}</td>")
        + "</tr>" for r in d.tests.itertuples())
    return f"<table>{head}{rows}</table>"


def _html(bench_dir: Path, datasets: list[DatasetReport], across: Across, options: ReportOptions,
          transfer: Transfer | None = None, missing: str | None = None) -> str:
    parts = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8>{HTML_TITLE.format(html.escape(bench_dir.name))}"
             f"<style>{CSS}</style></head><body>",
             f"<h1>cellprobe benchmark report: {html.escape(bench_dir.name)}</h1>",
             f"<p class=note>{date.today().isoformat()}. {html.escape(_method_text(options))}</p>"]
    if missing:
        parts.append(f"<p><strong>Incomplete benchmark:</strong> {html.escape(missing)}</p>")
    for d in datasets:
        keys = [k for k, _ in d.metrics]
        headline = [k for k, _ in HEADLINE if k in keys]
        class_keys = [k for k in keys if "." in k]
        parts += [f"<h2>{html.escape(d.name)}</h2>",
                  f"<p>{html.escape(_ranking_text(d, options, 'Shaded and bold'))} "
                  + html.escape(" ".join(d.notes)) + "</p>", _leaderboard_html(d),
                  "<h3>Paired comparisons</h3>", _tests_html(d),
                  _img(plots.metric_bars(d.estimate, d.ci_lo, d.ci_hi, headline, dict(d.metrics), d.name,
                                         unreliable=d.ci_caveat),
                       f"{d.name}: metrics with 95% CIs")]
        if class_keys:
            parts.append(_img(plots.class_heatmap(d.estimate[class_keys], d.name), f"{d.name}: per-class"))
        examples = plots.examples_figure(d.runs, d.models, options.max_examples)
        if examples is not None:
            parts += ["<h3>Example test patches</h3>", _img(examples, f"{d.name}: example patches")]
    if transfer:
        parts.append(_transfer_html(transfer))
    parts.append("<h2>Across datasets</h2>")
    if across.friedman is not None:
        f = across.friedman
        parts.append(f"<p>Average rank by {html.escape(across.metric)} over {f.n_datasets} dataset(s), 1 = best. "
                     f"Friedman χ² = {_num(f.statistic, 2)}, p = {_p(f.pvalue)}; Nemenyi critical difference "
                     f"(α = {f.alpha}) = {_num(f.cd, 2)}: models joined by a bar do not differ "
                     f"significantly.</p>")
        parts.append(_img(across.figure, "critical-difference diagram"))
    if across.gaps:
        rows, notes = [], []
        for ds, m, g in across.gaps:
            unit = _gap_unit(datasets, ds)
            caveat = _gap_caveat(g, unit, options)
            p = (f"<td class=untested>no p-value{P_MARK}</td>" if caveat else f"<td>{_p(g.p)}</td>")
            rows.append(f"<tr><td>{html.escape(ds)}</td><td>{html.escape(m)}</td><td>{_num(g.estimate)}</td>"
                        f"<td>[{_num(g.ci_lo)}, {_num(g.ci_hi)}]{CI_MARK if caveat else ''}</td>"
                        f"<td>{_gap_units(g, unit)}</td>{p}</tr>")
            if caveat:
                notes.append(f"{ds}: {CI_MARK} CI unreliable and {P_MARK} no p-value: {caveat}.")
        parts.append("<h3>The gap: histopathology − general-purpose encoders</h3><table><tr><th>data</th>"
                     f"<th>metric</th><th>gap</th><th>95% CI</th><th>n units</th><th>p</th></tr>{''.join(rows)}"
                     "</table>")
        parts += [f"<p class=note>{html.escape(n)}</p>" for n in notes]
    parts += [f"<p class=note>{html.escape(n)}</p>" for n in across.notes]
    parts.append("</body></html>")
    return "\n".join(parts)
