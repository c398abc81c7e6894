"""A loop of symbolic links anywhere a command reads or writes is one line and exit 2: it was a RuntimeError
(pathlib's resolve) or ELOOP traceback in score, data check, predict and train (the eleventh probe)."""

from __future__ import annotations

import pytest


@pytest.fixture
def loop(tmp_path):
    (tmp_path / "l1").symlink_to(tmp_path / "l2")
    (tmp_path / "l2").symlink_to(tmp_path / "l1")
    return tmp_path / "l1"


def test_a_symlink_loop_is_one_line_wherever_it_is_met(cli, tmp_path, loop):
    import numpy as np

    labels = np.zeros((1, 32, 32, 2), np.int32)
    np.save(tmp_path / "t.npy", labels)
    for args in (("score", "--format", "conic", "--true", loop, "--pred", tmp_path / "t.npy"),
                 ("score", "--format", "conic", "--true", tmp_path / "t.npy", "--pred", tmp_path / "t.npy",
                  "--json", loop),
                 ("data", "check", loop),
                 ("train", "--encoder", "efficientnet-lite0", "--weights", "random", "--data", tmp_path, "--out",
                  loop / "run")):
        rc, _, err = cli(*args)
        assert rc == 2 and err.count("\n") == 1 and "is a loop of symbolic links" in err, (args, err)
        assert str(loop) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l1", "l2", "t.npy"]
