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
