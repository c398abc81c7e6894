"""One benchmark cell through the training API: train a decoder on a frozen encoder, evaluate it on the test
split, keep a few predictions for the report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from cellprobe.bench.runner import CellOutput, CellTask


def training_overrides(task: CellTask, run_dir: Path) -> dict[str, Any]:
    """The training config of a cell: the benchmark's ``training`` section plus the cell's identity."""
    fold = task.fold
    return {
        **task.config.training,
        "encoder": {**task.config.training.get("encoder", {}), "name": task.cell.encoder,
                    "weights": task.cell.weights},
        "data": {**task.config.training.get("data", {}), "path": str(task.dataset.path),
                 "format": task.dataset.format, "train_split": fold.train, "val_split": fold.val,
                 **({"options": task.dataset.options} if task.dataset.options else {})},
        "seed": task.cell.seed,
        "cache_features": task.config.feature_cache,
        "output": str(run_dir),
        **({"cache_dir": str(cache)} if (cache := task.feature_cache_dir()) is not None else {}),
    }


def run_cell(task: CellTask, work_dir: Path) -> CellOutput:
    from cellprobe.data import open_dataset
    from cellprobe.training import evaluate, train

    t0 = time.perf_counter()
    run_dir = Path(train(training_overrides(task, work_dir / "run")))
    t1 = time.perf_counter()
    test = open_dataset(task.dataset.path, format=task.dataset.format, split=task.fold.test,
                        **task.dataset.options)
    score = evaluate(run_dir, test, task.fold.test)
    t2 = time.perf_counter()
    per_image = score.per_image.copy()
    names = [test[i].meta.name for i in range(len(test))] if len(per_image) == len(test) else None
    if names is not None and "image" not in per_image.columns:
        per_image.index = np.asarray(names, dtype=object)
        per_image.index.name = "image"
    info = {"seconds_train": round(t1 - t0, 2), "seconds_eval": round(t2 - t1, 2),
            "run_dir": str(run_dir.relative_to(work_dir)) if run_dir.is_relative_to(work_dir) else str(run_dir),
            "n_test_images": len(test)}
    return CellOutput(score.summary, per_image, info, None)
