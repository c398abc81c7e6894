"""Content digests of files (download verification, weight and cache identity)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path


def is_sha256(value: object) -> bool:
    """Whether ``value`` is a sha256 as cellprobe's records write it (64 lowercase hex digits)."""
    import re

    return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) is not None


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, streamed (standard library ``hashlib.file_digest``)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def folder_digests(folder: Path, names: Iterable[str]) -> dict[str, str]:
    """The sha256 of each named file in ``folder``: what a results record keeps, so that a later command skips
    results only while they are the bytes it wrote."""
    return {name: file_sha256(folder / name) for name in names}


def changed_result(folder: Path, recorded: Mapping[str, str]) -> tuple[Path, str] | None:
    """The first recorded result that is gone, not a file, or not the bytes recorded (with the problem), or
    None when every one is as written."""
    from cellprobe.errors import not_a_file

    for name, digest in recorded.items():
        path = folder / name
        problem = not_a_file(path)
        if problem is None and file_sha256(path) != digest:
            problem = "differs from the file cellprobe wrote (its digest in the folder's record)"
        if problem is not None:
            return path, problem
    return None


def tree_sha256(path: Path) -> str:
    """sha256 over a file, or over every file of a folder (relative name, size and contents, in name order;
    names starting with '.' left out: cellprobe's own markers and locks, a file manager's notes): what a
    dataset's results depend on, compared again when a benchmark folder is run on."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for folder, subfolders, files in os.walk(path):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(f for f in files if not f.startswith(".")):
            file = Path(folder) / name
            digest.update(f"{file.relative_to(path).as_posix()}|{file.stat().st_size}|".encode())
            with open(file, "rb") as handle:
                for block in iter(lambda h=handle: h.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def record_check(fields: Mapping[str, object]) -> str:
    """sha256 of a record's fields (JSON, keys sorted): kept in the record itself, so that one edited by hand
    (a count raised, a digest replaced) no longer matches it. ``fields`` as they read back from JSON."""
    import json

    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
