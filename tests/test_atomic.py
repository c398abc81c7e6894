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


def test_an_output_folder_through_a_dangling_link_names_the_link(tmp_path):
    """The tenth probe: '--out' at a link to nothing said 'cannot create or write the --out folder (File
    exists)'."""
    from cellprobe.errors import InputError

    (tmp_path / "gone").symlink_to(tmp_path / "missing")
    for out in (tmp_path / "gone", tmp_path / "gone" / "sub"):
        with pytest.raises(InputError, match=r"is a link to .*missing, which does not exist") as err:
            atomic.output_folder(out)
        assert err.value.path == str(tmp_path / "gone")
    assert not (tmp_path / "missing").exists()
