"""Atomic writes get the permissions the user's umask gives (all-or-nothing: tests/test_foundation.py)."""

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
