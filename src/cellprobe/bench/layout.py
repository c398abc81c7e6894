"""The benchmark folder: where each cell's results live, and how to read them back.

```
BENCH_DIR/
  bench.yaml                   the resolved benchmark config
  index.csv                    one row per finished cell (rewritten atomically after each cell)
  cells/<cell_id>/
    result.json                written last, atomically: its presence marks the cell as done
    per_image.parquet          per-image sufficient statistics (+ image, tissue) for re-aggregation
    examples.npz               optional: a few test patches with truth and this cell's prediction
    run/                       the training run folder
    test_only/<dataset>/       the run scored on a test-only dataset (cross-dataset): result.json, per_image.parquet
```
A cell is one (dataset, encoder, weights, fold, seed). The runner writes this layout; the report reads it. Each
result.json names the dataset the cell trained on (``dataset``) and the one it scored (``test_data``).
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cellprobe import atomic
from cellprobe.config import read_json
from cellprobe.errors import InputError, not_a_file

if TYPE_CHECKING:
    from cellprobe.bench.bench_config import BenchConfig

RESULT = "result.json"
TEST_ONLY = "test_only"
PER_IMAGE = "per_image.parquet"
EXAMPLES = "examples.npz"
INDEX = "index.csv"
CONFIG = "bench.yaml"
#: a failed cell's traceback, in its folder (kept until the cell runs again)
ERROR = "error.txt"


@dataclass(frozen=True)
class Cell:
    dataset: str
    encoder: str
    weights: str
    fold: int
    seed: int

    @property
    def cell_id(self) -> str:
        return safe_name(f"{self.dataset}__{self.encoder}__{self.weights}__f{self.fold}__s{self.seed}")

    @property
    def model(self) -> str:
        return model_label(self.encoder, self.weights)


def safe_name(raw: str) -> str:
    """``raw`` as one folder name: anything but letters, digits, ``_``, ``.`` and ``-`` becomes ``-``, and no
    name is ``.`` or ``..`` (nothing derived from a config leaves the benchmark folder)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", raw)
    return name if name.strip(".") else name.replace(".", "-")


def read_config(bench_dir: Path) -> BenchConfig | None:
    """The benchmark folder's bench.yaml (None before the first run wrote it), read as strictly as the user's
    bench file: a hand-damaged record is no proof of the setup its cells were made with."""
    from cellprobe.bench.bench_config import BenchConfig
    from cellprobe.config import load_yaml, parse_config

    path = Path(bench_dir) / CONFIG
    if not path.exists() and not path.is_symlink():
        return None
    if not path.is_file():  # a folder or pipe there is no record, nor proof that none was written
        raise InputError(path, f"{not_a_file(path)}: the benchmark config cellprobe writes here cannot be read; "
                               "move it")
    try:
        return parse_config(BenchConfig, load_yaml(path), path)
    except InputError as exc:
        raise InputError(path, f"{exc.problem}: not the benchmark config cellprobe wrote here, so what made the "
                               "finished cells is unknown; use a new output folder") from None


def model_label(encoder: str, weights: str) -> str:
    """How a model is named in tables: the encoder, with its weights when not the pretrained ones."""
    return encoder if weights == "pretrained" else f"{encoder} ({Path(weights).name})"


#: a cell's run folder within the cell's folder
CELL_RUN = "run"


def cell_dir(bench_dir: Path, cell: Cell) -> Path:
    return Path(bench_dir) / "cells" / cell.cell_id


@dataclass
class Scores:
    """One evaluation of a cell's run: the metrics summary, the per-image table, extra facts."""

    summary: Mapping[str, Any]
    per_image: pd.DataFrame
    info: Mapping[str, Any]


def is_done(bench_dir: Path, cell: Cell, test_only: tuple[str, ...] = ()) -> bool:
    """The cell's result.json is there and readable (it is written last, atomically; a damaged one, e.g. on a
    full disk, is not taken for a finished cell: the cell runs again and replaces it), and it was scored on
    every test-only dataset in ``test_only`` (one added to the config later makes the cell run again: its
    training resumes as finished, only the scoring is new)."""
    path = cell_dir(bench_dir, cell) / RESULT
    try:
        result = read_json(path, "result")
    except InputError:
        return False
    if not (isinstance(result, dict) and result.get("cell_id") == cell.cell_id and "metrics" in result):
        return False
    if "examples_sha256" not in result:  # written before the record: made again (its run resumes as finished)
        return False
    if result["examples_sha256"] is not None and not (path.parent / EXAMPLES).is_file():  # lost: made again
        return False
    scored = result.get("test_only") or []
    if not (isinstance(scored, list) and set(test_only) <= set(scored)):
        return False
    folders = [path.parent, *(path.parent / TEST_ONLY / safe_name(str(name)) for name in scored)]
    return all(_readable_table(folder / PER_IMAGE) for folder in folders)


