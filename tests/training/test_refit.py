"""refit(): all training patches, the reference's epochs, learning-rate schedule and post-processing; the
schedule replay itself (the rates the run records, resume) and the refusals."""

from __future__ import annotations

import json
import re

import pytest
import torch
from tests.training.test_fit import Interrupt
from tests.training.tiny import tiny_config

from cellprobe.errors import InputError
from cellprobe.evaluation import tune
from cellprobe.run import run_folder as R
from cellprobe.run.checkpoint import load_checkpoint
from cellprobe.run.train_config import train_config
from cellprobe.training import train
from cellprobe.training.refit import refit, refit_config, schedule


def _rates(run) -> dict[int, float]:
    """The learning rates a run recorded, by epoch."""
    return dict(enumerate(run.stamp.learning_rates))


def test_schedule_keeps_only_the_changes():
    rates = {0: 0.01, 1: 0.01, 2: 0.005, 3: 0.0025}
    assert schedule(rates, 3) == {0: 0.01, 2: 0.005}  # only where the rate changes, within the epochs kept
    with pytest.raises(InputError, match="epoch 0"):
        schedule({1: 0.01}, 3)


def test_lr_steps_are_replayed_and_resume_identically(tiny_data, tmp_path):
    steps = {0: 0.01, 1: 0.004, 2: 0.001}
    cfg = tiny_config(tiny_data, tmp_path / "a", epochs=3, cache_views=1, lr=0.01, lr_steps=steps)
    cfg["data"]["val_fraction"] = 0.0
    run_a = train(cfg)
    assert _rates(run_a) == steps
    run_a = run_a.path
    assert load_checkpoint(run_a / R.LAST)["global_step"] == 3 * 2  # all 8 patches, batch 4: 2 steps per epoch
    best, last = load_checkpoint(run_a / R.BEST), load_checkpoint(run_a / R.LAST)
    assert best["epoch"] == last["epoch"] == 2  # no validation: best is the latest epoch
    info = json.loads((run_a / R.STAMP).read_text())["info"]
    assert info["epochs"] == 3 and info["monitor"] is None and not info["stopped_early"]

    # killed after epoch 1 and resumed: the scheduler comes back with the checkpoint, weights identical
    cfg_b = {**cfg, "output": str(tmp_path / "b"), "cache_dir": str(run_a / "feature_cache")}
    with pytest.raises(SystemExit):
        train(cfg_b, callbacks=[Interrupt(at=2)])
    run_b = train(cfg_b)
    assert _rates(run_b) == steps  # the replayed epoch's rate was recorded again, not twice
    run_b = run_b.path
    a, b = load_checkpoint(run_a / R.LAST)["state_dict"], load_checkpoint(run_b / R.LAST)["state_dict"]
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6), k

    # a run without validation has no split to tune on
    with pytest.raises(InputError, match="no validation patches"):
        tune(run_a)


