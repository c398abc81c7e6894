"""Whole slides made from real data, for tests and benchmarks of the slide readers and the tiling engine.

:func:`consep_mosaic` tiles real CoNSeP patches into one large image with its labels; the writers store an
image, or a function producing it tile by tile, as a tiled pyramidal TIFF: Aperio-style (what OpenSlide opens
as an ``aperio`` slide, JPEG tiles like a real SVS) or OME-TIFF (levels in SubIFDs, ``PhysicalSizeX/Y``).

The writers never hold a whole level: tifffile consumes an iterator of tiles, and each tile of a lower level is
made on demand by area-averaging the tiles of the level above it (recomputed rather than kept, so memory stays
at a few tiles per level whatever the slide size: a 32k × 32k slide is written in a few hundred MB at most).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

WHITE = 255
#: Longest side of the thumbnail page an Aperio slide carries after level 0 (real SVS files hold ~1k px).
APERIO_THUMBNAIL_SIDE = 1024
#: Magnification written as AppMag, from µm/px: 0.25 µm/px is 40×, 0.5 is 20×.
UM_AT_1X = 10.0
#: Uncompressed size (bytes) from which BigTIFF (64-bit offsets) is written; classic TIFF stops at 4 GiB.
BIGTIFF_FROM = 2**31

TileFn = Callable[[int, int], np.ndarray]  # (row, col) -> (tile, tile, 3) uint8


def consep_mosaic(consep_root: Path, rows: int, cols: int, split: str = "test",
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image (rows·H, cols·W, 3) uint8, inst int32, cls uint8) of real CoNSeP patches drawn at random (seeded;
    with repeats only when more are asked than the split holds), instance ids made unique across patches."""
    from cellprobe.data.patches import PatchesDataset

    dataset = PatchesDataset(Path(consep_root), split=split)
    count = rows * cols
    picks = np.random.default_rng(seed).choice(len(dataset), size=count, replace=count > len(dataset))
    samples = [dataset[int(i)] for i in picks]
    offset = 0
    insts = []
    for sample in samples:
        inst = sample.inst.astype(np.int32)
        insts.append(np.where(inst > 0, inst + offset, 0).astype(np.int32))
        offset += int(inst.max(initial=0))

    def grid(arrays: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([np.concatenate(arrays[r * cols : (r + 1) * cols], axis=1) for r in range(rows)])

    return grid([s.image for s in samples]), grid(insts), grid([s.cls.astype(np.uint8) for s in samples])


class _Pyramid:
    """Tiles of every level of a pyramid, level 0 from an image or a tile function, lower levels from the level
    above by area averaging. Pixels beyond a level's edge are white, so they never tint the level below."""

    def __init__(self, source: np.ndarray | TileFn, width: int, height: int, tile: int,
                 downsamples: Sequence[int]) -> None:
        if tile % 16:
            raise ValueError(f"TIFF tiles must be a multiple of 16 px, got {tile}")
        if not downsamples or downsamples[0] != 1 or any(
                b % a or b <= a for a, b in itertools.pairwise(downsamples)):
            raise ValueError(f"levels must start at 1, each a multiple of the one before, got {tuple(downsamples)}")
        self.source, self.tile, self.downsamples = source, tile, tuple(int(d) for d in downsamples)
        self.sizes = [(math.ceil(width / d), math.ceil(height / d)) for d in self.downsamples]

    def grid(self, level: int) -> tuple[int, int]:
        width, height = self.sizes[level]
        return math.ceil(height / self.tile), math.ceil(width / self.tile)

    def tiles(self, level: int) -> Iterator[np.ndarray]:
        rows, cols = self.grid(level)
        for row in range(rows):
            for col in range(cols):
                yield self.tile_at(level, row, col)

    def tile_at(self, level: int, row: int, col: int) -> np.ndarray:
        import cv2

        size = self.tile
        rows, cols = self.grid(level)
        if row >= rows or col >= cols:
            return np.full((size, size, 3), WHITE, np.uint8)
        if level == 0:
            out = self._source_tile(row, col)
        else:
            factor = self.downsamples[level] // self.downsamples[level - 1]
            block = np.concatenate([np.concatenate([self.tile_at(level - 1, row * factor + r, col * factor + c)
                                                    for c in range(factor)], axis=1) for r in range(factor)])
            out = cv2.resize(block, (size, size), interpolation=cv2.INTER_AREA)
        width, height = self.sizes[level]
        out[max(0, height - row * size):, :] = WHITE
        out[:, max(0, width - col * size):] = WHITE
        return out

    def _source_tile(self, row: int, col: int) -> np.ndarray:
        size = self.tile
        if callable(self.source):
            tile = np.asarray(self.source(row, col))
            if tile.shape != (size, size, 3) or tile.dtype != np.uint8:
                raise ValueError(f"tile ({row}, {col}) is {tile.dtype} {tile.shape}, expected uint8 ({size}, {size}, 3)")
            return tile.copy()
        part = self.source[row * size : (row + 1) * size, col * size : (col + 1) * size]
        out = np.full((size, size, 3), WHITE, np.uint8)
        out[: part.shape[0], : part.shape[1]] = part
        return out

    def write_level(self, writer, level: int, **options) -> None:
        width, height = self.sizes[level]
        writer.write(self.tiles(level), shape=(height, width, 3), dtype=np.uint8, tile=(self.tile, self.tile),
                     photometric="rgb", metadata=None, **options)

    def bigtiff(self) -> bool:
        return sum(w * h * 3 for w, h in self.sizes) >= BIGTIFF_FROM


def _compression(compression: str | None, quality: int) -> dict:
    if compression is None:
        return {}
    if compression == "jpeg":
        return {"compression": "jpeg", "compressionargs": {"level": quality}}
    return {"compression": compression}


def _image_source(tiles_or_image: np.ndarray | TileFn, width: int, height: int) -> np.ndarray | TileFn:
    if callable(tiles_or_image):
        return tiles_or_image
    image = np.asarray(tiles_or_image)
    if image.shape != (height, width, 3) or image.dtype != np.uint8:
        raise ValueError(f"image is {image.dtype} {image.shape}, expected uint8 ({height}, {width}, 3)")
    return image


def write_aperio_tiff(path: Path, tiles_or_image: np.ndarray | TileFn, width: int, height: int, mpp: float,
                      tile: int = 256, levels: Sequence[int] = (1, 4, 16), compression: str | None = "jpeg",
                      quality: int = 90) -> Path:
    """An Aperio-style SVS: tiled levels (downsamples ``levels``) in the IFD chain, a stripped thumbnail page
    after level 0 as in real files, and the ``Aperio Image Library ...|AppMag = ..|MPP = ..`` description
    from which OpenSlide reads ``openslide.mpp-x/y``. ``compression``: ``"jpeg"`` (YCbCr, as scanners write),
    ``"zlib"`` or None (both lossless)."""
    import cv2
    import tifffile

    pyramid = _Pyramid(_image_source(tiles_or_image, width, height), width, height, tile, levels)
    mag = UM_AT_1X / mpp
    codec = f"JPEG/RGB Q={quality}" if compression == "jpeg" else "RAW"
    head = f"Aperio Image Library v12.0.15 \r\n{width}x{height} [0,0 {width}x{height}] ({tile}x{tile}) {codec}"
    description = f"{head}|AppMag = {mag:g}|MPP = {mpp:g}"
    options = _compression(compression, quality)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tifffile.TiffWriter(path, bigtiff=pyramid.bigtiff()) as writer:
        pyramid.write_level(writer, 0, description=description, **options)
        if len(pyramid.downsamples) > 1:  # tifffile's (and Aperio's) layout: page 1 is the thumbnail
            coarsest = _assemble(pyramid, len(pyramid.downsamples) - 1)
            scale = APERIO_THUMBNAIL_SIDE / max(coarsest.shape[:2])
            thumb = cv2.resize(coarsest, None, fx=min(1, scale), fy=min(1, scale), interpolation=cv2.INTER_AREA)
            writer.write(thumb, photometric="rgb", metadata=None, description=f"{head} -> thumbnail",
                         **_compression("zlib" if compression else None, quality))
        for level in range(1, len(pyramid.downsamples)):
            w, h = pyramid.sizes[level]
            pyramid.write_level(writer, level, description=f"{head} -> {w}x{h}", **options)
    return path


def _assemble(pyramid: _Pyramid, level: int) -> np.ndarray:
    """A whole level in memory (only the coarsest, for the thumbnail page)."""
    rows, cols = pyramid.grid(level)
    width, height = pyramid.sizes[level]
    image = np.concatenate([np.concatenate([pyramid.tile_at(level, r, c) for c in range(cols)], axis=1)
                            for r in range(rows)])
    return image[:height, :width]


def write_ome_tiff(path: Path, tiles_or_image: np.ndarray | TileFn, width: int, height: int, mpp: float,
                   tile: int = 256, levels: Sequence[int] = (1, 4, 16), compression: str | None = "zlib") -> Path:
    """A pyramidal OME-TIFF: level 0 with its lower levels in SubIFDs, ``PhysicalSizeX/Y`` = ``mpp`` µm."""
    import tifffile

    pyramid = _Pyramid(_image_source(tiles_or_image, width, height), width, height, tile, levels)
    options = _compression(compression, 90)
    physical = {"axes": "YXS", "PhysicalSizeX": mpp, "PhysicalSizeY": mpp, "PhysicalSizeXUnit": "µm",
                "PhysicalSizeYUnit": "µm"}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tifffile.TiffWriter(path, bigtiff=pyramid.bigtiff(), ome=True) as writer:
        width0, height0 = pyramid.sizes[0]
        writer.write(pyramid.tiles(0), shape=(height0, width0, 3), dtype=np.uint8, tile=(tile, tile),
                     photometric="rgb", subifds=len(pyramid.downsamples) - 1, metadata=physical, **options)
        for level in range(1, len(pyramid.downsamples)):
            pyramid.write_level(writer, level, subfiletype=1, **options)
    return path
