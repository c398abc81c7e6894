import copy
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from cellprobe.config import with_overrides
from cellprobe.errors import InputError
from cellprobe.run.train_config import TrainConfig, TrainSettings, train_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs" / "train").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_parse(path):
    cfg = train_config(path)
    assert isinstance(cfg, TrainConfig)


def test_dict_with_dotted_keys_and_overrides():
    base = {"output": "r", "encoder": {"name": "x"}, "data": {"path": "d"}, "trainer.threads": 2}
    cfg = train_config(base, {"epochs": 3, "loss.types_ce": 0.5})
    assert cfg.trainer.threads == 2 and cfg.epochs == 3 and cfg.loss.types_ce == 0.5
    assert cfg.feature_cache_dir() == Path("r") / "feature_cache"


def test_a_mappings_dotted_keys_come_after_its_plain_keys_and_it_is_not_modified():
    base = {"trainer.threads": 2, "output": "r", "encoder": {"name": "x"}, "data": {"path": "d"},
            "trainer": {"progress": False}}
    before = copy.deepcopy(base)
    cfg = train_config(base, {"data.val_fraction": 0.5})
    assert cfg.trainer.threads == 2 and cfg.trainer.progress is False and cfg.data.val_fraction == 0.5
    assert base == before


def test_settings_are_the_config_without_what_names_a_run():
    assert set(TrainConfig.model_fields) - set(TrainSettings.model_fields) == {"output", "seed", "cache_dir",
                                                                               "refit_of"}
    settings = TrainSettings.model_validate({"epochs": 2, "encoder": {"input_scale": 2.0},
                                             "data": {"val_fraction": 0.1, "split_seed": 1}})
    assert settings.encoder.input_scale == 2.0 and settings.data.split_seed == 1
    for named in ({"encoder": {"name": "x"}}, {"data": {"path": "d"}}, {"seed": 1}):
        with pytest.raises(ValidationError):
            TrainSettings.model_validate(named)
    with pytest.raises(ValidationError, match="lr_steps"):
        TrainSettings.model_validate({"lr": 0.1, "lr_steps": {0: 0.2}})


def test_typos_and_bad_values_are_input_errors(tmp_path):
    base = {"output": "r", "encoder": {"name": "x"}, "data": {"path": "d"}}
    with pytest.raises(InputError, match="epohcs"):
        train_config({**base, "epohcs": 3})
    with pytest.raises(InputError, match="val_fraction"):
        train_config(base, {"data.val_fraction": 1.5})
    bad = tmp_path / "c.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(InputError, match="mapping"):
        train_config(bad)


def test_encoder_input_scale_reaches_the_built_encoder():
    from cellprobe.run.network import build_encoder

    base = {"output": "r", "encoder": {"name": "efficientnet-lite0", "weights": "random"}, "data": {"path": "d"}}
    encoder = build_encoder(train_config(base, {"encoder.input_scale": 2.0}))
    assert encoder.input_scale == 2.0 and encoder.tap_strides == (2, 4, 8, 16)
    with pytest.raises(InputError, match="input_scale"):
        train_config(base, {"encoder.input_scale": 8})


@pytest.mark.parametrize("key,value,problem", [("batch_size", True, "valid integer"), ("epochs", "3", "valid integer"),
                                               ("seed", 2.0, "valid integer"), ("lr", True, "valid number"),
                                               ("cache_features", 1, "valid boolean"),
                                               ("trainer.progress", "yes", "valid boolean")])
def test_user_config_is_strictly_typed(tmp_path, key, value, problem):
    """Pydantic's lax mode would cast each of these silently (true → 1, "3" → 3, 2.0 → 2, 1 → true)."""
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"output": "r", "encoder": {"name": "x"}, "data": {"path": "d"}}))
    with pytest.raises(InputError, match=f"{key}.*{problem}") as err:
        train_config(path, {key: value})
    assert err.value.path == f"--set {key}"  # where the user gave the value
    path.write_text(yaml.safe_dump(with_overrides({"output": "r", "encoder": {"name": "x"}, "data": {"path": "d"}},
                                                  {key: value})))
    with pytest.raises(InputError, match=f"{key}.*{problem}") as err:
        train_config(path)
    assert err.value.path == str(path)


