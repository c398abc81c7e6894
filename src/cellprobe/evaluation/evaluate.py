"""``evaluate(run_dir, data, split) -> ScoreResult``: predict every patch, post-process with the run's
thresholds, score with the metrics engine, write metrics.json and per_image.csv."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cellprobe import atomic
from cellprobe.data.sample import PatchDataset
from cellprobe.errors import InputError
from cellprobe.evaluation.eval_data import check_eval_data, data_label, iter_predictions, open_eval_data
from cellprobe.run import run_folder as R


def evaluate(run_dir: str | Path, data: PatchDataset | str | Path, split: str | None = "test", *,
             checkpoint: str = "best", out: str | Path | None = None, device: str | None = None,
             format: str | None = None, workers: int = 1, tta: int = 1, overwrite: bool = False, **options: Any):
    """Score the run on ``data`` (a PatchDataset, or a dataset path opened with ``format``/``options`` at
    ``split``), averaging ``tta`` dihedral views per patch. Writes ``metrics.json`` and ``per_image.csv``
    into ``out`` (default: the run folder); results of an evaluation of other data or another split there are
    replaced only with ``overwrite``."""
    from cellprobe.inference.segmenter import Segmenter
    from cellprobe.metrics import ConicAccumulator

    out_dir = Path(out) if out is not None else Path(run_dir)
    if not overwrite:
        check_not_replacing(out_dir / R.METRICS, data_label(data), split)
    seg = Segmenter(run_dir, checkpoint=checkpoint, device=device, tta=tta)
    dataset = open_eval_data(data, split, format, seg.run.config, **options)
    check_eval_data(dataset, seg.class_names, data, split)
    acc = ConicAccumulator(seg.num_classes, mpp=dataset.mpp, class_names=seg.class_names)
    sources = []
    for sample, maps in iter_predictions(seg, dataset, range(len(dataset))):
        inst, cls_map, _ = seg.instances(maps)
        acc.add(sample.inst, sample.cls, inst, cls_map, name=sample.meta.name)
        sources.append(sample.meta.source)
    result = acc.result()
    # the source image of each patch: overlapping patches of one source are resampled together (bench.stats)
    result.per_image["source"] = sources
    record = {**result.to_dict(), "evaluation": {
        "data": data_label(data), "split": split, "checkpoint": checkpoint, "tta_views": tta,
        "postprocess": seg.params.model_dump(mode="json")}}
    atomic.write_json(out_dir / R.METRICS, record)
    result.write(csv_path=out_dir / R.PER_IMAGE)
    return result


def check_not_replacing(metrics: Path, data: str, split: str | None) -> None:
    """Refuse to replace the results of an evaluation of other data or another split (scoring the same split
    again, e.g. after tuning, replaces them)."""
    if not metrics.is_file():
        return
    try:
        earlier = json.loads(metrics.read_text(encoding="utf-8")).get("evaluation") or {}
    except (OSError, ValueError, AttributeError):
        earlier = {}
    if (earlier.get("data"), earlier.get("split")) != (data, split):
        raise InputError(metrics, f"holds the evaluation of {earlier.get('data', 'unknown data')} "
                                  f"[{earlier.get('split')}]; pass --overwrite to replace it, or --out for "
                                  "another folder")
