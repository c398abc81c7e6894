"""The sha256 of a whole slide file, which the slide's stamp carries: a finished slide is skipped, and a killed
one resumed, only while the file holds the same bytes.

Hashing a slide reads all of it (gigabytes), so each digest is kept beside the results, in
``<out>/.cellprobe-slide-digests/<slide name>.json``, with the file's device, inode, size, modification and
status-change times (``ctime``). A later run reuses it while all five are unchanged and hashes the file again
otherwise. No user-level call sets ``ctime``: any write to the file, a ``touch`` setting its time back, a move
over it or a chmod changes it, so a slide rewritten in place with its time restored is hashed again and told
apart, and a chmod costs one re-read, not a wrong result. The record is a cache, never evidence: one that is
unreadable or of another file only means the file is hashed again.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from cellprobe import atomic
from cellprobe.hashing import file_sha256

#: the folder, in a slide command's output folder, that keeps each slide's digest
DIGESTS = ".cellprobe-slide-digests"

#: digests worked out in this process (a command plans each slide twice: once checking, once running)
_known: dict[tuple[Any, ...], str] = {}


def _seen(path: Path) -> list[Any]:
    """What tells the file's bytes unchanged without reading them: its path, device, inode, size, times."""
    stat = path.stat()
    return [str(path.resolve()), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]


def _record_path(out_dir: Path, name: str) -> Path:
    return Path(out_dir) / DIGESTS / f"{name}.json"


def slide_sha256(path: Path, name: str, out_dir: Path | None) -> str:
    """The sha256 of the slide at ``path`` (its results named ``name`` in ``out_dir``), from this process's
    memory or ``out_dir``'s record while the file is unchanged, else read and hashed."""
    seen = _seen(path)
    if tuple(seen) in _known:
        return _known[tuple(seen)]
    record = _record_path(out_dir, name) if out_dir is not None else None
    digest = None
    if record is not None and record.is_file():
        from cellprobe.config import read_json
        from cellprobe.errors import InputError

        try:
            data = read_json(record, "slide digest")
        except InputError:
            data = None
        if (isinstance(data, dict) and data.get("seen") == seen and isinstance(data.get("sha256"), str)
                and re.fullmatch(r"[0-9a-f]{64}", data["sha256"])):
            digest = data["sha256"]
    if digest is None:
        digest = file_sha256(path)
        if _seen(path) != seen:  # written to while being read: no digest of one version
            from cellprobe.errors import InputError

            raise InputError(path, "changed while it was read (a copy still being written?); run again once it "
                                   "is complete")
    _known[tuple(seen)] = digest
    return digest


def check_record_place(out_dir: Path, name: str) -> None:
    """Refuse an output folder where the slide's digest record cannot go (something else at its path), before
    anything is created."""
    from cellprobe.errors import InputError

    folder, record = Path(out_dir) / DIGESTS, _record_path(out_dir, name)
    if folder.exists() and not folder.is_dir():
        raise InputError(folder, "is in the way of cellprobe's record of slide digests (not a folder); move it")
    if (record.exists() and not record.is_file()) or record.is_symlink():
        raise InputError(record, "is in the way of cellprobe's record of this slide's digest (not a plain file); "
                                 "move it")


def remember(path: Path, name: str, out_dir: Path, digest: str) -> None:
    """Keep ``digest`` of the slide at ``path`` in ``out_dir`` (an existing output folder) for later runs."""
    record = _record_path(out_dir, name)
    seen = _seen(path)
    if _known.get(tuple(seen)) != digest:  # the file changed since it was hashed: keep nothing
        return
    data = {"seen": seen, "sha256": digest}
    try:
        if json.loads(record.read_text(encoding="utf-8")) == data:
            return
    except (OSError, ValueError):
        pass
    os.makedirs(record.parent, exist_ok=True)
    atomic.write_json(record, data)
