"""Settings of the whole-slide engine (``cellprobe slide``): one strictly typed model, read from the CLI's
options and ``--set key=value``.

Sizes are in pixels at the run's resolution (its training data's µm/px), where the network sees them: the
default overlap, 96 px, is 24 µm at 0.25 µm/px, more than the largest nucleus, so a nucleus whose centroid lies
in a tile's core is never cut by that tile (see :mod:`cellprobe.inference.slide_tiles`).
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from cellprobe.config import StrictModel, key_error
from cellprobe.data.tissue import TissueSettings
from cellprobe.decoder.model import INPUT_MULTIPLE
from cellprobe.errors import InputError
from cellprobe.inference.window import MAX_WINDOWS
from cellprobe.machine import usable_cores

#: default pixels per image above which ``cellprobe predict`` hands an image to the whole-slide engine: its
#: float maps of the whole image would take ~130 bytes per pixel (a 2048² image ≈ 0.5 GB, 4000² ≈ 2.1 GB)
PREDICT_LARGE_PIXELS = 2048 * 2048
#: the largest tile side: a tile's float maps are held whole (~130 bytes per pixel while they are blended, as
#: for predict's whole images above: ~2 GB at 4096², and ``in_flight`` tiles of maps wait for post-processing),
#: 16 times the default tile's area; its read (the tile and a network window around it) stays within one
#: read's MAX_IMAGE_PIXELS (8192²) for windows up to 2048 px
MAX_TILE = 4096
#: the most an image is enlarged or shrunk to reach a run's µm/px (slides: the default of ``max_resample``;
#: evaluation data: the limit): beyond it a µm/px is taken for a mistake (a 40× image read for a 2.5× run)
MAX_RESAMPLE = 16.0


class SlideSettings(StrictModel):
    """``tile``: side of the tiles post-processed at once (the network itself runs on the Segmenter's windows,
    :mod:`cellprobe.inference.slide_windows`); ``overlap``: pixels shared by neighbouring tiles (at least the
    largest nucleus diameter); ``batch_size``: network windows per pass; ``workers``: post-processing
    processes (0: in the main process, no overlap with the network); ``read_ahead``: tiles the reader thread
    keeps ready; ``in_flight``: tile maps waiting for or in post-processing (0: twice the workers plus one); ``part_cells``, ``part_tiles``: nuclei or tiles buffered before a part file (one Parquet
    row group, and one journal line: what a kill can lose) is written;
    ``overview_side``: longest side of overview.png; ``window_cache_mb``: network window maps kept for the next
    tile row (MiB; beyond it they are computed again); ``resample``: False refuses slides whose µm/px differs
    from the run's by more than ``mpp_tolerance`` (relative) instead of resampling; ``max_resample``: the most a
    slide is enlarged or shrunk to reach the target µm/px (beyond it a µm/px is taken for a mistake: a 40×
    slide read for a 2.5× run, or a wrong --mpp); ``predict_large_pixels``:
    the image size above which ``cellprobe predict`` uses this engine."""

    tile: int = Field(1024, ge=2 * INPUT_MULTIPLE)
    overlap: int = Field(96, ge=0)
    batch_size: int = Field(4, ge=1, le=MAX_WINDOWS)
    workers: int = Field(2, ge=0)
    read_ahead: int = Field(8, ge=1)
    in_flight: int = Field(0, ge=0)
    part_cells: int = Field(50_000, ge=1)
    part_tiles: int = Field(32, ge=1)
    overview_side: int = Field(2048, ge=64)
    window_cache_mb: int = Field(256, ge=0)
    resample: bool = True
    mpp_tolerance: float = Field(0.1, gt=0.0, lt=1.0)
    max_resample: float = Field(MAX_RESAMPLE, ge=1.0, le=1000.0)
    predict_large_pixels: int = Field(PREDICT_LARGE_PIXELS, ge=1)
    tissue: TissueSettings = Field(default_factory=TissueSettings)

    @field_validator("tile")
    @classmethod
    def _tile(cls, tile: int) -> int:
        if tile % INPUT_MULTIPLE:
            raise ValueError(f"must be a multiple of {INPUT_MULTIPLE}, got {tile}")
        if tile > MAX_TILE:
            raise ValueError(f"must be at most {MAX_TILE} px, got {tile}: a tile's float maps are held in memory "
                             f"whole (~130 bytes per pixel, ~2 GB at {MAX_TILE}²)")
        return tile

    @field_validator("overlap")
    @classmethod
    def _overlap(cls, overlap: int) -> int:
        if overlap % 2:
            raise ValueError(f"must be even (half of it borders each tile's core), got {overlap}")
        return overlap

    @model_validator(mode="after")
    def _check(self) -> SlideSettings:
        if self.overlap >= self.tile // 2:
            raise ValueError(f"overlap must be less than half the tile ({self.tile // 2}), got {self.overlap}")
        if self.resample and self.non_default("mpp_tolerance"):
            raise key_error(["mpp_tolerance", "resample"], "mpp_tolerance applies only without resampling "
                            "(--no-resample: slides farther from the run's µm/px are refused)")
        if not self.resample and self.non_default("max_resample"):
            raise key_error(["max_resample", "resample"], "max_resample applies only when resampling (not with "
                            "--no-resample)")
        return self


    def max_in_flight(self) -> int:
        """Tile maps held at once between the network and the writer: enough that every worker has a tile
        queued while the network computes the next tile."""
        return self.in_flight or 2 * max(self.workers, 1) + 1


def check_workers(workers: int, option: str, cores: int | None = None, where: str = "usable here") -> None:
    """Refuse more post-processing processes than ``cores`` (default: :func:`usable_cores`): the rest would
    only wait for a core, each holding tiles of maps in memory. ``option``: how the user gave the value."""
    cores = usable_cores() if cores is None else cores
    if workers > cores:
        raise InputError(option, f"{workers} post-processing processes but {cores} core(s) {where}; give at most "
                                 f"{cores} (more only wait for a core, each holding tiles in memory)")
