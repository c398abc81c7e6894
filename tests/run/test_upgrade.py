"""``cellprobe upgrade``: a run folder of run format 1 is refused with the command that converts it, and the
conversion gives back exactly the current layout (checkpoints, identity, learning rates)."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pandas as pd
import pytest
import torch
from tests.run.earlier_formats import to_format_1, to_format_2
from tests.training.tiny import shared_data, shared_run

from cellprobe.errors import InputError
from cellprobe.locking import LOCK
from cellprobe.run import run_folder as R
from cellprobe.run.checkpoint import load_checkpoint, save_checkpoint
from cellprobe.run.upgrade import lr_from_logs, upgrade_run
from cellprobe.training.build import training_data_facts


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return shared_run(tmp_path_factory)


def test_format_1_is_refused_then_upgraded_to_the_same_run(run, tmp_path):
    from cellprobe.inference.segmenter import Segmenter

    old = tmp_path / "old"
    shutil.copytree(run, old, ignore=shutil.ignore_patterns("feature_cache"))
    to_format_1(old)
    with pytest.raises(InputError, match=r"earlier run format 1.*cellprobe upgrade"):
        R.Run.open(old)

    done = upgrade_run(old, training_data_facts)
    assert any("network weights" in line for line in done) and done[-1].endswith("run format 1 → 3")
    assert upgrade_run(old, training_data_facts) == []  # current now: nothing to do
    for name in (R.BEST, R.LAST):
        a, b = load_checkpoint(run / name), load_checkpoint(old / name)
        assert a["cellprobe"] == b["cellprobe"] and a["state_dict"].keys() == b["state_dict"].keys()
        assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    current, upgraded = R.Run.open(run).stamp, R.Run.open(old).stamp
    assert upgraded.encoder == current.encoder
    assert upgraded.learning_rates == current.learning_rates  # read back from the CSV logs
    assert upgraded.data_sha256 == current.data_sha256  # the same data as training recorded
    assert time.time() - 60 < upgraded.started <= time.time()  # no time budget in its checkpoint: now
    assert all(load_checkpoint(old / name)["cellprobe"] == load_checkpoint(run / name)["cellprobe"]
               for name in (R.BEST, R.LAST))  # µm/px recorded in the checkpoints too

    image = shared_data() / "test"
    from cellprobe.data import open_dataset

    patch = open_dataset(image.parent, format="patches", split="test")[0].image
    np.testing.assert_array_equal(Segmenter(old, device="cpu").maps(patch)["semantic"],
                                  Segmenter(run, device="cpu").maps(patch)["semantic"])


def test_the_cli_upgrades_and_bad_folders_are_one_line(run, tmp_path, cli):
    old = tmp_path / "old"
    shutil.copytree(run, old, ignore=shutil.ignore_patterns("feature_cache"))
    to_format_1(old)
    rc, out, _ = cli("upgrade", old)
    assert rc == 0 and "run format 1 → 3" in out
    rc, out, _ = cli("upgrade", old)
    assert rc == 0 and "already current" in out
    stamp = json.loads((old / "run.json").read_text())
    (old / "run.json").write_text(json.dumps({**stamp, "encoder": "efficientnet-lite0"}))
    rc, _, err = cli("upgrade", old)  # the eleventh probe: a broken current stamp was "already current"
    assert rc == 2 and err.count("\n") == 1 and "run.json: encoder identity must have the keys" in err, err
    rc, _, err = cli("upgrade", tmp_path / "nothing")
    assert rc == 2 and err.count("\n") == 1 and "not a cellprobe run folder" in err


@pytest.mark.parametrize("kept", [(), ("started",), ("data_sha256", "started")])
def test_format_2_gets_the_data_digest_start_and_mpp_recorded(run, tmp_path, cli, kept):
    """Format 2 did not always record the training data's digest and start (runs from before them), nor the
    µm/px in checkpoints: the upgrade records what can be known now, and keeps what was recorded. The start is
    now less the training time last.ckpt's time budget says was spent."""
    old = tmp_path / "old"
    shutil.copytree(run, old, ignore=shutil.ignore_patterns("feature_cache"))
    stamp = to_format_2(old, kept)
    ckpt = load_checkpoint(old / R.LAST)
    ckpt["callbacks"]["Timer"] = {"time_elapsed": {"train": 500.0, "validate": 20.0}}
    save_checkpoint(ckpt, old / R.LAST)
    with pytest.raises(InputError, match=r"earlier run format 2.*cellprobe upgrade"):
        R.Run.open(old)
    rc, out, err = cli("upgrade", old)
    assert rc == 0, err
    assert "run format 2 → 3" in out and ("data as it is now" in out) == ("data_sha256" not in kept)
    upgraded = json.loads((old / R.STAMP).read_text())
    assert upgraded["data_sha256"] == stamp["data_sha256"]
    if "started" in kept:
        assert upgraded["started"] == stamp["started"]
    else:
        assert time.time() - 580 < upgraded["started"] <= time.time() - 520 and "less the 520 s" in out
    assert load_checkpoint(old / R.BEST)["cellprobe"]["mpp"] == stamp["mpp"] and R.Run.open(old).finished


