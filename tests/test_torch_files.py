"""Torch files are read with weights_only only; a refusal is one line that names the cause, with no torch
warning on stderr and no advice to load the file unsafely."""

from __future__ import annotations

import os
import pickle
import warnings

import pytest
import torch

from cellprobe.errors import InputError
from cellprobe.torch_files import load_torch_file


class _Payload:
    """Unpickling it would run ``os.system`` (creating a marker file): the attack a checkpoint can carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("how", ["torch.save", "raw pickle protocol 4", "numpy scalar", "numpy array"])
def test_pickled_code_never_runs_and_the_refusal_is_one_clean_line(tmp_path, how):
    """The thirteenth probe: a checkpoint holding numpy objects quoted torch's "(1) ... Re-running torch.load
    with weights_only set to False will likely succeed"."""
    import numpy as np

    marker, path = tmp_path / "PWNED", tmp_path / "evil.ckpt"
    if how == "torch.save":
        torch.save({"state_dict": {}, "x": _Payload(marker)}, path)
    elif how == "raw pickle protocol 4":
        path.write_bytes(pickle.dumps(_Payload(marker), protocol=4))
    else:
        torch.save({"state_dict": {}, "x": np.float64(1.0) if how == "numpy scalar" else np.ones(3)}, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's pickle-protocol warning would fail here
        with pytest.raises(InputError, match="pickled objects other than tensors") as err:
            load_torch_file(path, "checkpoint")
    message = str(err.value)
    assert not marker.exists()
    assert str(path) in message and "\n" not in message
    assert "weights_only" not in message and "False" not in message  # never the advice to load it unsafely
    assert "safe_globals" not in message and "\x1b" not in message  # nor to allow-list what the file asks for
    assert "unsupported global" in message.lower() or how == "raw pickle protocol 4", message


def test_plain_data_loads_and_a_torn_file_is_named(tmp_path):
    path = tmp_path / "ok.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "epoch": 3}, path)
    assert load_torch_file(path, "checkpoint")["epoch"] == 3
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(InputError, match=r"not a loadable checkpoint \(") as err:
        load_torch_file(path, "checkpoint")
    assert "\n" not in str(err.value)
    with pytest.raises(FileNotFoundError):
        load_torch_file(tmp_path / "absent.pt", "checkpoint")


def test_state_problems_name_keys_shapes_and_tensors_without_values():
    """One wording for encoder weights and run checkpoints: a meta tensor (a model built without memory, saved
    as is) was a RuntimeError traceback; a missing or extra key in a run checkpoint was torch's first line."""
    import torch

    from cellprobe.torch_files import state_problems

    expected = {"a": torch.zeros(2), "b": torch.zeros(3), "c": torch.zeros(1)}
    given = {"a": torch.empty(2, device="meta"), "b": torch.zeros(4), "d": torch.zeros(1)}
    assert state_problems(expected, given) == [
        "1 missing keys: c", "1 unexpected keys: d", "1 shape mismatches: b (4,) vs model (3,)",
        "1 tensors without values (device 'meta'): a"]
    assert state_problems(expected, {**given, "b": torch.zeros(3), "c": torch.zeros(1)}, ignored=("d",)) == [
        "1 tensors without values (device 'meta'): a"]
    assert state_problems(expected, dict(expected)) == []


@pytest.mark.parametrize("damage", ["extra", "missing", "meta"])
def test_a_run_checkpoint_that_does_not_fit_names_the_key(tmp_path_factory, tmp_path, damage):
    import shutil

    import torch
    from tests.training.tiny import shared_run

    from cellprobe.errors import InputError
    from cellprobe.run.checkpoint import load_checkpoint, save_checkpoint
    from cellprobe.run.network import check_checkpoint
    from cellprobe.run.run_folder import Run

    run = Run.open(shutil.copytree(shared_run(tmp_path_factory), tmp_path / "run"))
    path = run.path / "best.ckpt"
    ckpt = load_checkpoint(path)
    state = ckpt["state_dict"]
    key = next(k for k in state if k.startswith("network.neck.") and k.endswith(".weight"))
    if damage == "extra":
        state["network.extra.weight"] = torch.zeros(3)
    elif damage == "missing":
        del state[key]
    else:
        state[key] = torch.empty(state[key].shape, device="meta")
    save_checkpoint(ckpt, path)
    with pytest.raises(InputError) as err:
        check_checkpoint(run.config, run.stamp.encoder, run.stamp.class_names, path, run.stamp.mpp)
    shown = {"extra": "1 unexpected keys: extra.weight", "missing": f"1 missing keys: {key[len('network.'):]}",
             "meta": "has no values (a tensor on device 'meta')"}[damage]
    assert shown in err.value.problem and "\n" not in str(err.value), err.value


@pytest.mark.parametrize("damage", ["pairs", "float", "int_key"])
def test_a_state_dict_that_is_no_mapping_of_tensors_is_named(tmp_path, damage):
    """The fifteenth probe: a best.ckpt whose state_dict was a list of (key, tensor) pairs, or held a Python
    float for a weight, stopped predict with an AttributeError traceback."""
    import torch

    from cellprobe.errors import InputError
    from cellprobe.run.checkpoint import load_checkpoint, save_checkpoint

    state = {"network.a.weight": torch.zeros(2), "network.b.bias": torch.zeros(1)}
    if damage == "pairs":
        state = list(state.items())
    elif damage == "float":
        state["network.b.bias"] = 0.5
    else:
        state[3] = torch.zeros(1)
    path = tmp_path / "best.ckpt"
    save_checkpoint({"state_dict": state, "epoch": 0}, path)
    with pytest.raises(InputError) as err:
        load_checkpoint(path)
    shown = {"pairs": "state_dict is a list, not a mapping", "float": "entry 'network.b.bias' is a float",
             "int_key": "key 3 is a int, not a weight name"}[damage]
    assert err.value.path == str(path) and shown in err.value.problem, err.value
