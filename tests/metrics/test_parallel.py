"""parallel: rows from worker processes equal the serial ones; bad input in a worker surfaces as InputError."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from cellprobe.errors import InputError
from cellprobe.machine import usable_cores
from cellprobe.metrics.parallel import map_rows, resolve_workers


def _row(scale: float, i: int) -> np.ndarray:
    if i == 5 and scale < 0:
        raise InputError(f"x.npy[{i}]", "bad image")
    return np.array([i * scale, i * i])


def test_map_rows_parallel_equals_serial():
    fn = partial(_row, 2.0)
    serial = map_rows(fn, 9, 2, workers=1)
    assert serial.tolist() == [[2.0 * i, i * i] for i in range(9)]
    assert np.array_equal(map_rows(fn, 9, 2, workers=2), serial)
    assert map_rows(fn, 0, 2, workers=2).shape == (0, 2)


def test_worker_input_error_is_reraised():
    with pytest.raises(InputError, match=r"x.npy\[5\]: bad image"):
        map_rows(partial(_row, -1.0), 9, 2, workers=2)


def test_resolve_workers():
    assert resolve_workers(0) == usable_cores() >= 1
    assert resolve_workers(3) == 3
