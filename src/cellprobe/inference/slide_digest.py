"""The sha256 of a whole slide (every file it is made of: :func:`slide_files`), which the slide's stamp carries:
a finished slide is skipped, and a killed one resumed, only while its files hold the same bytes.

Hashing a slide reads all of it (gigabytes), so each digest is kept beside the results, in
``<out>/.cellprobe-slide-digests/<slide name>.json``, with each file's path, device, inode, size, modification
and status-change times (``ctime``). A later run reuses it while all are unchanged and hashes the files again
otherwise. No user-level call sets ``ctime``: any write to the file, a ``touch`` setting its time back, a move
over it or a chmod changes it, so a slide rewritten in place with its time restored is hashed again and told
apart, and a chmod costs one re-read, not a wrong result. A record that is unreadable, not a digest, or of other
files only means the files are hashed again; one forged with another slide's digest beside this slide's
current times would be believed, as any record cellprobe keeps could be forged in step with what it guards.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cellprobe import atomic
from cellprobe.hashing import file_sha256, is_sha256

#: the folder, in a slide command's output folder, that keeps each slide's digest
DIGESTS = ".cellprobe-slide-digests"

#: digests worked out in this process (a command plans each slide twice: once checking, once running)
_known: dict[str, str] = {}

#: keys of a Hamamatsu VMS/VMU index naming the files the slide's pixels are in (beside the index)
VMS_FILE_KEYS = ("ImageFile", "MapFile", "OptimisationFile", "MacroImage")


def slide_files(path: Path) -> list[tuple[str, Path]]:
    """The files a slide is made of, each with its name as the slide names it: OpenSlide reads a MIRAX slide
    (.mrxs) from the folder of the same name beside it, and a Hamamatsu VMS/VMU slide from the image files its
    index names (joined to the index's folder even when written as absolute paths, as OpenSlide joins them); a
    slide whose pixels changed in any of them is another slide. Other formats are one file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".mrxs":
        folder = path.with_suffix("")
        inside = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
        return [(path.name, path), *((p.relative_to(path.parent).as_posix(), p) for p in inside)]
    if suffix in (".vms", ".vmu"):
        names: set[str] = set()
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip().startswith(VMS_FILE_KEYS) and value.strip():
                names.add(value.strip())
        files = ((name, path.parent / name.lstrip("/\\")) for name in sorted(names))
        return [(path.name, path), *((name, file) for name, file in files if file.is_file())]
    return [(path.name, path)]


def _seen(files: list[tuple[str, Path]]) -> list[list[Any]]:
    """What tells the files' bytes unchanged without reading them: each one's path, device, inode, size, times."""
    out = []
    for _, file in files:
        stat = file.stat()
        out.append([str(file.resolve()), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns])
    return out


def _record_path(out_dir: Path, name: str) -> Path:
    return Path(out_dir) / DIGESTS / f"{name}.json"


def _hash(files: list[tuple[str, Path]]) -> str:
    """One file's sha256; for a slide of several, the sha256 over each file's name and sha256."""
    if len(files) == 1:
        return file_sha256(files[0][1])
    lines = "".join(f"{name}|{file_sha256(file)}\n" for name, file in files)
    return hashlib.sha256(lines.encode()).hexdigest()


def slide_sha256(path: Path, name: str, out_dir: Path | None) -> str:
    """The sha256 of the slide at ``path`` (every file it is made of; its results named ``name`` in
    ``out_dir``), from this process's memory or ``out_dir``'s record while the files are unchanged, else read
    and hashed."""
    files = slide_files(path)
    seen = _seen(files)
    key = json.dumps(seen)
    if key in _known:
        return _known[key]
    record = _record_path(out_dir, name) if out_dir is not None else None
    digest = None
    if record is not None and record.is_file() and not record.is_symlink():
        from cellprobe.config import read_json
        from cellprobe.errors import InputError

        try:
            data = read_json(record, "slide digest")
        except InputError:
            data = None
        if isinstance(data, dict) and data.get("seen") == seen and is_sha256(data.get("sha256")):
            digest = data["sha256"]
    if digest is None:
        digest = _hash(files)
        if _seen(slide_files(path)) != seen:  # written to while being read: no digest of one version
            from cellprobe.errors import InputError

            raise InputError(path, "changed while it was read (a copy still being written?); run again once it "
                                   "is complete")
    _known[key] = digest
    return digest


def check_record_place(out_dir: Path, name: str) -> None:
    """Refuse an output folder where the slide's digest record cannot go (something else at its path), before
    anything is created."""
    from cellprobe.errors import InputError

    folder, record = Path(out_dir) / DIGESTS, _record_path(out_dir, name)
    if folder.is_symlink():  # its records would be written (and replaced) wherever the link points
        raise InputError(folder, "is a link, where cellprobe keeps its own folder of slide digests; remove the link "
                                 "(nothing it points at is touched)")
    if folder.exists() and not folder.is_dir():
        raise InputError(folder, "is in the way of cellprobe's record of slide digests (not a folder); move it")
    if (record.exists() and not record.is_file()) or record.is_symlink():
        raise InputError(record, "is in the way of cellprobe's record of this slide's digest (not a plain file); "
                                 "move it")


def remember(path: Path, name: str, out_dir: Path, digest: str) -> None:
    """Keep ``digest`` of the slide at ``path`` in ``out_dir`` (an existing output folder) for later runs."""
    record = _record_path(out_dir, name)
    seen = _seen(slide_files(path))
    if _known.get(json.dumps(seen)) != digest:  # the files changed since they were hashed: keep nothing
        return
    data = {"seen": seen, "sha256": digest}
    try:
        if json.loads(record.read_text(encoding="utf-8")) == data:
            return
    except (OSError, ValueError, RecursionError):
        pass
    os.makedirs(record.parent, exist_ok=True)
    atomic.write_json(record, data)
