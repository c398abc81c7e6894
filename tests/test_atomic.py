"""Atomic writes: all or nothing, and the permissions the user's umask gives."""

from __future__ import annotations

import os
import stat

import pytest

from cellprobe import atomic


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_results_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic.write_text(tmp_path / "metrics.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "metrics.json").stat().st_mode) == mode


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "result.json"
    atomic.write_text(target, "old")
    with pytest.raises(RuntimeError), atomic.atomic_open(target, "w") as handle:
        handle.write("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["result.json"]
