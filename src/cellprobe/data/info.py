"""``dataset.yaml``: the optional description file of the ``patches`` and ``folder`` layouts (class names,
µm/px, tissue), validated as a strict config so that a typo is an error, not a silent default."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from cellprobe.config import StrictModel, load_yaml, parse_config

INFO_FILE = "dataset.yaml"


class DatasetInfo(StrictModel):
    name: str | None = None
    class_names: list[str] | None = Field(None, min_length=1, max_length=255)
    mpp: float | None = Field(None, gt=0)
    tissue: str | None = None


def read_info(*folders: Path) -> DatasetInfo:
    """The first ``dataset.yaml`` found in ``folders`` (a split folder, then the dataset root), or defaults."""
    for folder in folders:
        path = Path(folder) / INFO_FILE
        if path.is_file():
            return parse_config(DatasetInfo, load_yaml(path), path)
    return DatasetInfo()
