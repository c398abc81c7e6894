"""A run resumes only from a last.ckpt it could have written: NaN or negative-variance weights, NaN optimizer
moments or learning rates, and broken epoch counts were restored by Lightning without a word (the seventh
hostile probe: validation turned NaN and early stopping marked the run finished)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.training.test_fit import Interrupt
from tests.training.tiny import tiny_config

from cellprobe.errors import InputError
from cellprobe.run import run_folder as R
from cellprobe.run.checkpoint import load_checkpoint, save_checkpoint
from cellprobe.training import train


@pytest.fixture(scope="module")
def interrupted(tiny_data, tmp_path_factory):
    """A run killed after its first epoch (status 'training', a last.ckpt of epoch 0), and that checkpoint."""
    out = tmp_path_factory.mktemp("resume") / "run"
    cfg = tiny_config(tiny_data, out, epochs=2)
    with pytest.raises(SystemExit):
        train(cfg, callbacks=[Interrupt(at=1)])
    return cfg, out, (out / R.LAST).read_bytes()


def _first(state, suffix):
    return next(k for k in state if k.endswith(suffix))


def _negative_variance(c):
    key = _first(c["state_dict"], "running_var")
    c["state_dict"][key] = -c["state_dict"][key].abs() - 1


def _nan_weight(c):
    key = _first(c["state_dict"], ".weight")
    c["state_dict"][key] = c["state_dict"][key] * float("nan")


def _extra_key(c):
    c["state_dict"]["network.extra.weight"] = torch.zeros(3)


def _nan_moments(c):
    for moments in c["optimizer_states"][0]["state"].values():
        moments["exp_avg"] = moments["exp_avg"] * float("nan")


def _nan_lr(c):
    c["optimizer_states"][0]["param_groups"][0]["lr"] = float("nan")


def _negative_epoch(c):
    c["epoch"] = -3


def _text_epoch(c):
    c["epoch"] = "0"


def _weights_only(c):  # the tenth probe: Lightning's KeyError traceback
    del c["optimizer_states"]


def _no_loops(c):  # the epoch count would restart at 0 without a word
    del c["loops"]


def _no_callbacks(c):  # early stopping's patience and the best score would restart without a word
    c["callbacks"] = None


def _plateau_factor(c):  # the fifteenth probe: the resumed run followed a factor the config never gave
    c["cellprobe_plateau"]["factor"] = 0.01


def _plateau_patience(c):
    c["cellprobe_plateau"]["patience"] = 0


def _no_plateau(c):  # its patience and best value would restart without a word
    del c["cellprobe_plateau"]


def _plateau_counter(c):
    c["cellprobe_plateau"]["num_bad_epochs"] = -1


def _callback(c, kind):
    return c["callbacks"][next(k for k in c["callbacks"] if k.startswith(kind))]


def _stopping_patience(c):  # Lightning restores it over the config's
    _callback(c, "EarlyStopping")["patience"] = 0


def _stopping_best_nan(c):
    _callback(c, "EarlyStopping")["best_score"] = torch.tensor(float("nan"))


def _checkpoint_score_text(c):
    _callback(c, "ModelCheckpoint")["best_model_score"] = "0.1"


def _no_callback_states(c):  # the sixteenth probe: Lightning starts absent states over, unsaid
    c["callbacks"] = {}


def _best_score_lowered(c):  # the sixteenth probe: a worse epoch stayed best.ckpt for the rest of the run
    state = next(v for k, v in c["callbacks"].items() if k.startswith("ModelCheckpoint") and v["monitor"])
    state["best_model_score"] = torch.tensor(0.0)


def _epochs_skipped(c):  # the sixteenth probe: epoch 1 was never trained, the run reported finished
    c["loops"]["fit_loop"]["epoch_progress"]["total"].update(ready=3, started=3, processed=3, completed=2)


def _steps_raised(c):
    c["loops"]["fit_loop"]["epoch_loop.state_dict"]["_batches_that_stepped"] += 5


@pytest.mark.parametrize(("damage", "problem"), [
    (_epochs_skipped, "its loop's epoch progress"), (_steps_raised, "batches stepped), its global_step is"),
    (_best_score_lowered, "its best val_loss 0 is not the score best.ckpt was written with"),
    (_no_callback_states, "it holds 0 saved ModelCheckpoint state(s), where a finished epoch of this run saves 2"),
    (_stopping_patience, "early stopping's saved patience 0 is not the config's early_stopping.patience 8"),
    (_stopping_best_nan, "early stopping's best_score is tensor(nan)"),
    (_checkpoint_score_text, "checkpoint callback's best_model_score is '0.1'"),
    (_plateau_factor, "plateau settings differ from the run's config (factor 0.01 vs 0.5)"),
    (_plateau_patience, "(patience 0 vs 3)"), (_no_plateau, "plateau state is missing"),
    (_plateau_counter, "num_bad_epochs is -1"),
    (_weights_only, "lacks the training state 'optimizer_states'"), (_no_loops, "state 'loops'"),
    (_no_callbacks, "state 'callbacks'"),
    (_negative_variance, "BatchNorm variances below zero"), (_nan_weight, "NaN or infinite"),
    (_extra_key, "1 unexpected keys: network.extra.weight"), (_nan_moments, "NaN, infinite or missing values"),
    (_nan_lr, "learning rate nan"), (_negative_epoch, "epoch is -3"), (_text_epoch, "epoch is '0'"),
])
def test_a_damaged_last_checkpoint_is_refused_and_the_run_left_as_it_was(interrupted, damage, problem):
    cfg, out, original = interrupted
    last = out / R.LAST
    ckpt = load_checkpoint(last)
    damage(ckpt)
    save_checkpoint(ckpt, last)
    try:
        with pytest.raises(InputError) as err:
            train(cfg)
        assert err.value.path == str(last) and problem in err.value.problem and "remove it" in err.value.problem
        assert "\n" not in str(err.value)
        assert json.loads((out / R.STAMP).read_text())["status"] == "training"
    finally:
        last.write_bytes(original)


def test_a_folder_where_a_checkpoint_goes_is_refused_before_an_epoch_trains(interrupted):
    """The tenth probe: the resume trained an epoch, then saving it was an IsADirectoryError traceback."""
    cfg, out, original = interrupted
    last = out / R.LAST
    last.unlink()
    last.mkdir()
    try:
        with pytest.raises(InputError, match="is in the way of a file training writes") as err:
            train(cfg)
        assert err.value.path == str(last)
    finally:
        last.rmdir()
        last.write_bytes(original)


def test_a_link_where_the_run_keeps_its_logs_is_refused_before_an_epoch_trains(interrupted, tmp_path):
    """Beside the twenty-second probe's slide journal: the run's logs are appended to where they are, so a link
    there would write outside the run folder."""
    cfg, out, _ = interrupted
    log = out / R.LOGS / "framework.log"
    elsewhere = tmp_path / "elsewhere.log"
    elsewhere.write_text("a user's file")
    had = log.read_bytes() if log.exists() else None
    log.unlink(missing_ok=True)
    log.symlink_to(elsewhere)
    try:
        with pytest.raises(InputError, match="is a link, where the run keeps its own logs") as err:
            train(cfg)
        assert err.value.path == str(log) and elsewhere.read_text() == "a user's file"
    finally:
        log.unlink()
        if had is not None:
            log.write_bytes(had)


def test_the_undamaged_checkpoint_still_resumes(interrupted):
    cfg, out, _ = interrupted
    run = train(cfg)
    assert run.finished and json.loads((out / R.STAMP).read_text())["info"]["resumed"] is True


def test_a_time_budget_spent_beyond_the_runs_age_is_refused(tiny_data, tmp_path):
    """The sixteenth probe: the time budget's elapsed time in last.ckpt edited to 1e9 s finished the resumed run
    at once (time limit reached, after one epoch). It cannot exceed the time since run.json says training
    started; it must be seconds ≥ 0."""
    cfg = tiny_config(tiny_data, tmp_path / "run", epochs=2, trainer={**tiny_config(tiny_data, tmp_path)["trainer"],
                                                                       "max_minutes": 30})
    with pytest.raises(SystemExit):
        train(cfg, callbacks=[Interrupt(at=1)])
    last = tmp_path / "run" / R.LAST
    original = last.read_bytes()
    for value, problem in ((1e9, "more than the run has existed"), (float("nan"), "are not seconds ≥ 0")):
        ckpt = load_checkpoint(last)
        timer = next(k for k in ckpt["callbacks"] if k.startswith("Timer"))
        ckpt["callbacks"][timer]["time_elapsed"]["train"] = value
        save_checkpoint(ckpt, last)
        with pytest.raises(InputError, match=problem) as err:
            train(cfg)
        assert err.value.path == str(last)
        last.write_bytes(original)
    # 'started' cleared by hand beside a checkpoint: the bound would be lost, so the record is refused (run format
    # 3 records it before the first checkpoint; `cellprobe upgrade` gives earlier runs one)
    stamp = json.loads((tmp_path / "run" / R.STAMP).read_text())
    (tmp_path / "run" / R.STAMP).write_text(json.dumps({**stamp, "started": None}))
    with pytest.raises(InputError, match="started None beside data_sha256") as err:
        train(cfg)
    assert err.value.path == str(tmp_path / "run" / R.STAMP)
    (tmp_path / "run" / R.STAMP).write_text(json.dumps(stamp))
    assert train(cfg).finished


def test_a_run_moved_before_it_resumes_keeps_its_best_checkpoint_state(tiny_data, tmp_path):
    """The sixteenth probe: a killed run copied to another folder, then resumed, lost its best score (Lightning
    drops a checkpoint callback's state saved under another folder): the first resumed epoch became best.ckpt
    whatever came before. The states are moved to the run's folder as they are read."""
    import shutil

    out = tmp_path / "run"
    cfg = tiny_config(tiny_data, out, epochs=2)
    with pytest.raises(SystemExit):
        train(cfg, callbacks=[Interrupt(at=1)])
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    before = load_checkpoint(moved / R.LAST)
    best = next(v for k, v in before["callbacks"].items() if k.startswith("ModelCheckpoint") and v["monitor"])
    assert best["dirpath"] == str(out.resolve())
    run = train({**cfg, "output": str(moved)})
    assert run.finished
    log = (moved / R.LOGS / "framework.log").read_text()
    assert "dirpath has changed" not in log
    after = load_checkpoint(moved / R.LAST)
    state = next(v for k, v in after["callbacks"].items() if k.startswith("ModelCheckpoint") and v["monitor"])
    assert state["dirpath"] == str(moved.resolve()) and Path(state["best_model_path"]).parent == moved.resolve()
    assert float(state["best_model_score"]) <= float(best["best_model_score"])
