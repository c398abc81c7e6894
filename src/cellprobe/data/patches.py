"""The ``patches`` layout (../shared/data/consep, the embedded demo): per split folder ``images/<patch>.jpg``,
``labels.npz`` with ``inst`` (N,H,W) instance ids and ``cls`` (N,H,W) class ids (row i ↔ row i of the patch
list), and ``patch_info.csv`` (``index, patch, source_image``). Split folders sit under the dataset root.

Class names come from the ``class_names`` option, else a ``dataset.yaml`` (split folder, then root), else they
are numbered ``class1..classC`` with C the largest class id of all split folders (so every split of one dataset
agrees). µm/px likewise (``mpp`` option or ``dataset.yaml``; unknown otherwise).

Each row of ``patch_info.csv`` names one image under ``images/`` (a name that would leave the dataset, an image
that is a link leading outside it, a name with several image files such as ``p08.png`` and ``p08.jpg``, or a
patch listed twice, is refused with the file and row); ``labels.npz`` holds ``inst`` and ``cls`` and nothing
else. A split with no patches (the header row only; labels of
shape (0, H, W) or (0,)) reads as an empty dataset, like CoNIC's and PanNuke's readers; it is the evaluation
that refuses to score an empty split.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from cellprobe.config import StrictModel
from cellprobe.data.base import Reader, parse_options
from cellprobe.data.info import ClassNames, Mpp, read_info
from cellprobe.data.io import (
    IMAGE_SUFFIXES,
    check_pixels,
    csv_row,
    dataset_file,
    find_with_suffix,
    inside_dataset,
    listed_name,
    load_npz_member,
    npz_member_names,
    npz_member_shape,
    plain_name,
    read_image,
    read_table,
    require_file,
)
from cellprobe.data.sample import SampleMeta
from cellprobe.data.validate import DataWarning, RawSample
from cellprobe.errors import InputError, not_a_file


class PatchesOptions(StrictModel):
    class_names: ClassNames | None = None
    mpp: Mpp | None = None
    tissue: str | None = None


#: the files a split folder needs, and what else marks a folder as meant to be one
SPLIT_FILES = ("labels.npz", "patch_info.csv")
SPLIT_MARKS = (*SPLIT_FILES, "images")
#: the arrays of labels.npz (any other is refused, not ignored)
LABEL_ARRAYS = ("inst", "cls")


def is_split_folder(folder: Path) -> bool:
    return (folder / "labels.npz").is_file() and (folder / "patch_info.csv").is_file()


def split_folders(root: Path) -> list[str]:
    """The split folders under ``root``. A folder with some of a split's parts but not the others is refused
    naming the missing or damaged part (leaving it out would lose a split without a word)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        present = [name for name in SPLIT_MARKS if (folder / name).exists()]
        if is_split_folder(folder):
            found.append(folder.name)
        elif present:
            name = next(n for n in SPLIT_FILES if not (folder / n).is_file())
            if (folder / name).exists() or (folder / name).is_symlink():
                raise InputError(folder / name, f"{not_a_file(folder / name)}: the split folder '{folder.name}' "
                                                "needs labels.npz and patch_info.csv as files")
            raise InputError(folder / name, f"is missing: the split folder '{folder.name}' has "
                                            f"{' and '.join(present)} but needs both labels.npz and patch_info.csv")
    return found


def resolve_split_folder(root: Path, split: str | None) -> Path:
    if is_split_folder(root):
        if split in (None, root.name):
            return root
        raise InputError(root, f"is a single split folder; split '{split}' does not exist here")
    found = split_folders(root)
    if not found:
        raise InputError(root, "no split folder with labels.npz and patch_info.csv")
    if split is None:
        if len(found) == 1:
            return root / found[0]
        raise InputError(root, f"holds several splits ({', '.join(found)}): choose one")
    if split not in found:
        raise InputError(root / split, f"split '{split}' is missing (splits: {', '.join(found)})")
    return root / split


def read_patch_list(path: Path) -> tuple[list[str], list[str]]:
    """(patch names, source images) of a ``patch_info.csv``. The ``index`` column must be 0, 1, 2, … in row
    order (row i ↔ labels.npz row i), no patch may be listed twice, and no name or source image may be empty or
    have whitespace around it: an error names the file and row."""
    require_file(path, "patch list (patch_info.csv)")
    table = read_table(path, "patch list")
    missing = {"index", "patch", "source_image"} - set(table.columns)
    if missing:
        raise InputError(path, f"missing column(s) {', '.join(sorted(missing))}")
    first_row: dict[str, int] = {}
    for i, value in enumerate(table["index"].tolist()):
        if value != str(i):
            again = f" (index {value} is already row {first_row[value]})" if value in first_row else ""
            raise InputError(csv_row(path, i), f"index '{value}', expected {i}{again}: column 'index' must be "
                                               "0, 1, 2, … in row order (row i ↔ labels.npz row i)")
        first_row[value] = i
    names = table["patch"].tolist()
    first_row = {}
    for i, name in enumerate(names):
        plain_name(name, csv_row(path, i), "patch name")
        if name in first_row:
            raise InputError(csv_row(path, i), f"patch '{name}' is listed twice (also row {first_row[name]}); "
                                               "each patch has one row of labels.npz")
        first_row[name] = i
    sources = table["source_image"].tolist()
    for i, source in enumerate(sources):
        if not source.strip():  # it groups patches for the validation split and the statistics
            raise InputError(csv_row(path, i), f"patch '{names[i]}' has an empty source_image (the image it was cut "
                                               "from; give the patch's own name if it is a whole image)")
        plain_name(source, csv_row(path, i), f"source image of patch '{names[i]}'")
    return names, sources


