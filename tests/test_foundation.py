"""The package's foundations: bad input → one line and exit 2; atomic writes; strict configs."""

from __future__ import annotations

import json

import pytest

from cellprobe import atomic
from cellprobe.config import StrictModel, load_config, with_overrides
from cellprobe.errors import InputError


class _Cfg(StrictModel):
    size: int = 256
    name: str = "x"


def test_atomic_write_json_replaces_and_maps_nan(tmp_path):
    path = tmp_path / "sub" / "r.json"
    atomic.write_json(path, {"a": float("nan"), "b": [1.5, float("nan")]})
    assert json.loads(path.read_text()) == {"a": None, "b": [1.5, None]}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temporary left behind


def test_atomic_write_keeps_old_file_when_interrupted(tmp_path):
    path = tmp_path / "r.txt"
    atomic.write_text(path, "old")
    with pytest.raises(RuntimeError), atomic.atomic_open(path, "w") as handle:
        handle.write("half")
        raise RuntimeError("killed")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.txt"]


def test_config_rejects_unknown_key_naming_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("size: 128\nsiez: 3\n")
    with pytest.raises(InputError) as err:
        load_config(_Cfg, path)
    assert str(path) in str(err.value) and "siez" in str(err.value)


def test_config_overrides_and_types(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("size: 128\n")
    assert load_config(_Cfg, path, {"name": "y"}) == _Cfg(size=128, name="y")
    with pytest.raises(InputError, match="size"):
        load_config(_Cfg, path, {"size": "big"})


def test_overrides_apply_dotted_keys_to_a_copy():
    data = {"a": {"b": 1, "list": [1, 2]}, "c": 0}
    value = {"x": [1]}
    out = with_overrides(data, {"a.b": 2, "d.e": value, "d.e.y": 3, "c": 5})
    assert out == {"a": {"b": 2, "list": [1, 2]}, "c": 5, "d": {"e": {"x": [1], "y": 3}}}
    out["a"]["list"].append(3)
    out["d"]["e"]["x"].append(2)
    assert data == {"a": {"b": 1, "list": [1, 2]}, "c": 0} and value == {"x": [1]}  # inputs untouched
    assert with_overrides(data) == data and with_overrides(data) is not data
    with pytest.raises(InputError, match="'c' is not a mapping"):
        with_overrides(data, {"c.d": 1})


def test_cli_version(cli):
    rc, out, _ = cli("--version")
    assert rc == 0 and out.startswith("cellprobe ")


def test_cli_usage_error_is_one_message_exit_2(cli):
    rc, out, err = cli("score", "--format", "nope", "--true", "a.npy", "--pred", "b.npy")
    assert rc == 2
    assert "Traceback" not in out + err and "nope" in err
