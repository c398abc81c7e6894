"""A device, a pipe or a huge file where a command reads a file is one line, exit 2, and nothing waits or
fills memory (the thirteenth probe: YAML configs were read whole, /dev/zero ended in MemoryError and a pipe hung
forever; score and predict called /dev/zero "no such file")."""

from __future__ import annotations

import os

import pytest

from cellprobe.config import MAX_TEXT_BYTES, load_yaml
from cellprobe.errors import InputError

DEVICE = "/dev/zero"


@pytest.fixture
def pipe(tmp_path):
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def _refused(result, name, problem="is not a regular file (a device, pipe or socket)"):
    rc, _, err = result
    assert rc == 2 and name in err and problem in err and err.count("\n") == 1, err


@pytest.mark.parametrize("special", ["device", "pipe"])
def test_config_files_that_are_no_files(cli, tmp_path, pipe, special):
    path = DEVICE if special == "device" else pipe
    _refused(cli("train", "-c", path, "--encoder", "efficientnet-lite0", "--data", tmp_path, "--out",
                 tmp_path / "r"), str(path))
    _refused(cli("bench", path, "--out", tmp_path / "b"), str(path))
    _refused(cli("data", "list", "--catalog", path), str(path))
    _refused(cli("score", "--format", "conic", "--true", path, "--pred", path), str(path))
    _refused(cli("predict", tmp_path, path, "--out", tmp_path / "p"), str(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_a_config_larger_than_any_config_is_refused_unread(tmp_path):
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as f:
        f.truncate(MAX_TEXT_BYTES + 1)  # sparse: no disk, and nothing of it is read
    with pytest.raises(InputError, match=f"cannot read config: {MAX_TEXT_BYTES + 1:,} bytes is more than any config holds"):
        load_yaml(path)


def test_names_that_are_not_utf8_are_one_line_naming_them(cli, tmp_path):
    """The twenty-fourth probe: an image or slide whose file name held bytes that are not UTF-8 was a
    UnicodeEncodeError traceback; a dataset folder so named was refused as "Invalid JSON: lone leading
    surrogate". Such a name can go into no record: it is refused, shown with its bytes escaped."""
    import os

    from PIL import Image

    from cellprobe.config import parse_config
    from cellprobe.errors import InputError
    from cellprobe.inference.predict import collect_inputs
    from cellprobe.run.train_config import TrainConfig

    folder = tmp_path / "images"
    folder.mkdir()
    bad = os.fsdecode(bytes(folder) + b"/a\xff.png")
    Image.new("RGB", (8, 8)).save(os.fsencode(bad), format="PNG")
    rc, _, err = cli("predict", "some-run", bad, "--out", tmp_path / "out")
    assert rc == 2 and err == f"cellprobe: error: {folder}/a\\xff.png: not valid UTF-8 (a file name with " \
                              "undecodable bytes?); rename it\n", err
    with pytest.raises(InputError, match="its name is not valid UTF-8") as found:
        collect_inputs([folder])  # found in a folder, not given
    assert found.value.path == f"{folder}/a\\xff.png"
    with pytest.raises(InputError, match=r"config key 'data.path': '.*d\\xfc' is not valid UTF-8") as err_cfg:
        parse_config(TrainConfig, {"output": str(tmp_path / "run"), "encoder": {"name": "efficientnet-lite0"},
                                   "data": {"path": os.fsdecode(bytes(tmp_path) + b"/d\xfc")}}, "run.yaml")
    assert err_cfg.value.path == "run.yaml"


def test_a_result_file_option_never_replaces_a_device_or_pipe(cli, tmp_path, pipe):
    """Twenty-sixth probe (major): `score --json /dev/null --overwrite` renamed its results onto the name, so a
    device (as root, the system's /dev/null), a pipe, or a link to /proc/self/fd/1 became a regular file."""
    import numpy as np

    true = tmp_path / "true.npy"
    labels = np.zeros((1, 16, 16, 2), np.int32)
    labels[0, 2:6, 2:6] = (1, 1)
    np.save(true, labels)
    np.save(tmp_path / "pred.npy", labels)
    (tmp_path / "out").symlink_to(pipe)  # as /dev/stdout is a link to /proc/self/fd/1, a pipe or terminal
    (tmp_path / "ds").mkdir()
    for target in (pipe, tmp_path / "out"):
        for option in ("--json", "--per-image"):
            _refused(cli("score", "--format", "conic", "--true", true, "--pred", tmp_path / "pred.npy", option, target,
                         "--overwrite"), str(target), "is not a regular file (a device, pipe or socket, or a link")
        _refused(cli("data", "check", tmp_path / "ds", "--json", target, "--overwrite"), str(target),
                 "is not a regular file (a device, pipe or socket, or a link")
    assert pipe.is_fifo() and (tmp_path / "out").is_symlink()
