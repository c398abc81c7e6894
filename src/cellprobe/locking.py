"""One writer per output folder: an exclusive advisory lock on ``<folder>/.cellprobe.lock`` held while a
command writes there, so a second command on the same folder is refused with one line instead of both
writing into it. ``fcntl.flock`` is released by the kernel when the process ends, so a killed run leaves no
stale lock behind (the empty lock file stays and is reused)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from cellprobe import atomic
from cellprobe.errors import InputError

LOCK = ".cellprobe.lock"
#: the folders whose lock this process holds (resolved): its own checks of them see no other process
_HELD: set[str] = set()


@contextlib.contextmanager
def exclusive(folder: str | Path, what: str) -> Iterator[None]:
    """Hold ``folder``'s lock (creating the folder) for ``what`` the caller does; refused while another
    process holds it. When the caller fails, a lock file made here is removed again, and so is a folder made
    here that then holds nothing. Worker processes of one command (DDP ranks other than 0, which Lightning
    starts with ``LOCAL_RANK`` set) work under their launcher's lock and take none."""
    if os.environ.get("LOCAL_RANK", "0") != "0":
        yield
        return
    folder = Path(folder)
    made = not folder.exists()
    atomic.output_folder(folder)  # made; a file or a link to nothing on the way is one line naming it
    if (folder / LOCK).is_symlink() or ((folder / LOCK).exists() and not (folder / LOCK).is_file()):
        # the lock's file is truncated and written: never through a link (a user's file would be replaced)
        raise InputError(folder / LOCK, "is not cellprobe's lock file (a link, folder or device); remove it")
    created = not (folder / LOCK).exists()
    try:
        fd = os.open(folder / LOCK, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o666)
    except OSError as exc:
        raise InputError(folder, f"cannot use this output folder ({exc.strerror or exc})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise _in_use(folder, holder or what) from None
    os.ftruncate(fd, 0)  # what the holder does, for a refused command to name (not what that one would do)
    os.pwrite(fd, what.encode(), 0)
    held = str(folder.resolve())
    _HELD.add(held)
    try:
        yield
    except BaseException:  # refused or failed: a lock file this call made goes again (a user's folder, or
        if created:         # data, is left as it was), and so does a folder made for it that holds nothing else
            (folder / LOCK).unlink(missing_ok=True)
        if made and not any(folder.iterdir()):
            folder.rmdir()
        raise
    finally:
        _HELD.discard(held)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def refuse_if_in_use(folder: str | Path) -> None:
    """An InputError when another process holds ``folder``'s lock; makes and changes nothing. For the checks a
    command makes of a folder before it takes the lock (validate first, then create): what a folder being
    written holds is not yet what it will hold, so its state would be misread (a run that "never finished an
    epoch" while it trains its first) and a refusal's advice could harm the running command."""
    lock = Path(folder) / LOCK
    if lock.is_symlink() or not lock.is_file():
        return  # none, or not cellprobe's: exclusive() names that when it comes to it
    if os.environ.get("LOCAL_RANK", "0") != "0" or str(Path(folder).resolve()) in _HELD:
        return  # held by this command: by this process, or by the launcher of this DDP rank
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _in_use(Path(folder), _holder(fd) or "holding its lock") from None
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _in_use(folder: Path, holder: str) -> InputError:
    return InputError(folder, f"in use by another cellprobe process ({holder}); wait for it to end, or choose "
                              "another output folder")


def _holder(fd: int) -> str:
    """What the process holding the lock said it does (empty when it wrote nothing)."""
    try:
        return os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""

