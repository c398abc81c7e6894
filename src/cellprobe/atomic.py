"""Atomic file writes: results and checkpoints are never left half-written.

Write to a temporary file in the destination folder, fsync, then ``os.replace`` (atomic on POSIX). A killed run
leaves either the old file or the new one, never a torn one. The file gets the permissions ``open()`` would
give it (0666 less the user's umask), so a lab's group can read results: ``mkstemp`` alone makes them 0600.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
import threading
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; on success it replaces ``path`` atomically."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes only ('w' or 'wb'), got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if os.path.abspath(path.parent) not in _SWEPT:  # a killed run's temporaries of this folder go at the first
        sweep_interrupted_writes(path.parent)  # write into it (listing it at every write would cost O(files²))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


#: a temporary of :func:`atomic_open`: ``.<name>.<pid>-<8 random>.tmp``, or ``.<name>.<8 random>.tmp`` as earlier
#: versions named them (mkstemp's random part: lower-case letters, digits, underscore)
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?:(?P<pid>[0-9]+)-)?[a-z0-9_]{8}\.tmp$")
#: folders this process has swept (:func:`sweep_interrupted_writes`): once each, not at every write
_SWEPT: set[str] = set()


def sweep_interrupted_writes(folder: str | Path, names: Collection[str] = ()) -> list[Path]:
    """Remove the temporaries that killed atomic writes left in ``folder``, so that a rerun leaves none behind;
    returns them. One listing of the folder: a temporary named after a writer that is no live process of this
    machine goes (a live one's is being written now), and one of an earlier version's, which names no writer,
    only where its file is one of ``names``. Folders so named are not cellprobe's and are left alone."""
    cleared = []
    try:
        entries = list(os.scandir(folder))
    except OSError:  # not there yet, or not listable: the write itself says what is wrong
        return cleared
    for entry in entries:
        found = _TEMPORARY.match(entry.name)
        if found is None or (entry.is_dir(follow_symlinks=False)):
            continue
        pid = found.group("pid")
        if (pid is not None and not _alive(int(pid))) or (pid is None and found.group("name") in names):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                cleared.append(Path(entry.path))
    _SWEPT.add(os.path.abspath(folder))
    return cleared


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a process of this machine (one of another user counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0
    return True


def current_umask() -> int:
    """The process's umask, from /proc where Linux shows it. Elsewhere reading it means setting it: the interim
    mask is the strictest, so a file another thread makes meanwhile is never more readable than the user asked,
    and two readers take turns (one would read the other's interim mask)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)  # the strictest interim value: nothing made meanwhile is more readable than asked
        os.umask(mask)
    return mask


_UMASK_LOCK = threading.Lock()


#: the longest file name most filesystems take (ext4, XFS, APFS, NTFS: 255 bytes or UTF-16 units); results named
#: after their inputs are checked against it before any work
MAX_NAME_BYTES = 255
#: the longest name of a result written here: its temporary sibling adds a dot and ".<pid>-<8 random>.tmp"
MAX_RESULT_NAME_BYTES = MAX_NAME_BYTES - len("..4194304-12345678.tmp")


def own_folder_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a folder cellprobe makes and works in ("a link", "not a folder"; None when it is
    one, or is not there yet): what is written, appended to or cleared there must stay in the output folder, and
    a link would lead it elsewhere."""
    if path.is_symlink():
        return "a link"
    if path.exists() and not path.is_dir():
        return "not a folder"
    return None


def undecodable(text: str) -> bool:
    """Whether ``text`` holds bytes that are not UTF-8 (Python keeps them as lone surrogates in a file name):
    such a name cannot go into cellprobe's records (JSON, YAML, Parquet are UTF-8), so it is refused, naming it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def shown(text: str) -> str:
    """``text`` as an error line can print it: undecodable bytes as ``\\xff`` escapes."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def portable_name(name: str) -> str:
    """``name`` as macOS and Windows file systems compare names: case-insensitive, with é spelt as one code point
    or as e + combining accent alike. Two results whose names agree here are one file once a folder is copied
    there, though Linux keeps them apart."""
    import unicodedata

    return unicodedata.normalize("NFC", name).casefold()


def entries_by_portable_name(folder: Path) -> dict[str, Path]:
    """The entries of ``folder`` (none if it does not exist) by :func:`portable_name`."""
    return {portable_name(p.name): p for p in folder.iterdir()} if folder.is_dir() else {}


def in_the_way(path: Path) -> bool:
    """Whether something other than a regular file (a folder, a link to nothing, a device) takes the name where a
    command writes a file: even --overwrite cannot replace it, so commands refuse it before any work."""
    return (path.exists() or path.is_symlink()) and not path.is_file()


def output_folder(path: str | Path, option: str = "--out", create: bool = True) -> Path:
    """``path`` checked as an output folder before a command works: a file on the way, or a folder that cannot
    be made or written, is one line naming it. ``create``: make it (with parents) now; otherwise only prove
    that it can be made, by making and removing a probe folder in its nearest existing ancestor."""
    from cellprobe.errors import InputError

    path = Path(path)
    existing = next(p for p in (path, *path.parents) if p.exists() or p == Path(p.anchor))
    dangling = next((p for p in (path, *path.parents) if p.is_symlink() and not p.exists()), None)
    if dangling is not None:
        raise InputError(dangling, f"is a link to {os.readlink(dangling)}, which does not exist; {option} cannot "
                                   "be made there")
    if not existing.is_dir():
        raise InputError(existing, f"{option} must be a folder, and this is a file")
    try:
        if create:
            path.mkdir(parents=True, exist_ok=True)
        os.rmdir(tempfile.mkdtemp(prefix=".cellprobe-probe.", dir=path if create else existing))
    except OSError as exc:
        raise InputError(path, f"cannot create or write the {option} folder ({exc.strerror or exc})") from None
    return path


def temporary_folder(parent: str | Path, prefix: str) -> Path:
    """A new, uniquely named folder in ``parent`` with the permissions ``mkdir`` would give it (0777 less the
    umask; ``mkdtemp`` alone makes it 0700, hiding results from a lab's group)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(folder, 0o777 & ~current_umask())
    return folder


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def write_json(path: str | Path, obj: Any, indent: int = 2) -> None:
    """JSON with NaN and ±infinity written as ``null`` (strict JSON readers reject both)."""
    write_text(path, json.dumps(json_ready(obj), indent=indent, sort_keys=False, allow_nan=False) + "\n")


def json_ready(obj: Any) -> Any:
    """``obj`` as :func:`write_json` writes it (NaN and ±infinity as None, numpy scalars as Python numbers)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_ready(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:  # numpy scalar
        return json_ready(obj.item())
    return obj
