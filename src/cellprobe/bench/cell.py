"""One benchmark cell through the training API: train a decoder on a frozen encoder, tune its post-processing on
the validation patches, evaluate it on the test split, keep a few predictions for the report."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from cellprobe.bench.bench_config import cell_train_data
from cellprobe.bench.layout import CELL_RUN, TEST_ONLY, Scores, run_files_record, safe_name
from cellprobe.bench.matrix import CellOutput, CellTask
from cellprobe.run.train_config import DataSource, TrainConfig, train_config


def cell_config(task: CellTask, run_dir: Path) -> TrainConfig:
    """The training config of a cell: the benchmark's ``training`` section plus the cell's identity (encoder,
    data source and splits, seed, ``run_dir``, the feature cache shared with other cells)."""
    c = task.cell
    return train_config(cell_train_data(task.config.training, task.dataset, task.fold, c.encoder, c.weights, c.seed,
                                        run_dir, task.feature_cache_dir()))


def _epoch_callback(task: CellTask):
    """A Lightning callback reporting finished epochs to the benchmark's progress display."""
    import lightning as L

    class EpochProgress(L.Callback):
        def on_train_epoch_end(self, trainer, pl_module) -> None:
            if task.progress is not None:
                task.progress(f"training {task.cell.model} (seed {task.cell.seed})", trainer.current_epoch + 1,
                              trainer.max_epochs)

    return EpochProgress()


def examples(run_dir: Path, dataset, count: int) -> dict[str, np.ndarray] | None:
    """The first ``count`` test patches with truth and this run's prediction (the report's example figure)."""
    if count <= 0 or len(dataset) == 0:
        return None
    from cellprobe.inference.segmenter import Segmenter

    seg = Segmenter(run_dir)
    samples = [dataset[i] for i in range(min(count, len(dataset)))]
    pred_inst, pred_cls = [], []
    for maps in seg.patch_maps([s.image for s in samples]):
        inst, cls_map, _ = seg.instances(maps)
        pred_inst.append(inst)
        pred_cls.append(cls_map)
    return {"names": np.array([s.meta.name for s in samples]), "image": np.stack([s.image for s in samples]),
            "true_inst": np.stack([s.inst for s in samples]), "true_cls": np.stack([s.cls for s in samples]),
            "pred_inst": np.stack(pred_inst).astype(np.int32), "pred_cls": np.stack(pred_cls).astype(np.uint8)}


def _score(run_dir: Path, source: DataSource, split: str, tta: int, out: Path | None = None):
    """The run scored on ``split`` of ``source``: (test dataset, score result, per-image table indexed by image
    name, with its tissue where the data has one)."""
    from cellprobe.data import open_dataset
    from cellprobe.evaluation import evaluate

    test = open_dataset(source.path, format=source.format, split=split, **source.options)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    # the cell owns its run and results folders: a resumed cell scores again over what it wrote before
    score = evaluate(run_dir, test, split, tta=tta, out=out, overwrite=True)
    per_image = score.per_image.copy()
    if len(per_image) != len(test):
        raise RuntimeError(f"{len(per_image)} per-image rows for {len(test)} test patches")
    metas = [test[i].meta for i in range(len(test))]
    per_image.index = np.asarray([m.name for m in metas], dtype=object)
    per_image.index.name = "image"
    if any(m.tissue for m in metas):
        per_image["tissue"] = [m.tissue or "" for m in metas]
    return test, score, per_image


def run_cell(task: CellTask, work_dir: Path) -> CellOutput:
    """Train (or resume) the cell's run, tune it on validation, evaluate it on the test split and on each
    test-only dataset, keep examples."""
    from cellprobe.evaluation import tune
    from cellprobe.training import train

    t0 = time.perf_counter()
    run = train(cell_config(task, work_dir / CELL_RUN), callbacks=[_epoch_callback(task)])
    run_dir = run.path
    if not run.finished:  # interrupted: leave the cell unfinished (resumable)
        raise KeyboardInterrupt(f"training of {task.cell.cell_id} was interrupted")
    t1 = time.perf_counter()
    if task.config.tune:
        # the cell owns its run, and tuning starts from the untuned thresholds: a resumed cell's retune is the same
        tune(run_dir, metric=task.config.tune_metric, tta=task.config.tta, overwrite=True)
    t_tune = time.perf_counter()
    test, score, per_image = _score(run_dir, task.dataset, task.fold.test_split, task.config.tta)
    t2 = time.perf_counter()
    info = {"seconds_train": round(t1 - t0, 2), "seconds_tune": round(t_tune - t1, 2),
            "seconds_eval": round(t2 - t_tune, 2),
            "run_dir": str(run_dir.relative_to(work_dir)) if run_dir.is_relative_to(work_dir) else str(run_dir),
            "n_test_images": len(test), "run_files": run_files_record(run_dir)}
    test_only = {}
    for spec in task.test_only:
        t3 = time.perf_counter()
        data, other, table = _score(run_dir, spec, spec.split, task.config.tta,
                                    out=work_dir / TEST_ONLY / safe_name(spec.name))
        test_only[spec.name] = Scores(other.summary, table, {
            "dataset_path": str(spec.path), "split": spec.split, "n_test_images": len(data),
            "scoring": other.params.get("scoring", "per class"),
            "seconds_eval": round(time.perf_counter() - t3, 2)})
    return CellOutput(score.summary, per_image, info, examples(run_dir, test, task.config.examples), test_only)
