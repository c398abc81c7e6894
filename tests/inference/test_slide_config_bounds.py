"""Bounds of the whole-slide settings that keep a run's memory and processes in proportion to the machine."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from cellprobe.errors import InputError
from cellprobe.inference.slide_config import MAX_TILE, SlideSettings, check_workers
from cellprobe.machine import usable_cores


def test_tile_is_bounded_by_what_memory_holds():
    assert SlideSettings(tile=MAX_TILE).tile == MAX_TILE
    for tile in (MAX_TILE + 32, 1_048_576):
        with pytest.raises(ValidationError, match=f"must be at most {MAX_TILE} px, got {tile}"):
            SlideSettings(tile=tile)


def test_workers_are_bounded_by_the_usable_cores(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2}, raising=False)
    assert usable_cores() == 3
    check_workers(3, "--workers")
    check_workers(0, "--workers")
    with pytest.raises(InputError, match="64 post-processing processes but 3 core") as info:
        check_workers(64, "--workers")
    assert info.value.path == "--workers" and "\n" not in str(info.value)
    with pytest.raises(InputError, match="in each SLURM job"):
        check_workers(8, "--set workers", cores=4, where="in each SLURM job (cores in --cluster-config)")


def test_a_pass_of_windows_is_bounded():
    """The 28th probe: slide --batch-size 100000000 ended in a MemoryError traceback."""
    from cellprobe.inference.window import MAX_WINDOWS, WindowConfig

    assert SlideSettings(batch_size=MAX_WINDOWS).batch_size == WindowConfig(batch_size=MAX_WINDOWS).batch_size
    for model in (SlideSettings, WindowConfig):
        with pytest.raises(ValidationError, match=f"less than or equal to {MAX_WINDOWS}"):
            model(batch_size=100_000_000)
