"""Splits by source image, never by patch: patches cut from one image overlap or share tissue, so putting them
on both sides of a split leaks. Also k-fold by source and split files (a CSV of patch → fold, such as CISCA's
published splits; a patch listed several times in one fold is oversampled: :class:`SplitRows`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import Field

from cellprobe.config import StrictModel
from cellprobe.data.io import csv_row
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


@dataclass(frozen=True)
class SplitRows:
    """The samples of one split: their positions (sorted, each once) and how many times the split lists each
    (``repeats``, >= 1, aligned with ``rows``). A split file may list a training image several times to
    oversample it (CISCA's published splits do, for images holding rare classes): training draws it that many
    times per epoch; everything else (validation, evaluation) sees it once."""

    rows: np.ndarray
    repeats: np.ndarray

    @classmethod
    def once(cls, rows: np.ndarray) -> SplitRows:
        rows = np.asarray(rows, dtype=np.int64)
        return cls(rows, np.ones(len(rows), dtype=np.int64))

    @property
    def oversampled(self) -> bool:
        return bool((self.repeats > 1).any())


#: the patch column of a split file (first present wins) and its fold column
KEY_COLUMNS = ("patch", "name", "index", "img_id")
FOLD_COLUMNS = ("fold", "split")


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and data rows of a CSV file; a row with another number of fields than the header, or an empty
    row before the last data row, is an InputError naming the row."""
    import csv

    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            lines = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(path, f"unreadable split file ({str(exc).splitlines()[0]})") from None
    while lines and not any(lines[-1]):
        lines.pop()  # trailing empty lines
    if not lines:
        raise InputError(path, "empty split file (no header)")
    header, rows = lines[0], lines[1:]
    for i, row in enumerate(rows):
        if len(row) != len(header):
            what = ("empty row" if not any(row) else
                    f"{len(row)} field{'s' if len(row) != 1 else ''}, the header has {len(header)}")
            if i == len(rows) - 1 and 0 < len(row) < len(header):
                what += " (a truncated file?)"
            raise InputError(csv_row(path, i), what)
    return header, rows


def split_file_folds(path: Path) -> list[str]:
    """The fold names of a split file, in the order they first appear (the file is checked against a dataset
    only when read with :func:`read_split_file`)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "split file not found")
    header, table = _read_rows(path)
    fold = next((c for c in FOLD_COLUMNS if c in header), None)
    if fold is None:
        raise InputError(path, f"needs a fold column ({'|'.join(FOLD_COLUMNS)}); has {', '.join(header)}")
    return list(dict.fromkeys(row[header.index(fold)] for row in table if row[header.index(fold)]))


def read_split_file(path: Path, names: Sequence[str],
                    explain: Callable[[str], str | None] | None = None) -> dict[str, SplitRows]:
    """Fold name → :class:`SplitRows` from a CSV with a patch column (``patch``, ``name``, ``index`` or
    ``img_id``) and a fold column (``fold`` or ``split``).

    A patch listed several times in one fold is oversampled (its ``repeats``); every problem is one InputError
    naming the file and row: a patch not in the dataset (``explain(value)`` may say why), a patch in two
    different folds, an empty fold, a malformed row. Every patch of the dataset must be in a fold: a file that
    leaves patches out (a truncated download, a split of another release) is refused; give patches to leave
    out a fold of their own (e.g. ``unused``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "split file not found")
    header, table = _read_rows(path)
    key = next((c for c in KEY_COLUMNS if c in header), None)
    fold = next((c for c in FOLD_COLUMNS if c in header), None)
    if key is None or fold is None:
        raise InputError(path, f"needs a patch column ({'|'.join(KEY_COLUMNS)}) and a fold column "
                               f"({'|'.join(FOLD_COLUMNS)}); has {', '.join(header)}")
    k_col, f_col = header.index(key), header.index(fold)
    position = None if key == "index" else {str(n): i for i, n in enumerate(names)}
    fold_of: dict[int, tuple[str, int]] = {}  # sample → (fold, first row)
    listed: dict[str, list[int]] = {}
    for i, row in enumerate(table):
        value, f = row[k_col], row[f_col]
        if position is None:
            try:
                k = int(value)
            except ValueError:
                raise InputError(csv_row(path, i), f"index '{value}' is not an integer") from None
            if not 0 <= k < len(names):
                raise InputError(csv_row(path, i), f"index {k} out of range for {len(names)} patches")
        else:
            if value not in position:
                why = explain(value) if explain is not None else None
                raise InputError(csv_row(path, i), f"patch '{value}' is not in the dataset"
                                                   + (f": {why}" if why else ""))
            k = position[value]
        if not f:
            raise InputError(csv_row(path, i), f"patch '{value}' has an empty fold")
        if k in fold_of and fold_of[k][0] != f:
            other, first = fold_of[k]
            raise InputError(csv_row(path, i), f"patch '{value}' is listed in fold '{f}' here and in fold "
                                               f"'{other}' at row {first}: a patch belongs to one fold")
        fold_of.setdefault(k, (f, i))
        listed.setdefault(f, []).append(k)
    if len(fold_of) < len(names):
        missing = next(n for k, n in enumerate(names) if k not in fold_of)
        raise InputError(path, f"{len(names) - len(fold_of)} of the dataset's {len(names)} patches are in no fold "
                               f"(e.g. '{missing}'): a truncated file, or one for other data? A split file lists "
                               "every patch (a fold of its own, e.g. 'unused', leaves patches out)")
    out = {}
    for f, ks in listed.items():
        rows, repeats = np.unique(np.asarray(ks, dtype=np.int64), return_counts=True)
        out[f] = SplitRows(rows, repeats.astype(np.int64))
    return out


class SplitOptions(StrictModel):
    """Split choice for releases without released splits (CoNIC, user folders without split folders):
    a user ``split_file``, or ``kfold`` folds by source (``fold`` is the test fold), else train/val by source."""

    split_file: Path | None = None
    kfold: int | None = Field(None, ge=2)
    fold: int = Field(0, ge=0)
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    seed: int = 0


def select_split(names: Sequence[str], sources: Sequence[str], split: str | None, opts: SplitOptions,
                 where: Path, explain: Callable[[str], str | None] | None = None) -> SplitRows:
    """The samples of ``split``. Names: with a split file, its fold values (``explain``: see
    :func:`read_split_file`); with ``kfold``: ``test`` (fold ``fold``), ``trainval`` (the rest), ``train``/``val``
    (the rest split by source); otherwise ``train`` / ``val`` by source over everything. ``None`` or ``all``:
    everything, each once. Only a split file repeats samples."""
    n = len(names)
    if split is None or split == "all":
        if opts.split_file is not None:
            read_split_file(opts.split_file, names, explain)  # checked all the same
        return SplitRows.once(np.arange(n))
    if opts.split_file is not None:
        folds = read_split_file(opts.split_file, names, explain)
        if split not in folds:
            raise InputError(opts.split_file, f"fold '{split}' is missing (folds: {', '.join(folds)})")
        return folds[split]
    return SplitRows.once(_derived_split(sources, split, opts, where))


def _derived_split(sources: Sequence[str], split: str, opts: SplitOptions, where: Path) -> np.ndarray:
    pool = np.arange(len(sources))
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
