"""User config files: UTF-8, no key given twice, no infinite or NaN setting; JSON results never hold Infinity."""

from __future__ import annotations

import json

import pytest

from cellprobe import atomic
from cellprobe.config import load_yaml
from cellprobe.errors import InputError
from cellprobe.run.train_config import train_config


def test_a_key_given_twice_is_refused_with_its_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 1\ntrainer: {threads: 1}\nepochs: 2\n")
    with pytest.raises(InputError, match=r"'epochs' is given twice \(line 3\)"):
        load_yaml(path)


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
