"""Format names → readers, detection of the format from a folder's layout, and :func:`open_dataset`."""

from __future__ import annotations

import importlib
from pathlib import Path

from cellprobe.data.base import Reader
from cellprobe.errors import InputError

# name → "module:class"; imported on use so that opening one format does not import every reader.
READERS: dict[str, str] = {
    "pannuke": "cellprobe.data.pannuke:PanNukeDataset",
    "conic": "cellprobe.data.conic:ConicDataset",
    "cytodark0": "cellprobe.data.cytodark0:CytoDArk0Dataset",
    "monuseg": "cellprobe.data.monuseg:MonusegDataset",
    "consep": "cellprobe.data.consep:ConsepDataset",
    "patches": "cellprobe.data.patches:PatchesDataset",
    "folder": "cellprobe.data.folder:FolderDataset",
}


def reader_class(fmt: str) -> type[Reader]:
    if fmt not in READERS:
        raise InputError(None, f"unknown data format '{fmt}' (one of: {', '.join(READERS)})")
    module, cls = READERS[fmt].split(":")
    return getattr(importlib.import_module(module), cls)


def _any(folder: Path, pattern: str) -> bool:
    return next(iter(folder.glob(pattern)), None) is not None


def detect_format(path: str | Path) -> str:
    """The format of the layout at ``path`` (the checks follow each release's own file names)."""
    root = Path(path)
    if not root.exists():
        raise InputError(root, "does not exist")
    if not root.is_dir():
        raise InputError(root, "is not a folder (point at the dataset's folder)")
    signs = {
        "pannuke": lambda: _any(root, "Fold [123]"),
        "conic": lambda: (root / "images.npy").is_file() and (root / "labels.npy").is_file(),
        "patches": lambda: (root / "labels.npz").is_file() or _any(root, "*/labels.npz"),
        "cytodark0": lambda: any((root / d).is_dir() for d in ("20x", "40x", "cytoDArk0", "1024x1024", "2048x2048")),
        "monuseg": lambda: (root / "MoNuSeg 2018 Training Data").is_dir() or (root / "MoNuSegTestData").is_dir(),
        "consep": lambda: _any(root, "Train/Labels/*.mat") or _any(root, "Test/Labels/*.mat")
        or (root / "CoNSeP").is_dir(),
        "folder": lambda: ((root / "images").is_dir() and (root / "inst").is_dir()) or _any(root, "*/inst"),
    }
    found = [name for name, sign in signs.items() if sign()]
    if len(found) > 1:  # reading the first one found would be a guess
        raise InputError(root, f"holds the layouts of several formats ({', '.join(found)}); give the format "
                               "(--format), or keep one dataset per folder")
    if found:
        return found[0]
    raise InputError(root, f"cannot tell the data format from the layout; give it (one of: {', '.join(READERS)})")


def open_dataset(path: str | Path, format: str | None = None, split: str | None = None, **options) -> Reader:
    """Read the dataset at ``path`` in its released layout; ``format`` is detected when not given, ``split``
    picks a released or derived split (see each reader), ``options`` are the reader's options (validated)."""
    fmt = format or detect_format(path)
    return reader_class(fmt)(Path(path), split, **options)


def released_splits(path: str | Path, format: str | None = None) -> list[str]:
    """The splits that the release at ``path`` defines ([] when it defines none)."""
    fmt = format or detect_format(path)
    return reader_class(fmt).released_splits(Path(path))
