"""The benchmark matrix runner: one cell per (dataset, encoder, weights, fold, seed), resumable.

A cell is done when its ``result.json`` exists (written last, atomically), so a re-run skips finished cells and
a killed run resumes at the first unfinished one. The cell's work (train, evaluate, keep examples) is a
function, :func:`cellprobe.bench.cell.run_cell` by default, injectable for tests and other back-ends.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cellprobe import atomic
from cellprobe.bench import layout
from cellprobe.bench.bench_config import BenchConfig
from cellprobe.bench.cell import run_cell
from cellprobe.bench.matrix import CellFn, CellOutput, CellTask, expand
from cellprobe.config import config_source, dump_config, keys_attributed, parse_config
from cellprobe.data.io import refuse_output_inside
from cellprobe.errors import InputError, not_a_file
from cellprobe.locking import exclusive, refuse_if_in_use
from cellprobe.run.run_folder import CONFIG as RUN_CONFIG
from cellprobe.run.run_folder import LAST, refuse_inside_run

if TYPE_CHECKING:
    from cellprobe.cluster import ClusterSpec


@dataclass
class BenchSummary:
    done: list[str] = field(default_factory=list)  # finished in this run
    skipped: list[str] = field(default_factory=list)  # already finished before
    failed: dict[str, str] = field(default_factory=dict)  # cell id → one-line error
    seconds: float = 0.0
    # finished cells of the folder outside this config's matrix (an earlier run's seeds, say): the report keeps them
    outside: list[str] = field(default_factory=list)


#: the bench config's keys that change what a cell makes (its scores, or the example patches it keeps for the
#: report); datasets are compared by name below; the others (encoders, seeds, on_error, ...) may change
#: between runs of one folder
RESULT_KEYS = ("training", "tune", "tune_metric", "tta", "examples")


def _check_same_setup(bench_dir: Path, config: BenchConfig) -> None:
    """A benchmark folder holds one setup: cells trained differently must not be mixed in one report."""
    path = bench_dir / layout.CONFIG
    written = layout.read_config(bench_dir)
    if written is None:
        return
    old = written.model_dump(mode="json")
    new = config.model_dump(mode="json")
    for key in RESULT_KEYS:
        if old[key] != new[key]:
            raise InputError(path, f"'{key}' differs from the benchmark already in this folder; use a new output "
                                   "folder (finished cells would otherwise mix two setups)")
    for section in ("datasets", "test_datasets"):
        old_sets = {d["name"]: d for d in old[section]}
        for d in new[section]:
            if d["name"] in old_sets and old_sets[d["name"]] != d:
                raise InputError(path, f"{section} '{d['name']}' is defined differently from the benchmark already "
                                       "in this folder; use a new output folder")


#: the benchmark folder's record of its inputs' contents: each dataset's (and test dataset's) files and each
#: weights file, by sha256, as the finished cells were made from them
INPUTS = ".cellprobe-inputs.json"


def _input_digests(config: BenchConfig) -> dict[str, str]:
    """The sha256 of what the cells read besides the config: each dataset folder (with a split file given
    outside it) and each weights file; paths that do not exist are left to the input checks."""
    from cellprobe.hashing import file_sha256, tree_sha256

    digests: dict[str, str] = {}
    for source in (*config.datasets, *config.test_datasets):
        if Path(source.path).exists():
            digests[f"dataset {source.name}"] = tree_sha256(Path(source.path))
        split_file = source.options.get("split_file")
        if isinstance(split_file, str) and Path(split_file).is_file():
            digests[f"dataset {source.name} split_file"] = file_sha256(split_file)
    for encoder in config.encoders:
        for weights in encoder.weights:
            if weights not in ("pretrained", "random") and Path(weights).is_file():
                digests[f"weights {weights}"] = file_sha256(weights)
    return digests


def _finished_inputs(bench_dir: Path) -> dict[str, set[str]]:
    """Every finished cell of the folder (this config's matrix or not: an earlier run's seeds stay in its
    report) → the keys of :func:`_input_digests` it read: its dataset, the test-only datasets it was scored on
    (its result.json says which: one added to the config since is not yet), and its weights file."""
    from cellprobe.config import read_json

    read: dict[str, set[str]] = {}
    for path in sorted(Path(bench_dir).glob(f"cells/*/{layout.RESULT}")):
        try:
            result = read_json(path, "result")
        except InputError:  # not finished: the runner redoes it
            continue
        if not (isinstance(result, dict) and "metrics" in result):
            continue
        scored = result.get("test_only") if isinstance(result.get("test_only"), list) else []
        datasets = {str(result.get("dataset")), *map(str, scored)}
        read[path.parent.name] = {*(f"dataset {name}" for name in datasets), f"weights {result.get('weights')}"}
    return read


def _resumable_inputs(bench_dir: Path, config: BenchConfig) -> dict[str, set[str]]:
    """Every cell of the folder (this config's matrix or not) whose run has a checkpoint to resume from → the
    datasets of ``config`` at its run's data path and its weights file: its later epochs would train on what is
    there now, so a change is refused up front (the run itself would refuse it only once its cell starts, after
    the folder's records were rewritten, and a run of a sub-matrix would record the new version meanwhile)."""
    from cellprobe.config import load_yaml

    by_path = {Path(s.path).resolve(): f"dataset {s.name}" for s in (*config.datasets, *config.test_datasets)}
    read: dict[str, set[str]] = {}
    for run in sorted(Path(bench_dir).glob(f"cells/*/{layout.CELL_RUN}")):
        if not (run / LAST).exists():
            continue
        settings = load_yaml(run / RUN_CONFIG)  # unreadable: what the killed cell trained on is unknown
        data = settings.get("data") if isinstance(settings, dict) else None
        encoder = settings.get("encoder") if isinstance(settings, dict) else None
        path = data.get("path") if isinstance(data, dict) else None
        weights = encoder.get("weights") if isinstance(encoder, dict) else None
        if not (isinstance(path, str) and isinstance(weights, str)):
            raise InputError(run / RUN_CONFIG, "names no data.path and encoder.weights: what this killed cell trained "
                                               "on is unknown; remove its folder to run the cell again")
        dataset = by_path.get(Path(path).resolve()) if isinstance(path, str) else None
        read[run.parent.name] = {key for key in (dataset, f"weights {weights}") if key}
    return read


def _refuse_records_in_the_way(bench_dir: Path, config: BenchConfig) -> None:
    """Something other than a file (a folder, a link to nothing, a device) where the benchmark writes one of
    its records, or a cell of ``config`` one of its results, and a file or a link to nothing where it makes a
    folder (cells, their runs, the feature caches), is refused before any cell runs (not met as a traceback
    once the cell has run)."""
    paths = [bench_dir / name for name in (layout.CONFIG, INPUTS, layout.INDEX)]
    folders = [bench_dir / "cells", bench_dir / "feature_cache"]
    for task in expand(config):
        folder = layout.cell_dir(bench_dir, task.cell)
        folders.append(replace(task, bench_dir=bench_dir).feature_cache_dir())
        scored = [folder / layout.TEST_ONLY / layout.safe_name(name) for name in task.test_only_names]
        folders += [folder, folder / layout.CELL_RUN, *([folder / layout.TEST_ONLY] if scored else []), *scored]
        paths += [place / name for place in (folder, *scored)
                  for name in (layout.RESULT, layout.PER_IMAGE, layout.EXAMPLES, layout.ERROR)]
    for path in folders:  # cellprobe's own folders: a link would lead cells, runs and caches out of the folder
        problem = atomic.own_folder_problem(path)
        if problem is not None:
            raise InputError(path, f"is in the way of a benchmark folder ({problem}); move it, or use a new output "
                                   "folder")
    for path in paths:
        if atomic.in_the_way(path):
            raise InputError(path, "is in the way of a benchmark record (not a file); move it, or use a new output "
                                   "folder")


def _check_runs_to_resume(bench_dir: Path, config: BenchConfig) -> None:
    """The run of every cell this config will run and that has one already (a killed or re-scored cell) opens
    as a run of this cellprobe: one of an earlier run format (``cellprobe upgrade``), of another version or
    damaged is refused before any cell runs, not once its turn comes after others were redone."""
    from cellprobe.run.run_folder import STAMP, read_stamp

    for task in expand(config):
        run = layout.cell_dir(bench_dir, task.cell) / layout.CELL_RUN
        if (run / STAMP).exists() and not layout.is_done(bench_dir, task.cell, task.test_only_names):
            read_stamp(run)


def _reads(key: str, read: set[str]) -> bool:
    """Whether ``key`` (a dataset, its split file, or a weights file) is among a cell's inputs ``read``."""
    kind, rest = key.split(" ", 1)
    return f"{kind} {rest.split(' ')[0] if kind == 'dataset' else rest}" in read


def _check_inputs_unchanged(bench_dir: Path, config: BenchConfig) -> dict[str, str]:
    """Refuse running on in a benchmark folder whose finished cells were made from other contents of a dataset
    or weights file than those there now (a dataset re-downloaded or relabelled, a weights file replaced): new
    cells and skipped ones would mix two versions in one report, unsaid. Returns the record to keep (earlier
    entries of inputs no longer in the config kept)."""
    from cellprobe.config import read_json

    now = _input_digests(config)
    path = bench_dir / INPUTS
    read = {**_resumable_inputs(bench_dir, config), **_finished_inputs(bench_dir)}
    recorded: Any = {}
    if path.is_file() or path.is_symlink():
        recorded = read_json(path, "benchmark inputs record")
        if not isinstance(recorded, dict) or not all(isinstance(v, str) for v in recorded.values()):
            raise InputError(path, "is not the record of the benchmark's inputs cellprobe wrote (names to sha256): "
                                   "what the finished cells were made from is unknown; use a new output folder")
    for key, digest in now.items():
        if recorded.get(key) == digest:
            continue
        used = sorted(cell for cell, inputs in read.items() if _reads(key, inputs))
        if used:
            problem = ("changed since" if key in recorded else "is not recorded (the record is missing or lacks it), "
                       "so it cannot be shown unchanged since")
            raise InputError(path, f"{key} {problem} {len(used)} finished or partly trained cell(s) of this "
                                   f"benchmark folder were made from it (e.g. {used[0]}): cells could mix two "
                                   "versions; restore it, or use a new output folder")
    return {**recorded, **now}


def write_index(bench_dir: Path) -> Path:
    """index.csv: one row per finished cell (identity, timings, flat metrics), rewritten atomically."""
    results = layout.read_results(bench_dir)
    results = results.drop(columns=[c for c in ("class_names", "cell_dir", "run_files", "examples_sha256") if c in results.columns])
    path = Path(bench_dir) / layout.INDEX
    atomic.write_text(path, results.to_csv(index=False))
    return path


def run_bench(
    config: BenchConfig,
    bench_dir: str | Path,
    cell_fn: CellFn | None = None,
    on_cell: Callable[[CellTask, str], None] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    check_inputs: bool | None = None,
    cluster: ClusterSpec | None = None,
    notify: Callable[[str], None] | None = None,
) -> BenchSummary:
    """Run every unfinished cell of the matrix into ``bench_dir``.

    ``on_cell(task, status)`` is called with status "start", "skip", "done" or "failed"; ``progress`` is handed
    to the cell function for progress inside a cell (epochs).
    Bad input (InputError) stops the run; other errors stop it too unless ``config.on_error == "continue"``,
    in which case the error is kept in the cell's ``error.txt`` and the next cell runs.
    ``check_inputs`` (default: when the cell function is :func:`run_cell`) checks the datasets, splits,
    encoders and weights files up front (:func:`check_cell_inputs`); an injected cell function may use its own.
    ``cluster``: run the cells as tasks of a Dask cluster (:mod:`cellprobe.bench.dispatch`), announcing it
    through ``notify(line)``; None runs them here, one after another.
    """
    check_inputs = cell_fn is None if check_inputs is None else check_inputs
    cell_fn = run_cell if cell_fn is None else cell_fn
    bench_dir = Path(bench_dir)
    # nothing is written before the whole config is known good: valid as it stands now (its parts may have been
    # changed since it was loaded), what only a running cell would find out checked up front, and the same setup
    # as the benchmark already in the folder
    if bench_dir.exists() and not bench_dir.is_dir():
        raise InputError(bench_dir, "the benchmark output folder is an existing file, not a folder")
    refuse_if_in_use(bench_dir)  # a benchmark running there is not compared with this one: it is not done
    refuse_inside_run(bench_dir, itself=True)  # its cells are runs: each would be refused inside another run
    for source in (*config.datasets, *config.test_datasets):
        refuse_output_inside(bench_dir, source.path)
    parse_config(BenchConfig, config.model_dump(), "benchmark config")
    if check_inputs:
        check_cell_inputs(config, cluster)
    check_distinct_data(config)
    check_distinct_cells(config)
    _check_same_setup(bench_dir, config)
    _refuse_records_in_the_way(bench_dir, config)
    if cluster is not None:
        from cellprobe.cluster import check_log_place

        check_log_place(bench_dir)
    inputs = _check_inputs_unchanged(bench_dir, config)
    layout.check_runs_unchanged(bench_dir)
    _check_runs_to_resume(bench_dir, config)
    with exclusive(bench_dir, "a benchmark"):  # a second bench on this folder would run the same cells
        atomic.write_json(bench_dir / INPUTS, inputs)
        if cluster is not None:
            from cellprobe.bench.dispatch import dispatch_cells

            summary = dispatch_cells(config, bench_dir, cell_fn, cluster, on_cell, progress, notify)
        else:
            summary = _run_cells(config, bench_dir, cell_fn, on_cell, progress)
    matrix = {task.cell.cell_id for task in expand(config)}
    summary.outside = sorted(p.parent.name for p in (bench_dir / "cells").glob(f"*/{layout.RESULT}")
                             if p.parent.name not in matrix)
    return summary


def _run_cells(config: BenchConfig, bench_dir: Path, cell_fn: CellFn, on_cell: Callable[[CellTask, str], None] | None,
               progress: Callable[[str, int, int], None] | None) -> BenchSummary:
    """Every unfinished cell, in the checked and locked benchmark folder."""
    atomic.write_text(bench_dir / layout.CONFIG, dump_config(config))
    summary = BenchSummary()
    start = time.perf_counter()
    for task in expand(config):
        task = replace(task, bench_dir=bench_dir, progress=progress)
        cid = task.cell.cell_id
        if layout.is_done(bench_dir, task.cell, task.test_only_names):
            summary.skipped.append(cid)
            if on_cell:
                on_cell(task, "skip")
            continue
        if on_cell:
            on_cell(task, "start")
        out_dir = layout.cell_dir(bench_dir, task.cell)
        out_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        try:
            output = cell_fn(task, out_dir)
        except InputError:
            raise
        except Exception as exc:
            if config.on_error == "stop":
                raise
            summary.failed[cid] = record_failure(out_dir, exc)
            if on_cell:
                on_cell(task, "failed")
            continue
        save_output(task, output, time.perf_counter() - t0)
        write_index(bench_dir)
        summary.done.append(cid)
        if on_cell:
            on_cell(task, "done")
    summary.seconds = time.perf_counter() - start
    return summary


def save_output(task: CellTask, output: CellOutput, seconds: float, **extra: object) -> None:
    """Write a finished cell's results (result.json last: the cell is done) with its identity and timing;
    ``extra``: more facts for its row (e.g. the host a distributed run used)."""
    info = {"group": task.encoder.group, "dataset_path": str(task.dataset.path),
            "splits": task.fold.model_dump(mode="json"), "seconds": round(seconds, 2), **output.info, **extra}
    if info.get("group") is None:
        info["group"] = _registry_group(task.cell.encoder)
    test_only = {name: layout.Scores(s.summary, s.per_image, {"group": info["group"], **s.info})
                 for name, s in output.test_only.items()}
    layout.save_cell(task.bench_dir, task.cell, output.summary, output.per_image, info, output.examples, test_only)
    (layout.cell_dir(task.bench_dir, task.cell) / layout.ERROR).unlink(missing_ok=True)


def record_failure(out_dir: Path, exc: BaseException) -> str:
    """Keep a failed cell's traceback in its ``error.txt``; returns the one-line error of the summary."""
    atomic.write_text(out_dir / layout.ERROR, "".join(traceback.format_exception(exc)))
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def check_distinct_cells(config: BenchConfig) -> None:
    """Two cells of the matrix may not share a folder: cell folder names keep letters, digits, '_', '.' and '-'
    of the dataset, encoder and weights (weights '/a/w.pt' and '/a-w.pt' both become '-a-w.pt'), and a
    case-insensitive file system (macOS, Windows) would also merge names that differ only in case."""
    seen: dict[str, Any] = {}
    for task in expand(config):
        cell = task.cell
        earlier = seen.setdefault(atomic.portable_name(cell.cell_id), cell)
        if earlier is not cell:
            differ = next(f"{name} '{getattr(earlier, name)}' and '{getattr(cell, name)}'"
                          for name in ("dataset", "encoder", "weights") if getattr(earlier, name) != getattr(cell, name))
            raise InputError(config_source(config, "encoders", "datasets"),
                             f"two cells would share the folder cells/{cell.cell_id}: {differ} differ only in "
                             "characters a folder name cannot hold or in case; rename one")


def check_cell_inputs(config: BenchConfig, cluster: ClusterSpec | None = None) -> None:
    """What :func:`run_cell` would only find out in a cell, checked before anything is written: every dataset
    is there and its train, validation and test splits open; every encoder is known; every weights file
    exists."""
    from cellprobe.data import open_dataset
    from cellprobe.data.base import shared_images
    from cellprobe.encoders.frozen import taps_problem
    from cellprobe.encoders.registry import get_spec
    from cellprobe.run.train_config import check_machine

    readers: dict[tuple[str, str], Any] = {}  # (dataset, split) → its reader, to tell splits that are one
    fit = config.training.encoder.fit
    for i, encoder in enumerate(config.encoders):
        try:
            spec = get_spec(encoder.name)
        except InputError as exc:
            key = f"encoders.{i}.name"
            raise InputError(config_source(config, key), f"config key '{key}': {exc.problem}") from None
        if fit is not None and fit not in spec.fits:  # the training section's fit applies to every encoder
            key = "training.encoder.fit"
            raise InputError(config_source(config, key), f"config key '{key}': encoder '{encoder.name}' has no fit "
                                                         f"'{fit}' (its fits: {', '.join(spec.fits)})")
        taps = config.training.encoder.taps
        problem = None if taps is None else taps_problem(spec, taps)  # as do its taps (checked without weights)
        if problem is not None:
            key = "training.encoder.taps"
            raise InputError(config_source(config, key), f"config key '{key}': {problem}")
        for j, weights in enumerate(encoder.weights):
            if weights not in ("pretrained", "random") and not Path(weights).is_file():
                key = f"encoders.{i}.weights.{j}"
                found = "no such file" if not Path(weights).exists() else not_a_file(Path(weights))
                raise InputError(config_source(config, key), f"config key '{key}': encoder '{encoder.name}': "
                                 f"weights {weights}: {found} (weights are 'pretrained', 'random' or an existing "
                                 "file)")
    if cluster is None:  # on a cluster the workers' machines decide, which this one cannot see
        with keys_attributed(config):
            check_machine(config.training.trainer, "training.trainer")
    for dataset in config.datasets:
        if not dataset.path.exists():
            raise InputError(dataset.path, f"dataset '{dataset.name}': no such file or folder")
        splits = dict.fromkeys(s for fold in dataset.folds
                               for s in (fold.train_split, fold.val_split, fold.test_split) if s is not None)
        for split in splits:
            try:
                readers[dataset.name, split] = open_dataset(dataset.path, format=dataset.format, split=split,
                                                            **dataset.options)
            except InputError as exc:
                raise InputError(exc.path or dataset.path,
                                 f"dataset '{dataset.name}', split '{split}': {exc.problem}") from None
        _check_folds_apart(dataset, readers)
        for split in splits:
            _check_every_sample(readers[dataset.name, split], f"dataset '{dataset.name}', split '{split}'")
    for test in config.test_datasets:
        try:
            reader = open_dataset(test.path, format=test.format, split=test.split, **test.options)
        except InputError as exc:
            raise InputError(exc.path or test.path,
                             f"test_datasets '{test.name}', split '{test.split}': {exc.problem}") from None
        _check_every_sample(reader, f"test_datasets '{test.name}', split '{test.split}'")
        for (name, split), used in readers.items():  # the same image files, whatever options or paths say
            shared = shared_images(reader, used) if name in (test.trained_on or [name]) else None
            if shared:
                raise InputError(test.path, f"test_datasets '{test.name}': {shared} of its patches show images of "
                                            f"split '{split}' of dataset '{name}' (the same files), which its cells "
                                            "train, validate or test on; a test-only dataset must be other data")


def _check_every_sample(reader: Any, what: str) -> None:
    """Every patch of ``reader`` read and validated, as a cell would read it, so that a bad one (a row of labels
    that disagree, a truncated image) is refused before any cell trains, not after a cell trained on the other
    splits. It costs one pass over the data at its reader's speed (BENCHMARKS.md, Data: 3-19 ms a 256² patch on
    a 2-core CPU; PanNuke's 7,901 patches about 2.5 minutes), against hours of training."""
    for index in range(len(reader)):
        try:
            reader[index]
        except InputError as exc:
            raise InputError(exc.path or reader.sample_file(index), f"{what}: {exc.problem}") from None


def _check_folds_apart(dataset: Any, readers: dict[tuple[str, str], Any]) -> None:
    """No fold of ``dataset`` tests (or validates) on the patches it trains on under another split name (a link,
    a split folder spelt otherwise): the config's own check compares the names only."""
    from cellprobe.data.base import shared_images

    for f_i, fold in enumerate(dataset.folds):
        roles = [(role, split) for role, split in (("train_split", fold.train_split), ("val_split", fold.val_split),
                                                   ("test_split", fold.test_split)) if split is not None]
        for i, (role, split) in enumerate(roles):
            for other_role, other in roles[i + 1:]:
                shared = shared_images(readers[dataset.name, other], readers[dataset.name, split])
                if split != other and shared:
                    raise InputError(dataset.path, f"dataset '{dataset.name}' fold {f_i}: {shared} patches of "
                                                   f"{other_role} '{other}' show images of {role} '{split}' (the same "
                                                   "files): each split must hold images of its own")


def _data_key(source: Any) -> tuple[str, str, str]:
    """What makes two data sources the same data: the resolved folder, the format (detected where not given)
    and the reader options."""
    from cellprobe.data.formats import detect_format

    fmt = source.format or (detect_format(source.path) if Path(source.path).exists() else "")
    return str(Path(source.path).resolve()), fmt, json.dumps(source.options, sort_keys=True, default=str)


def check_distinct_data(config: BenchConfig) -> None:
    """No dataset listed twice under two names (its cells would be duplicates), and no test-only dataset that
    scores a split a cell trained, validated or was already tested on, however its path or format is spelled
    (a split's own folder given as the path included)."""
    keys = {d.name: _data_key(d) for d in config.datasets}  # detect_format reads the disk: once per dataset
    seen: dict[tuple[str, str, str], str] = {}
    for d in config.datasets:
        if keys[d.name] in seen:
            raise InputError(d.path, f"datasets '{seen[keys[d.name]]}' and '{d.name}' are the same data (folder, "
                                     "format and options); list it once, with several folds")
        seen[keys[d.name]] = d.name
    by_name = {d.name: d for d in config.datasets}
    for t in config.test_datasets:
        t_key, t_path = _data_key(t), Path(t.path).resolve()
        for name in t.trained_on or list(by_name):
            d_path = Path(by_name[name].path).resolve()
            if t_key == keys[name]:
                split: str | None = t.split
            else:  # a split's own folder given as the path
                split = t_path.relative_to(d_path).parts[0] if t_path.is_relative_to(d_path) and t_path != d_path \
                    else None
            for f_i, fold in enumerate(by_name[name].folds):
                used = {fold.train_split: "trains", fold.val_split: "validates", fold.test_split: "already tests"}
                if split is not None and split in used:
                    raise InputError(t.path, f"test_datasets '{t.name}': split '{split}' of this data {used[split]} "
                                             f"the cells of dataset '{name}' (fold {f_i}); a test-only dataset must "
                                             "be other data")


def _registry_group(encoder: str) -> str | None:
    """The encoder's group (general / histopathology) from the encoder registry, when it knows it."""
    try:
        from cellprobe.encoders.registry import get_spec
    except ImportError:
        return None
    try:
        spec = get_spec(encoder)
    except Exception:  # unknown name: the cell function already failed or used a custom encoder
        return None
    group = getattr(spec, "group", None) or getattr(spec, "family_group", None)
    return str(group) if group else None