def test_paths_tuples_and_epoch_keys_are_still_written_as_yaml_writes_them(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("output: r\nencoder: {name: x}\ndata: {path: d, val_fraction: 0}\nlr: 0.01\n"
                    "lr_steps: {0: 0.01, 5: 0.001}\ndecoder.pyramid_channels: [8, 8, 16, 16]\n")
    cfg = train_config(path)
    assert cfg.lr_steps == {0: 0.01, 5: 0.001} and cfg.decoder.pyramid_channels == (8, 8, 16, 16)
    assert str(cfg.data.path) == "d"


def test_the_encoders_fit_is_chosen_in_the_config_and_reaches_the_encoder():
    from cellprobe.run.network import build_encoder, encoder_build_key

    base = {"output": "r", "encoder": {"name": "efficientnet-lite0", "weights": "random"}, "data": {"path": "d"}}
    default = train_config(base)
    assert default.encoder.fit is None and build_encoder(default).fit == "native"
    vit = {**base, "encoder": {"name": "vit-b16", "weights": "random"}}
    assert encoder_build_key(train_config(vit, {"encoder.fit": "pad"})) != encoder_build_key(train_config(vit))
    # the fifteenth probe: a CNN takes images as they are; pad or resize changed only its identity (and cache)
    for fit in ("pad", "resize"):
        with pytest.raises(InputError, match=f"takes images as they are .*fit '{fit}' would change nothing"):
            build_encoder(train_config(base, {"encoder.fit": fit}))
    with pytest.raises(InputError, match="model-card fit"):  # Lite0 has no model card to follow
        build_encoder(train_config(base, {"encoder.fit": "card"}))
    with pytest.raises(InputError, match=r"encoder\.fit"):
        train_config(base, {"encoder.fit": "stretch"})


BASE = {"output": "r", "encoder": {"name": "x"}, "data": {"path": "d"}}


def _file(tmp_path, changes: dict | None = None, **more) -> Path:
    """train.yaml: BASE with dotted ``changes`` and keyword ``more``."""
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(with_overrides(BASE, {**(changes or {}), **more})))
    return path


@pytest.mark.parametrize("value", [8.0, 1.0, True, "8"])
def test_cache_views_is_the_integer_1_or_8(tmp_path, value):
    """A Literal[1, 8] takes 8.0 and true in strict JSON mode (equal values): the field is an integer."""
    with pytest.raises(InputError, match="config key 'cache_views'") as err:
        train_config(_file(tmp_path), {"cache_views": value})
    assert err.value.path == "--set cache_views"
    with pytest.raises(InputError, match="config key 'cache_views': Input should be 1 or 8"):
        train_config(_file(tmp_path), {"cache_views": 4})
    assert train_config(_file(tmp_path), {"cache_views": 1}).cache_views == 1


@pytest.mark.parametrize("steps", ["{0: 0.001, '1': 0.0005}", "{'0': 0.001}", "{0: 0.001, 1.0: 0.0005}",
                                   "{0: 0.001, true: 0.0005}"])
def test_lr_steps_epochs_are_integers_as_written(tmp_path, steps):
    """JSON makes every key a string, so the raw mapping is checked: '1' and 1.0 are not epochs."""
    value = yaml.safe_load(steps)
    with pytest.raises(InputError, match=r"config key 'lr_steps': epoch .* is not an integer") as err:
        train_config(_file(tmp_path), {"lr_steps": value})
    assert err.value.path == "--set lr_steps"
    path = tmp_path / "steps.yaml"
    path.write_text(yaml.safe_dump(BASE) + f"lr_steps: {steps}\n")
    with pytest.raises(InputError, match="is not an integer") as err:
        train_config(path)
    assert err.value.path == str(path)


def test_a_runs_stored_config_round_trips_with_integer_epochs(tmp_path):
    """config.yaml keeps the epochs integers (it reads back as user config); one written before, with quoted
    epochs, still opens as a run's config (parse_config, as run_folder.read_config reads it)."""
    from cellprobe.config import dump_config, load_yaml, parse_config

    cfg = train_config(BASE, {"lr": 0.01, "epochs": 9, "lr_steps": {0: 0.01, 5: 0.001}})
    path = tmp_path / "config.yaml"
    path.write_text(dump_config(cfg))
    assert "\n  5: 0.001" in path.read_text()
    assert train_config(path) == cfg and train_config(cfg) == cfg
    old = load_yaml(path)
    old["lr_steps"] = {"0": 0.01, "5": 0.001}  # what dump_config wrote before
    assert parse_config(TrainConfig, old, path) == cfg


