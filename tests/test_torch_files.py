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


@pytest.mark.parametrize("how", ["torch.save", "raw pickle protocol 4"])
def test_pickled_code_never_runs_and_the_refusal_is_one_clean_line(tmp_path, how):
    marker, path = tmp_path / "PWNED", tmp_path / "evil.ckpt"
    if how == "torch.save":
        torch.save({"state_dict": {}, "x": _Payload(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(_Payload(marker), protocol=4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's pickle-protocol warning would fail here
        with pytest.raises(InputError, match="pickled objects other than tensors") as err:
            load_torch_file(path, "checkpoint")
    message = str(err.value)
    assert not marker.exists()
    assert str(path) in message and "\n" not in message
    assert "weights_only" not in message and "False" not in message  # never the advice to load it unsafely


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
