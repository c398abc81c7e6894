"""Fixtures of the benchmark tests: a synthetic benchmark folder and its report (built once per module)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location("cellprobe_test_synth", Path(__file__).with_name("synth.py"))
synth = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(synth)

MODELS = {"uni": 0.95, "convnext": 0.8, "vit": 0.6}
GROUPS = {"uni": "histopathology", "convnext": "general", "vit": "general"}


@pytest.fixture(scope="module")
def synthetic_bench(tmp_path_factory) -> Path:
    """Three models of known quality (uni > convnext > vit) on two datasets, two seeds each."""
    return synth.make_bench(tmp_path_factory.mktemp("bench"), MODELS, groups=GROUPS)


@pytest.fixture(scope="module")
def two_source_bench(tmp_path_factory) -> Path:
    """A clear winner (uni ≫ vit) on 8 test patches cut from only 2 source images: nothing can be shown."""
    return synth.make_bench(tmp_path_factory.mktemp("two_sources"), {"uni": 0.95, "vit": 0.6}, datasets=("alpha",),
                            seeds=(0,), n_images=8, n_sources=2, tissues=1, groups=GROUPS)


@pytest.fixture(scope="module")
def many_source_bench(tmp_path_factory) -> Path:
    """The same clear winner on 28 test patches of 14 source images (in 2 tissues): enough to show it."""
    return synth.make_bench(tmp_path_factory.mktemp("many_sources"), {"uni": 0.95, "vit": 0.6}, datasets=("alpha",),
                            seeds=(0,), n_images=28, n_sources=14, tissues=2, groups=GROUPS)
