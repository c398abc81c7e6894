"""The patches an evaluation or a tuning scores, and the network's maps of them, batched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cellprobe.data.sample import PatchDataset
from cellprobe.errors import InputError
from cellprobe.run.train_config import TrainConfig


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


def data_label(data: PatchDataset | str | Path) -> str:
    """How an evaluation names its data: the dataset folder (resolved), or a given dataset's name."""
    if isinstance(data, PatchDataset):
        return str(getattr(data, "name", type(data).__name__))
    return str(Path(data).resolve())


def check_eval_data(dataset: PatchDataset, class_names: list[str], data: PatchDataset | str | Path,
                    split: str | None) -> None:
    """The patches to score must exist and carry the run's classes; problems name the dataset."""
    where = getattr(dataset, "root", None) or (None if isinstance(data, PatchDataset) else data)
    if len(dataset) == 0:
        raise InputError(where, f"split {split!r} holds no patches: nothing to score")
    if list(dataset.class_names) != list(class_names):
        raise InputError(where, f"dataset classes {list(dataset.class_names)} differ from the run's {list(class_names)}")