#: the files of a cell's run its scores depend on: the network and its thresholds (absent: untuned)
RUN_FILES = ("best.ckpt", "postprocess.json")


def run_files_record(run_dir: Path) -> dict[str, str | None]:
    """The sha256 of each of :data:`RUN_FILES` in a cell's run (None: absent), kept in its result.json."""
    from cellprobe.hashing import file_sha256

    return {name: file_sha256(run_dir / name) if (run_dir / name).is_file() else None for name in RUN_FILES}


def check_runs_unchanged(bench_dir: Path) -> None:
    """Refuse a benchmark folder where a finished cell's run differs from the one its scores were made with
    (its network or thresholds: :data:`RUN_FILES`): a run re-tuned or retrained by hand after the cell was
    scored would pass its old scores for the new network's, in the report and in a rerun that skips the cell.
    Every finished result records them (one without is refused: its check would be skipped)."""
    for path in sorted(Path(bench_dir).glob(f"cells/*/{RESULT}")):
        try:
            result = read_json(path, "result")
        except InputError:  # not finished: the runner redoes it, the report refuses it
            continue
        if not isinstance(result, dict) or "metrics" not in result:  # not finished: the runner redoes it
            continue
        recorded, run_dir = result.get("run_files"), result.get("run_dir")
        if not isinstance(run_dir, str):
            raise InputError(path, f"run_dir {run_dir!r} is not the run folder cellprobe records")
        if not isinstance(recorded, dict) or set(recorded) != set(RUN_FILES):
            raise InputError(path, f"run_files {recorded!r} is not the record cellprobe writes")
        run = Path(run_dir) if Path(run_dir).is_absolute() else path.parent / run_dir
        now = run_files_record(run)
        from cellprobe.run.run_folder import same_checkpoint

        changed = next((name for name in RUN_FILES if now[name] != recorded[name]
                        and not (name.endswith(".ckpt") and same_checkpoint(run, name, recorded[name], now[name]))),
                       None)
        if changed is not None:
            how = "appeared" if recorded[changed] is None else "is gone" if now[changed] is None else "changed"
            raise InputError(run / changed, f"{how} since the cell was scored (re-tuned or retrained by hand?): "
                                            f"its scores are not this run's; restore it, or remove {path.parent} "
                                            "to run the cell again")


def _readable_table(path: Path) -> bool:
    """The per-image table is there and its Parquet footer reads (a lost or torn one makes the cell run again:
    the report could not use it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(path)
    except (OSError, ValueError, pa.ArrowException):
        return False
    return True


def flatten_summary(summary: Mapping[str, Any]) -> dict[str, float]:
    """Numeric scalars of a metrics summary, with per-class lists spread as ``<key>.<class name>``."""
    names = list(summary.get("class_names") or [])
    flat: dict[str, float] = {}
    for key, value in summary.items():
        if isinstance(value, bool) or key == "num_images":
            continue
        if isinstance(value, int | float | np.floating | np.integer):
            flat[key] = float(value)
        elif isinstance(value, list | tuple) and value and all(isinstance(v, int | float) or v is None
                                                              for v in value):
            labels = names if len(names) == len(value) else [f"class{i + 1}" for i in range(len(value))]
            for label, v in zip(labels, value, strict=True):
                flat[f"{key}.{label}"] = float("nan") if v is None else float(v)
    return flat


def aggregator(fmt: str, class_names: list[str] | None = None) -> Callable[[pd.DataFrame], dict[str, float]]:
    """The metrics module's re-aggregation for a result format, returning flat numeric summaries."""
    from cellprobe.metrics.aggregate import aggregate_conic, aggregate_pannuke

    funcs = {"conic": aggregate_conic, "pannuke": aggregate_pannuke}
    if fmt not in funcs:
        raise ValueError(f"no aggregation for metrics format {fmt!r}")
    func = funcs[fmt]

    def aggregate(rows: pd.DataFrame) -> dict[str, float]:
        return flatten_summary(func(rows.reset_index(drop=True), class_names=class_names))

    return aggregate


