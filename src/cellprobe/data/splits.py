"""Splits by source image, never by patch: patches cut from one image overlap or share tissue, so putting them
on both sides of a split leaks. Also k-fold by source and user split files (a CSV of patch → fold)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import Field

from cellprobe.config import StrictModel
from cellprobe.data.io import csv_row
from cellprobe.data.validate import DataWarning
from cellprobe.errors import InputError


def _groups(sources: Sequence[str]) -> np.ndarray:
    return np.asarray([str(s) for s in sources], dtype=object)


def split_by_source(sources: Sequence[str], val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx): a seeded ``val_fraction`` of the *source images* (rounded up, at least one) and
    all their patches go to validation. Fewer than two sources cannot be split."""
    groups = _groups(sources)
    n_sources = len(set(groups.tolist()))
    if not 0.0 < val_fraction < 1.0:
        raise InputError(None, f"val_fraction must be in (0, 1), got {val_fraction}")
    if n_sources < 2:
        raise InputError(None, f"cannot split by source: only {n_sources} source image(s)")
    from sklearn.model_selection import GroupShuffleSplit

    n_val = min(n_sources - 1, max(1, int(np.ceil(val_fraction * n_sources))))
    splitter = GroupShuffleSplit(n_splits=1, test_size=n_val, random_state=seed)
    train, val = next(splitter.split(np.zeros(len(groups)), groups=groups))
    return np.sort(train), np.sort(val)


def kfold_by_source(sources: Sequence[str], k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train_idx, test_idx) pairs; every source image lies in exactly one test fold (seeded shuffle)."""
    groups = _groups(sources)
    n_sources = len(set(groups.tolist()))
    if k < 2 or k > n_sources:
        raise InputError(None, f"k-fold by source needs 2 <= k <= {n_sources} source images, got k={k}")
    from sklearn.model_selection import GroupKFold

    splitter = GroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(np.sort(a), np.sort(b)) for a, b in splitter.split(np.zeros(len(groups)), groups=groups)]


def read_split_file(path: Path, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Fold name → sample indices from a CSV with a patch column (``patch``, ``name`` or ``index``) and a fold
    column (``fold`` or ``split``). Unknown patches are errors; patches the file leaves out are warned about."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "split file not found")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, OSError) as exc:
        raise InputError(path, f"unreadable split file ({str(exc).splitlines()[0]})") from None
    key = next((c for c in ("patch", "name", "index") if c in table.columns), None)
    fold = next((c for c in ("fold", "split") if c in table.columns), None)
    if key is None or fold is None:
        raise InputError(path, f"needs a patch column (patch|name|index) and a fold column (fold|split); "
                               f"has {', '.join(table.columns)}")
    if key == "index":
        try:
            idx = table[key].astype(int).to_numpy()
        except ValueError:
            raise InputError(path, "column 'index' must hold integers") from None
        bad = idx[(idx < 0) | (idx >= len(names))]
        if bad.size:
            raise InputError(path, f"index {int(bad[0])} out of range for {len(names)} patches")
    else:
        position = {str(n): i for i, n in enumerate(names)}
        unknown = [v for v in table[key] if v not in position]
        if unknown:
            raise InputError(path, f"patch '{unknown[0]}' is not in the dataset ({len(unknown)} unknown)")
        idx = np.asarray([position[v] for v in table[key]], dtype=np.int64)
    first_row: dict[int, int] = {}
    for i, k in enumerate(idx.tolist()):
        if k in first_row:
            raise InputError(csv_row(path, i), f"patch '{table[key].iloc[i]}' is listed more than once "
                                               f"(also row {first_row[k]})")
        first_row[k] = i
    left_out = len(names) - len(idx)
    if left_out:
        warnings.warn(f"{path}: {left_out} patches are in no fold of the split file and are left out",
                      DataWarning, stacklevel=2)
    folds = table[fold].to_numpy()
    return {str(f): np.sort(idx[folds == f]) for f in dict.fromkeys(folds.tolist())}


class SplitOptions(StrictModel):
    """Split choice for releases without released splits (CoNIC, user folders without split folders):
    a user ``split_file``, or ``kfold`` folds by source (``fold`` is the test fold), else train/val by source."""

    split_file: Path | None = None
    kfold: int | None = Field(None, ge=2)
    fold: int = Field(0, ge=0)
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    seed: int = 0


def select_split(names: Sequence[str], sources: Sequence[str], split: str | None, opts: SplitOptions,
                 where: Path) -> np.ndarray:
    """Indices of ``split``. Names: with a split file, its fold values; with ``kfold``: ``test`` (fold
    ``fold``), ``trainval`` (the rest), ``train``/``val`` (the rest split by source); otherwise ``train`` /
    ``val`` by source over everything. ``None`` or ``all``: everything."""
    n = len(names)
    if split is None or split == "all":
        return np.arange(n)
    if opts.split_file is not None:
        folds = read_split_file(opts.split_file, names)
        if split not in folds:
            raise InputError(opts.split_file, f"fold '{split}' is missing (folds: {', '.join(folds)})")
        return folds[split]
    pool = np.arange(n)
    if opts.kfold is not None:
        if opts.fold >= opts.kfold:
            raise InputError(where, f"fold {opts.fold} does not exist with kfold={opts.kfold}")
        trainval, test = kfold_by_source(sources, opts.kfold, opts.seed)[opts.fold]
        if split == "test":
            return test
        if split == "trainval":
            return trainval
        pool = trainval
    elif split in ("test", "trainval"):
        raise InputError(where, f"no '{split}' split is released here: give split_file or kfold")
    if split not in ("train", "val"):
        raise InputError(where, f"unknown split '{split}' (train, val, test with kfold, or a split_file fold)")
    train, val = split_by_source([sources[i] for i in pool], opts.val_fraction, opts.seed)
    return pool[train] if split == "train" else pool[val]
