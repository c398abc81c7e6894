"""The shipped benchmark presets and the demo config are valid against every module they feed."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellprobe.bench.config import BenchConfig
from cellprobe.bench.runner import expand
from cellprobe.cli.demo import demo_config_path
from cellprobe.config import load_config

ROOT = Path(__file__).resolve().parents[2]
PRESETS = sorted((ROOT / "configs" / "bench").glob("*.yaml"))
PAPER = {"convnext-b", "swinv2-b", "vit-b16", "vit-r50-b16", "dinov2-b14", "dinov2-l14", "uni", "virchow2",
         "prov-gigapath"}


@pytest.mark.parametrize("path", [*PRESETS, demo_config_path()], ids=lambda p: p.name)
def test_preset_is_valid(path):
    cfg = load_config(BenchConfig, path).resolve_paths(path.parent)
    registry = pytest.importorskip("cellprobe.encoders.registry")
    for entry in cfg.encoders:
        registry.get_spec(entry.name)  # raises on an unknown name
    training = pytest.importorskip("cellprobe.training.config")
    task = next(expand(cfg))
    from cellprobe.bench.cell import training_overrides

    training.train_config(training_overrides(task, Path("/tmp/run")))  # the training module accepts it


def test_paper_presets_hold_the_papers_encoders_and_pannuke_three_folds():
    for name in ("pannuke", "conic", "cytodark0"):
        cfg = load_config(BenchConfig, ROOT / "configs" / "bench" / f"{name}.yaml")
        assert {e.name for e in cfg.encoders} == PAPER
        assert {e.name for e in cfg.encoders if e.group == "histopathology"} == {"uni", "virchow2", "prov-gigapath"}
    pannuke = load_config(BenchConfig, ROOT / "configs" / "bench" / "pannuke.yaml")
    assert len(pannuke.datasets[0].folds) == 3
    consep = load_config(BenchConfig, ROOT / "configs" / "bench" / "consep_lite0.yaml").resolve_paths(
        ROOT / "configs" / "bench")
    assert consep.datasets[0].path == (ROOT.parent / "shared" / "data" / "consep").resolve()
    assert consep.seeds == [0, 1] and consep.encoders[0].weights == ["pretrained", "random"]
