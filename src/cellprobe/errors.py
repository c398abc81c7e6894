"""One error type for bad user input.

Every loader and command raises :class:`InputError` for data or files a user supplied; the CLI turns it into
one line naming the file and the problem, and exit status 2, with no traceback.
"""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad user input: ``path`` is the file (or file and sample) at fault, ``problem`` says what is wrong."""

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


def require(condition: bool, path: str | Path | None, problem: str) -> None:
    """Raise :class:`InputError` unless ``condition`` holds."""
    if not condition:
        raise InputError(path, problem)


def not_a_file(path: str | Path) -> str | None:
    """Why ``path`` is no regular file a command can read (None when it is one): missing, a link to nothing,
    a folder, or a device, pipe or socket (``/dev/zero`` would be read forever, a pipe wait forever)."""
    path = Path(path)
    if path.is_file():
        return None
    if path.is_symlink() and not path.exists():
        return "is a link to nothing"
    if path.is_dir():
        return "is a folder, not a file"
    if path.exists():
        return "is not a regular file (a device, pipe or socket)"
    return "no such file"