def read_results(bench_dir: Path) -> pd.DataFrame:
    """One row per finished cell: identity, timings and flattened metrics (from each result.json)."""
    bench_dir = Path(bench_dir)
    paths = sorted([*(bench_dir / "cells").glob(f"*/{RESULT}"), *(bench_dir / "cells").glob(f"*/{TEST_ONLY}/*/{RESULT}")])
    if not paths:
        raise InputError(bench_dir, "no finished benchmark cells (cells/*/result.json) in this folder")
    rows = []
    for path in paths:
        res = read_json(path, "result")
        if not isinstance(res, dict):
            raise InputError(path, f"damaged result: a JSON object expected, got {type(res).__name__}")
        metrics = res.get("metrics", {})
        if not isinstance(metrics, dict):
            raise InputError(path, f"damaged result: 'metrics' must be an object, got {type(metrics).__name__}")
        for key, value in metrics.items():  # NaN is written as null (strict JSON)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise InputError(path, f"damaged result: metric '{key}' is not a number ({value!r})")
        _check_identity(res, path, bench_dir)
        odd = _metrics_off_summary(metrics, res.get("summary"))
        if odd is not None:
            raise InputError(path, f"damaged result: its metric {odd!r} is not its summary's")
        row = {k: v for k, v in res.items() if k not in ("summary", "metrics", "test_only")}
        row.setdefault("test_data", row.get("dataset"))
        row.update({k: float("nan") if v is None else float(v) for k, v in metrics.items()})
        row["cell_dir"] = str(path.parent)
        rows.append(row)
    table = pd.DataFrame(rows)
    for (_, test_data), group in table.groupby(["dataset", "test_data"]):
        scored = [(r["format"], tuple(r["class_names"])) for _, r in group.iterrows()]
        odd = next((i for i, how in enumerate(scored) if how != scored[0]), None)
        if odd is not None:  # their per-class columns could not be compared: refused, not dropped
            first, other = group.iloc[0], group.iloc[odd]
            raise InputError(Path(other["cell_dir"]) / RESULT, f"scored {test_data} as {other['format']} with "
                             f"classes {list(other['class_names'])}, but {Path(first['cell_dir']).name} as "
                             f"{first['format']} with {list(first['class_names'])}: cells of one dataset are "
                             "compared only when scored alike")
    return table


def _metrics_off_summary(metrics: Mapping[str, Any], summary: Any) -> str | None:
    """The first metric that is not the flattened ``summary``'s (a key missing on either side, or another
    value; NaN, written as null, equals null), or None. Both are written together by :func:`_write_scores`."""
    if not isinstance(summary, dict) or not metrics:
        return "(all)"
    recorded = flatten_summary(summary)
    for key in sorted(set(recorded) | set(metrics)):
        mine, theirs = metrics.get(key, "missing"), recorded.get(key)
        if theirs is None:  # a scalar NaN: null in the summary, so not flattened
            if not (mine is None and key in summary and summary[key] is None):
                return key
        elif mine is None:
            if not np.isnan(theirs):
                return key
        elif mine == "missing" or not _same_number(float(theirs), float(mine)):
            return key
    return None


#: the fields of a cell's result.json that identify it, with their JSON types
_IDENTITY = {"cell_id": str, "dataset": str, "encoder": str, "weights": str, "fold": int, "seed": int,
             "model": str, "test_data": str, "format": str}


