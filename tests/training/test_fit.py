"""train(): run folder, resume after an interruption with the same result, refusals, both modes."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from tests.training.tiny import tiny_config

from cellprobe.errors import InputError
from cellprobe.run import run_folder as R
from cellprobe.run.checkpoint import load_checkpoint
from cellprobe.run.train_config import train_config
from cellprobe.training import train


class Interrupt(Callback):
    """Stands in for a kill: the process dies at the start of epoch ``at`` (after epoch at-1's checkpoint)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.at:
            raise SystemExit("killed")


def _weights(path):
    return load_checkpoint(path)["state_dict"]


def test_cached_run_folder_resume_and_refusals(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, tmp_path / "run", epochs=2)  # its own cache folder: <run>/feature_cache
    run_dir = train(cfg).path
    for name in (R.CONFIG, R.STAMP, R.BEST, R.LAST):
        assert (run_dir / name).is_file(), name
    assert (run_dir / R.LOGS / "metrics.csv").is_file()
    stamp = json.loads((run_dir / R.STAMP).read_text())
    assert stamp["status"] == "finished" and stamp["encoder"]["name"] == "efficientnet-lite0"
    assert stamp["info"]["epochs"] == 2
    assert len(stamp["learning_rates"]) == 2  # the run records the rate of every epoch (refit replays it)
    ckpt = load_checkpoint(run_dir / R.LAST)
    assert not any(".encoder." in k for k in ckpt["state_dict"])
    assert any(k.startswith("network.decoder.") for k in ckpt["state_dict"])
    assert any((run_dir / "feature_cache").rglob("manifest.json"))

    # interrupted after epoch 1, resumed: the same weights as the uninterrupted run
    cfg2 = tiny_config(tiny_data, tmp_path / "run2", epochs=2, cache_dir=str(tmp_path / "run" / "feature_cache"))
    with pytest.raises(SystemExit):
        train(cfg2, callbacks=[Interrupt(at=1)])
    assert json.loads((tmp_path / "run2" / R.STAMP).read_text())["status"] == "training"
    resumed = train(cfg2).path
    a, b = _weights(run_dir / R.LAST), _weights(resumed / R.LAST)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6), k
    assert json.loads((resumed / R.STAMP).read_text())["info"]["resumed"] is True
    logs = resumed / R.LOGS
    earlier, latest = pd.read_csv(logs / "metrics.session-0.csv"), pd.read_csv(logs / "metrics.csv")
    assert set(earlier["epoch"].dropna()) == {0} and set(latest["epoch"].dropna()) == {1}  # nothing lost

    # a finished run returns at once (also with other runtime settings); another config is refused
    assert train(cfg).path == run_dir
    assert train(cfg, overrides={"trainer.threads": 1, "trainer.max_minutes": 5}).path == run_dir
    # the seventeenth probe: a bench cell's run whose feature cache folder is spelt otherwise (the bench run
    # from another directory, or moved) was 'a different config': the cache is keyed by content
    assert train(cfg, overrides={"cache_dir": str(tmp_path / "elsewhere")}).path == run_dir
    with pytest.raises(InputError, match=r"different config.*epochs"):
        train(tiny_config(tiny_data, tmp_path / "run", epochs=3))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        train(tiny_config(tiny_data, tmp_path / "junk"))