def test_an_lr_step_past_the_last_epoch_is_refused_naming_the_override(tmp_path):
    path = _file(tmp_path, lr=0.01, lr_steps={0: 0.01, 5: 0.001})
    assert train_config(path).epochs == 40
    with pytest.raises(InputError, match="config keys 'lr_steps', 'epochs': lr_steps gives a rate from epoch 5") as err:
        train_config(path, {"epochs": 5})
    assert err.value.path == "--set epochs"  # the file's lr_steps are fine until epochs is lowered
    with pytest.raises(InputError, match="epoch 40") as err:
        train_config(_file(tmp_path, lr=0.01, lr_steps={0: 0.01, 40: 0.001}))
    assert err.value.path == str(tmp_path / "train.yaml")


@pytest.mark.parametrize("splits, shown", [
    ({"data.val_split": "train"}, "config keys 'data.val_split', 'data.train_split': val_split 'train' is also"),
    ({"data.train_split": None, "data.val_split": "val"}, "config keys 'data.train_split', 'data.val_split': "
                                                           "train_split null trains on every image")])
def test_validation_on_the_training_images_is_refused(tmp_path, splits, shown):
    """The fifteenth probe: ``--set data.val_split=train`` trained, picked best.ckpt and later tuned on the
    very patches it trained on."""
    with pytest.raises(InputError, match=shown) as err:
        train_config(_file(tmp_path), splits)
    assert err.value.path.startswith("--set data.")
    assert train_config(_file(tmp_path), {"data.val_split": "val"}).data.val_split == "val"


def test_a_plateau_floor_not_below_the_rate_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"plateau.min_lr 0.001 is not below lr 0.001") as err:
        train_config(_file(tmp_path), {"plateau.min_lr": 0.001})
    assert err.value.path == "--set plateau.min_lr"
    with pytest.raises(InputError, match=r"plateau.min_lr") as err:
        train_config(_file(tmp_path, plateau={"min_lr": 1e-4}), {"lr": 1e-5})
    assert err.value.path == "--set lr"
    # with lr_steps the plateau is not used: its floor does not matter
    assert train_config(_file(tmp_path), {"lr": 1e-6, "lr_steps": {0: 1e-6}}).plateau.min_lr == 1e-6


@pytest.mark.parametrize("key", ["loss.class_weights", "loss.semantic_weights"])
@pytest.mark.parametrize("weights,problem", [([-1, 1, 1], "be >= 0"), ([0, 0, 0], "not all be 0"),
                                             ([0.0, -0.5, 2.0], "be >= 0")])
def test_loss_class_weights_are_not_negative_nor_all_zero(tmp_path, key, weights, problem):
    with pytest.raises(InputError, match=f"config key '{key}': weights must {problem}") as err:
        train_config(_file(tmp_path), {key: weights})
    assert err.value.path == f"--set {key}"
    assert train_config(_file(tmp_path), {key: [0.0, 1.0, 2.0]})  # leaving a class out is allowed


def test_a_check_across_keys_names_the_override_that_broke_it(tmp_path):
    """A model validator's error names its keys, so an override of one of them is blamed, not the file."""
    path = _file(tmp_path, {"data.val_fraction": 0.0}, lr_steps={0: 0.001})
    with pytest.raises(InputError, match=r"config keys 'lr_steps', 'data.val_fraction'.*needs lr_steps") as err:
        train_config(path, {"lr_steps": None})
    assert err.value.path == "--set lr_steps"
    with pytest.raises(InputError, match="same value") as err:
        train_config(path, {"lr": 0.01})
    assert err.value.path == "--set lr"


def test_a_trainconfig_remembers_where_its_keys_were_given(tmp_path):
    from cellprobe.config import config_source

    path = _file(tmp_path)
    cfg = train_config(train_config(path, {"epochs": 3}))  # a round trip (train() gets a TrainConfig) keeps it
    assert config_source(cfg, "epochs") == "--set epochs" and config_source(cfg, "lr") == str(path)
    assert config_source(train_config(BASE), "lr") is None


def _trainer(**settings):
    from cellprobe.run.train_config import TrainerSection

    return TrainerSection.model_validate(settings)


