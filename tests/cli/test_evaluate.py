"""`cellprobe evaluate`: metrics.json + per_image.csv from a tiny run; bad runs → exit 2 with one line."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from tests.training.tiny import shared_data, shared_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return shared_run(tmp_path_factory)


def test_evaluate_writes_metrics_and_per_image_table(cli, run, tmp_path):
    rc, out, err = cli("evaluate", run, "--data", shared_data(), "--split", "test", "--format", "patches",
                       "--out", tmp_path, "--device", "cpu")
    assert rc == 0, err
    assert "PQ" in out and "per class" in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["num_images"] == 4 and metrics["class_names"] == ["class1", "class2"]
    assert len(pd.read_csv(tmp_path / "per_image.csv")) == 4
    assert metrics["evaluation"]["tta_views"] == 1


def test_evaluate_with_tta(cli, run, tmp_path):
    rc, _, err = cli("evaluate", run, "--data", shared_data(), "--format", "patches", "--out", tmp_path,
                     "--device", "cpu", "--tta", "8")
    assert rc == 0, err
    assert json.loads((tmp_path / "metrics.json").read_text())["evaluation"]["tta_views"] == 8
    rc, _, err = cli("evaluate", run, "--data", shared_data(), "--out", tmp_path, "--tta", "9")
    assert rc == 2 and "--tta" in err and "less than or equal to 8" in err


def test_not_a_run_or_another_version(cli, tmp_path):
    rc, _, err = cli("evaluate", tmp_path, "--data", tmp_path)
    assert rc == 2 and "not a cellprobe run folder" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "run.json").write_text(json.dumps({"version": "0.0.0", "run_format": 1}))
    (tmp_path / "config.yaml").write_text("output: x\n")
    rc, _, err = cli("evaluate", tmp_path, "--data", tmp_path)
    assert rc == 2 and "cellprobe 0.0.0" in err


def test_evaluate_refuses_what_it_cannot_write_or_would_replace_silently(cli, run, tmp_path):
    base = ("evaluate", run, "--data", shared_data(), "--split", "test", "--format", "patches", "--device", "cpu")
    (tmp_path / "a-file").write_text("")
    for out in ("/proc/no-such", str(tmp_path / "a-file" / "x")):
        rc, _, err = cli(*base, "--out", out)
        assert rc == 2 and err.count("\n") == 1, err
    rc, _, err = cli(*base, "--out", tmp_path)
    assert rc == 0, err
    for other in (("--tta", "2"), ("--checkpoint", "last")):  # the same data scored otherwise: not replaced unasked
        rc, _, err = cli(*base, "--out", tmp_path, *other)
        assert rc == 2 and "--overwrite" in err and err.count("\n") == 1, err
    rc, _, err = cli(*base, "--out", tmp_path, "--tta", "2", "--overwrite")
    assert rc == 0 and json.loads((tmp_path / "metrics.json").read_text())["evaluation"]["tta_views"] == 2
    # the fourteenth probe: a second evaluation into a folder another one is writing replaced its results
    from cellprobe.locking import exclusive

    with exclusive(tmp_path, "evaluating"):  # as another process evaluating into it
        rc, _, err = cli(*base, "--out", tmp_path, "--overwrite")
    assert rc == 2 and "in use by another cellprobe process (evaluating)" in err and err.count("\n") == 1, err
    assert json.loads((tmp_path / "metrics.json").read_text())["evaluation"]["tta_views"] == 2
    rc, _, err = cli(*base[:3], tmp_path / "no-data", "--out", tmp_path / "new")  # refused: no folder left
    assert rc == 2 and not (tmp_path / "new").exists(), err


def test_data_warnings_are_one_line_in_every_command(cli, run, tmp_path):
    """A DataWarning raised while a command reads data (here: an image not listed in patch_info.csv) is one line
    'warning: <file>: <problem>', not Python's format with a module path and a line of source."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(shared_data(), data)
    images = next(p for p in data.rglob("images") if p.is_dir())
    first = sorted(images.iterdir())[0]
    shutil.copy(first, images / f"stray{first.suffix}")
    rc, _, err = cli("evaluate", run, "--data", data, "--split", "test", "--format", "patches",
                     "--out", tmp_path / "out", "--device", "cpu")
    assert rc == 0, err
    warned = [line for line in err.splitlines() if "stray" in line]
    assert warned == [f"warning: {images}: 1 image files not listed in patch_info.csv are ignored "
                      f"(e.g. stray{first.suffix})"], err
    assert ".py:" not in err


@pytest.mark.parametrize("name, text, problem", [
    ("postprocess.json", '{"fg_threshold": 0.5, "fg_threshold": 0.6}', "key 'fg_threshold' is given twice"),
    ("run.json", None, "key 'mpp' is given twice"),
])
def test_a_run_file_with_a_key_given_twice_is_refused(cli, run, tmp_path, name, text, problem):
    """The run's state files are read strictly, as its YAML is: the last of two equal keys is never taken."""
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    if text is None:  # run.json: its 'mpp' given twice
        stamp = (copy / name).read_text()
        text = stamp.replace('"mpp":', '"mpp": 0.25, "mpp":', 1)
    (copy / name).write_text(text)
    rc, _, err = cli("evaluate", copy, "--data", shared_data(), "--split", "test", "--format", "patches",
                     "--out", tmp_path / "out", "--device", "cpu")
    assert rc == 2 and str(copy / name) in err and problem in err and err.count("\n") == 1, err


@pytest.mark.parametrize("damage, problem", [
    ("int", "tensors of another kind of number"),
    ("negvar", "BatchNorm variances below zero"),
    ("f64", "NaN or infinite values (in the model's precision)"),
    ("sparse", "is not a dense tensor"),
])
def test_a_checkpoint_the_network_should_not_take_is_refused(cli, run, tmp_path, damage, problem):
    """A run's checkpoint is held to the rules of encoder weights: integers cast silently, a value float32
    cannot hold, a negative BatchNorm variance or a sparse tensor is one line, not a score or a traceback."""
    import shutil

    import torch

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    ckpt = torch.load(copy / "best.ckpt", weights_only=True)
    state = ckpt["state_dict"]
    floats = [k for k, v in state.items() if k.startswith("network.") and v.is_floating_point() and v.ndim == 4]
    if damage == "int":
        for k in floats:
            state[k] = state[k].to(torch.int32)
    elif damage == "negvar":
        key = next(k for k in state if k.startswith("network.") and k.endswith("running_var"))
        state[key] = -torch.ones_like(state[key])
    elif damage == "f64":
        state[floats[0]] = torch.full(state[floats[0]].shape, 1e300, dtype=torch.float64)
    else:
        state[floats[0]] = state[floats[0]].to_sparse()
    torch.save(ckpt, copy / "best.ckpt")
    rc, _, err = cli("evaluate", copy, "--data", shared_data(), "--split", "test", "--format", "patches",
                     "--out", tmp_path / "out", "--device", "cpu")
    assert rc == 2 and problem in err and str(copy / "best.ckpt") in err and err.count("\n") == 1, err
