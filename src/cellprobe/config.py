"""Typed configuration: YAML files validated into pydantic models.

Every size, path and threshold of a run comes from a config model; a run folder stores the fully resolved
config so that any result can be re-run. Unknown keys are errors (a typo must not silently fall back to a
default), reported as one :class:`InputError` line naming the file and the key.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import weakref
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from cellprobe.errors import InputError, not_a_file

M = TypeVar("M", bound=BaseModel)

#: the largest seed numpy and Lightning accept (seeds are unsigned 32-bit integers)
MAX_SEED = 2**32 - 1
#: a seed of any config: numpy and Lightning take 0 .. 2**32 - 1 (-1 or 2**40 would be their traceback)
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]


class StrictModel(BaseModel):
    """Base for config models: unknown keys are rejected, values validated on assignment, and no number may
    be infinite or NaN (``.inf`` and ``.nan`` are valid YAML, never a valid setting)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    #: :func:`dump_config` keeps integer mapping keys (e.g. ``lr_steps``' epochs) integers, so that the YAML it
    #: writes reads back as user config; False: strings, as JSON writes them
    dump_int_keys: ClassVar[bool] = False

    @classmethod
    def prepare_input(cls, data: dict[str, Any]) -> dict[str, Any]:
        """The raw mapping, checked or rearranged before validation (e.g. a key that belongs in another
        section refused with a clearer message than pydantic's, or dotted keys expanded); raise
        :class:`InputError` naming the key. A hook rather than a ``mode="before"`` validator: those hand
        pydantic Python objects, which strict parsing (lists are not tuples) then refuses."""
        return data

    def non_default(self, *keys: str) -> list[str]:
        """The dotted ``keys`` (every setting, nested ones by their dotted key, when none is given) whose
        value differs from the model's default. Commands refuse a setting that would change nothing, and a
        value other than the default is what tells a setting given from one left alone (settings are also
        copied whole between models, so which keys were written is lost)."""
        now, default = self.model_dump(), type(self).model_construct().model_dump()  # construct: no validator

        def leaves(a: Any, b: Any, key: str) -> list[str]:
            if isinstance(a, dict) and isinstance(b, dict):
                return [k for name in a for k in leaves(a[name], b.get(name), f"{key}.{name}".lstrip("."))]
            return [] if a == b else [key]

        if not keys:
            return leaves(now, default, "")
        found = []
        for key in keys:
            a, b = now, default
            for part in key.split("."):
                a, b = a[part], b[part]
            found += leaves(a, b, key)
        return found


#: the error type of :func:`key_error` (a check across keys that names the keys it involves)
KEY_ERROR = "config_keys"


def key_error(keys: str | Sequence[str], message: str) -> PydanticCustomError:
    """The error for a model validator's check across keys (``raise key_error(["lr_steps", "epochs"], ...)``):
    ``keys`` are the dotted keys involved, relative to the model that checks, the first one the key the message is
    about. :func:`parse_config` reports it at that key, and against the override that set any of the ``keys``
    (a plain ``ValueError`` of a model validator carries no key: it could only be blamed on the file)."""
    keys = [keys] if isinstance(keys, str) else list(keys)
    return PydanticCustomError(KEY_ERROR, "{message}", {"message": message, "keys": keys})


class ConfigKeyError(InputError):
    """An :class:`InputError` of a ``prepare_input`` hook about the dotted ``keys`` (the first one the key the
    message is about): :func:`parse_config` attributes it to the override that set one of them, else the file."""

    def __init__(self, keys: str | Sequence[str], problem: str) -> None:
        super().__init__(None, problem)
        self.keys = [keys] if isinstance(keys, str) else list(keys)


def int_choice(*choices: int) -> Any:
    """An integer that must be one of ``choices`` (``cache_views: int_choice(1, 8)``): ``Literal[1, 8]`` would also
    take ``8.0`` and ``true`` in strict JSON mode (a literal compares equal values), an ``int`` refuses both."""
    allowed = " or ".join(str(c) for c in choices)

    def check(value: int) -> int:
        if value not in choices:
            raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": allowed})
        return value

    return Annotated[int, AfterValidator(check)]


class UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):  # a list or mapping as a key (`? [a, b]`, `{[a]: 1}`)
                raise yaml.constructor.ConstructorError(None, None, f"a key must be a name, not a "
                                                                   f"{type(key).__name__} (line "
                                                                   f"{key_node.start_mark.line + 1})",
                                                        key_node.start_mark)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice (line "
                                                                   f"{key_node.start_mark.line + 1})",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# YAML 1.2 reads 1e-3, +.5 and -.5 as numbers; PyYAML (YAML 1.1) needs a dot and a signed exponent (1.0e-3)
# and no sign before a leading dot, and otherwise gives the string, which strict typing then refuses: read every
# YAML 1.2 float spelling as the number a user meant (tried after the integer resolver, so 12 stays an integer)
UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."))


# YAML 1.2 booleans only: PyYAML (YAML 1.1) also reads yes/no/on/off (and their capitals) as booleans, which
# turns a user's string into a flag without a word; they stay strings, and strict typing refuses them. Nor
# are dates read: a name such as 2024-05-01 (a bench, a fold) stays the string it looks like (YAML 1.2)
UniqueKeyLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")]
    for first, resolvers in UniqueKeyLoader.yaml_implicit_resolvers.items()}
UniqueKeyLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                      list("tTfF"))


# YAML 1.1 number spellings a user would not mean: PyYAML reads 010 as 8 (octal), 0x10 and 0b10 as numbers,
# and 1:30 as 90 (base 60) and 1_000 as 1000, all without a word. As in YAML 1.2, 1:30 and 1_000 stay strings
# (a walltime 8:00:00 is one), which strict typing refuses where a number is expected; the octal, hex and
# binary spellings are refused, naming the value, as YAML 1.1 and 1.2 would read 010 differently.
_PLAIN_INT = re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$")


#: the most digits a whole number in a config may have: no setting needs more, and Python refuses to convert
#: over 4,300 (a ValueError deep in the reader)
MAX_INT_DIGITS = 100


def _plain_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int | str:
    if ":" in node.value or "_" in node.value:
        return node.value
    if len(node.value.lstrip("+-")) > MAX_INT_DIGITS:
        raise yaml.constructor.ConstructorError(
            None, None, f"a whole number of {len(node.value.lstrip('+-')):,} digits is beyond any setting (at most "
                        f"{MAX_INT_DIGITS})", node.start_mark)
    if not _PLAIN_INT.match(node.value):
        raise yaml.constructor.ConstructorError(
            None, None, f"'{node.value}' is not a plain decimal number (YAML 1.1 would read it as "
                        f"{loader.construct_yaml_int(node)}: octal, hex or binary); write the number in decimal, "
                        "or quote it if it is a name", node.start_mark)
    return int(node.value)


def _plain_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float | str:
    if ":" in node.value or "_" in node.value:
        return node.value
    return loader.construct_yaml_float(node)


UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _plain_int)
UniqueKeyLoader.add_constructor("tag:yaml.org,2002:float", _plain_float)


#: the most values (scalars, lists and mappings, aliases counted as often as they are used) a YAML document may
#: expand to: a few hundred bytes of nested aliases (a "billion laughs") expand to billions, which would hang
#: every check that walks the config
MAX_YAML_VALUES = 1_000_000
#: the deepest nesting of lists and mappings in a YAML or JSON document: configs nest a few levels; the readers
#: recurse per level and would end in a RecursionError
MAX_NESTING = 100


