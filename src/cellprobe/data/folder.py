"""The generic ``folder`` format for users' own data (documented in docs/data-formats.md)::

    root/
      dataset.yaml            optional: name, class_names, mpp, tissue
      [<split>/]              optional split folders (train/, val/, test/, …)
        images/<name>.png|jpg|jpeg|tif|tiff|bmp    RGB uint8
        inst/<name>.tif|tiff|png|npy               instance ids (0 = background), one per image
        cls/<name>.tif|tiff|png|npy                class ids per pixel (optional: without it, one class)
        sources.csv           optional: name,source (the source image of each patch; default: itself);
                              when present it lists every image (by name, without suffix) once, and only those

Without split folders, splits come from a split file, k-fold by source, or train/val by source
(:class:`cellprobe.data.splits.SplitOptions`). Large images can be cut into windows (``crop``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from cellprobe.data.base import WindowOptions, parse_options
from cellprobe.data.info import ClassNames, Mpp, read_info
from cellprobe.data.io import (
    IMAGE_SUFFIXES,
    LABEL_SUFFIXES,
    csv_row,
    dataset_file,
    find_with_suffix,
    plain_name,
    read_label_image,
    read_table,
    require_file,
)
from cellprobe.data.splits import SplitOptions, select_split
from cellprobe.data.validate import DataWarning
from cellprobe.data.wholeimage import Item, WholeImageReader
from cellprobe.errors import InputError


class FolderOptions(WindowOptions, SplitOptions):
    class_names: ClassNames | None = None
    mpp: Mpp | None = None
    tissue: str | None = None


def is_folder_split(folder: Path) -> bool:
    return (folder / "images").is_dir() and (folder / "inst").is_dir()


def folder_splits(root: Path) -> list[str]:
    """The split folders below ``root`` (none when ``root`` is one). A subfolder with only one of images/ and
    inst/, or split folders beside a root that is one, are refused: a split left out, or the root read instead
    of its splits, would be silent."""
    root = Path(root)
    if not root.is_dir():
        return []
    subfolders = sorted(p for p in root.iterdir() if p.is_dir())
    for sub in subfolders:
        if (sub / "images").is_dir() != (sub / "inst").is_dir():
            has, lacks = ("images", "inst") if (sub / "images").is_dir() else ("inst", "images")
            raise InputError(sub, f"has {has}/ but no {lacks}/: a split folder needs both")
    splits = [p.name for p in subfolders if is_folder_split(p)]
    if is_folder_split(root):
        if splits:
            raise InputError(root, f"holds images/ and inst/ and split folders ({', '.join(splits)}): which is "
                                   "the dataset would be a guess; keep one layout")
        return []
    return splits


def read_sources(path: Path) -> dict[str, tuple[str, int]] | None:
    """name → (source image, row) of a ``sources.csv``; None when there is none. An empty value, one with
    whitespace around it or a name listed twice is an error naming the file and row."""
    if not path.is_file():
        return None
    table = read_table(path, "sources file")
    if not {"name", "source"} <= set(table.columns):
        raise InputError(path, f"needs columns name and source; has {', '.join(table.columns)}")
    out: dict[str, tuple[str, int]] = {}
    for i, (name, source) in enumerate(zip(table["name"], table["source"], strict=True)):
        if not name or not source:
            raise InputError(csv_row(path, i), f"empty {'name' if not name else 'source'}")
        plain_name(name, csv_row(path, i), "name")
        plain_name(source, csv_row(path, i), f"source of '{name}'")
        if name in out:
            raise InputError(csv_row(path, i), f"name '{name}' is listed twice (also row {out[name][1]})")
        out[name] = (source, i)
    return out


class FolderDataset(WholeImageReader):
    format_name = "folder"

    def __init__(self, root: Path, split: str | None = None, **options) -> None:
        super().__init__(root, split)
        opts = parse_options(FolderOptions, options, self.root)
        splits = folder_splits(self.root)
        if is_folder_split(self.root):
            folder, dataset_root, sub_split = self.root, self.root, split
        elif not splits:
            raise InputError(self.root, "no images/ and inst/ folders here (see docs/data-formats.md)")
        elif split in splits:
            folder, dataset_root, sub_split = self.root / split, self.root, None
        else:
            which = "choose one" if split is None else f"split '{split}' is missing"
            raise InputError(self.root, f"holds split folders ({', '.join(splits)}): {which}")
        info = read_info(folder, dataset_root)
        self.name = info.name or dataset_root.name
        self.mpp = opts.mpp if opts.mpp is not None else info.mpp
        has_cls = (folder / "cls").is_dir()
        names = opts.class_names or (tuple(info.class_names) if info.class_names else None)
        if has_cls and names is None:
            raise InputError(folder / "cls", "class maps given without class names: add class_names to dataset.yaml")
        self.class_names = tuple(names) if names else ("cell",)
        sources_csv = folder / "sources.csv"
        if sources_csv.is_file() or sources_csv.is_symlink():
            dataset_file(sources_csv, dataset_root, "sources file")
        sources = read_sources(sources_csv)
        stems: dict[str, Path] = {}
        others = sorted(p.name for p in (folder / "images").iterdir()
                        if p.suffix.lower() not in IMAGE_SUFFIXES and not p.name.startswith("."))
        if others:
            warnings.warn(f"{folder / 'images'}: {len(others)} file(s) that are not images cellprobe reads "
                          f"({', '.join(IMAGE_SUFFIXES)}) are ignored (e.g. {others[0]})", DataWarning, stacklevel=2)
        for image in sorted(p for p in (folder / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            if image.stem in stems:
                raise InputError(image, f"same sample name '{image.stem}' as {stems[image.stem].name}: one image "
                                        "per name (its inst/ and cls/ maps are found by name)")
            stems[image.stem] = image
        if sources is not None:
            unknown = sorted((row, name) for name, (_, row) in sources.items() if name not in stems)
            if unknown:
                row, name = unknown[0]
                raise InputError(csv_row(sources_csv, row), f"no image '{name}' in {folder / 'images'} "
                                                            f"({len(unknown)} row(s) without an image)")
            unlisted = [image for stem, image in stems.items() if stem not in sources]
            if unlisted:
                raise InputError(sources_csv, f"has no row for image {unlisted[0].name} ({len(unlisted)} image(s) "
                                              "unlisted): list every image, or drop the file")
        items = []
        for stem, image in stems.items():
            inst = find_with_suffix(folder / "inst", stem, LABEL_SUFFIXES)
            if inst is None:
                raise InputError(folder / "inst" / f"{stem}.tif", f"missing instance map for {image.name}")
            extra = {}
            if has_cls:
                cls = find_with_suffix(folder / "cls", stem, LABEL_SUFFIXES)
                extra["cls"] = str(require_file(cls or folder / "cls" / f"{stem}.tif", f"class map for {image.name}"))
            source = stem if sources is None else sources[stem][0]
            items.append(Item(stem, source, image, inst, tissue=opts.tissue or info.tissue, extra=extra))
        for maps, what in (("inst", "instance"), ("cls", "class")):
            present = (folder / maps).iterdir() if (folder / maps).is_dir() else ()
            orphans = {p.stem for p in present if not p.name.startswith(".")} - {it.name for it in items}
            if orphans:
                warnings.warn(f"{folder / maps}: {len(orphans)} {what} maps without an image are ignored "
                              f"(e.g. {sorted(orphans)[0]})", DataWarning, stacklevel=2)
        selected = select_split([it.name for it in items], [it.source for it in items], sub_split,
                                SplitOptions(**opts.model_dump(include=set(SplitOptions.model_fields))), folder)
        self._setup([items[i] for i in selected.rows],
                    WindowOptions(**opts.model_dump(include=set(WindowOptions.model_fields))), selected.repeats)

    @classmethod
    def released_splits(cls, root: Path) -> list[str]:
        return folder_splits(Path(root))

    def load_labels(self, item: Item) -> tuple[np.ndarray, np.ndarray | None]:
        cls = read_label_image(Path(item.extra["cls"])) if "cls" in item.extra else None
        return read_label_image(item.label), cls
