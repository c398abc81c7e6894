"""A tile's maps, equal to whole-image prediction's maps of the same pixels.

The network's windows are placed where :func:`cellprobe.inference.window.predict_maps` places them on the
whole processed area (``window_starts`` over its full width and height, the Segmenter's window settings), and
a tile's maps are the blend of the windows that weigh on its pixels, with the same weights
(``blend_weights`` at the windows' places in the whole area), added in the same order. So the maps of a tile
are those the whole image would have there: the frozen encoder's and neck's normalisation see the same window
contents, which a tile-sized network input would not (GroupNorm statistics change with the input's extent).

Windows reaching into two tiles would be computed twice; :class:`WindowCache` keeps the window maps a tile
shares with the next tile of its row, and, within a memory budget (``SlideSettings.window_cache_mb``), those it
shares with the next tile row; beyond the budget (very wide tissue) those are computed again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellprobe.inference.slide_tiles import Tile, TileGrid
from cellprobe.inference.window import WindowConfig, blend_weights, window_starts

#: a window whose blend weight nowhere in a tile reaches this is left out of that tile: its share there is at
#: most the weight floor (1e-12) against another window's 1, below float32 resolution
MIN_WEIGHT = 1e-6


@dataclass(frozen=True)
class WindowPlan:
    """Window starts along each axis of the whole area (area coordinates) and the window settings."""

    ys: tuple[int, ...]
    xs: tuple[int, ...]
    config: WindowConfig
    size: tuple[int, int]  # (width, height) of the area

    @classmethod
    def of(cls, grid: TileGrid, config: WindowConfig) -> WindowPlan:
        width, height = grid.size
        return cls(tuple(window_starts(height, config.tile, config.overlap)),
                   tuple(window_starts(width, config.tile, config.overlap)), config, grid.size)

    def weights(self, y: int, x: int) -> np.ndarray:
        width, height = self.size
        return blend_weights(self.config.tile, self.config.overlap, self.config.blend, y, x, height, width)

    def for_tile(self, tile: Tile, origin: tuple[int, int]) -> list[tuple[int, int]]:
        """(y, x) area coordinates of the windows that weigh on ``tile``, in whole-image order (row-major)."""
        t = self.config.tile
        ty, tx = tile.y - origin[1], tile.x - origin[0]
        out = []
        for y in (s for s in self.ys if s < ty + tile.height and s + t > ty):
            for x in (s for s in self.xs if s < tx + tile.width and s + t > tx):
                w = self.weights(y, x)[max(0, ty - y):ty + tile.height - y, max(0, tx - x):tx + tile.width - x]
                if w.max() >= MIN_WEIGHT:
                    out.append((y, x))
        return out

    def bounds(self, windows: list[tuple[int, int]]) -> tuple[int, int, int, int]:
        """(y0, x0, y1, x1): the area pixels the windows cover (what the reader reads for a tile)."""
        t = self.config.tile
        return (min(y for y, _ in windows), min(x for _, x in windows),
                max(y for y, _ in windows) + t, max(x for _, x in windows) + t)


class WindowCache:
    """Window maps shared between tiles. A window's maps depend on its place only, so any entry is valid for
    any tile. ``row``: the windows a tile shares with the next tile of its row (replaced after each tile: one
    column of windows). ``below``: windows reaching into the next tile row, kept within ``budget`` bytes
    (oldest dropped first, then recomputed when needed) and dropped once the rows below have passed them."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.row: dict[tuple[int, int], dict[str, np.ndarray]] = {}
        self.below: dict[tuple[int, int], dict[str, np.ndarray]] = {}
        self.bytes = 0

    def get(self, key: tuple[int, int]) -> dict[str, np.ndarray] | None:
        return self.row.get(key) or self.below.get(key)

    def keep(self, shared: dict[tuple[int, int], dict[str, np.ndarray]],
             computed: dict[tuple[int, int], dict[str, np.ndarray]], tile_y: int, next_x: int, next_y: int,
             window: int) -> None:
        """After a tile at ``tile_y`` (area coordinates): keep its ``shared`` windows that reach ``next_x``
        (the next tile of the row), and its newly ``computed`` ones that reach ``next_y`` (the next row)."""
        self.row = {k: v for k, v in shared.items() if k[1] + window > next_x}
        for key in [k for k in self.below if k[0] + window <= tile_y]:  # rows above: no tile needs them
            self._drop(key)
        for key, maps in computed.items():
            if key[0] + window > next_y and key not in self.below:
                self.below[key] = maps
                self.bytes += sum(v.nbytes for v in maps.values())
        while self.bytes > self.budget and self.below:
            self._drop(next(iter(self.below)))

    def _drop(self, key: tuple[int, int]) -> None:
        self.bytes -= sum(v.nbytes for v in self.below.pop(key).values())


class TileMaps:
    """The blend of a tile's windows, accumulated as whole-image prediction does."""

    def __init__(self, tile: Tile, origin: tuple[int, int], plan: WindowPlan) -> None:
        self.tile, self.plan = tile, plan
        self.ty, self.tx = tile.y - origin[1], tile.x - origin[0]
        self.sums: dict[str, np.ndarray] = {}
        self.weight = np.zeros((tile.height, tile.width), np.float32)

    def add(self, y: int, x: int, maps: dict[str, np.ndarray]) -> None:
        t = self.plan.config.tile
        y0, x0 = max(y, self.ty), max(x, self.tx)
        y1, x1 = min(y + t, self.ty + self.tile.height), min(x + t, self.tx + self.tile.width)
        src = np.s_[y0 - y:y1 - y, x0 - x:x1 - x]
        dst = np.s_[y0 - self.ty:y1 - self.ty, x0 - self.tx:x1 - self.tx]
        wgt = self.plan.weights(y, x)[src]
        self.weight[dst] += wgt
        for key, value in maps.items():
            acc = self.sums.setdefault(key, np.zeros((value.shape[0], self.tile.height, self.tile.width), np.float32))
            acc[(slice(None), *dst)] += value[(slice(None), *src)] * wgt

    def result(self) -> dict[str, np.ndarray]:
        return {k: v / self.weight for k, v in self.sums.items()}
