from pathlib import Path

import pytest

from cellprobe.errors import InputError
from cellprobe.training.config import TrainConfig, train_config

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
    from cellprobe.training.build import build_encoder

    base = {"output": "r", "encoder": {"name": "efficientnet-lite0", "weights": "random"}, "data": {"path": "d"}}
    encoder = build_encoder(train_config(base, {"encoder.input_scale": 2.0}))
    assert encoder.input_scale == 2.0 and encoder.tap_strides == (2, 4, 8, 16)
    with pytest.raises(InputError, match="input_scale"):
        train_config(base, {"encoder.input_scale": 8})
