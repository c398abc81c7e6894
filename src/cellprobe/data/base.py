"""What every format reader shares: validated samples from raw reads, options as strict config models, and
windows (whole images, tiles or random crops) over large images with a small decode cache."""

from __future__ import annotations

import abc
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np
from pydantic import Field, model_validator

from cellprobe.config import Seed, StrictModel, parse_config
from cellprobe.data.sample import PatchDataset, Sample
from cellprobe.data.validate import Anomaly, RawSample, sample_problems, to_sample
from cellprobe.errors import InputError

OptionsT = TypeVar("OptionsT", bound=StrictModel)


class ReaderOptionError(InputError):
    """A refused reader option: ``option`` (dotted) and ``detail`` (what is wrong, after the name), so that a
    caller that knows where the option was given (a config's ``data.options``) can name that place instead."""

    def __init__(self, root: Path | str | None, option: str, detail: str) -> None:
        super().__init__(root, f"reader option '{option}'{detail}")
        self.option, self.detail = option, detail


def parse_options(model: type[OptionsT], options: dict[str, Any], root: Path) -> OptionsT:
    """Reader options validated like a config: an unknown or ill-typed option is one
    :class:`ReaderOptionError` line naming the dataset and the option as a reader option (given with ``-o``,
    a config's ``data.options`` or a benchmark dataset's ``options``), and, for an unknown one, the format's
    options."""
    try:
        return parse_config(model, dict(options), root)
    except InputError as exc:
        match = re.match(r"config keys? '([^']+)'", exc.problem)
        if match is None:
            raise
        detail = exc.problem[match.end():]
        if match.group(1).split(".")[0] not in model.model_fields:
            detail += f" (this format's options: {', '.join(sorted(model.model_fields)) or 'none'})"
        raise ReaderOptionError(exc.path, match.group(1), detail) from None


class Reader(PatchDataset):
    """A :class:`PatchDataset` over one released layout: subclasses implement :meth:`read_raw`; every sample
    is validated on the way out (see :mod:`cellprobe.data.validate`)."""

    format_name: ClassVar[str]
    allow_float_image: ClassVar[bool] = False  # only for releases that store whole numbers as floats
    allow_float_labels: ClassVar[bool] = False

    def __init__(self, root: Path, split: str | None) -> None:
        self.root = Path(root)
        self.split = split

    @abc.abstractmethod
    def read_raw(self, index: int) -> RawSample:
        """The arrays of sample ``index`` as stored (no validation)."""

    @classmethod
    def released_splits(cls, root: Path) -> list[str]:
        """The splits the release itself defines under ``root`` (what ``data check`` walks); [] for none."""
        return []

    def stored_image(self, index: int) -> tuple[Path, str]:
        """The file that stores the pixels of sample ``index`` and where in it (an array row; "" for a file
        holding one image, windows of it included): two samples with the same answer, the file compared by
        identity, show the same pixels however their paths are spelt or linked. Readers override it."""
        raise NotImplementedError(f"{type(self).__name__} does not say where its images are stored")

    @cached_property
    def image_identities(self) -> list[tuple[int, int, str]]:
        """:meth:`stored_image` of every sample with the file known by identity (a link, a hard link and a path
        spelt otherwise are the same file); worked out once per reader (a reader's samples do not change), one
        ``stat`` per file."""
        seen: dict[Path, tuple[int, int]] = {}
        out = []
        for i in range(len(self)):
            path, where = self.stored_image(i)
            if path not in seen:
                st = os.stat(path)
                seen[path] = (st.st_dev, st.st_ino)
            out.append((*seen[path], where))
        return out

    def _index(self, index: int) -> int:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"sample {index} out of range for {n} samples")
        return index % n

    def sample_file(self, index: int) -> str:
        """The file (with its row or window) that holds the image of sample ``index``, for a message about that
        sample, e.g. ``images/p3.png`` or ``images.npy[17]``; nothing is decoded. Readers override it."""
        return f"{self.root}[{self._index(index)}]"

    def __getitem__(self, index: int) -> Sample:
        return to_sample(self.read_raw(self._index(index)), self.num_classes,
                         self.allow_float_image, self.allow_float_labels)

    def inspect(self, index: int) -> tuple[RawSample, list[Anomaly]]:
        """The raw sample and all its problems, without raising (for ``cellprobe data check``)."""
        raw = self.read_raw(self._index(index))
        return raw, sample_problems(raw, self.num_classes, self.allow_float_image, self.allow_float_labels)