def test_the_machine_is_checked_for_devices_and_workers(monkeypatch):
    import sys

    T = sys.modules["cellprobe.run.train_config"]  # the package re-exports the function of the same name
    monkeypatch.setattr(T, "usable_cores", lambda: 2)
    T.check_machine(_trainer(accelerator="cpu", devices=2, num_workers=2))
    with pytest.raises(InputError, match=r"config key 'trainer.devices': 8 devices, but this machine has 2 usable"):
        T.check_machine(_trainer(accelerator="cpu", devices=8))
    with pytest.raises(InputError, match=r"config key 'trainer.num_workers': 1000 .* \(at most 8: 4 per core\)"):
        T.check_machine(_trainer(num_workers=1000))
    T.check_machine(_trainer(threads=8))
    with pytest.raises(InputError, match=r"config key 'trainer.threads': 100000 torch threads, .*\(at most 8"):
        T.check_machine(_trainer(threads=100000))
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    T.check_machine(_trainer(accelerator="gpu", devices=1))
    with pytest.raises(InputError, match=r"'trainer.devices': 2 devices, but this machine has 1 GPUs"):
        T.check_machine(_trainer(accelerator="cuda", devices=2))
    T.check_machine(_trainer(accelerator="gpu", devices="auto"))


@pytest.mark.parametrize(("overrides", "key", "problem"), [
    ({"augment.elastic.p": 0.5}, "augment.elastic.p", "applies only with cache_features: false"),
    ({"augment.stain.space": "nissl", "augment.blur.p": 0.0}, "augment.blur.p", "applies only with cache_features"),
    ({"cache_features": False, "cache_views": 1}, "cache_views", "applies only with cache_features: true"),
    ({"cache_features": False, "augment.stain.nissl_vector": [0.0, 0.0, 0.0]}, "nissl_vector", "not all 0"),
    ({"cache_features": False, "augment.stain.nissl_vector": [0.5, -0.1, 0.4]}, "nissl_vector", "values >= 0"),
    ({"cache_features": False, "augment.noise.std": [0.2, 0.1]}, "augment.noise.std", "low <= high"),
    ({"cache_features": False, "augment.color.brightness": 1.5}, "augment.color.brightness", "less than 1"),
])
def test_augmentation_that_would_change_nothing_or_break_images_is_refused(overrides, key, problem):
    """The thirteenth probe: augment.* was accepted in cached mode, where it does nothing (and cache_views in
    online mode), and nissl_vector [0, 0, 0] turned every stain-perturbed image black through NaN, exit 0."""
    base = {"output": "r", "encoder": {"name": "efficientnet-lite0", "weights": "random"}, "data": {"path": "d"}}
    with pytest.raises(InputError, match=problem) as err:
        train_config(base, overrides)
    assert key in str(err.value)
    for same in ({"cache_features": False, "augment.elastic.p": 0.5}, {"cache_views": 1},
                 {"augment.elastic.p": 0.2}):  # options of the mode trained, or defaults: fine
        train_config(base, same)


@pytest.mark.parametrize(("override", "problem"), [
    ({"lr": 1e300}, r"config key 'lr'.*less than or equal to 1"),  # the 28th probe's sibling: a traceback
    ({"lr": 2.0}, r"config key 'lr'.*less than or equal to 1"),  # inside AdamW's step (float overflow)
    ({"lr_steps": {0: 1e300}, "lr": 1e-3}, r"config key 'lr_steps'.*at most 1"),
    ({"weight_decay": 1e300}, r"config keys 'weight_decay', 'lr': weight_decay 1e\+300 times the learning rate "
                              r"0.001 is not below 1"),
    ({"weight_decay": 2.0, "lr": 0.5}, r"config keys 'weight_decay', 'lr': .* is not below 1"),
])
def test_learning_rates_and_decay_that_only_diverge_are_refused(override, problem):
    base = {"output": "r", "encoder": {"name": "x"}, "data": {"path": "d"}}
    with pytest.raises(InputError, match=problem):
        train_config(base, override)
    assert train_config(base, {"lr": 1.0, "weight_decay": 0.5}).lr == 1.0  # the edges are allowed


def test_a_time_budget_past_what_a_timer_holds_is_refused():
    """The 28th probe: trainer.max_minutes=1e13 was an OverflowError traceback inside Lightning's timer (a
    timedelta), with the run folder made."""
    base = {"output": "r", "encoder": {"name": "x"}, "data": {"path": "d"}}
    with pytest.raises(InputError, match=r"--set trainer.max_minutes: .*less than or equal to 10000000"):
        train_config(base, {"trainer.max_minutes": 1e13})
    assert train_config(base, {"trainer.max_minutes": 1e7}).trainer.max_minutes == 1e7
