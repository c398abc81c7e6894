"""The output folder's lock (cellprobe.locking)."""

from __future__ import annotations

import os

import pytest

from cellprobe.errors import InputError
from cellprobe.locking import LOCK, exclusive, refuse_if_in_use


@pytest.mark.parametrize("kind", ["link to a file", "link to nothing", "folder", "pipe"])
def test_a_lock_place_that_is_no_lock_file_is_refused_and_left_as_it_is(tmp_path, kind):
    """The twenty-third probe: a lock file that was a link to a user's file had that file truncated and
    overwritten (every command holding an output folder); a link to nothing created a file where it pointed."""
    out, target = tmp_path / "out", tmp_path / "thesis.txt"
    out.mkdir()
    if kind == "link to a file":
        target.write_text("years of work")
    lock = out / LOCK
    {"link to a file": lambda: lock.symlink_to(target), "link to nothing": lambda: lock.symlink_to(target),
     "folder": lock.mkdir, "pipe": lambda: os.mkfifo(lock)}[kind]()
    with pytest.raises(InputError, match="is not cellprobe's lock file") as err, exclusive(out, "evaluating"):
        pass
    assert err.value.path == str(lock)
    assert (target.read_text() == "years of work") if kind == "link to a file" else not target.exists()


def test_the_lock_is_held_and_named(tmp_path):
    with exclusive(tmp_path / "out", "evaluating"):
        with pytest.raises(InputError, match=r"in use by another cellprobe process \(evaluating\)"), \
                exclusive(tmp_path / "out", "tuning"):
            pass
    with exclusive(tmp_path / "out", "tuning"):
        pass


def test_a_folder_in_use_is_named_before_the_lock_is_taken_and_nothing_is_made(tmp_path, held_elsewhere):
    """Commands check a folder's contents before they take its lock (validate, then create): a folder another
    command is writing is said to be in use first, and the check itself makes no folder and no lock."""
    refuse_if_in_use(tmp_path / "absent")
    assert not (tmp_path / "absent").exists()
    with held_elsewhere(tmp_path / "out", "training"):
        with pytest.raises(InputError, match=r"in use by another cellprobe process \(training\)") as err:
            refuse_if_in_use(tmp_path / "out")
        assert err.value.path == str(tmp_path / "out")
    refuse_if_in_use(tmp_path / "out")  # released with its holder
    with exclusive(tmp_path / "out", "tuning"):  # the check holds nothing after it
        refuse_if_in_use(tmp_path / "out")  # nor does this process's own lock stand in its way
