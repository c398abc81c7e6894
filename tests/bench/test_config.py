"""The shipped benchmark presets and the demo config are valid against every module they feed."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from cellprobe.bench.bench_config import BenchConfig
from cellprobe.bench.cell import cell_config
from cellprobe.bench.matrix import expand
from cellprobe.cli.demo_cmd import demo_config_path
from cellprobe.config import load_config, parse_config
from cellprobe.errors import InputError
from cellprobe.run.train_config import TrainConfig, train_config

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
    for task in expand(cfg):
        assert isinstance(cell_config(task, Path("/tmp/run")), TrainConfig)  # the training module accepts it


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


MINIMAL = {"datasets": [{"name": "ds", "path": "/data/ds"}], "encoders": [{"name": "lite0"}]}


def _write(tmp_path, training: dict, **changes) -> Path:
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, "training": training, **changes}))
    return path


def test_the_training_section_is_the_training_configs_and_checked_at_load(tmp_path):
    cfg = load_config(BenchConfig, _write(tmp_path, {"epochs": 3, "cache_features": False, "trainer.threads": 2}))
    assert cfg.training.epochs == 3 and not cfg.training.cache_features and cfg.training.trainer.threads == 2
    for training, key in [({"epohcs": 3}, "training.epohcs"), ({"epochs": -1}, "training.epochs"),
                          ({"trainer": {"thread": 2}}, "training.trainer.thread"),
                          ({"data": {"val_fraction": 1.5}}, "training.data.val_fraction")]:
        path = _write(tmp_path, training)
        with pytest.raises(InputError, match=f"^{re.escape(f'{path}: config key')} '{re.escape(key)}'"):
            load_config(BenchConfig, path)
    with pytest.raises(InputError, match="'trainer' is not a mapping"):
        load_config(BenchConfig, _write(tmp_path, {"trainer": 3, "trainer.threads": 2}))
    with pytest.raises(InputError, match="feature_cache"):  # replaced by training.cache_features
        load_config(BenchConfig, _write(tmp_path, {}, feature_cache=True))


@pytest.mark.parametrize("training, key", [
    ({"encoder": {"name": "uni"}}, "encoder.name"), ({"encoder.weights": "random"}, "encoder.weights"),
    ({"data": {"path": "/x"}}, "data.path"), ({"data": {"format": "patches"}}, "data.format"),
    ({"data": {"options": {"mpp": 0.5}}}, "data.options"), ({"data": {"val_split": "val"}}, "data.val_split"),
    ({"data": {"train_split": "a"}}, "data.train_split"), ({"seed": 1}, "seed"), ({"output": "r"}, "output"),
    ({"cache_dir": "c"}, "cache_dir")])
def test_keys_a_cell_decides_are_refused_in_the_training_section(tmp_path, training, key):
    path = _write(tmp_path, training)
    expected = f"{path}: config key 'training': '{key}' is decided per cell"
    with pytest.raises(InputError, match=f"^{re.escape(expected)}") as err:
        load_config(BenchConfig, path)
    assert "remove it from 'training'" in str(err.value)


def test_settings_of_encoder_and_data_use_the_training_configs_keys():
    cfg = parse_config(BenchConfig, {**MINIMAL, "training": {"encoder": {"input_scale": 2.0, "taps": [1, 2]},
                                                            "data": {"val_fraction": 0.1, "split_seed": 5}}})
    run = cell_config(next(expand(cfg)), Path("/r"))
    assert run.encoder.input_scale == 2.0 and run.encoder.taps == [1, 2] and run.encoder.name == "lite0"
    assert run.data.val_fraction == 0.1 and run.split_seed == 5


def test_a_cells_training_config_is_the_section_plus_the_cells_identity(tmp_path):
    cfg = parse_config(BenchConfig, {
        "datasets": [{"name": "ds", "path": "/data/ds", "format": "patches", "options": {"mpp": 0.25},
                      "folds": [{"train_split": "f1", "val_split": None, "test_split": "f3"}]}],
        "encoders": [{"name": "lite0", "weights": ["random"]}], "seeds": [3],
        "training": {"epochs": 2, "cache_views": 1, "data": {"val_fraction": 0.1}, "trainer": {"threads": 2}}})
    task = next(expand(cfg))
    assert cell_config(task, tmp_path / "run") == train_config({
        "output": str(tmp_path / "run"), "seed": 3, "encoder": {"name": "lite0", "weights": "random"},
        "data": {"path": "/data/ds", "format": "patches", "train_split": "f1", "val_split": None,
                 "val_fraction": 0.1, "options": {"mpp": 0.25}},
        "epochs": 2, "cache_views": 1, "cache_features": True, "trainer": {"threads": 2}})
    in_bench = replace(task, bench_dir=tmp_path)  # run_bench's cells share a feature cache per encoder
    assert cell_config(in_bench, tmp_path / "run").cache_dir == in_bench.feature_cache_dir()
    assert in_bench.feature_cache_dir().parent == tmp_path / "feature_cache"
    assert cfg.training.model_dump(exclude_unset=True) == {"epochs": 2, "cache_views": 1,  # section unchanged
                                                           "data": {"val_fraction": 0.1}, "trainer": {"threads": 2}}


def test_a_fold_that_cannot_train_is_refused_at_load(tmp_path):
    no_validation = {**MINIMAL, "datasets": [{"name": "ds", "path": "/d", "folds": [{"val_split": None}]}]}
    path = _write(tmp_path, {"data": {"val_fraction": 0}},
                  datasets=[{"name": "ds", "path": "/d", "folds": [{"val_split": "v"}, {"val_split": None}]}])
    expected = (f"{path}: config keys 'training.lr_steps', 'training.data.val_fraction', "
                "'datasets.0.folds.1.val_split': datasets.0.folds.1 (dataset 'ds'): ")
    with pytest.raises(InputError, match=f"^{re.escape(expected)}.*lr_steps"):
        load_config(BenchConfig, path)
    parse_config(BenchConfig, {**no_validation, "training": {"data": {"val_fraction": 0}, "lr_steps": {0: 1e-3}}})


@pytest.mark.parametrize("name", ["../../escape", "/tmp/abs", "", ".hidden", "a/b"])
def test_a_bench_name_is_a_plain_folder_name(tmp_path, name):
    """The default output is runs/bench/<name>: a name may not lead out of it, nor be empty (the shared folder)."""
    path = _write(tmp_path, {}, name=name)
    with pytest.raises(InputError, match="config key 'name'") as err:
        load_config(BenchConfig, path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("override, problem", [
    ({"seeds": [1, 1]}, "config key 'seeds': seeds must be unique"),
    ({"encoders": [{"name": "a"}, {"name": "a"}]}, "config key 'encoders': encoder names must be unique"),
    ({"encoders": [{"name": "a", "weights": ["random", "random"]}]},
     "config key 'encoders.0.weights': encoder 'a': weights must be unique"),
    ({"encoders": [{"name": "a", "weights": ["/wa/w.pth", "/wb/W.pth"]}]},  # the twenty-fourth probe
     "config key 'encoders.0.weights': encoder 'a': two weights files share a file name"),
    ({"datasets": [{"name": "ds", "path": "/d"}, {"name": "ds", "path": "/e"}]}, "config key 'datasets': dataset names"),
    ({"datasets": [{"name": "ds", "path": "/d"}, {"name": "DS", "path": "/e"}]},
     "config key 'datasets': dataset names must be unique in any case"),
    ({"test_datasets": [{"name": "other", "path": "/o", "split": "test"},
                        {"name": "OTHER", "path": "/p", "split": "test"}]},
     "config key 'test_datasets.1.name': test_datasets: the name 'OTHER' is already used (in any case"),
    ({"training.seed": 3}, "config key 'training': 'seed' is decided per cell"),
    ({"training.encoder.name": "uni"}, "config key 'training': 'encoder.name' is decided per cell"),
    ({"training.data.val_fraction": 0.0}, "config keys 'training.lr_steps', 'training.data.val_fraction'"),
    ({"training.lr_steps": {"0": 1e-3}}, "config key 'lr_steps': epoch '0' is not an integer"),
    ({"training.cache_views": 8.0}, "config key 'training.cache_views': Input should be a valid integer"),
])
def test_a_bad_override_of_a_bench_config_is_reported_against_the_override(tmp_path, override, problem):
    """Checks across keys (duplicates, keys a cell decides, folds that cannot train) name the override that
    broke them, not the bench file that does not hold the value."""
    path = _write(tmp_path, {})
    (key,) = override
    with pytest.raises(InputError, match=re.escape(problem)) as err:
        load_config(BenchConfig, path, override)
    assert err.value.path == f"--set {key}"
    path = _write(tmp_path, {}, seeds=[2, 2])
    with pytest.raises(InputError, match="seeds must be unique") as err:
        load_config(BenchConfig, path, {"tta": 2})
    assert err.value.path == str(path)


def test_a_leaking_fold_names_its_keys(tmp_path):
    path = _write(tmp_path, {}, datasets=[{"name": "ds", "path": "/d", "folds": [{"train_split": "a"}]}])
    with pytest.raises(InputError, match=re.escape("config keys 'datasets.0.folds.0.test_split', "
                                                   "'datasets.0.folds.0.train_split': test_split 'a'")) as err:
        load_config(BenchConfig, path, {"datasets": [{"name": "ds", "path": "/d",
                                                      "folds": [{"train_split": "a", "test_split": "a"}]}]})
    assert err.value.path == "--set datasets"
    # a fold training on every image (train_split null) trains on its test split too
    with pytest.raises(InputError, match=re.escape("'datasets.0.folds.0.train_split', 'datasets.0.folds.0.test_split'"
                                                   ": train_split null trains on every image, test_split 'test'")):
        load_config(BenchConfig, _write(tmp_path, {}, datasets=[{"name": "ds", "path": "/d", "folds": [
            {"train_split": None}]}]))


def test_lr_steps_epochs_in_the_training_section_are_integers_and_survive_a_cell(tmp_path):
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(MINIMAL) + "training: {lr: 0.01, epochs: 9, lr_steps: {0: 0.01, '5': 0.001}}\n")
    with pytest.raises(InputError, match="epoch '5' is not an integer") as err:
        load_config(BenchConfig, path)
    assert err.value.path == str(path)
    cfg = load_config(BenchConfig, path, {"training.lr_steps": {0: 0.01, 5: 0.001}})
    assert cell_config(next(expand(cfg)), tmp_path / "run").lr_steps == {0: 0.01, 5: 0.001}


def test_a_loaded_bench_config_remembers_where_each_key_was_given(tmp_path):
    """For problems found after loading (an unknown encoder, checked by the runner): config_source names the
    bench file, or the --set that gave the key."""
    from cellprobe.config import config_source

    path = _write(tmp_path, {})
    cfg = load_config(BenchConfig, path, {"seeds": [4]}).resolve_paths(tmp_path)
    assert config_source(cfg, "encoders.0.name") == str(path)
    assert config_source(cfg, "seeds") == "--set seeds"
    cfg = load_config(BenchConfig, path, {"encoders": [{"name": "no-such-encoder"}]})
    assert config_source(cfg, "encoders.0.name") == "--set encoders"


@pytest.mark.parametrize(("training", "changes", "problem"), [
    ({"data": {"val_fraction": 0.3}}, {"datasets": [{"name": "ds", "path": "/d", "folds": [
        {"train_split": "train", "val_split": "val", "test_split": "test"}]}]}, "training.data.val_fraction applies only"),
    ({"data": {"split_seed": 4}}, {"datasets": [{"name": "ds", "path": "/d", "folds": [
        {"train_split": "train", "val_split": "val", "test_split": "test"}]}]}, "training.data.split_seed applies only"),
    ({}, {"tune": False, "tune_metric": "aji"}, "tune_metric applies only with tune: true"),
    ({"lr": 0.001, "lr_steps": {0: 0.001}, "plateau": {"patience": 5}}, {}, "training.plateau applies only"),
    ({"lr": 0.001, "lr_steps": {0: 0.001}, "data": {"val_fraction": 0}, "early_stopping": {"patience": 3}}, {},
     "training.early_stopping and selection.monitor apply only with validation"),
])
def test_settings_no_cell_would_use_are_refused(tmp_path, training, changes, problem):
    """The thirteenth probe: these were accepted and ignored."""
    with pytest.raises(InputError, match=problem):
        load_config(BenchConfig, _write(tmp_path, training, **changes))


def test_drawn_validation_settings_apply_where_some_fold_draws_validation(tmp_path):
    folds = [{"train_split": "train", "val_split": "val", "test_split": "test"}, {"train_split": "all", "test_split": "x"}]
    cfg = load_config(BenchConfig, _write(tmp_path, {"data": {"val_fraction": 0.3}},
                                          datasets=[{"name": "ds", "path": "/d", "folds": folds}]))
    assert cfg.training.data.val_fraction == 0.3