def _check_identity(res: Mapping[str, Any], path: Path, bench_dir: Path) -> None:
    """A result.json's identity read as written (a fold ``'0'`` is not fold 0; nothing cast, nothing missing),
    consistent with itself and with the folder it lies in (a cell folder copied under another name would
    count as a second run)."""
    for key, kind in _IDENTITY.items():
        value = res.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise InputError(path, f"damaged result: '{key}' is {value!r}, expected {kind.__name__}")
    if res["format"] not in ("conic", "pannuke"):
        raise InputError(path, f"damaged result: format {res['format']!r} is not 'conic' or 'pannuke'")
    names = res.get("class_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise InputError(path, f"damaged result: class_names {names!r} is not a list of names")
    cell = Cell(res["dataset"], res["encoder"], res["weights"], res["fold"], res["seed"])
    folder = path.parent if path.parent.parent.name != TEST_ONLY else path.parent.parent.parent
    tested = res["dataset"] if folder == path.parent else res["test_data"]
    if (res["cell_id"], res["model"]) != (cell.cell_id, cell.model) or folder.name != cell.cell_id or (
            folder != path.parent and path.parent.name != safe_name(tested)):
        raise InputError(path, f"damaged result: it names cell {res['cell_id']!r} (model {res['model']!r}, "
                               f"test data {tested!r}) but lies in {path.parent.relative_to(bench_dir)}: a cell "
                               "folder copied or renamed is not another run")


def read_per_image(cell_directory: str | Path, model: str, fold: int, seed: int, fmt: str,
                   class_names: list[str], metrics: Mapping[str, float]) -> pd.DataFrame:
    """A cell's per-image table tagged with model, fold and seed (the keys the statistics pair on). Every
    interval and test of the report is recomputed from these rows, so they are checked first: statistics a
    scoring can give (:func:`~cellprobe.metrics.image.per_image_problem`), and re-aggregated they give the
    ``metrics`` the cell's result.json records (a table changed or swapped afterwards does not)."""
    from cellprobe.metrics.image import per_image_problem

    path = Path(cell_directory) / PER_IMAGE
    try:
        df = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise InputError(path, f"unreadable per-image table ({exc})") from None
    problem = per_image_problem(df, fmt, len(class_names))
    if problem is None:
        stats = [c for c in df.columns if c == "tissue" or pd.api.types.is_numeric_dtype(df[c])]  # not names
        again = aggregator(fmt, class_names)(df[stats])
        # a metric the result records as NaN (null) is reported as missing, not recomputed: only numbers compared
        differ = [k for k, v in metrics.items() if k in again and not np.isnan(v) and not _same_number(again[k], v)]
        if differ:
            problem = (f"does not give the result.json's {differ[0]} ({metrics[differ[0]]:.6g}; the table gives "
                       f"{again[differ[0]]:.6g}): changed after scoring")
    if problem is not None:
        raise InputError(path, f"damaged per-image table: {problem}; score the cell again (delete its folder and "
                               "rerun the benchmark)")
    return df.assign(model=model, fold=fold, seed=seed)


def _same_number(a: float, b: float) -> bool:
    """Equal as stored numbers (JSON keeps 17 digits, so a relative 1e-9 is plenty)."""
    return not np.isnan(a) and abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def _write_scores(out: Path, cell: Cell, test_data: str, scores: Scores, **extra: Any) -> None:
    """One evaluation's per-image table, then its result.json."""
    table = scores.per_image
    table = table.reset_index() if "image" not in table.columns else table.reset_index(drop=True)
    table["image"] = table["image"].astype(str)
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    atomic.write_bytes(out / PER_IMAGE, buf.getvalue())
    summary = scores.summary
    result = {"cell_id": cell.cell_id, **asdict(cell), "test_data": test_data, "model": cell.model, **scores.info,
              "format": summary.get("format", scores.info.get("format")),
              "class_names": list(summary.get("class_names") or []),
              "metrics": flatten_summary(summary), "summary": dict(summary), **extra}
    atomic.write_json(out / RESULT, result)


def save_cell(bench_dir: Path, cell: Cell, summary: Mapping[str, Any], per_image: pd.DataFrame,
              info: Mapping[str, Any], examples: Mapping[str, np.ndarray] | None = None,
              test_only: Mapping[str, Scores] | None = None) -> Path:
    """Write a finished cell: its test-only scores, per-image table and examples first, its result.json last
    (the done marker)."""
    out = cell_dir(bench_dir, cell)
    test_only = dict(test_only or {})
    for name, scores in test_only.items():
        _write_scores(out / TEST_ONLY / safe_name(name), cell, name, scores)
    digest = None
    if examples is not None:
        buf = io.BytesIO()
        np.savez_compressed(buf, **examples)
        atomic.write_bytes(out / EXAMPLES, buf.getvalue())
        digest = hashlib.sha256(buf.getvalue()).hexdigest()
    # the examples' digest: a file swapped with another cell's would show that model's predictions as this one's
    _write_scores(out, cell, cell.dataset, Scores(summary, per_image, info), test_only=sorted(test_only),
                  examples_sha256=digest)
    return out
