"""Readers whose release is a set of whole images with label files (CoNSeP, MoNuSeg, CytoDArk0, user folders):
samples are windows over the images (see :class:`cellprobe.data.base.WindowOptions`)."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cellprobe.atomic import shown, undecodable
from cellprobe.data.base import DecodeCache, Reader, Window, WindowOptions, make_windows
from cellprobe.data.io import image_size, inside_dataset, read_image
from cellprobe.data.sample import SampleMeta
from cellprobe.data.validate import RawSample
from cellprobe.errors import InputError


@dataclass
class Item:
    """One whole image of a release and the file holding its labels."""

    name: str
    source: str
    image: Path
    label: Path
    tissue: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


class WholeImageReader(Reader):
    """Windows over :class:`Item` images; subclasses read the labels of one item."""

    def _setup(self, items: list[Item], windows: WindowOptions, repeats: np.ndarray | None = None) -> None:
        """``repeats``: how many times the split lists each item (a split file's oversampling; None: once);
        every window of an item inherits its count. Every file an item names (image, labels, class map) must lie
        inside the dataset folder once links are resolved (:func:`inside_dataset`), whichever release it is."""
        if not items:
            raise InputError(self.root, f"no images found for split '{self.split}'" if self.split else "no images found")
        for item in items:
            for path in (item.image, item.label, *([Path(item.extra["cls"])] if "cls" in item.extra else [])):
                if undecodable(str(path)):  # its name could not go into a sample's name, a record, a report
                    raise InputError(shown(str(path)), "its name is not valid UTF-8 (undecodable bytes); rename it")
                inside_dataset(path, self.root, path)
        self.items = items
        self.window_options = windows
        sizes = [image_size(it.image) for it in items] if windows.crop != "none" else [(0, 0)] * len(items)
        self.windows: list[Window] = make_windows(sizes, windows, lambda i: str(items[i].image))
        self._cache = DecodeCache()
        self._item_repeats = None if repeats is None or not (np.asarray(repeats) > 1).any() else np.asarray(repeats)

    def repeats(self) -> np.ndarray | None:
        if self._item_repeats is None:
            return None
        return self._item_repeats[[w.item for w in self.windows]].astype(np.int64)

    @abc.abstractmethod
    def load_labels(self, item: Item) -> tuple[np.ndarray, np.ndarray | None]:
        """(inst, cls or None) of a whole image, as stored."""

    def _decode(self, item_index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        item = self.items[item_index]
        image = read_image(item.image)
        inst, cls = self.load_labels(item)
        for arr in (inst, cls):
            if arr is not None and arr.shape != image.shape[:2]:
                raise InputError(item.label, f"label map {arr.shape} does not match image {image.shape[:2]} "
                                             f"of {item.image.name}")
        return image, inst, cls

    def __len__(self) -> int:
        return len(self.windows)

    def sources(self) -> list[str]:
        return [self.items[w.item].source for w in self.windows]

    def stored_image(self, index: int) -> tuple[Path, str]:
        return Path(self.items[self.windows[self._index(index)].item].image), ""  # any window shows its pixels

    def sample_file(self, index: int) -> str:
        w = self.windows[self._index(index)]
        return str(self.items[w.item].image) + ("" if self.window_options.crop == "none" else f"[y={w.y}, x={w.x}]")

    def read_raw(self, index: int) -> RawSample:
        w = self.windows[index]
        item = self.items[w.item]
        image, inst, cls = self._cache.get(w.item, lambda: self._decode(w.item))
        whole = self.window_options.crop == "none"
        ys = slice(None) if whole else slice(w.y, w.y + w.h)
        xs = slice(None) if whole else slice(w.x, w.x + w.w)
        name = item.name if whole else f"{item.name}_y{w.y}_x{w.x}"
        extra = dict(item.extra)
        if not whole:
            extra.update(y=str(w.y), x=str(w.x))
        meta = SampleMeta(dataset=self.name, name=name, source=item.source, index=index,
                          tissue=item.tissue, mpp=self.mpp, extra=extra)
        where = f"{item.label}" + ("" if whole else f"[y={w.y}, x={w.x}]")
        return RawSample(image[ys, xs], inst[ys, xs], None if cls is None else cls[ys, xs], meta, where,
                         image_where=str(item.image))
