"""Compute per-image rows on several processes.

The per-image function (holding the arrays) is handed to the workers once, through fork where the platform
has it (memory-mapped inputs are then shared, not copied); tasks are just index ranges.
"""

from __future__ import annotations

import itertools
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from cellprobe.errors import InputError
from cellprobe.machine import usable_cores

RowFn = Callable[[int], np.ndarray]

_ROW_FN: RowFn | None = None
_CHUNKS_PER_WORKER = 4  # a few chunks per worker even out uneven images without much messaging


def resolve_workers(workers: int) -> int:
    """``workers`` <= 0 means every available core."""
    return usable_cores() if workers <= 0 else workers


def _set_row_fn(fn: RowFn) -> None:
    global _ROW_FN
    _ROW_FN = fn


def _rows(bounds: tuple[int, int]) -> tuple[np.ndarray | None, tuple[str | None, str] | None]:
    assert _ROW_FN is not None
    try:
        return np.stack([_ROW_FN(i) for i in range(*bounds)]), None
    except InputError as err:  # travels back as plain values: rebuilt in the parent
        return None, (err.path, err.problem)


def map_rows(fn: RowFn, n: int, width: int, workers: int = 1) -> np.ndarray:
    """(n, width) array of ``fn(i)`` for i in 0..n-1, on ``workers`` processes (<= 0: all cores)."""
    workers = min(resolve_workers(workers), max(n, 1))
    if workers <= 1 or n < 2:
        return np.stack([fn(i) for i in range(n)]) if n else np.zeros((0, width))
    n_chunks = min(n, workers * _CHUNKS_PER_WORKER)
    edges = np.linspace(0, n, n_chunks + 1).astype(int)
    bounds = [(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    parts = []
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_set_row_fn, initargs=(fn,)) as pool:
        for rows, error in pool.map(_rows, bounds):
            if error is not None:
                raise InputError(*error)
            parts.append(rows)
    return np.concatenate(parts)
