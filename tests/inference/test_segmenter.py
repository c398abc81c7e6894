"""A trained (tiny) run as a segmenter: maps, instances, batching, encoder/checkpoint mismatch, bad images."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml
from tests.training.tiny import shared_data, shared_run

from cellprobe.data import open_dataset
from cellprobe.errors import InputError
from cellprobe.inference.segmenter import Segmenter


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return shared_run(tmp_path_factory)


def test_maps_instances_and_batching_agree(run):
    seg = Segmenter(run, device="cpu")
    assert seg.class_names == ["class1", "class2"]
    ds = open_dataset(shared_data(), format="patches", split="test")
    images = [ds[i].image for i in range(len(ds))]
    batched = seg.patch_maps(images)
    single = seg.maps(images[1])
    assert batched[1]["semantic"].shape == (3, 64, 64) and batched[1]["types"].shape == (3, 64, 64)
    np.testing.assert_allclose(batched[1]["semantic"], single["semantic"], atol=1e-5)
    np.testing.assert_allclose(batched[1]["semantic"].sum(0), 1.0, atol=1e-5)
    inst, cls_map, types = seg.instances(single)
    assert inst.shape == (64, 64) and inst.dtype == np.int32 and cls_map.dtype == np.uint8
    assert set(types) == set(np.unique(inst[inst > 0]).tolist())
    big = np.concatenate([images[0], images[1], images[2]], axis=1)  # 64 × 192: padded, one window
    assert seg.segment(big)[0].shape == (64, 192)


def test_images_of_the_wrong_type_are_refused(run):
    seg = Segmenter(run, device="cpu")
    with pytest.raises(InputError, match="RGB uint8"):
        seg.maps(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(InputError, match="RGB uint8"):
        seg.maps(np.zeros((64, 64), np.uint8))


def test_checkpoint_of_another_encoder_or_version_is_refused(run, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(run, other, ignore=shutil.ignore_patterns("feature_cache"))
    cfg = yaml.safe_load((other / "config.yaml").read_text())
    cfg["seed"] = 1  # random weights are seeded: another seed is another encoder
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(InputError, match="weights_digest"):
        Segmenter(other, device="cpu")
    stamp = json.loads((other / "run.json").read_text())
    stamp["version"] = "9.9.9"
    (other / "run.json").write_text(json.dumps(stamp))
    with pytest.raises(InputError, match=r"cellprobe 9\.9\.9"):
        Segmenter(other, device="cpu")
    with pytest.raises(InputError, match="checkpoint"):
        Segmenter(run, checkpoint="middle")


def test_unknown_or_absent_devices_are_refused_before_loading(run):
    import torch

    with pytest.raises(InputError, match="unknown device"):
        Segmenter(run, device="gpu7")
    with pytest.raises(InputError, match="CUDA device"):
        Segmenter(run, device="cuda:99")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="0 CUDA device"):
            Segmenter(run, device="cuda")


def test_a_damaged_run_stamp_is_refused_naming_the_field(run, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(run, broken, ignore=shutil.ignore_patterns("feature_cache"))
    stamp = json.loads((broken / "run.json").read_text())
    for field, value, problem in (("learning_rates", ["fast"], "learning_rates"), ("status", "done", "status"),
                                  ("mpp", -1, "mpp"), ("encoder", {"name": "x"}, "encoder identity")):
        (broken / "run.json").write_text(json.dumps({**stamp, field: value}))
        with pytest.raises(InputError, match=problem):
            Segmenter(broken, device="cpu")


def test_tiny_images_are_padded_to_what_the_network_needs(run):
    seg = Segmenter(run, device="cpu")
    for shape in ((1, 1, 3), (5, 40, 3)):
        inst, _, _ = seg.segment(np.zeros(shape, np.uint8))
        assert inst.shape == shape[:2]


def test_a_checkpoint_with_nan_weights_is_refused(run, tmp_path):
    import torch

    from cellprobe.run.checkpoint import load_checkpoint, save_checkpoint

    broken = tmp_path / "nan"
    shutil.copytree(run, broken, ignore=shutil.ignore_patterns("feature_cache"))
    ckpt = load_checkpoint(broken / "best.ckpt")
    key = next(k for k in ckpt["state_dict"] if k.startswith("network.decoder."))
    ckpt["state_dict"][key] = torch.full_like(ckpt["state_dict"][key], float("nan"))
    save_checkpoint(ckpt, broken / "best.ckpt")
    with pytest.raises(InputError, match="NaN or infinite"):
        Segmenter(broken, device="cpu")


@pytest.mark.parametrize(("change", "problem"), [
    ({"mpp": 0.5}, "trained on data at"), ({"encoder": None}, "encoder null"),
    ({"encoder": {"weights_digest": "f" * 64}}, "not the one the run's config builds"),
    ({"class_names": []}, "class_names []")])
def test_run_facts_edited_in_run_json_are_refused(run, tmp_path, change, problem):
    """The eighteenth probe: run.json's mpp edited from 0.25 to 0.5 made evaluate resize the test data by 0.5
    (exit 0); its encoder set to null, or another weights digest, passed. The checkpoints record the µm/px
    beside the encoder and classes, and run.json must agree with them and with the encoder the config builds."""
    copy = shutil.copytree(run, tmp_path / "run", ignore=shutil.ignore_patterns("feature_cache"))
    stamp = json.loads((copy / "run.json").read_text())
    for key, value in change.items():
        stamp[key] = {**stamp[key], **value} if isinstance(value, dict) else value
    (copy / "run.json").write_text(json.dumps(stamp))
    with pytest.raises(InputError) as err:
        Segmenter(copy, device="cpu")
    assert problem in err.value.problem and err.value.path.endswith(("run.json", "best.ckpt")), err.value
