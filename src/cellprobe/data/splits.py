"""Splits by source image, never by patch: patches cut from one image overlap or share tissue, so putting them
on both sides of a split leaks. Also k-fold by source and split files (a CSV of patch → fold, such as CISCA's
published splits; a patch listed several times in one fold is oversampled: :class:`SplitRows`)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
from pydantic import Field, model_validator

from cellprobe.config import Seed, StrictModel
from cellprobe.data.io import csv_row, read_csv_rows
from cellprobe.errors import InputError, not_a_file


def _groups(sources: Sequence[str]) -> np.ndarray:
    return np.asarray([str(s) for s in sources], dtype=object)


def split_by_source(sources: Sequence[str], val_fraction: float, seed: int,
                    where: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx): a seeded ``val_fraction`` of the *source images* (rounded up, at least one) and
    all their patches go to validation. Fewer than two sources cannot be split (refused naming ``where``, the
    dataset)."""
    groups = _groups(sources)
    n_sources = len(set(groups.tolist()))
    if not 0.0 < val_fraction < 1.0:
        raise InputError(where, f"val_fraction must be in (0, 1), got {val_fraction}")
    if n_sources < 2:
        raise InputError(where, f"cannot split by source: only {n_sources} source image(s)")
    from sklearn.model_selection import GroupShuffleSplit

    n_val = min(n_sources - 1, max(1, int(np.ceil(val_fraction * n_sources))))
    splitter = GroupShuffleSplit(n_splits=1, test_size=n_val, random_state=seed)
    train, val = next(splitter.split(np.zeros(len(groups)), groups=groups))
    return np.sort(train), np.sort(val)


def kfold_by_source(sources: Sequence[str], k: int, seed: int,
                    where: str | Path | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train_idx, test_idx) pairs; every source image lies in exactly one test fold (seeded shuffle). A k
    the dataset (``where``) cannot give is refused naming it."""
    groups = _groups(sources)
    n_sources = len(set(groups.tolist()))
    if k < 2 or k > n_sources:
        raise InputError(where, f"k-fold by source needs 2 <= k <= {n_sources} source images, got k={k}")
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


#: the patch columns of a split file (several may be given: they must agree on every row) and its fold column
#: (one of them: a file with both is refused, which one holds the folds would be a guess)
KEY_COLUMNS = ("patch", "name", "index", "img_id")
FOLD_COLUMNS = ("fold", "split")
#: the split name that means every patch (:func:`select_split`): no fold may be called so
ALL_SPLIT = "all"
_INDEX = re.compile(r"[0-9]+")
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _fold_column(path: Path, header: list[str]) -> str | None:
    """The fold column of ``header`` (None when it has none); both ``fold`` and ``split`` is refused."""
    present = [c for c in FOLD_COLUMNS if c in header]
    if len(present) > 1:
        raise InputError(path, f"has both a '{present[0]}' and a '{present[1]}' column: which one holds the folds "
                               "would be a guess; keep one")
    return present[0] if present else None


class _FoldNames:
    """Checks each new fold name of a split file: no empty name, no surrounding whitespace, not the reserved
    ``all`` in any case or compatibility form (``ALL``, ``ａｌｌ``), no invisible or control character (a
    zero-width space), no two names one case-fold or Unicode NFKC normalisation apart (``Test`` and ``test``,
    ``0`` and the full-width ``０``, ``train`` and ``ｔrain``) and no two spellings of one number (``0`` and
    ``0.0``, ``1`` and ``+1``): one fold or two? A name must be its own NFKC form (plain characters), so that the
    name a user types selects it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.first_row: dict[str, int] = {}
        self.numbers: dict[Decimal, str] = {}
        self.normal: dict[str, str] = {}  # NFKC case-folded form → the fold name first written so

    def check(self, i: int, fold: str, value: str) -> None:
        if fold in self.first_row:
            return
        where = csv_row(self.path, i)
        if not fold:
            raise InputError(where, f"patch '{value}' has an empty fold")
        if fold != fold.strip():
            raise InputError(where, f"fold '{fold}' has surrounding whitespace: it would be a fold of its own "
                                    f"beside '{fold.strip()}'; write fold names without spaces around them")
        hidden = next((c for c in fold if unicodedata.category(c)[0] == "C" or unicodedata.category(c) in ("Zl", "Zp")),
                      None)
        if hidden is not None:
            raise InputError(where, f"fold {fold!r} holds the invisible or control character U+{ord(hidden):04X}: "
                                    "it would be a fold of its own beside its visible spelling; remove it")
        normal = unicodedata.normalize("NFKC", fold)
        key = unicodedata.normalize("NFKC", normal.casefold())
        if key == ALL_SPLIT:
            raise InputError(where, f"fold name '{fold}' is reserved (split '{ALL_SPLIT}' means every patch, in any "
                                    "case): rename the fold")
        if key in self.normal:
            other = self.normal[key]
            raise InputError(where, f"fold '{fold}' is the same as fold '{other}' (row {self.first_row[other]}) but "
                                    "for case or Unicode look-alikes: one fold or two? Spell each fold one way, in "
                                    "plain characters")
        if _NUMBER.fullmatch(normal):
            number = Decimal(normal)
            if number in self.numbers:
                other = self.numbers[number]
                raise InputError(where, f"fold '{fold}' is the same number as fold '{other}' (row "
                                        f"{self.first_row[other]}): one fold or two? Spell each fold one way")
            self.numbers[number] = fold
        if normal != fold:
            raise InputError(where, f"fold '{fold}' is spelt with Unicode compatibility characters (plain form "
                                    f"'{normal}'): `--split {normal}` would not find it; spell fold names in plain "
                                    "characters")
        self.normal[key] = fold
        self.first_row[fold] = i


