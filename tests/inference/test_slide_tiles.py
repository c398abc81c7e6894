"""The tile grid: tiles cover the area, cores partition it (each point owned by exactly one tile)."""

from __future__ import annotations

import numpy as np
import pytest

from cellprobe.inference.slide_tiles import make_grid, owns


@pytest.mark.parametrize(("width", "height", "tile", "overlap"),
                         [(1000, 700, 128, 32), (128, 128, 128, 32), (50, 3000, 256, 96), (1025, 1024, 512, 96)])
def test_cores_partition_the_area_and_tiles_cover_it(width, height, tile, overlap):
    grid = make_grid((0, 0), (width, height), tile, overlap, scale=2.0)
    tiles = [grid.tile_at(i) for i in range(len(grid))]
    assert [t.index for t in tiles] == list(range(len(grid)))
    assert max(t.x + t.width for t in tiles) == width and max(t.y + t.height for t in tiles) == height
    assert all(0 < t.width <= tile and 0 < t.height <= tile for t in tiles)
    rng = np.random.default_rng(0)
    points = [*(rng.uniform(0, 1, (500, 2)) * (width, height))]
    points += [(t.core.x0, t.core.y0) for t in tiles if np.isfinite(t.core.x0) and np.isfinite(t.core.y0)]
    for x, y in points:
        holders = [t for t in tiles if owns(t, x, y)]
        assert len(holders) == 1
        t = holders[0]
        # a nucleus of diameter <= overlap centred in the core lies inside its tile
        r = overlap / 2
        assert (not t.inner[0] or x - r >= t.x) and (not t.inner[2] or x + r <= t.x + t.width)
        assert (not t.inner[1] or y - r >= t.y) and (not t.inner[3] or y + r <= t.y + t.height)


def test_a_region_grid_starts_at_the_region_and_maps_to_level0():
    grid = make_grid((100, 50), (400, 300), 128, 32, scale=1.0)
    first = grid.tile_at(0)
    assert (first.x, first.y) == (100, 50) and grid.area.x1 == 500 and grid.area.y1 == 350
    last = grid.tile_at(len(grid) - 1)
    assert last.x + last.width == 500 and last.y + last.height == 350
    assert grid.level0_box(first) == (100, 50, 128, 128)
    assert make_grid((100, 50), (400, 300), 128, 32, scale=2.5).level0_box(first) == (250, 125, 320, 320)