@pytest.mark.parametrize("damage, problem", [
    ({"data_sha256": "abc"}, "data_sha256 'abc' is not a sha256"), ({"version": "0.0.9"}, "cellprobe 0.0.9"),
    ({"status": "done"}, "status 'done'"), ({"data_path": "gone"}, "restore it, then upgrade"),
    # the nineteenth probe: a hand-edited mpp was copied into the checkpoints (evaluate then resized by 0.5)
    ({"mpp": 0.5}, "mpp 0.5, but the training data"), ({"data_sha256": "0" * 64}, "changed since the run trained"),
    ({"timer": 1e10}, "more than since 1970")])
def test_an_upgrade_it_cannot_finish_changes_nothing(run, tmp_path, cli, damage, problem):
    """The eighteenth probe: a format-2 stamp with a bad value was rewritten as format 3 before being refused
    (then never upgradable, its message no longer naming upgrade); another version's stamp was relabelled as
    this version's format; a run whose training data is gone said only 'does not exist'."""
    old = tmp_path / "old"
    shutil.copytree(run, old, ignore=shutil.ignore_patterns("feature_cache"))
    to_format_2(old)
    stamp = json.loads((old / R.STAMP).read_text())
    if "timer" in damage:  # the nineteenth probe: a start before 1970 was written, then refused naming run.json
        ckpt = load_checkpoint(old / R.LAST)
        ckpt["callbacks"]["Timer"] = {"time_elapsed": {"train": damage["timer"]}}
        save_checkpoint(ckpt, old / R.LAST)
    elif "data_path" in damage:
        config = (old / R.CONFIG).read_text()
        data_path = str(R.Run.open(run).config.data.path)
        (old / R.CONFIG).write_text(config.replace(data_path, str(tmp_path / "gone")))
    else:
        (old / R.STAMP).write_text(json.dumps({**stamp, **damage}))
    before = {p.name: p.read_bytes() for p in old.iterdir() if p.is_file() and p.name != LOCK}
    rc, _, err = cli("upgrade", old)
    assert rc == 2 and problem in err and err.count("\n") == 1, err
    assert {p.name: p.read_bytes() for p in old.iterdir() if p.is_file() and p.name != LOCK} == before


@pytest.mark.parametrize("key, value", [("weights_digest", "f" * 64), ("encoder", "resnet50"),
                                        ("class_names", ["a", "b"]), (None, None)])
def test_a_format_1_checkpoint_of_another_network_is_refused(run, tmp_path, key, value):
    """The sixteenth probe: a format-1 run whose best.ckpt came from another run (its own saved identity says
    another weights digest) was upgraded with the run's identity stamped on it, then used by predict."""
    old = tmp_path / "old"
    shutil.copytree(run, old, ignore=shutil.ignore_patterns("feature_cache"))
    to_format_1(old)
    ckpt = load_checkpoint(old / R.BEST)
    if key is None:
        del ckpt["cellprobe"]
    else:
        ckpt["cellprobe"][key] = value
    save_checkpoint(ckpt, old / R.BEST)
    kept = {name: (old / name).read_bytes() for name in (R.BEST, R.LAST, R.STAMP)}
    with pytest.raises(InputError, match="cannot be upgraded") as err:
        upgrade_run(old, training_data_facts)
    assert err.value.path == str(old / R.BEST) and (key is None or key in err.value.problem)
    assert {name: (old / name).read_bytes() for name in kept} == kept  # nothing converted