def test_refit_takes_the_references_epochs_schedule_and_thresholds(tiny_data, tmp_path):
    ref = train(tiny_config(tiny_data, tmp_path / "ref", epochs=3, cache_views=1, batch_size=2)).path
    from cellprobe.postprocess import PostprocessParams

    tuned = PostprocessParams(fg_threshold=0.4).model_dump_json() + "\n"
    (ref / R.POSTPROCESS).write_text(tuned)
    best = load_checkpoint(ref / R.BEST)["epoch"]
    run = refit(ref, tmp_path / "refit", {"trainer.progress": False}).path
    cfg = R.Run.open(run).config
    assert cfg.data.val_fraction == 0 and not cfg.data.has_validation
    assert cfg.epochs == best + 1 and cfg.lr_steps == {0: cfg.lr} and cfg.refit_of == str(ref)
    ref_cfg = R.Run.open(ref).config
    assert cfg.decoder == ref_cfg.decoder and cfg.loss == ref_cfg.loss and cfg.seed == ref_cfg.seed
    # 8 patches in batches of 2 (the reference trained on 6: one source image of 4 held out)
    assert load_checkpoint(run / R.LAST)["global_step"] == 4 * cfg.epochs
    assert (run / R.POSTPROCESS).read_text() == tuned
    assert refit(ref, tmp_path / "refit").path == run  # finished: nothing to do, postprocess.json kept

    with pytest.raises(InputError, match="no validation split"):
        refit_config(run, tmp_path / "refit-of-refit")
    # the sixteenth probe: a time budget finished a refit after 1 of its epochs, thresholds copied as if whole
    for key in ("epochs", "lr", "data.val_fraction", "decoder.stem_depth", "trainer.max_minutes"):
        with pytest.raises(InputError, match=f"refit decides {key} from the reference run \\(it trains the "
                                             "reference's config, data and encoder"):  # the 31st probe: it gave
            refit_config(ref, tmp_path / "changed", {key: 5})  # only the epochs as the reason, whatever the key
    thresholds = {**json.loads(tuned), "fg_threshold": "0.5"}
    (ref / R.POSTPROCESS).write_text(json.dumps(thresholds))  # taken over: checked before any training
    with pytest.raises(InputError, match="config key 'fg_threshold'") as err:
        refit(ref, tmp_path / "bad-thresholds")
    assert err.value.path == str(ref / R.POSTPROCESS) and not (tmp_path / "bad-thresholds").exists()
    (ref / R.POSTPROCESS).write_text(tuned)
    # the fourteenth probe: best.ckpt's epoch missing (KeyError), '0' (cast), or beyond the recorded epochs
    from cellprobe.run.checkpoint import save_checkpoint

    kept = (ref / R.BEST).read_bytes()
    for epoch, problem in ((None, "records no epoch a refit can take (epoch None"), ("0", "(epoch '0'"),
                           (7, "is from epoch 7, but the run's run.json records 3 trained epoch(s)")):
        ckpt = load_checkpoint(ref / R.BEST)
        ckpt.pop("epoch") if epoch is None else ckpt.update(epoch=epoch)
        save_checkpoint(ckpt, ref / R.BEST)
        with pytest.raises(InputError, match=re.escape(problem)) as err:
            refit_config(ref, tmp_path / "odd-epoch")
        assert err.value.path == str(ref / R.BEST)
        (ref / R.BEST).write_bytes(kept)
    stamp = json.loads((ref / R.STAMP).read_text())
    # the fifteenth probe: a learning rate edited in run.json was replayed (lr 0.5 for a run trained at 0.001)
    for epoch, rate in ((0, 0.5), (2, stamp["learning_rates"][1] * 3)):
        rates = list(stamp["learning_rates"])
        rates[epoch] = rate
        (ref / R.STAMP).write_text(json.dumps({**stamp, "learning_rates": rates}))
        with pytest.raises(InputError, match=re.escape(f"learning_rates[{epoch}] is {rate:g}")) as err:
            refit_config(ref, tmp_path / "edited-rates")
        assert err.value.path == str(ref / R.STAMP)
    (ref / R.STAMP).write_text(json.dumps({**stamp, "status": "training"}))
    with pytest.raises(InputError, match="not finished"):
        refit_config(ref, tmp_path / "early")


def test_schedule_config_is_checked():
    base = {"output": "r", "encoder": {"name": "x"}, "data": {"path": "d", "val_fraction": 0.0}}
    with pytest.raises(InputError, match="needs lr_steps"):
        train_config(base)
    with pytest.raises(InputError, match="epoch 0"):
        train_config(base, {"lr": 0.01, "lr_steps": {3: 0.001}})
    with pytest.raises(InputError, match="same value"):
        train_config(base, {"lr": 0.01, "lr_steps": {0: 0.002}})
    cfg = train_config(base, {"lr": 0.01, "lr_steps": {0: 0.01, 5: 0.001}})
    assert cfg.lr_steps == {0: 0.01, 5: 0.001} and not cfg.data.has_validation
