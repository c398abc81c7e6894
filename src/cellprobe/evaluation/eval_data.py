"""The patches an evaluation or a tuning scores, and the network's maps of them, batched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cellprobe.data.base import shared_images
from cellprobe.data.sample import PatchDataset
from cellprobe.errors import InputError
from cellprobe.inference.slide_config import MAX_RESAMPLE
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


#: relative µm/px difference below which a dataset is taken to be at the run's resolution (e.g. 0.2425 vs 0.25)
MPP_TOLERANCE = 0.05


def iter_predictions(segmenter: Any, dataset: PatchDataset, positions: Any, batch: int = 16, scale: float = 1.0):
    """(sample, maps) for each position, batched through the network; ``scale`` ≠ 1 resizes each image by it
    first (the maps are then at the resized image's size)."""
    positions = list(positions)
    for start in range(0, len(positions), batch):
        samples = [dataset[int(p)] for p in positions[start:start + batch]]
        images = [s.image if scale == 1.0 else resize(s.image, scale, labels=False) for s in samples]
        yield from zip(samples, segmenter.patch_maps(images), strict=True)


def resize(array: Any, scale: float, *, labels: bool, shape: tuple[int, int] | None = None) -> Any:
    """An image (area averaging down, bilinear up) or a label map (nearest: every id stays an input id) scaled
    by ``scale``, or to ``shape`` (H, W) exactly when given."""
    import cv2

    h, w = array.shape[:2]
    size = (shape[1], shape[0]) if shape is not None else (max(1, round(w * scale)), max(1, round(h * scale)))
    if labels:
        return cv2.resize(array, size, interpolation=cv2.INTER_NEAREST_EXACT)
    return cv2.resize(array, size, interpolation=cv2.INTER_AREA if size[0] < w else cv2.INTER_LINEAR)


def run_scale(dataset: PatchDataset, run_mpp: float | None, where: Any) -> float:
    """The factor that brings the dataset's images to the run's µm/px (1: the same within
    :data:`MPP_TOLERANCE`, or the run's own resolution unknown). A dataset whose µm/px is unknown cannot be
    brought to a known run resolution: refused, rather than scored at the wrong scale."""
    if run_mpp is None:
        return 1.0
    mpp = dataset.mpp
    if mpp is None:
        raise InputError(where, f"µm/px of the data unknown, the run's is {run_mpp:g}: give it (dataset.yaml "
                                "'mpp', or the reader option mpp) so the images can be brought to the run's scale")
    factor = mpp / run_mpp
    if not 1 / MAX_RESAMPLE <= factor <= MAX_RESAMPLE:  # 1e-300 would shrink every image to nothing
        raise InputError(where, f"the data's {mpp:.4g} µm/px is {factor:.4g}× the run's {run_mpp:.4g} µm/px, beyond "
                                f"the {MAX_RESAMPLE:g}× an image is resampled by: check the data's mpp")
    return 1.0 if abs(factor - 1.0) <= MPP_TOLERANCE else factor


def data_label(data: PatchDataset | str | Path) -> str:
    """How an evaluation names its data: the dataset folder (resolved), or a given dataset's name."""
    if isinstance(data, PatchDataset):
        return str(getattr(data, "name", type(data).__name__))
    return str(Path(data).resolve())


def data_where(dataset: PatchDataset, data: PatchDataset | str | Path) -> Any:
    """The dataset's folder for messages."""
    return getattr(dataset, "root", None) or (None if isinstance(data, PatchDataset) else data)


def check_eval_data(dataset: PatchDataset, class_names: list[str], data: PatchDataset | str | Path,
                    split: str | None, *, same_classes: bool = True) -> None:
    """The patches to score must exist and (``same_classes``) carry the run's classes; problems name the
    dataset."""
    where = data_where(dataset, data)
    if len(dataset) == 0:
        raise InputError(where, f"split {split!r} holds no patches: nothing to score")
    if same_classes and list(dataset.class_names) != list(class_names):
        raise InputError(where, f"dataset classes {list(dataset.class_names)} differ from the run's {list(class_names)}")


def training_patches_named(config: Any, dataset: PatchDataset) -> str | None:
    """What ``dataset`` is, when any of its patches shows an image the run trained on: an image file (or array
    row) of its training split, however the path was spelt or linked (None otherwise). Tuned there,
    thresholds would look better than they are (tune refuses), and scores there overstate the run (evaluate
    says so). A copy of the training images is not recognised: only the same files are."""
    import warnings

    from cellprobe.data import open_dataset
    from cellprobe.data.validate import DataWarning

    own = config.data
    try:
        with warnings.catch_warnings():  # the training data's own warnings were said when it trained
            warnings.simplefilter("ignore", DataWarning)
            trained = open_dataset(own.path, format=own.format, split=own.train_split, **own.options)
    except InputError:
        return None  # no longer where the run read it: what is here now is not known as its patches
    shared = shared_images(dataset, trained)
    if not shared:
        return None
    n = len(dataset)
    if shared == n and own.train_split is not None and n == len(trained):
        what = f"the split '{own.train_split}' the run trained on"
    elif shared == n:
        what = "only patches the run trained on"
    else:
        what = f"{shared} of its {n} patches among those the run trained on"
    return f"{dataset.root} [{dataset.split or 'whole'}] holds {what}"  # shared: a Reader's
