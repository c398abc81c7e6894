"""CoNIC (patches of Lizard): ``images.npy`` (N,256,256,3) uint8, ``labels.npy`` (N,256,256,2) instance map and
class map (uint16 in the release), ``patch_info.csv``. Six classes, 20× (about 0.5 µm/px).

The release's ``patch_info.csv`` has one column ``patch_info`` whose values are ``<source image>-<patch>``
(e.g. ``consep_1-0004``); a table with ``patch`` and ``source_image`` columns is read too. No split is released:
splits are by source image only (:mod:`cellprobe.data.splits`), from a split file, or k-fold by source.

CISCA's published split (``cellprobe data download cisca-splits``: ``conic_folds.csv``, columns ``img_id,fold``,
names as in ``patch_info.csv``) is read with ``split_file``: splits ``0`` (train, 3,589 patches; patches listed
several times are oversampled, see :meth:`ConicDataset.repeats`), ``1`` (validation, 464) and ``2`` (test, 928).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cellprobe.data.base import Reader, parse_options
from cellprobe.data.info import ClassNames, Mpp
from cellprobe.data.io import (
    check_pixels,
    csv_row,
    dataset_file,
    load_npy,
    plain_name,
    read_table,
    require_file,
)
from cellprobe.data.sample import SampleMeta
from cellprobe.data.splits import SplitOptions, select_split
from cellprobe.data.validate import RawSample
from cellprobe.errors import InputError

CLASSES = ("neutrophil", "epithelial", "lymphocyte", "plasma", "eosinophil", "connective")


class ConicOptions(SplitOptions):
    class_names: ClassNames = CLASSES
    mpp: Mpp | None = 0.5
    tissue: str | None = "colon"


def read_patch_info(path: Path, n: int) -> tuple[list[str], list[str]]:
    """(patch names, source images) of a CoNIC ``patch_info.csv`` with ``n`` rows. A name or source image that
    is empty or has whitespace around it, or a patch listed twice, is an error naming the row."""
    require_file(path, "patch list (patch_info.csv)")
    table = read_table(path, "patch list")
    if "patch_info" in table.columns:
        names = table["patch_info"].tolist()
        bad = [v for v in names if "-" not in v]
        if bad:
            raise InputError(path, f"patch '{bad[0]}' is not '<source image>-<patch>'")
        sources = [v.rsplit("-", 1)[0] for v in names]
    elif {"patch", "source_image"} <= set(table.columns):
        names, sources = table["patch"].tolist(), table["source_image"].tolist()
    else:
        raise InputError(path, f"needs a 'patch_info' column (or 'patch' and 'source_image'); has {', '.join(table.columns)}")
    if len(names) != n:
        raise InputError(path, f"mismatched counts: {len(names)} rows for {n} patches in images.npy")
    first_row: dict[str, int] = {}
    for i, (name, source) in enumerate(zip(names, sources, strict=True)):
        plain_name(name, csv_row(path, i), "patch name")
        plain_name(source, csv_row(path, i), f"source image of patch '{name}'")
        if name in first_row:
            raise InputError(csv_row(path, i), f"patch '{name}' is listed twice (also row {first_row[name]}); "
                                               "row i names row i of images.npy and labels.npy")
        first_row[name] = i
    return names, sources


class ConicDataset(Reader):
    format_name = "conic"
    name = "conic"

    def __init__(self, root: Path, split: str | None = None, **options) -> None:
        super().__init__(root, split)
        opts = parse_options(ConicOptions, options, self.root)
        self.class_names = tuple(opts.class_names)
        self.mpp, self.tissue = opts.mpp, opts.tissue
        self.images_path, self.labels_path = self.root / "images.npy", self.root / "labels.npy"
        self.images = load_npy(dataset_file(self.images_path, self.root, "array file"))
        self.labels = load_npy(dataset_file(self.labels_path, self.root, "array file"))
        if self.images.ndim != 4 or self.images.shape[3] != 3:
            raise InputError(self.images_path, f"expected (N, H, W, 3) images, got shape {self.images.shape}")
        if self.labels.ndim != 4 or self.labels.shape[3] != 2 or self.labels.shape[1:3] != self.images.shape[1:3]:
            raise InputError(self.labels_path, f"expected (N, {self.images.shape[1]}, {self.images.shape[2]}, 2) "
                                               f"labels, got {self.labels.shape}")
        check_pixels(self.images_path, int(self.images.shape[1]), int(self.images.shape[2]))
        if len(self.labels) != len(self.images):
            raise InputError(self.root, f"mismatched counts: images.npy {len(self.images)}, labels.npy {len(self.labels)}")
        listing = dataset_file(self.root / "patch_info.csv", self.root, "patch list (patch_info.csv)")
        names, sources = read_patch_info(listing, len(self.images))
        selected = select_split(names, sources, split, opts, self.root)
        self.rows = selected.rows
        self._repeats = selected.repeats if selected.oversampled else None
        self._names = [names[i] for i in self.rows]
        self._sources = [sources[i] for i in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def sources(self) -> list[str]:
        return list(self._sources)

    def names(self) -> list[str]:
        """The patch names (``<source image>-<patch>``) of the samples, in order."""
        return list(self._names)

    def repeats(self) -> np.ndarray | None:
        return None if self._repeats is None else self._repeats.copy()

    def stored_image(self, index: int) -> tuple[Path, str]:
        return self.images_path, str(int(self.rows[self._index(index)]))

    def sample_file(self, index: int) -> str:
        return f"{self.images_path}[{int(self.rows[self._index(index)])}]"

    def read_raw(self, index: int) -> RawSample:
        row = int(self.rows[index])
        labels = np.asarray(self.labels[row])
        meta = SampleMeta(dataset=self.name, name=self._names[index], source=self._sources[index], index=index,
                          tissue=self.tissue, mpp=self.mpp, extra={"row": str(row)})
        return RawSample(np.asarray(self.images[row]), labels[..., 0], labels[..., 1], meta,
                         f"{self.labels_path}[{row}]", image_where=f"{self.images_path}[{row}]")