def _yaml_size(root: yaml.Node) -> int:
    """The number of values ``root`` expands to, aliases counted at each use (walked without recursion, each
    node once); a node that contains itself, or nesting deeper than :data:`MAX_NESTING`, is refused."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        children = ([c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode)
                    else list(node.value) if isinstance(node, yaml.SequenceNode) else [])
        if done:
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in children)
            open_nodes.discard(id(node))
            continue
        if id(node) in sizes:
            continue
        if depth > MAX_NESTING:
            raise yaml.YAMLError(f"nested more than {MAX_NESTING} levels deep (line {node.start_mark.line + 1})")
        if id(node) in open_nodes:
            raise yaml.YAMLError(f"an alias refers to a value that contains it (line {node.start_mark.line + 1})")
        open_nodes.add(id(node))
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def _read_yaml(text: str) -> Any:
    """``text`` read with :class:`UniqueKeyLoader` (a SafeLoader subclass: no arbitrary objects), once its
    node graph is known to expand to at most :data:`MAX_YAML_VALUES` values; problems are YAMLErrors."""
    loader = UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _yaml_size(node)
        if size > MAX_YAML_VALUES:
            raise yaml.YAMLError(f"its aliases expand to {size:,} values, more than any config holds (limit "
                                 f"{MAX_YAML_VALUES:,})")
        return loader.construct_document(node)
    except RecursionError:
        raise yaml.YAMLError(f"nested more than {MAX_NESTING} levels deep") from None
    finally:
        loader.dispose()


def yaml_value(text: str) -> Any:
    """One value written as YAML (a ``--set`` value), read as config files are."""
    return _read_yaml(text)


#: the largest config, record or annotation file read as text (a tissue annotation GeoJSON of a whole slide is
#: a few MiB; a larger "config" is a wrong file)
MAX_TEXT_BYTES = 256 * 2**20


def read_text_file(path: Path, what: str) -> str:
    """The UTF-8 text of a file the user gives or may edit; unreadable or not UTF-8 is one InputError naming it,
    as is something that is no regular file (a device or pipe would be read, or waited on, forever) or a file
    larger than :data:`MAX_TEXT_BYTES` (no config or record is; reading it whole could exhaust memory)."""
    problem = not_a_file(path)
    if problem is not None and path.exists():
        raise InputError(path, f"cannot read {what}: {problem}")
    try:
        size = path.stat().st_size
        if size > MAX_TEXT_BYTES:
            raise InputError(path, f"cannot read {what}: {size:,} bytes is more than any {what} holds (limit "
                                   f"{MAX_TEXT_BYTES // 2**20} MiB)")
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(path, f"cannot read {what} ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise InputError(path, f"unreadable {what}: not a UTF-8 text file (byte {exc.start})") from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing, unreadable, empty or non-mapping file is an :class:`InputError` (an
    empty file is more often a truncated or wrong one than a wish for every default)."""
    path = Path(path)
    text = read_text_file(path, "config")
    try:
        data = _read_yaml(text)
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
    override (``overridden``: dotted key → how the user gave it, e.g. ``--set epochs=x``). A check across keys
    (:func:`key_error`, :class:`ConfigKeyError`) is blamed on the override of any key it involves.

    User config is validated as JSON in pydantic's strict mode: ``"3"`` is not an integer, ``2.0`` not an
    integer, ``true`` not a number nor ``1`` a boolean (the lax mode casts each silently), while a path
    or a tuple is still written as a string or a list, as YAML and JSON have no such types. The model
    remembers ``source`` and ``overridden`` (:func:`config_source`), for problems found only later."""
    try:
        data = model.prepare_input(data)
    except ConfigKeyError as exc:
        raise InputError(override_of(exc.keys, overridden) or source, exc.problem) from None
    except InputError as exc:
        raise InputError(source, exc.problem) from None
    bad = _undecodable_at(data)
    if bad is not None:  # a path with bytes that are not UTF-8: refused naming the key, not as broken JSON
        key, value = bad
        raise InputError(override_of([key], overridden) or source, f"config key '{key}': '{value}' is not valid UTF-8 "
                                                                   "(a file name with undecodable bytes?); rename it")
    try:
        text = json.dumps(data, default=_as_json, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise InputError(source, f"config holds a value that is not plain data ({exc})") from None
    try:
        parsed = model.model_validate_json(text, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(p) for p in first["loc"]]
        keys = [".".join(loc)] if loc else []
        if first["type"] == KEY_ERROR:  # a check across keys: the keys it names, under the model that checked
            keys = [".".join([*loc, key]) for key in first["ctx"]["keys"]]
        if not keys:
            what = "config"  # a check across keys that names none
        elif len(keys) == 1:
            what = f"config key '{keys[0]}'"
        else:
            what = "config keys " + ", ".join(f"'{k}'" for k in keys)
        message = first["msg"].removeprefix("Value error, ")
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise InputError(override_of(keys, overridden) or source, f"{what}: {message}{more}") from None
    _remember(parsed, source, overridden)
    return parsed


def _undecodable_at(data: Any, key: str = "") -> tuple[str, str] | None:
    """The dotted key and shown value of the first string (or path) in ``data`` that is not valid UTF-8."""
    from cellprobe.atomic import shown, undecodable

    if isinstance(data, dict):
        items: Iterable[tuple[Any, Any]] = data.items()
    elif isinstance(data, list | tuple):
        items = enumerate(data)
    else:
        return (key, shown(str(data))) if isinstance(data, str | Path) and undecodable(str(data)) else None
    for k, v in items:
        found = _undecodable_at(v, f"{key}.{k}" if key else str(k))
        if found is not None:
            return found
    return None


def override_of(keys: Sequence[str], overridden: Mapping[str, str] | None) -> str | None:
    """How the user gave the first override that set one of the dotted ``keys`` (the key itself, a section
    above it or a key below it), None when none did."""
    return next((how for key, how in (overridden or {}).items() for where in keys
                 if where and (where == key or where.startswith(f"{key}.") or key.startswith(f"{where}."))), None)


# where each parsed model came from: id → (source, overridden); a side table, not private attributes, since
# pydantic compares those too (a run's stored config must equal the same config given on the command line)
_ORIGINS: dict[int, tuple[str | None, dict[str, str]]] = {}


def _remember(parsed: BaseModel, source: str | Path | None, overridden: Mapping[str, str] | None) -> None:
    key = id(parsed)
    try:  # the entry leaves with the model (its id may be reused)
        weakref.finalize(parsed, _ORIGINS.pop, key, None)
    except TypeError:  # a model that takes no weak references: its origin is not kept
        return
    _ORIGINS[key] = (None if source is None else str(source), dict(overridden or {}))


def config_origin(model: BaseModel) -> tuple[str | None, dict[str, str]]:
    """``(source, overridden)`` that :func:`parse_config` was given for ``model`` (``(None, {})`` for a model
    made otherwise)."""
    return _ORIGINS.get(id(model), (None, {}))


def config_source(model: BaseModel, *keys: str) -> str | None:
    """Where the user gave the dotted ``keys`` of ``model``: the override that set one of them, else the file
    it was read from; None when unknown (a model built in code)."""
    source, overridden = config_origin(model)
    return override_of(keys, overridden) or source


_CONFIG_KEY = re.compile(r"^config keys? '([^']+)'")


@contextlib.contextmanager
def keys_attributed(model: BaseModel) -> Iterator[None]:
    """An :class:`InputError` raised inside that names no file but a key of ``model`` (``config key 'a.b': ...``:
    a problem only found after validation, against the data or the encoder) is re-raised naming where the user
    gave that key (:func:`config_source`): the override that set it, or the config file."""
    try:
        yield
    except InputError as exc:
        match = _CONFIG_KEY.match(exc.problem) if exc.path is None else None
        where = config_source(model, match.group(1)) if match else None
        if where is None:
            raise
        raise InputError(where, exc.problem) from None


def differing_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The dotted keys at which two nested mappings differ (a value, or a key only one has), sorted."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out += differing_keys(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [prefix.rstrip(".")]


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


def plain_data(cfg: BaseModel) -> dict[str, Any]:
    """``cfg`` as plain data (JSON's types), but for integer mapping keys, which stay integers (JSON, and
    ``model_dump(mode="json")``, make them strings, which strict parsing of user config refuses as keys of
    integers, e.g. ``lr_steps``' epochs): what a round trip through :func:`parse_config` or YAML needs."""
    return _int_keys_kept(cfg.model_dump(mode="json"), cfg.model_dump())


def _int_keys_kept(as_json: Any, as_python: Any) -> Any:
    if isinstance(as_json, dict) and isinstance(as_python, dict) and len(as_json) == len(as_python):
        return {(p if isinstance(p, int) and not isinstance(p, bool) else j): _int_keys_kept(jv, pv)
                for (j, jv), (p, pv) in zip(as_json.items(), as_python.items(), strict=True)}
    if isinstance(as_json, list) and isinstance(as_python, list | tuple) and len(as_json) == len(as_python):
        return [_int_keys_kept(j, p) for j, p in zip(as_json, as_python, strict=True)]
    return as_json


def dump_config(cfg: BaseModel) -> str:
    """The resolved config as YAML (what a run folder stores); integer mapping keys stay integers where the model
    says so (:attr:`StrictModel.dump_int_keys`)."""
    keep = isinstance(cfg, StrictModel) and cfg.dump_int_keys
    return yaml.safe_dump(plain_data(cfg) if keep else cfg.model_dump(mode="json"), sort_keys=False)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` of :func:`read_json`: a JSON object, refusing a key given twice."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """A JSON file a user could edit (a run's ``run.json`` or ``postprocess.json``, a manifest), read strictly:
    a key given twice in one object is refused (plain ``json.loads`` keeps the last silently), as are unreadable,
    non-UTF-8 and invalid files; each problem is one :class:`InputError` naming ``path`` (``what`` names the
    file's role, e.g. ``"run stamp"``). A missing file is an InputError too: a caller to whom it is no error
    checks first."""
    path = Path(path)
    text = read_text_file(path, what)
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs)
    except _DuplicateKey as exc:
        raise InputError(path, f"unreadable {what}: key {exc.key!r} is given twice in one object") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"unreadable {what}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except RecursionError:
        raise InputError(path, f"unreadable {what}: lists or objects nested too deeply to read (a damaged file?)") \
            from None
    except ValueError:  # a whole number of more digits than Python converts (4,300)
        raise InputError(path, f"unreadable {what}: holds a whole number of thousands of digits (a damaged "
                               "file?)") from None