class PatchesDataset(Reader):
    format_name = "patches"

    def __init__(self, root: Path, split: str | None = None, **options) -> None:
        super().__init__(root, split)
        opts = parse_options(PatchesOptions, options, self.root)
        self.folder = resolve_split_folder(self.root, split)
        dataset_root = self.root if self.folder != self.root else self.root.parent
        info = read_info(self.folder, dataset_root)
        self.name = info.name or dataset_root.name
        self.mpp = opts.mpp if opts.mpp is not None else info.mpp
        self.tissue = opts.tissue or info.tissue
        listing = dataset_file(self.folder / "patch_info.csv", dataset_root, "patch list (patch_info.csv)")
        self.names, self._sources = read_patch_list(listing)
        labels = dataset_file(self.folder / "labels.npz", dataset_root, "label archive")
        self.labels_path = labels
        n = len(self.names)
        unknown = sorted(set(npz_member_names(labels)) - set(LABEL_ARRAYS))
        if unknown:
            raise InputError(labels, f"holds array(s) {', '.join(repr(k) for k in unknown)} besides 'inst' and 'cls': "
                                     "refused rather than ignored (a labels.npz holds exactly inst and cls)")
        for key in LABEL_ARRAYS:  # from the headers: nothing is decompressed before the counts agree
            shape = npz_member_shape(labels, key)
            if n == 0 and shape[:1] == (0,):
                continue  # an empty split: (0,) or (0, H, W)
            if len(shape) != 3:
                raise InputError(labels, f"'{key}' must be (N, H, W), got shape {shape}")
            if shape[0] != n:
                raise InputError(labels, f"mismatched counts: '{key}' has {shape[0]} rows, patch_info.csv {n}")
            check_pixels(labels, shape[1], shape[2], f"'{key}' label map")
        self.inst = load_npz_member(labels, "inst")
        self.cls = load_npz_member(labels, "cls")
        if n and self.inst.shape != self.cls.shape:
            raise InputError(labels, f"'inst' {self.inst.shape} and 'cls' {self.cls.shape} differ in shape")
        images = self.folder / "images"
        self.image_paths = []
        first_row: dict[tuple[int, int], int] = {}
        for i, name in enumerate(self.names):
            where = csv_row(listing, i)
            listed_name(name, images, dataset_root, where)
            path = find_with_suffix(images, name, IMAGE_SUFFIXES, where)
            if path is None:
                raise InputError(images / f"{name}.jpg", f"missing image of a listed patch ({where})")
            inside_dataset(path, dataset_root, where)
            stat = path.stat()
            key = (stat.st_dev, stat.st_ino)  # the same file under two names (./x and x, a link) is one patch
            if key in first_row:
                raise InputError(where, f"patch '{name}' is the image of row {first_row[key]} again ({path.name})")
            first_row[key] = i
            self.image_paths.append(path)
        listed = {p.name for p in self.image_paths}
        extra = [p for p in images.iterdir() if p.is_file() and p.name not in listed] if images.is_dir() else []
        if extra:
            warnings.warn(f"{images}: {len(extra)} image files not listed in patch_info.csv are ignored "
                          f"(e.g. {extra[0].name})", DataWarning, stacklevel=2)
        if opts.class_names is not None:
            self.class_names = tuple(opts.class_names)
        elif info.class_names is not None:
            self.class_names = tuple(info.class_names)
        else:
            self.class_names = numbered_classes(self.folder, dataset_root, self.cls)

    @classmethod
    def released_splits(cls, root: Path) -> list[str]:
        return [] if is_split_folder(Path(root)) else split_folders(Path(root))

    def stored_image(self, index: int) -> tuple[Path, str]:
        return self.image_paths[self._index(index)], ""

    def __len__(self) -> int:
        return len(self.names)

    def sources(self) -> list[str]:
        return list(self._sources)

    def sample_file(self, index: int) -> str:
        return str(self.image_paths[self._index(index)])

    def read_raw(self, index: int) -> RawSample:
        meta = SampleMeta(dataset=self.name, name=self.names[index], source=self._sources[index], index=index,
                          tissue=self.tissue, mpp=self.mpp)
        path = self.image_paths[index]
        return RawSample(read_image(path), self.inst[index], self.cls[index], meta, f"{self.labels_path}[{index}]",
                         image_where=str(path))


def numbered_classes(folder: Path, dataset_root: Path, cls: np.ndarray) -> tuple[str, ...]:
    """``class1..classC``, C the largest class id in this split and its sibling split folders."""
    top = int(cls.max()) if cls.size else 0
    if folder != dataset_root:
        for sibling in split_folders(dataset_root):
            if dataset_root / sibling != folder:
                other = load_npz_member(dataset_file(dataset_root / sibling / "labels.npz", dataset_root,
                                                     "label archive"), "cls")
                top = max(top, int(other.max()) if other.size else 0)
    if top > 255:
        raise InputError(folder / "labels.npz", f"class id {top} > 255: give class_names or fix the class map")
    return tuple(f"class{c}" for c in range(1, max(top, 1) + 1))
