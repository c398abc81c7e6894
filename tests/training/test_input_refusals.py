"""train() refuses what only the encoder, the data or the machine can tell, naming where the key was given (the
config file or the --set override), before anything is made."""

from __future__ import annotations

import pytest
import yaml
from tests.training.tiny import tiny_config

from cellprobe.errors import InputError
from cellprobe.machine import usable_cores
from cellprobe.training import train


def _yaml(tmp_path, tiny_data, **changes):
    path = tmp_path / "tiny.yaml"
    cfg = tiny_config(tiny_data, tmp_path / "run", epochs=1, cache_views=1, **changes)
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("key,value,problem", [
    ("encoder.taps", [1, 1, 2, 3], "distinct increasing indices"),
    # the 29th probe: three taps were a traceback from the decoder's neck, the run folder made
    ("encoder.taps", [1, 2, 3], r"takes 4 distinct increasing indices .* got \[1, 2, 3\]"),
    ("loss.class_weights", [1.0, 1.0], "2 values; needs 3"),
    ("trainer.devices", usable_cores() + 1, "devices, but this machine has"),
    ("trainer.num_workers", 4 * usable_cores() + 1, "data-loading workers, but this machine has"),
])
def test_a_key_found_bad_at_train_time_names_its_override_or_the_file(tmp_path, tiny_data, key, value, problem):
    path = _yaml(tmp_path, tiny_data)
    with pytest.raises(InputError, match=f"config key '{key}': .*{problem}") as err:
        train(path, overrides={key: value})
    assert err.value.path == f"--set {key}"  # not tiny.yaml, which does not hold it
    assert not (tmp_path / "run").exists()
    section, name = key.split(".")
    path = _yaml(tmp_path, tiny_data)
    cfg = yaml.safe_load(path.read_text())
    cfg.setdefault(section, {})[name] = value
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(InputError, match=problem) as err:
        train(path)
    assert err.value.path == str(path)
    assert not (tmp_path / "run").exists()


def test_a_validation_split_that_is_the_training_split_by_another_name_is_refused(tmp_path, tiny_data):
    """The twenty-third probe: val/ a link to train/ trained a run that chose its epoch (and later its
    thresholds) on its own training patches, exit 0; the same name twice is refused by the config."""
    import shutil

    data = shutil.copytree(tiny_data, tmp_path / "data")
    (data / "val").symlink_to(data / "train")
    cfg = tiny_config(data, tmp_path / "run", epochs=1, cache_views=1)
    cfg["data"].pop("val_fraction")
    cfg["data"]["val_split"] = "val"
    with pytest.raises(InputError, match=r"8 of the 8 patches of split 'val' show images of the training split 'train' \(the same files\)") as err:
        train(cfg)
    assert err.value.path == str(data) and not (tmp_path / "run").exists()


@pytest.mark.parametrize("kind", ["file", "link to nothing"])
def test_a_feature_cache_place_that_is_no_folder_is_refused_before_anything_is_made(tmp_path, tiny_data, kind):
    """The twenty-third probe: cache_dir (or a run's feature_cache) that was a file or a link to nothing was a
    traceback once the features were being cached, leaving config.yaml and run.json behind."""
    cache = tmp_path / "cache"
    if kind == "file":
        cache.write_text("mine")
    else:
        cache.symlink_to(tmp_path / "nowhere")
    cfg = tiny_config(tiny_data, tmp_path / "run", epochs=1, cache_views=1, cache_dir=str(cache))
    with pytest.raises(InputError, match="is in the way of the feature cache folder") as err:
        train(cfg)
    assert err.value.path == str(cache) and not (tmp_path / "run").exists()
    assert not (tmp_path / "nowhere").exists()



def test_a_link_where_the_run_keeps_its_own_feature_cache_is_refused(tmp_path, tiny_data):
    """The twenty-fourth probe: a run's feature_cache that was a link to a folder outside had the cache written
    there; a cache elsewhere is given as cache_dir."""
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "feature_cache").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InputError, match="is a link, where the run keeps its own feature cache") as err:
        train(tiny_config(tiny_data, tmp_path / "run", epochs=1, cache_views=1))
    assert err.value.path == str(tmp_path / "run" / "feature_cache") and not any((tmp_path / "elsewhere").iterdir())