def stored_images(reader: PatchDataset) -> list[tuple[int, int, str]] | None:
    """Each sample's stored image as (device, inode, where in the file): :attr:`Reader.image_identities`. None for
    a dataset that is no :class:`Reader`, whose storage is unknown."""
    return reader.image_identities if isinstance(reader, Reader) else None


def shared_images(reader: PatchDataset, other: PatchDataset) -> int | None:
    """How many samples of ``reader`` show an image ``other`` stores too (the same file and row): a split linked
    to another, or given by another path, is found, a copy is not. None when either's storage is unknown."""
    mine, theirs = stored_images(reader), stored_images(other)
    if mine is None or theirs is None:
        return None
    known = set(theirs)
    return sum(image in known for image in mine)


# --- windows over large images -----------------------------------------------------------------------------

class WindowOptions(StrictModel):
    """How samples are cut from whole images: ``none`` (one sample per image), ``tiled`` (a grid of
    ``crop_size`` windows covering the image; the last row/column is aligned to the border, so it may overlap)
    or ``random`` (``crops_per_image`` windows at seeded random positions)."""

    crop: Literal["none", "tiled", "random"] = "none"
    crop_size: int = Field(256, ge=8)
    stride: int | None = Field(None, ge=1)  # tiled: default crop_size (no overlap)
    crops_per_image: int = Field(16, ge=1)
    seed: Seed = 0

    @model_validator(mode="after")
    def _stride(self) -> WindowOptions:
        # an option that changes nothing is refused, as the user meant it to change something (a value other
        # than its default is what can be told apart: the options are also copied whole between models)
        if self.stride is not None and self.crop != "tiled":
            raise ValueError("stride applies only to crop: tiled")
        if self.crop == "none" and self.non_default("crop_size"):
            raise ValueError("crop_size applies only to crop: tiled or random")
        if self.crop != "random" and self.non_default("crops_per_image"):
            raise ValueError("crops_per_image applies only to crop: random")
        if self.stride is not None and self.stride > self.crop_size:
            raise ValueError(f"stride {self.stride} is larger than crop_size {self.crop_size}: pixels between "
                             "windows would be in none")
        return self


@dataclass(frozen=True)
class Window:
    item: int  # index of the whole image
    y: int
    x: int
    h: int
    w: int


def tile_starts(length: int, size: int, stride: int) -> list[int]:
    """Start offsets covering ``0..length`` with windows of ``size``; the last window ends at the border."""
    if length <= size:
        return [0]
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] + size < length:
        starts.append(length - size)
    return starts


def make_windows(sizes: Sequence[tuple[int, int]], opts: WindowOptions, where: Callable[[int], str]) -> list[Window]:
    """Windows over images of the given (H, W) sizes; an image smaller than the crop is an InputError."""
    from cellprobe.errors import InputError

    out: list[Window] = []
    rng = np.random.default_rng(opts.seed)
    for item, (h, w) in enumerate(sizes):
        if opts.crop == "none":
            out.append(Window(item, 0, 0, h, w))
            continue
        s = opts.crop_size
        if h < s or w < s:
            raise InputError(where(item), f"image {h}×{w} is smaller than crop_size {s}")
        if opts.crop == "tiled":
            stride = opts.stride or s
            out.extend(Window(item, y, x, s, s) for y in tile_starts(h, s, stride) for x in tile_starts(w, s, stride))
        else:
            ys = rng.integers(0, h - s + 1, size=opts.crops_per_image)
            xs = rng.integers(0, w - s + 1, size=opts.crops_per_image)
            out.extend(Window(item, int(y), int(x), s, s) for y, x in zip(ys, xs, strict=True))
    return out


class DecodeCache:
    """The last few decoded whole images (tiles of one image are consecutive, so a tiny LRU suffices)."""

    def __init__(self, maxsize: int = 2) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[int, Any] = OrderedDict()

    def get(self, key: int, load: Callable[[], Any]) -> Any:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = load()
        self._items[key] = value
        while len(self._items) > self.maxsize:
            self._items.popitem(last=False)
        return value