def split_file_folds(path: Path) -> list[str]:
    """The fold names of a split file, in the order they first appear (the file is checked against a dataset
    only when read with :func:`read_split_file`)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"split file: {not_a_file(path)}")
    header, table = read_csv_rows(path, "split file")
    fold = _fold_column(path, header)
    if fold is None:
        raise InputError(path, f"needs a fold column ({'|'.join(FOLD_COLUMNS)}); has {', '.join(header)}")
    f_col = header.index(fold)
    names = _FoldNames(path)
    for i, row in enumerate(table):
        if row[f_col]:
            names.check(i, row[f_col], "")
    return list(names.first_row)


def read_split_file(path: Path, names: Sequence[str], explain: Callable[[str], str | None] | None = None,
                    sources: Sequence[str] | None = None) -> dict[str, SplitRows]:
    """Fold name → :class:`SplitRows` from a CSV with a patch column (``patch``, ``name``, ``index`` or
    ``img_id``; several of them must name the same patch on every row) and one fold column (``fold`` or
    ``split``).

    A patch listed several times in one fold is oversampled (its ``repeats``); every problem is one InputError
    naming the file and row: a patch not in the dataset (``explain(value)`` may say why), a patch in two
    different folds, an index that is not plain digits or spells a patch listed before another way (``0`` and
    ``00``), an empty fold or one named with surrounding whitespace, ``all`` (in any case), a Unicode look-alike
    (NFKC) of another fold's name or another spelling of a fold's number, a malformed row. With ``sources`` (the source image of each patch), a source image with patches in
    two folds is refused: splits are by source image, never by patch. Every patch of the dataset must be in a
    fold: a file that leaves patches out (a truncated download, a split of another release) is refused; give
    patches to leave out a fold of their own (e.g. ``unused``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"split file: {not_a_file(path)}")
    header, table = read_csv_rows(path, "split file")
    keys = [c for c in KEY_COLUMNS if c in header]
    fold = _fold_column(path, header)
    if not keys or fold is None:
        raise InputError(path, f"needs a patch column ({'|'.join(KEY_COLUMNS)}) and a fold column "
                               f"({'|'.join(FOLD_COLUMNS)}); has {', '.join(header)}")
    f_col = header.index(fold)
    position = {str(n): i for i, n in enumerate(names)}
    fold_of: dict[int, tuple[str, int]] = {}  # sample → (fold, first row)
    spelled: dict[int, tuple[str, int]] = {}  # sample → (its index as first written, that row)
    source_of: dict[str, tuple[str, int, str]] = {}  # source image → (fold, first row, its patch there)
    fold_names = _FoldNames(path)
    listed: dict[str, list[int]] = {}
    for i, row in enumerate(table):
        where = csv_row(path, i)
        found = [(key, row[header.index(key)], _patch(key, row[header.index(key)], names, position, explain, where))
                 for key in keys]
        key, value, k = found[0]
        for other_key, other_value, other_k in found[1:]:
            if other_k != k:
                raise InputError(where, f"'{key}' {value} is patch '{names[k]}' but '{other_key}' {other_value} is "
                                        f"patch '{names[other_k]}': the patch columns disagree")
        f = row[f_col]
        fold_names.check(i, f, value)
        if key == "index":
            first = spelled.setdefault(k, (value, i))
            if first[0] != value:
                raise InputError(where, f"index '{value}' is patch {k}, written '{first[0]}' at row {first[1]}: a "
                                        "patch listed twice must be spelled the same way (a repeated row oversamples it)")
        if k in fold_of and fold_of[k][0] != f:
            other, first_row = fold_of[k]
            raise InputError(where, f"patch '{value}' is listed in fold '{f}' here and in fold "
                                    f"'{other}' at row {first_row}: a patch belongs to one fold")
        fold_of.setdefault(k, (f, i))
        if sources is not None:
            source = str(sources[k])
            seen = source_of.setdefault(source, (f, i, value))
            if seen[0] != f:
                raise InputError(where, f"source image '{source}' is in fold '{f}' here (patch '{value}') and in fold "
                                        f"'{seen[0]}' at row {seen[1]} (patch '{seen[2]}'): patches of one image "
                                        "overlap, so splits are by source image, never by patch (a leak); put all "
                                        "its patches in one fold")
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


