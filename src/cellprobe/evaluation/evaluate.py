"""``evaluate(run_dir, data, split) -> ScoreResult``: predict every patch, post-process with the run's
thresholds, score with the metrics engine, write metrics.json and per_image.csv."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cellprobe import atomic
from cellprobe.data.sample import PatchDataset
from cellprobe.errors import InputError
from cellprobe.training import run as R
from cellprobe.training.config import TrainConfig


def open_eval_data(data: PatchDataset | str | Path, split: str | None, format: str | None = None,
                   run_config: TrainConfig | None = None, **options: Any) -> PatchDataset:
    """``data`` at ``split``. The run's own training dataset (same folder), opened without options, gets the
    run's reader format and options: the class names and µm/px given at training describe its other splits
    too (the shared CoNSeP layout, say, ships no dataset.yaml)."""
    if isinstance(data, PatchDataset):
        return data
    from cellprobe.data import open_dataset

    if run_config is not None and not options and _same_folder(data, run_config.data.path):
        format = format or run_config.data.format
        options = dict(run_config.data.options)
    return open_dataset(data, format=format, split=split, **options)


def _same_folder(a: str | Path, b: str | Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def iter_predictions(segmenter: Any, dataset: PatchDataset, positions: Any, batch: int = 16, params: Any = None):
    """(sample, maps) for each position, batched through the network."""
    positions = list(positions)
    for start in range(0, len(positions), batch):
        samples = [dataset[int(p)] for p in positions[start:start + batch]]
        yield from zip(samples, segmenter.patch_maps([s.image for s in samples]), strict=True)


def evaluate(run_dir: str | Path, data: PatchDataset | str | Path, split: str | None = "test", *,
             checkpoint: str = "best", out: str | Path | None = None, device: str | None = None,
             format: str | None = None, workers: int = 1, tta: int = 1, **options: Any):
    """Score the run on ``data`` (a PatchDataset, or a dataset path opened with ``format``/``options`` at
    ``split``), averaging ``tta`` dihedral views per patch. Writes ``metrics.json`` and ``per_image.csv``
    into ``out`` (default: the run folder)."""
    from cellprobe.inference.segmenter import Segmenter
    from cellprobe.metrics import ConicAccumulator

    seg = Segmenter(run_dir, checkpoint=checkpoint, device=device, tta=tta)
    dataset = open_eval_data(data, split, format, seg.run.config, **options)
    if list(dataset.class_names) != seg.class_names:
        raise InputError(getattr(data, "root", data) if not isinstance(data, PatchDataset) else None,
                         f"dataset classes {list(dataset.class_names)} differ from the run's {seg.class_names}")
    acc = ConicAccumulator(seg.num_classes, mpp=dataset.mpp, class_names=seg.class_names)
    sources = []
    for sample, maps in iter_predictions(seg, dataset, range(len(dataset))):
        inst, cls_map, _ = seg.instances(maps)
        acc.add(sample.inst, sample.cls, inst, cls_map, name=sample.meta.name)
        sources.append(sample.meta.source)
    result = acc.result()
    # the source image of each patch: overlapping patches of one source are resampled together (bench.stats)
    result.per_image["source"] = sources
    out_dir = Path(out) if out is not None else Path(run_dir)
    record = {**result.to_dict(), "evaluation": {
        "data": str(data) if not isinstance(data, PatchDataset) else getattr(data, "name", type(data).__name__),
        "split": split, "checkpoint": checkpoint, "tta_views": tta, "postprocess": seg.params.model_dump(mode="json")}}
    atomic.write_json(out_dir / R.METRICS, record)
    result.write(csv_path=out_dir / R.PER_IMAGE)
    return result
