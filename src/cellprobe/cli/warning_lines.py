"""cellprobe's own warnings (:class:`~cellprobe.data.validate.DataWarning`: data left out, outlines lost) as one
line each, ``warning: <file>: <problem>``, in every command; Python's format would add the module path and a
line of cellprobe's source, which tell a user nothing. Framework warnings keep their handling."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable, Iterator


def _to_stderr(text: str) -> None:
    print(text, file=sys.stderr)


@contextlib.contextmanager
def data_warnings_as_lines(show: Callable[[str], None] = _to_stderr) -> Iterator[None]:
    """Meanwhile, each DataWarning (every time it is raised) goes to ``show`` as one line."""
    from cellprobe.data.validate import DataWarning

    with warnings.catch_warnings():
        warnings.simplefilter("always", DataWarning)
        previous = warnings.showwarning

        def showwarning(message, category, filename, lineno, file=None, line=None) -> None:
            if issubclass(category, DataWarning):
                show(f"warning: {' '.join(str(message).split())}")
            else:
                previous(message, category, filename, lineno, file, line)

        warnings.showwarning = showwarning
        yield
