"""Typed configuration: YAML files validated into pydantic models.

Every size, path and threshold of a run comes from a config model; a run folder stores the fully resolved
config so that any result can be re-run. Unknown keys are errors (a typo must not silently fall back to a
default), reported as one :class:`InputError` line naming the file and the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from cellprobe.errors import InputError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for config models: unknown keys are rejected, values validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing, unreadable or non-mapping file is an :class:`InputError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(path, f"cannot read config ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(path, f"not valid YAML ({str(exc).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(path, f"config must be a mapping, got {type(data).__name__}")
    return data


def parse_config(model: type[M], data: dict[str, Any], source: str | Path | None = None) -> M:
    """Validate ``data`` into ``model``; the first problem becomes one InputError line (``key.path: message``)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<root>"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise InputError(source, f"config key '{where}': {first['msg']}{more}") from None


def load_config(model: type[M], path: str | Path, overrides: dict[str, Any] | None = None) -> M:
    """Load a YAML file into ``model``, applying dotted-key ``overrides`` (e.g. ``{"train.epochs": 3}``)."""
    data = load_yaml(path)
    for dotted, value in (overrides or {}).items():
        set_dotted(data, dotted, value)
    return parse_config(model, data, path)


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``data['a']['b'] = value`` for ``dotted='a.b'``, creating intermediate mappings."""
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise InputError(None, f"override '{dotted}': '{key}' is not a mapping")
    node[keys[-1]] = value


def dump_config(cfg: BaseModel) -> str:
    """The resolved config as YAML (what a run folder stores)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
