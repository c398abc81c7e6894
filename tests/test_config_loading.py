"""User config files: UTF-8, no key given twice, no infinite or NaN setting; JSON results never hold Infinity."""

from __future__ import annotations

import json

import pytest
import yaml

from cellprobe import atomic
from cellprobe.config import load_yaml
from cellprobe.errors import InputError
from cellprobe.run.train_config import train_config


def test_a_key_given_twice_is_refused_with_its_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 1\ntrainer: {threads: 1}\nepochs: 2\n")
    with pytest.raises(InputError, match=r"'epochs' is given twice \(line 3\)"):
        load_yaml(path)


@pytest.mark.parametrize("text", ["? [a, b]\n: 1\n", "trainer: {[a]: 1}\n", "? {a: 1}\n: 2\n"])
def test_a_list_or_mapping_as_a_key_is_refused_with_its_line(tmp_path, text):
    """The tenth probe: a TypeError traceback (unhashable key) from a file or a --set value."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=r"a key must be a name, not a (list|dict) \(line 1\)") as err:
        load_yaml(path)
    assert str(path) in str(err.value)


def test_a_file_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\xff\xfeepochs: 1\n")
    with pytest.raises(InputError, match="not a UTF-8 text file") as err:
        load_yaml(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_an_empty_config_is_refused_naming_it(tmp_path, text):
    """An empty file is more often truncated or the wrong one than a wish for every default."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match="holds no settings") as err:
        load_yaml(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("text", ["lr: .inf", "lr: .nan", "loss: {class_weights: [.nan, 1, 1]}"])
def test_infinite_or_nan_settings_are_refused(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(f"output: r\nencoder: {{name: x}}\ndata: {{path: d}}\n{text}\n")
    with pytest.raises(InputError, match="finite number"):
        train_config(path)


def test_json_results_hold_no_infinity(tmp_path):
    atomic.write_json(tmp_path / "r.json", {"best": float("inf"), "worst": float("-inf"), "nan": float("nan")})
    assert json.loads((tmp_path / "r.json").read_text()) == {"best": None, "worst": None, "nan": None}


def test_exponent_floats_are_numbers_as_in_yaml_1_2(tmp_path):
    """PyYAML reads 1e-3 as the string '1e-3' (YAML 1.1), which strict typing would refuse with a puzzling
    'valid number' message: config files and --set values read it as the number a user meant."""
    from cellprobe.cli.options import parse_sets
    from cellprobe.config import load_config
    from cellprobe.run.train_config import TrainSettings

    path = tmp_path / "train.yaml"
    path.write_text("lr: 1e-3\nweight_decay: 5E-5\n")
    cfg = load_config(TrainSettings, path, parse_sets(["lr=2e-4"]))
    assert cfg.lr == 2e-4 and cfg.weight_decay == 5e-5
    assert parse_sets(["name='1e-3'"]) == {"name": "1e-3"}  # quoted: still a string


@pytest.mark.parametrize(("text", "value"), [
    ("+.5", 0.5), ("-.5", -0.5), (".5", 0.5), ("1.", 1.0), ("+1.5E+2", 150.0), ("2E3", 2000.0), ("12", 12),
])
def test_every_yaml_1_2_float_spelling_is_a_number(text, value):
    """YAML 1.2 reads +.5 and -.5 as numbers; PyYAML gave strings, and strict typing refused a valid value."""
    from cellprobe.config import UniqueKeyLoader

    read = yaml.load(f"x: {text}\n", Loader=UniqueKeyLoader)["x"]
    assert read == value and type(read) is type(value)


@pytest.mark.parametrize(("text", "reading"), [
    ("epochs: 010\n", "8: octal"), ("seed: 0x10\n", "16"), ("seed: 0b11\n", "3"), ("seeds: [010]\n", "8"),
])
def test_yaml_1_1_octal_hex_and_binary_numbers_are_refused_not_cast(tmp_path, text, reading):
    """PyYAML (YAML 1.1) read 010 as 8, 0x10 as 16: a number cast without a word. Plain decimals only; the
    refusal names the file and the value, in a config file and in --set."""
    from cellprobe.cli.options import parse_sets

    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match="is not a plain decimal number") as err:
        load_yaml(path)
    assert err.value.path == str(path) and reading in err.value.problem
    key, _, value = text.strip().partition(": ")
    with pytest.raises(InputError, match=f"--set {key}: value is not valid YAML"):
        parse_sets([f"{key}={value}"])
    assert parse_sets([f"{key}='{value}'"]) == {key: value.strip("'")}  # quoted: a string, for strict typing


def test_base_60_and_underscored_numbers_stay_strings_as_in_yaml_1_2(tmp_path):
    """YAML 1.1 read 1:30 as 90 and 1_000 as 1000; YAML 1.2 (and cellprobe) reads strings, so a walltime
    8:00:00 is one, and a number key refuses them by strict typing, naming the key."""
    from cellprobe.cli.options import parse_sets

    path = tmp_path / "c.yaml"
    path.write_text("walltime: 8:00:00\nepochs: 1:30\nsize: 1_000\nlr: 1_0.5\n")
    assert load_yaml(path) == {"walltime": "8:00:00", "epochs": "1:30", "size": "1_000", "lr": "1_0.5"}
    with pytest.raises(InputError, match="config key 'epochs'"):
        train_config({"output": str(tmp_path / "r"), "data": {"path": str(tmp_path)},
                      "encoder": {"name": "efficientnet-lite0"}}, parse_sets(["epochs=1:30"]))


def test_dates_stay_strings_as_in_yaml_1_2(tmp_path):
    """A name that looks like a date (a bench named 2024-05-01) was read as a date, refused as 'not plain data'."""
    path = tmp_path / "c.yaml"
    path.write_text("name: 2024-05-01\nflag: yes\nseeds: [0, -1, +2]\n")
    assert load_yaml(path) == {"name": "2024-05-01", "flag": "yes", "seeds": [0, -1, 2]}


@pytest.mark.parametrize("text,problem", [
    ('{"fg_threshold": 0.5, "fg_threshold": 0.6}', "key 'fg_threshold' is given twice"),
    ('{"info": {"mpp": 0.5, "mpp": 0.25}}', "key 'mpp' is given twice"),
    ('{"a": 1,}', "not valid JSON"),
])
def test_read_json_refuses_a_key_given_twice(tmp_path, text, problem):
    """Plain json.loads keeps the last of two equal keys silently; read_json names the key and the file."""
    from cellprobe.config import read_json

    path = tmp_path / "postprocess.json"
    path.write_text(text)
    with pytest.raises(InputError, match=f"unreadable post-processing parameters: {problem}") as err:
        read_json(path, "post-processing parameters")
    assert err.value.path == str(path)
    path.write_text('{"fg_threshold": 0.5, "nested": {"fg_threshold": 0.6}}')  # one key per object
    assert read_json(path)["nested"] == {"fg_threshold": 0.6}
    with pytest.raises(InputError, match="cannot read") as err:
        read_json(tmp_path / "missing.json")


def test_checks_across_keys_are_blamed_on_the_override_of_one_of_their_keys(tmp_path):
    from pydantic import model_validator

    from cellprobe.config import ConfigKeyError, StrictModel, key_error, load_config

    class Inner(StrictModel):
        low: int = 0
        high: int = 1

        @model_validator(mode="after")
        def _order(self):
            if self.low >= self.high:
                raise key_error(["low", "high"], f"low {self.low} is not below high {{high}} {self.high}")
            return self

    class Outer(StrictModel):
        inner: Inner = Inner()
        name: str = "x"

        @classmethod
        def prepare_input(cls, data):
            if data.get("name") == "bad":
                raise ConfigKeyError("name", "config key 'name': bad")
            return data

    path = tmp_path / "c.yaml"
    path.write_text("inner: {low: 0, high: 5}\n")
    with pytest.raises(InputError, match=r"config keys 'inner.low', 'inner.high': low 7 is not below high \{high\} 5"
                       ) as err:
        load_config(Outer, path, {"inner.low": 7})
    assert err.value.path == "--set inner.low"
    with pytest.raises(InputError) as err:
        load_config(Outer, path, {"inner.high": 0})
    assert err.value.path == "--set inner.high"
    with pytest.raises(InputError, match="config key 'name': bad") as err:
        load_config(Outer, path, {"name": "bad"})
    assert err.value.path == "--set name"
    path.write_text("inner: {low: 5, high: 5}\n")
    with pytest.raises(InputError) as err:
        load_config(Outer, path, {"name": "y"})
    assert err.value.path == str(path)


def test_a_key_found_bad_after_validation_is_reported_where_it_was_given(tmp_path):
    from cellprobe.config import keys_attributed

    path = tmp_path / "c.yaml"
    path.write_text("output: r\nencoder: {name: x}\ndata: {path: d}\n")
    cfg = train_config(path, {"loss.class_weights": [1.0, 2.0]})
    with pytest.raises(InputError) as err, keys_attributed(cfg):
        raise InputError(None, "config key 'loss.class_weights': 2 values; needs 3")
    assert err.value.path == "--set loss.class_weights"
    with pytest.raises(InputError) as err, keys_attributed(cfg):
        raise InputError(None, "config key 'encoder.taps': too deep")
    assert err.value.path == str(path)
    with pytest.raises(InputError) as err, keys_attributed(cfg):
        raise InputError("data.npy", "config key 'encoder.taps': a file's own problem")
    assert err.value.path == "data.npy"


def _alias_bomb(levels: int = 9) -> str:
    """A few hundred bytes of YAML whose aliases expand to 9**levels values."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("text", "problem"), [
    (_alias_bomb(), r"its aliases expand to 490,329,064 values, more than any config holds \(limit 1,000,000\)"),
    ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 100 levels deep"),
    ("a: &x [1, *x]\n", "an alias refers to a value that contains it"),
    ("epochs: " + "9" * 5000 + "\n", "a whole number of 5,000 digits is beyond any setting"),
])
def test_yaml_that_would_hang_or_crash_the_reader_is_one_line(tmp_path, text, problem):
    """The twenty-third probe: a 360-byte alias bomb hung tune --grid and data check; deep nesting and a
    5,000-digit number were tracebacks (RecursionError, ValueError), also through --set."""
    import time

    from cellprobe.cli.options import parse_sets

    path = tmp_path / "c.yaml"
    path.write_text(text)
    start = time.perf_counter()
    with pytest.raises(InputError, match=problem) as err:
        load_yaml(path)
    assert err.value.path == str(path) and time.perf_counter() - start < 5
    if text.startswith("epochs"):
        with pytest.raises(InputError, match=problem):
            parse_sets([f"epochs={'9' * 5000}"])


@pytest.mark.parametrize(("text", "problem"), [
    ("[" * 100000 + "]" * 100000, "nested too deeply to read"),
    ('{"mpp": ' + "9" * 5000 + "}", "holds a whole number of thousands of digits"),
])
def test_json_that_would_crash_the_reader_is_one_line(tmp_path, text, problem):
    from cellprobe.config import read_json

    path = tmp_path / "r.json"
    path.write_text(text)
    with pytest.raises(InputError, match=problem) as err:
        read_json(path, "run stamp")
    assert err.value.path == str(path) and "\n" not in str(err.value)
