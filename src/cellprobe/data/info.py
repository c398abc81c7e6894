"""``dataset.yaml``: the optional description file of the ``patches`` and ``folder`` layouts (class names,
µm/px, tissue), validated as a strict config so that a typo is an error, not a silent default."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

from cellprobe.config import StrictModel, load_yaml, parse_config
from cellprobe.data.io import control_character, inside_dataset
from cellprobe.errors import InputError, not_a_file

INFO_FILE = "dataset.yaml"
#: most classes a class list may hold: class ids are stored as uint8 (0 = background); also bounds every table
#: sized by the number of classes
MAX_CLASSES = 255


#: the µm/px a dataset or score may be given: from a 500× objective to a low-power overview. Outside it the
#: detection radius (3 µm) and resizing factors become absurd: 1e-300 µm/px paired every nucleus with every other
MPP_RANGE = (0.01, 100.0)


def _check_mpp(value: float) -> float:
    if isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"mpp (µm/px) must be a finite number > 0, got {value!r}")
    if not MPP_RANGE[0] <= value <= MPP_RANGE[1]:
        raise ValueError(f"mpp (µm/px) must be between {MPP_RANGE[0]:g} and {MPP_RANGE[1]:g}, got {value!r}")
    return float(value)


def class_names_problem(names: Sequence[str]) -> str | None:
    """Why ``names`` cannot be a list of classes, None when it can: the one rule, for dataset.yaml, reader
    options, score's --classes and the metrics. Names are matched exactly across runs and datasets, so one with
    spaces around it (shown as the name without them) or a control character (written into results) is refused."""
    if not names:
        return "it lists no class"
    if len(names) > MAX_CLASSES:
        return f"it lists {len(names)} classes, at most {MAX_CLASSES} are possible"
    seen: set[str] = set()
    for name in names:
        if not isinstance(name, str) or not name.strip():
            return f"{name!r} is not a class name (non-empty text)"
        if name != name.strip():
            return f"{name!r} has spaces around it"
        hidden = control_character(name)
        if hidden is not None:
            return f"class name {name!r} holds the control character {hidden!a}"
        if name in seen:
            return f"{name!r} is listed twice; class names must be unique"
        seen.add(name)
    return None


def _check_class_names(names: tuple[str, ...]) -> tuple[str, ...]:
    problem = class_names_problem(names)
    if problem is not None:
        raise ValueError(f"class_names: {problem}")
    return tuple(names)


# The one check of these two values, wherever they come from (dataset.yaml or a reader option); parsed in
# strict mode (see cellprobe.config.parse_config), so a bool is not a number and nan/inf are refused too.
Mpp = Annotated[float, AfterValidator(_check_mpp)]
ClassNames = Annotated[tuple[str, ...], AfterValidator(_check_class_names)]


class DatasetInfo(StrictModel):
    name: str | None = None
    class_names: ClassNames | None = None
    mpp: Mpp | None = None
    tissue: str | None = None


def read_info(*folders: Path) -> DatasetInfo:
    """The first ``dataset.yaml`` found in ``folders`` (a split folder, then the dataset root, the last one), or
    defaults. One that is a link leading outside the dataset root is refused (:func:`inside_dataset`)."""
    for folder in folders:
        path = Path(folder) / INFO_FILE
        near = sorted(p.name for p in Path(folder).glob("[dD][aA][tT][aA][sS][eE][tT].[yY]*[mM][lL]")
                      if p.name != INFO_FILE and p.name.lower() in ("dataset.yaml", "dataset.yml"))
        if near:  # a dataset.yml or Dataset.YAML was ignored without a word: its classes and µm/px unused
            raise InputError(Path(folder) / near[0], f"is not read: cellprobe reads {INFO_FILE} (this spelling "
                                                     "exactly); rename it, or remove it beside one")
        if path.is_file() or path.is_symlink():
            inside_dataset(path, Path(folders[-1]), path)
        problem = not_a_file(path) if path.exists() or path.is_symlink() else None
        if problem is not None:  # not read, its classes and µm/px would silently be the defaults
            raise InputError(path, f"{problem}: the dataset's classes and µm/px cannot be read from it")
        if path.is_file():
            return parse_config(DatasetInfo, load_yaml(path), path)
    return DatasetInfo()