def test_a_run_resumed_on_changed_data_is_refused(tmp_path):
    """The fifteenth probe: a killed run resumed after one training image was replaced trained its later epochs
    on other data than its first, unsaid. run.json records the samples' sha256; a resume compares it."""
    import shutil

    from PIL import Image
    from tests.training.tiny import make_tiny_data

    data = make_tiny_data(tmp_path / "data")
    cfg = tiny_config(data, tmp_path / "run", epochs=2, cache_features=False)
    with pytest.raises(SystemExit):
        train(cfg, callbacks=[Interrupt(at=1)])
    recorded = json.loads((tmp_path / "run" / R.STAMP).read_text())["data_sha256"]
    assert len(recorded) == 64
    image = data / "train" / "images" / "p00.png"
    kept = tmp_path / "p00.png"
    shutil.copy(image, kept)
    Image.fromarray(255 - __import__("numpy").asarray(Image.open(kept))).save(image)
    with pytest.raises(InputError, match="changed since the run trained on it: its later epochs") as err:
        train(cfg)
    assert err.value.path == str(tmp_path / "run" / R.STAMP)
    shutil.copy(kept, image)
    # the nineteenth probe: the data's µm/px or class names changed (samples unchanged): the refused resume had
    # already rewritten run.json with them, and blamed a hand edit
    stamp = (tmp_path / "run" / R.STAMP).read_text()
    for text, what in (("mpp: 0.5\n", "µm/px 0.5"), ("class_names: [a, b]\n", "class names ['a', 'b']")):
        (data / "dataset.yaml").write_text(text)
        with pytest.raises(InputError, match=f"has {re.escape(what)}, the run trained with") as err:
            train(cfg)
        assert err.value.path == str(tmp_path / "run" / R.STAMP) and (tmp_path / "run" / R.STAMP).read_text() == stamp
    (data / "dataset.yaml").unlink()  # the data restored: the run resumes and finishes
    run = train(cfg)
    assert run.finished and run.stamp.data_sha256 == recorded
    # the sixteenth probe: tune (on its own validation patches) and refit of a run whose data changed since
    from cellprobe.evaluation import tune
    from cellprobe.postprocess import PostprocessParams
    from cellprobe.training.refit import refit

    (run.path / R.POSTPROCESS).write_text(PostprocessParams().model_dump_json())
    Image.fromarray(255 - __import__("numpy").asarray(Image.open(kept))).save(image)
    for command, why in ((lambda: tune(run.path, overwrite=True), "tuning would not be on the validation patches"),
                         (lambda: refit(run.path, tmp_path / "refit"), "the refit would replay")):
        with pytest.raises(InputError, match=f"changed since the run trained on it: {why}") as err:
            command()
        assert err.value.path == str(run.path / R.STAMP)
    assert not (tmp_path / "refit").exists()


def test_a_run_refused_by_a_damaged_shared_cache_leaves_nothing(tiny_data, tmp_path):
    """The fifteenth probe: a shared feature cache with a damaged manifest was refused only once the run folder
    held config.yaml and run.json, so the corrected command (another cache_dir) met 'a run of a different
    config'. A first session refused before training removes what it made."""
    cache = tmp_path / "cache"
    train(tiny_config(tiny_data, tmp_path / "first", epochs=1, cache_dir=str(cache)))
    manifest = next(cache.rglob("manifest.json"))
    data = json.loads(manifest.read_text())
    del data["files"]
    manifest.write_text(json.dumps(data))
    out = tmp_path / "second"
    with pytest.raises(InputError) as err:
        train(tiny_config(tiny_data, out, epochs=1, cache_dir=str(cache)))
    assert err.value.path == str(manifest) and not out.exists()
    assert train(tiny_config(tiny_data, out, epochs=1, cache_dir=str(tmp_path / "other"))).finished


def test_online_mode_trains(tiny_data, tmp_path):
    run_dir = train(tiny_config(tiny_data, tmp_path / "online", epochs=1, cache_features=False)).path
    assert (run_dir / R.BEST).is_file()
    assert not (run_dir / "feature_cache").exists()


def test_run_from_another_version_is_refused(tiny_data, tmp_path):
    run_dir = tmp_path / "old"
    run_dir.mkdir()
    (run_dir / R.STAMP).write_text(json.dumps({"version": "0.0.1", "run_format": 2}))
    (run_dir / R.CONFIG).write_text("output: x\n")
    with pytest.raises(InputError, match=r"cellprobe 0\.0\.1"):
        R.Run.open(run_dir)
    with pytest.raises(InputError, match="not a cellprobe run"):
        R.Run.open(tmp_path)


def test_weight_averaging_checkpoints_and_resume(tiny_data, tmp_path):
    """ema_decay: checkpoints hold the average as state_dict (what validation and inference use) and the raw
    weights for resuming, both without the encoder; a killed run resumes to the same average."""
    cache = str(tmp_path / "cache")
    cfg = tiny_config(tiny_data, tmp_path / "ema", epochs=2, cache_views=1, cache_dir=cache, ema_decay=0.9)
    ckpt = load_checkpoint(train(cfg).path / R.LAST)
    avg, raw = ckpt["state_dict"], ckpt["current_model_state"]
    assert avg.keys() == raw.keys() and not any(".encoder." in k for k in avg)
    moved = [k for k in avg if avg[k].is_floating_point() and not torch.allclose(avg[k], raw[k])]
    assert moved, "the averaged weights equal the raw ones"
    assert ckpt["averaging_state"]["n_averaged"].item() == 4  # 2 batches of 4 training patches x 2 epochs

    cfg2 = tiny_config(tiny_data, tmp_path / "ema2", epochs=2, cache_views=1, cache_dir=cache, ema_decay=0.9)
    with pytest.raises(SystemExit):
        train(cfg2, callbacks=[Interrupt(at=1)])
    # the sixteenth probe: an edited update count was restored as found (0 restarts the average unsaid)
    last = tmp_path / "ema2" / R.LAST
    kept = last.read_bytes()
    for count in (-5, 0):
        edited = load_checkpoint(last)
        edited["averaging_state"]["n_averaged"] = torch.tensor(count)
        from cellprobe.run.checkpoint import save_checkpoint

        save_checkpoint(edited, last)
        with pytest.raises(InputError, match=f"its weight average counts {count} updates, where 2 optimizer steps"):
            train(cfg2)
        last.write_bytes(kept)
    resumed = load_checkpoint(train(cfg2).path / R.LAST)
    for key in ("state_dict", "current_model_state"):
        for k, v in ckpt[key].items():
            assert torch.allclose(v.float(), resumed[key][k].float(), atol=1e-6), (key, k)

    from cellprobe.inference.segmenter import Segmenter

    loaded = Segmenter(tmp_path / "ema").networks[0].state_dict()
    best = load_checkpoint(tmp_path / "ema" / R.BEST)["state_dict"]
    network = {k.removeprefix("network."): v for k, v in best.items() if k.startswith("network.")}
    assert network and all(torch.equal(loaded[k], v) for k, v in network.items())  # inference runs the average