def _write_log(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)


def test_lr_from_logs_maps_steps_to_epochs_across_sessions(tmp_path):
    # 3 steps per epoch: the rate row of epoch e is logged at step 3e, its epoch rows end at step 3e + 2
    logs = tmp_path / R.LOGS
    nan = float("nan")
    _write_log(logs / "metrics.session-0.csv", [
        {"epoch": nan, "step": 0, "lr-AdamW": 0.01}, {"epoch": 0, "step": 2, "lr-AdamW": nan},
        {"epoch": nan, "step": 3, "lr-AdamW": 0.01}, {"epoch": 1, "step": 5, "lr-AdamW": nan}])
    _write_log(logs / "metrics.csv", [  # resumed at epoch 2
        {"epoch": nan, "step": 6, "lr-AdamW": 0.005}, {"epoch": 2, "step": 8, "lr-AdamW": nan},
        {"epoch": nan, "step": 9, "lr-AdamW": 0.0025}, {"epoch": 3, "step": 11, "lr-AdamW": nan}])
    assert lr_from_logs(tmp_path) == {0: 0.01, 1: 0.01, 2: 0.005, 3: 0.0025}
    with pytest.raises(InputError, match=r"no metrics\.csv"):
        lr_from_logs(tmp_path / "elsewhere")
    _write_log(logs / "metrics.csv", [{"epoch": nan, "step": 6, "lr-AdamW": "fast"}, {"epoch": 2, "step": 8}])
    with pytest.raises(InputError, match="not numbers"):
        lr_from_logs(tmp_path)


def test_stamps_the_upgrade_cannot_convert_are_refused_before_any_change(run, tmp_path):
    for change, problem in (({"encoder": None}, "no encoder identity"), ({"info": None}, "'info'"),
                            ({"class_names": 5}, "'class_names'"), ({"class_names": None}, "'class_names'")):
        old = tmp_path / f"old{len(list(tmp_path.iterdir()))}"
        shutil.copytree(run, old, ignore=shutil.ignore_patterns("feature_cache"))
        to_format_1(old)
        stamp = json.loads((old / R.STAMP).read_text())
        (old / R.STAMP).write_text(json.dumps({**stamp, **change}))
        before = (old / R.BEST).read_bytes()
        with pytest.raises(InputError, match=problem):
            upgrade_run(old, training_data_facts)
        assert (old / R.BEST).read_bytes() == before and json.loads((old / R.STAMP).read_text())["run_format"] == 1
    old = tmp_path / "nologs"
    shutil.copytree(run, old, ignore=shutil.ignore_patterns("feature_cache", "logs"))
    to_format_1(old)
    with pytest.raises(InputError, match="learning rates only in its logs"):
        upgrade_run(old, training_data_facts)


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("taps", "FIRST_AS_FLOAT", "taps"), ("name", 3, "name 3 is not text"), ("input_scale", True, "input_scale True"),
    ("tap_strides", [], "tap_strides [] is not numbers"),
])
def test_an_encoder_identity_is_read_as_written(run, tmp_path, cli, field, value, problem):
    """The thirteenth probe: run.json's encoder.taps [1.0, …] was cast and accepted."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("feature_cache"))
    stamp = json.loads((copy / R.STAMP).read_text())
    if value == "FIRST_AS_FLOAT":
        value = [float(stamp["encoder"]["taps"][0]), *stamp["encoder"]["taps"][1:]]
    stamp["encoder"][field] = value
    (copy / R.STAMP).write_text(json.dumps(stamp))
    rc, _, err = cli("evaluate", copy, "--data", shared_data(), "--out", tmp_path / "ev")
    assert rc == 2 and "run.json: malformed encoder identity: " in err and problem in err, err
    assert err.count("\n") == 1


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("run_format", 3.0, "run_format 3.0 is not an integer"), ("run_format", True, "run_format True is not an integer"),
    ("run_format", "3", "run_format '3' is not an integer"), ("version", 0.1, "version 0.1 is not a version string"),
])
def test_a_stamp_whose_format_only_compares_equal_is_refused(run, tmp_path, cli, field, value, problem):
    """The thirteenth probe: run_format 2.0 opened as the current format and `true` was taken for format 1."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("feature_cache"))
    stamp = json.loads((copy / R.STAMP).read_text())
    (copy / R.STAMP).write_text(json.dumps({**stamp, field: value}))
    for command in (("upgrade", copy), ("evaluate", copy, "--data", shared_data(), "--out", tmp_path / "ev")):
        rc, _, err = cli(*command)
        assert rc == 2 and f"run.json: {problem}" in err and err.count("\n") == 1, err


