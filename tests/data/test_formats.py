from __future__ import annotations

import pytest

from cellprobe.data import detect_format, fixtures, open_dataset, released_splits
from cellprobe.errors import InputError


def test_detects_every_layout(tmp_path, synth, consep_root):
    images, inst, cls = synth
    built = {
        "pannuke": fixtures.write_pannuke(tmp_path / "a", {1: 1}, size=32),
        "conic": fixtures.write_conic(tmp_path / "b", images, inst, cls, [f"s-{i}" for i in range(6)]),
        "cytodark0": fixtures.write_cytodark0(tmp_path / "c", [0], size=256),
        "monuseg": fixtures.write_monuseg(tmp_path / "d", {"test": 1}, size=64, n_nuclei=2),
        "consep": fixtures.write_consep(tmp_path / "e", {"test": 1}, size=64),
        "folder": fixtures.write_folder(tmp_path / "f", images, inst, None, [f"x{i}" for i in range(6)]),
        "patches": consep_root,
    }
    for fmt, root in built.items():
        assert detect_format(root) == fmt
        assert len(open_dataset(root, split=(released_splits(root) or [None])[0])) > 0
    assert released_splits(consep_root) == ["test", "train"]


def test_unknown_layouts_and_formats(tmp_path):
    with pytest.raises(InputError, match="cannot tell the data format"):
        detect_format(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        detect_format(tmp_path / "nope")
    with pytest.raises(InputError, match="unknown data format 'xyz'"):
        open_dataset(tmp_path, format="xyz")


def test_unknown_reader_option_is_an_error(consep_root):
    with pytest.raises(InputError, match=r"reader option 'crop_sise'.*this format's options: class_names"):
        open_dataset(consep_root, split="test", crop_sise=3)
