"""Typed configuration: YAML files validated into pydantic models.

Every size, path and threshold of a run comes from a config model; a run folder stores the fully resolved
config so that any result can be re-run. Unknown keys are errors (a typo must not silently fall back to a
default), reported as one :class:`InputError` line naming the file and the key.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from cellprobe.errors import InputError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for config models: unknown keys are rejected, values validated on assignment, and no number may
    be infinite or NaN (``.inf`` and ``.nan`` are valid YAML, never a valid setting)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @classmethod
    def prepare_input(cls, data: dict[str, Any]) -> dict[str, Any]:
        """The raw mapping, checked or rearranged before validation (e.g. a key that belongs in another
        section refused with a clearer message than pydantic's, or dotted keys expanded); raise
        :class:`InputError` naming the key. A hook rather than a ``mode="before"`` validator: those hand
        pydantic Python objects, which strict parsing (lists are not tuples) then refuses."""
        return data


class UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice (line "
                                                                   f"{key_node.start_mark.line + 1})",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# YAML 1.2 reads 1e-3 as a number; PyYAML (YAML 1.1) needs a dot (1.0e-3) and otherwise gives the string
# '1e-3', which strict typing then refuses: read exponent floats as numbers, as a user who wrote one meant
UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


# YAML 1.2 booleans only: PyYAML (YAML 1.1) also reads yes/no/on/off (and their capitals) as booleans, which
# turns a user's string into a flag without a word; they stay strings, and strict typing refuses them
UniqueKeyLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in UniqueKeyLoader.yaml_implicit_resolvers.items()}
UniqueKeyLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                      list("tTfF"))


def yaml_value(text: str) -> Any:
    """One value written as YAML (a ``--set`` value), read as config files are."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader subclass: no arbitrary objects


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing, unreadable, empty or non-mapping file is an :class:`InputError` (an
    empty file is more often a truncated or wrong one than a wish for every default)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(path, f"cannot read config ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not a UTF-8 text file (byte {exc.start})") from None
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as exc:
        raise InputError(path, f"not valid YAML ({str(exc).splitlines()[0]})") from None
    if data is None:
        raise InputError(path, "holds no settings (empty, or only comments)")
    if not isinstance(data, dict):
        raise InputError(path, f"config must be a mapping, got {type(data).__name__}")
    return data


def parse_config(model: type[M], data: dict[str, Any], source: str | Path | None = None,
                 overridden: Mapping[str, str] | None = None) -> M:
    """Validate ``data`` into ``model``, strictly typed; the first problem becomes one InputError line naming
    ``source`` and the key (``config key 'a.b': message``), or, where the key was set by an override, that
    override (``overridden``: dotted key → how the user gave it, e.g. ``--set epochs=x``).

    User config is validated as JSON in pydantic's strict mode: ``"3"`` is not an integer, ``2.0`` not an
    integer, ``true`` not a number nor ``1`` a boolean (the lax mode casts each silently), while a path
    or a tuple is still written as a string or a list, as YAML and JSON have no such types."""
    try:
        data = model.prepare_input(data)
    except InputError as exc:
        raise InputError(source, exc.problem) from None
    try:
        text = json.dumps(data, default=_as_json, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise InputError(source, f"config holds a value that is not plain data ({exc})") from None
    try:
        return model.model_validate_json(text, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        what = f"config key '{where}'" if where else "config"  # no key: a check across keys
        message = first["msg"].removeprefix("Value error, ")
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        given = next((how for key, how in (overridden or {}).items()
                      if where and (where == key or where.startswith(f"{key}.") or key.startswith(f"{where}."))),
                     None)
        raise InputError(given or source, f"{what}: {message}{more}") from None


def expand_dotted(data: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` as ``{"a": {"b": 1}}`` (the ``--set`` spelling, where a config section allows it): plain
    keys first, dotted ones applied over them in order. ``data`` is not modified."""
    plain = {k: v for k, v in data.items() if not (isinstance(k, str) and "." in k)}
    dotted = {k: v for k, v in data.items() if isinstance(k, str) and "." in k}
    return with_overrides(plain, dotted)


def _as_json(value: Any) -> Any:
    """Values that config mappings built in code may hold: paths and models (as their JSON form)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} {value!r}")


def load_config(model: type[M], path: str | Path, overrides: dict[str, Any] | None = None,
                override_flag: str = "--set") -> M:
    """Load a YAML file into ``model``, applying dotted-key ``overrides`` (e.g. ``{"train.epochs": 3}``); a bad
    overridden value is reported against ``override_flag``, not the file."""
    given = {key: f"{override_flag} {key}" for key in overrides or {}}
    return parse_config(model, with_overrides(load_yaml(path), overrides), path, given)


def with_overrides(data: dict[str, Any], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of ``data`` with dotted-key ``overrides`` applied in order (``{"a.b": 1}`` sets
    ``data['a']['b']``, creating intermediate mappings); neither argument is modified."""
    out = copy.deepcopy(data)
    for dotted, value in (overrides or {}).items():
        set_dotted(out, dotted, copy.deepcopy(value))
    return out


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``data['a']['b'] = value`` for ``dotted='a.b'``, creating intermediate mappings."""
    keys = dotted.split(".")
    if any(key.isdigit() for key in keys):
        raise InputError(None, f"override '{dotted}': list items cannot be set one by one; give the whole list "
                               "(e.g. key=[8, 8, 16])")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise InputError(None, f"override '{dotted}': '{key}' is not a mapping")
    node[keys[-1]] = value


def dump_config(cfg: BaseModel) -> str:
    """The resolved config as YAML (what a run folder stores)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
