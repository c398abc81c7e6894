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
    padded = train_config(base, {"encoder.fit": "pad"})
    assert build_encoder(padded).identity.fit == "pad"
    assert encoder_build_key(padded) != encoder_build_key(default)
    with pytest.raises(InputError, match="model-card fit"):  # Lite0 has no model card to follow
        build_encoder(train_config(base, {"encoder.fit": "card"}))
    with pytest.raises(InputError, match=r"encoder\.fit"):
        train_config(base, {"encoder.fit": "stretch"})