def _patch(key: str, value: str, names: Sequence[str], position: dict[str, int],
           explain: Callable[[str], str | None] | None, where: str) -> int:
    """The dataset position of the patch that column ``key`` names with ``value`` (one row of a split file)."""
    if key == "index":
        if not _INDEX.fullmatch(value):
            raise InputError(where, f"index '{value}' is not an integer (plain digits 0-9 only)")
        k = int(value)
        if not k < len(names):
            raise InputError(where, f"index {k} out of range for {len(names)} patches")
        return k
    if value not in position:
        why = explain(value) if explain is not None else None
        raise InputError(where, f"patch '{value}' is not in the dataset" + (f": {why}" if why else ""))
    return position[value]


class SplitOptions(StrictModel):
    """Split choice for releases without released splits (CoNIC, user folders without split folders):
    a user ``split_file``, or ``kfold`` folds by source (``fold`` is the test fold), else train/val by source."""

    split_file: Path | None = None
    kfold: int | None = Field(None, ge=2)
    fold: int = Field(0, ge=0)
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    seed: Seed = 0

    @model_validator(mode="after")
    def _used(self) -> SplitOptions:
        """An option that changes nothing is refused (told apart by a value other than its default, as the
        options are also copied whole between models): the user meant it to change the split."""
        if self.split_file is not None:
            given = self.non_default("kfold", "fold", "val_fraction")
            if given:
                raise ValueError(f"{', '.join(given)} apply to splits drawn by source, not to a split_file's folds")
        elif self.kfold is None and self.non_default("fold"):
            raise ValueError("fold applies only with kfold")
        return self


def select_split(names: Sequence[str], sources: Sequence[str], split: str | None, opts: SplitOptions,
                 where: Path, explain: Callable[[str], str | None] | None = None) -> SplitRows:
    """The samples of ``split``. Names: with a split file, its fold values (``explain``: see
    :func:`read_split_file`, which also refuses a source image in two folds); with ``kfold``: ``test`` (fold ``fold``), ``trainval`` (the rest), ``train``/``val``
    (the rest split by source); otherwise ``train`` / ``val`` by source over everything. ``None`` or ``all``:
    everything, each once. Only a split file repeats samples."""
    n = len(names)
    if split is None or split == ALL_SPLIT:
        if opts.split_file is not None:
            read_split_file(opts.split_file, names, explain, sources)  # checked all the same
        return SplitRows.once(np.arange(n))
    if opts.split_file is not None:
        folds = read_split_file(opts.split_file, names, explain, sources)
        if split not in folds:
            raise InputError(opts.split_file, f"fold '{split}' is missing (folds: {', '.join(folds)})")
        return folds[split]
    return SplitRows.once(_derived_split(sources, split, opts, where))


def _derived_split(sources: Sequence[str], split: str, opts: SplitOptions, where: Path) -> np.ndarray:
    pool = np.arange(len(sources))
    if opts.kfold is not None:
        if opts.fold >= opts.kfold:
            raise InputError(where, f"fold {opts.fold} does not exist with kfold={opts.kfold}")
        trainval, test = kfold_by_source(sources, opts.kfold, opts.seed, where)[opts.fold]
        if split == "test":
            return test
        if split == "trainval":
            return trainval
        pool = trainval
    elif split in ("test", "trainval"):
        raise InputError(where, f"no '{split}' split is released here: give split_file or kfold")
    if split not in ("train", "val"):
        raise InputError(where, f"unknown split '{split}' (train, val, test with kfold, or a split_file fold)")
    train, val = split_by_source([sources[i] for i in pool], opts.val_fraction, opts.seed, where)
    return pool[train] if split == "train" else pool[val]
