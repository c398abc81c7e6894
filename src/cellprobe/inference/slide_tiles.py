"""The tile grid of a slide and which tile owns each nucleus.

Tiles are squares of ``tile`` px at the run's resolution on a regular grid of step ``tile - overlap`` that
starts at the slide's (or region's) origin, cut at its far edges. Each tile's
*core* is the tile less half the overlap on every side that has a neighbour, so the cores partition the plane:
every point lies in exactly one core. A tile keeps a nucleus when the nucleus's centroid lies in its core and
the nucleus does not touch an inner edge of the tile. With an overlap at least the
largest nucleus diameter, a nucleus whose centroid is in a core lies wholly inside that tile, so it is seen
whole, kept once, and kept by a tile fixed by the geometry alone: the set of nuclei does not depend on the
order tiles finish in, which makes a resumed slide end with the same nuclei as an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Box:
    """An axis-aligned box ``[x0, x1) × [y0, y1)`` (bounds may be infinite)."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    def contains(self, x: float, y: float) -> bool:
        return self.x0 <= x < self.x1 and self.y0 <= y < self.y1


@dataclass(frozen=True)
class Tile:
    """One tile: ``index`` in row-major grid order; ``x``, ``y`` its origin (target px), ``width`` and
    ``height`` its size; ``core``: where the centroids of its nuclei lie (target px, infinite on the grid's
    outer sides); ``inner``: whether the tile has a neighbour on its (left, top, right, bottom) side."""

    index: int
    row: int
    col: int
    x: int
    y: int
    width: int
    height: int
    core: Box
    inner: tuple[bool, bool, bool, bool]


@dataclass(frozen=True)
class TileGrid:
    """The tiles covering ``area`` (target px: whole pixels, ``origin`` and ``size`` (width, height)) and the
    scale to level 0 (level-0 px per target px)."""

    origin: tuple[int, int]
    size: tuple[int, int]
    tile: int
    overlap: int
    rows: int
    cols: int
    scale: float

    @property
    def step(self) -> int:
        return self.tile - self.overlap

    def __len__(self) -> int:
        return self.rows * self.cols

    def tile_at(self, index: int) -> Tile:
        row, col = divmod(index, self.cols)
        x, y = self.origin[0] + col * self.step, self.origin[1] + row * self.step
        width = min(self.tile, self.origin[0] + self.size[0] - x)
        height = min(self.tile, self.origin[1] + self.size[1] - y)
        half = self.overlap / 2
        inner = (col > 0, row > 0, col < self.cols - 1, row < self.rows - 1)
        x0 = x + half if inner[0] else -math.inf
        y0 = y + half if inner[1] else -math.inf
        x1 = x + self.tile - half if inner[2] else math.inf
        y1 = y + self.tile - half if inner[3] else math.inf
        return Tile(index, row, col, x, y, width, height, Box(x0, y0, x1, y1), inner)

    def level0_box(self, tile: Tile) -> tuple[int, int, int, int]:
        """The tile's box in level-0 px (x, y, width, height), for the tissue test."""
        x0, y0 = math.floor(tile.x * self.scale), math.floor(tile.y * self.scale)
        return x0, y0, math.ceil(tile.width * self.scale), math.ceil(tile.height * self.scale)

    @property
    def area(self) -> Box:
        x, y = self.origin
        return Box(float(x), float(y), float(x + self.size[0]), float(y + self.size[1]))


def make_grid(origin: tuple[int, int], size: tuple[int, int], tile: int, overlap: int, scale: float) -> TileGrid:
    """The grid of ``tile``-px tiles overlapping by ``overlap`` that covers the area at ``origin`` of ``size``
    (width, height; target px)."""
    step = tile - overlap

    def count(length: int) -> int:
        return max(1, math.ceil((length - overlap) / step)) if length > tile else 1

    return TileGrid(origin, size, tile, overlap, count(size[1]), count(size[0]), scale)


def owns(tile: Tile, cx: float, cy: float) -> bool:
    """Whether ``tile`` keeps the nucleus with centroid (cx, cy) (target px): centroid in its core (the grid's
    cores partition its area)."""
    return tile.core.contains(cx, cy)