def test_a_killed_upgrade_still_records_what_it_rewrote(run, tmp_path, monkeypatch):
    """The twentieth probe: an upgrade killed after rewriting the checkpoints, before run.json, was run again
    and recorded no upgraded_checkpoints (the checkpoints were already current), so ensembles, bench cells and
    predict folders made with the run refused it. What it rewrote is recorded before each file is replaced."""
    from cellprobe.hashing import file_sha256
    from cellprobe.run import upgrade as U

    old = tmp_path / "old"
    shutil.copytree(run, old, ignore=shutil.ignore_patterns("feature_cache"))
    to_format_2(old, kept=("data_sha256", "started"))
    before = {name: file_sha256(old / name) for name in (R.BEST, R.LAST)}
    write_json = U.atomic.write_json

    def killed_at_the_stamp(path, obj, **kw):
        if str(path).endswith(R.STAMP):
            raise KeyboardInterrupt
        write_json(path, obj, **kw)

    monkeypatch.setattr(U.atomic, "write_json", killed_at_the_stamp)
    with pytest.raises(KeyboardInterrupt):
        upgrade_run(old, training_data_facts)
    monkeypatch.setattr(U.atomic, "write_json", write_json)
    assert json.loads((old / R.STAMP).read_text())["run_format"] == 2 and (old / U.PENDING).is_file()
    upgrade_run(old, training_data_facts)
    info = R.Run.open(old).stamp.info
    assert info[R.UPGRADED_KEY] == {name: [before[name], file_sha256(old / name)] for name in (R.BEST, R.LAST)}
    assert not (old / U.PENDING).exists()


def test_two_upgrades_of_one_run_do_not_run_at_once(run, tmp_path):
    """The twentieth probe: two upgrades at once lost the record of what was rewritten."""
    from cellprobe.locking import exclusive

    old = tmp_path / "old"
    shutil.copytree(run, old, ignore=shutil.ignore_patterns("feature_cache"))
    to_format_2(old, kept=("data_sha256", "started"))
    with exclusive(old, "upgrading"), pytest.raises(InputError, match="in use by another cellprobe process"):
        upgrade_run(old, training_data_facts)


@pytest.mark.parametrize("pending", ["FOLDER", {"zzz": ["c", "d"]}, {"best.ckpt": ["c", "d"]}])
def test_a_damaged_upgrade_record_is_refused_before_any_rewrite(run, tmp_path, pending):
    """The twenty-first probe: .cellprobe-upgrade.json a folder was a traceback; one naming a file that is no
    checkpoint, or holding no digests, was copied into run.json."""
    from cellprobe.run import upgrade as U

    old = tmp_path / "old"
    shutil.copytree(run, old, ignore=shutil.ignore_patterns("feature_cache"))
    to_format_2(old, kept=("data_sha256", "started"))
    if pending == "FOLDER":
        (old / U.PENDING).mkdir()
    else:
        (old / U.PENDING).write_text(json.dumps(pending))
    before = {p.name: p.read_bytes() for p in old.iterdir() if p.is_file() and p.name != LOCK}
    with pytest.raises(InputError) as err:
        upgrade_run(old, training_data_facts)
    assert err.value.path == str(old / U.PENDING)
    assert {p.name: p.read_bytes() for p in old.iterdir() if p.is_file() and p.name != LOCK} == before