def test_weight_averaging_online_mode_leaves_encoder_out(tiny_data, tmp_path):
    run_dir = train(tiny_config(tiny_data, tmp_path / "ema-online", epochs=1, cache_features=False, ema_decay=0.9)).path
    ckpt = load_checkpoint(run_dir / R.BEST)
    for key in ("state_dict", "current_model_state"):
        assert not any(".encoder." in k for k in ckpt[key]), key


@pytest.mark.parametrize("change,problem", [({"encoder": {"name": "resnet9000", "weights": "random"}}, "unknown encoder"),
                                            ({"encoder": {"name": "efficientnet-lite0", "weights": "nope.pt"}}, "not found"),
                                            ({"data": {"path": "missing", "format": "patches"}}, "missing"),
                                            ({"encoder": {"name": "efficientnet-lite0", "weights": "random",
                                                          "taps": [9]}}, "tap"),
                                            ({"loss": {"class_weights": [1, 2, 3, 4, 5]}}, "class_weights"),
                                            ({"encoder": {"name": "efficientnet-lite0", "weights": "BAD"}}, "")])
def test_a_refused_run_leaves_nothing_behind(tiny_data, tmp_path, change, problem):
    """Validated before the run folder is made: the corrected command then starts cleanly."""
    cfg = tiny_config(tiny_data, tmp_path / "run", epochs=1, cache_views=1)
    if change.get("encoder", {}).get("weights") == "BAD":  # a weights file that does not fit the encoder
        torch.save({"foo": torch.zeros(1)}, tmp_path / "bad.pt")
        change = {"encoder": {"name": "efficientnet-lite0", "weights": str(tmp_path / "bad.pt")}}
    with pytest.raises(InputError, match=problem):
        train({**cfg, **change})
    assert not (tmp_path / "run").exists()
    assert train(cfg).finished


def test_a_second_command_on_a_run_folder_in_use_is_refused(tiny_data, tmp_path):
    """Two trainings into one folder would overwrite each other's checkpoints and logs."""
    from cellprobe.locking import exclusive

    cfg = tiny_config(tiny_data, tmp_path / "run", epochs=1, cache_views=1)
    with exclusive(tmp_path / "run", "training"), pytest.raises(InputError, match="in use by another"):
        train(cfg)
    assert train(cfg).finished  # the lock went with its holder


def test_a_run_folder_in_use_is_named_so_before_its_config_is_compared(tiny_data, tmp_path, held_elsewhere):
    """Twenty-fifth probe: a train of another config into a folder whose run was training its first epoch was
    told the folder held a run that 'never finished an epoch ... delete the folder' (the running one)."""
    R.start_run(train_config(tiny_config(tiny_data, tmp_path / "run", epochs=1)))
    with held_elsewhere(tmp_path / "run", "training"), \
            pytest.raises(InputError, match=r"in use by another cellprobe process \(training\)") as err:
        train(tiny_config(tiny_data, tmp_path / "run", epochs=2))
    assert "delete" not in str(err.value)


def test_a_folder_of_another_config_that_never_finished_an_epoch_says_nothing_would_be_lost(tiny_data, tmp_path):
    """A run that failed before its first checkpoint (bad weights found late, a crash) blocks the corrected
    command; the refusal says the folder holds nothing to keep, instead of only 'choose another --out'."""
    R.start_run(train_config(tiny_config(tiny_data, tmp_path / "run", epochs=1)))  # made, failed before an epoch
    with pytest.raises(InputError, match=r"differs at epochs\) that never finished an epoch.*delete the folder"):
        train(tiny_config(tiny_data, tmp_path / "run", epochs=2))
