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


def test_a_killed_write_leaves_a_temporary_that_the_next_write_into_its_folder_removes(tmp_path):
    """The 28th probe: tune, evaluate and predict killed inside an atomic write (their postprocess.json,
    metrics.json, record) left its temporary in the user's folder for good, though their reruns succeeded."""
    import signal
    import subprocess
    import sys

    target = tmp_path / "metrics.json"
    killed = subprocess.run([sys.executable, "-c", (
        "import os, signal, sys\n"
        "from cellprobe import atomic\n"
        "with atomic.atomic_open(sys.argv[1], 'w') as f:\n"
        "    f.write('half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"), str(target)], timeout=60)
    assert killed.returncode == -signal.SIGKILL
    left = list(tmp_path.glob(".metrics.json.*.tmp"))
    assert len(left) == 1 and not target.exists()
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as writer:  # a live writer's
        try:
            live = tmp_path / f".metrics.json.{writer.pid}-abcdefgh.tmp"  # temporary, being written: kept
            live.write_text("being written")
            (tmp_path / ".per_image.csv.1-abcdefgh.tmp").write_text("another file's")
            (tmp_path / ".metrics.json.old12345.tmp").write_text("an earlier version's")
            (tmp_path / ".metrics.json.2-abcdefgh.tmp").mkdir()  # not cellprobe's
            (tmp_path / ".per_image.csv.4194304-abcdefgh.tmp").write_text("a dead writer's, of another file")
            atomic.write_json(target, {"pq": 0.5})  # the first write into the folder sweeps it, once
            assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
                [".metrics.json.2-abcdefgh.tmp", ".metrics.json.old12345.tmp", ".per_image.csv.1-abcdefgh.tmp",
                 live.name, "metrics.json"])
        finally:
            writer.kill()
    assert atomic.sweep_interrupted_writes(tmp_path) == [live]  # its writer gone: removed too
    assert (tmp_path / ".metrics.json.old12345.tmp").exists()  # an earlier version's: only where it is named
    assert atomic.sweep_interrupted_writes(tmp_path, {"metrics.json"}) == [tmp_path / ".metrics.json.old12345.tmp"]


def test_the_umask_is_read_without_setting_it(monkeypatch):
    """The 28th probe's note: reading the umask by setting it left a moment in which another thread's new file
    got 022 whatever the user's mask; on Linux it is read from /proc, and os.umask is not called."""
    old = os.umask(0o027)
    try:
        if os.path.exists("/proc/self/status"):
            monkeypatch.setattr(os, "umask", lambda _mask: pytest.fail("the umask was set to read it"))
        assert atomic.current_umask() == 0o027
    finally:
        monkeypatch.undo()
        os.umask(old)
