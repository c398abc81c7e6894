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


@pytest.mark.parametrize("text", ["lr: .inf", "lr: .nan", "loss: {class_weights: [.nan, 1, 1]}"])
def test_infinite_or_nan_settings_are_refused(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(f"output: r\nencoder: {{name: x}}\ndata: {{path: d}}\n{text}\n")
    with pytest.raises(InputError, match="finite number"):
        train_config(path)


def test_json_results_hold_no_infinity(tmp_path):
    atomic.write_json(tmp_path / "r.json", {"best": float("inf"), "worst": float("-inf"), "nan": float("nan")})
    assert json.loads((tmp_path / "r.json").read_text()) == {"best": None, "worst": None, "nan": None}
