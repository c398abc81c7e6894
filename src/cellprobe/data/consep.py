"""CoNSeP, original release: ``CoNSeP/{Train,Test}/Images/<name>.png`` (1000×1000, RGBA with opaque alpha) and
``Labels/<name>.mat`` with ``inst_map`` (instance ids) and ``type_map`` (per-pixel class 0..7). 40× (0.25 µm/px).

By default the seven classes are merged as HoVer-Net does (the release README: 3 & 4 → epithelial, 5, 6 & 7 →
spindle-shaped), giving other, inflammatory, epithelial, spindle-shaped; ``merge_classes: false`` keeps all 7.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cellprobe.data.base import WindowOptions, parse_options
from cellprobe.data.info import Mpp
from cellprobe.data.io import read_mat
from cellprobe.data.validate import whole_labels
from cellprobe.data.wholeimage import Item, WholeImageReader
from cellprobe.errors import InputError

CLASSES_7 = ("other", "inflammatory", "healthy epithelial", "dysplastic/malignant epithelial", "fibroblast",
             "muscle", "endothelial")
CLASSES_4 = ("other", "inflammatory", "epithelial", "spindle-shaped")
MERGE = np.array([0, 1, 2, 3, 3, 4, 4, 4], dtype=np.uint8)  # original class id → merged class id
SPLITS = {"train": "Train", "test": "Test"}


class ConsepOptions(WindowOptions):
    merge_classes: bool = True
    mpp: Mpp = 0.25


def consep_root(root: Path) -> Path:
    """The folder holding ``Train``/``Test``: ``root`` itself or ``root/CoNSeP``."""
    root = Path(root)
    found = [c for c in (root, root / "CoNSeP") if any((c / d / "Labels").is_dir() for d in SPLITS.values())]
    if not found:
        raise InputError(root, "no CoNSeP layout here (expected Train/Labels/*.mat or CoNSeP/Train/Labels/*.mat)")
    if len(found) > 1:
        raise InputError(root, "holds two CoNSeP layouts (Train/Test here and in CoNSeP/): which one is meant "
                               "would be a guess; give the folder of one")
    return found[0]


class ConsepDataset(WholeImageReader):
    format_name = "consep"
    name = "consep"
    allow_float_labels = True  # MATLAB stores inst_map as double; whole values are checked

    def __init__(self, root: Path, split: str | None = None, **options) -> None:
        super().__init__(root, split)
        opts = parse_options(ConsepOptions, options, self.root)
        self.merge = opts.merge_classes
        self.class_names = CLASSES_4 if self.merge else CLASSES_7
        self.mpp = opts.mpp
        base = consep_root(self.root)
        wanted = list(SPLITS) if split is None else [split]  # exact: one spelling per split
        items = []
        for s in wanted:
            if s not in SPLITS:
                raise InputError(self.root, f"unknown CoNSeP split '{split}' (train, test)")
            folder = base / SPLITS[s]
            if not (folder / "Labels").is_dir():
                raise InputError(folder, f"CoNSeP split '{s}' is missing (expected {SPLITS[s]}/Images and Labels)")
            labels = sorted((folder / "Labels").glob("*.mat"))
            unlabelled = sorted({p.stem for p in (folder / "Images").glob("*.png")} - {p.stem for p in labels})
            if unlabelled:  # the release labels every image: one without is a lost file, not one to skip
                raise InputError(folder / "Images" / f"{unlabelled[0]}.png", f"has no label file "
                                 f"Labels/{unlabelled[0]}.mat ({len(unlabelled)} image(s) of split '{s}' have none)")
            for label in labels:
                image = folder / "Images" / f"{label.stem}.png"
                if not image.is_file():
                    raise InputError(image, f"missing image for {label.name}")
                items.append(Item(label.stem, label.stem, image, label, tissue="colon", extra={"split": s}))
        self._setup(items, WindowOptions(**opts.model_dump(include=set(WindowOptions.model_fields))))

    @classmethod
    def released_splits(cls, root: Path) -> list[str]:
        try:
            base = consep_root(root)
        except InputError:
            return []
        return [s for s, d in SPLITS.items() if (base / d / "Labels").is_dir()]

    def load_labels(self, item: Item) -> tuple[np.ndarray, np.ndarray | None]:
        mat = read_mat(item.label, ("inst_map", "type_map"))
        inst = mat["inst_map"]
        types = whole_labels(mat["type_map"], str(item.label), "type_map", allow_float=True)
        if types.size and (types.min() < 0 or types.max() > 7):
            raise InputError(item.label, f"type_map value {int(types.max() if types.max() > 7 else types.min())} "
                                         "outside 0..7")
        cls = MERGE[types] if self.merge else types.astype(np.uint8)
        return inst, cls
