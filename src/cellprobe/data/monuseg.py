"""MoNuSeg: H&E TIFF images (1000×1000, 40×) with nucleus outlines in Aperio ImageScope XML
(``Annotations/Annotation/Regions/Region/Vertices/Vertex@X,Y``), rasterised here into an instance map.

Release layout: ``MoNuSeg 2018 Training Data/Tissue Images/*.tif`` + ``.../Annotations/*.xml`` (train) and
``MoNuSegTestData/*.tif`` + ``*.xml`` side by side (test). One class (nucleus). Regions are drawn in file order;
where outlines overlap the later one wins, and an outline left with no pixel at all is reported (warning).
"""

from __future__ import annotations

import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from cellprobe.data.base import WindowOptions, parse_options
from cellprobe.data.info import Mpp
from cellprobe.data.io import IMAGE_SUFFIXES, find_with_suffix, image_size
from cellprobe.data.validate import DataWarning
from cellprobe.data.wholeimage import Item, WholeImageReader
from cellprobe.errors import InputError

TRAIN_DIR, TEST_DIR = "MoNuSeg 2018 Training Data", "MoNuSegTestData"


class MonusegOptions(WindowOptions):
    mpp: Mpp = 0.25


def read_outlines(path: Path) -> list[np.ndarray]:
    """Polygons ((K, 2) arrays of x, y) of an Aperio XML file, in file order."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise InputError(path, f"unreadable annotation XML ({exc})") from None
    polygons = []
    for n, region in enumerate(root.iter("Region")):
        try:
            pts = [(float(v.get("X")), float(v.get("Y"))) for v in region.iter("Vertex")]
        except (TypeError, ValueError):
            raise InputError(path, f"region {n + 1} has a vertex without numeric X/Y") from None
        if len(pts) >= 3:
            polygons.append(np.asarray(pts, dtype=np.float64))
    return polygons


def rasterise(polygons: list[np.ndarray], shape: tuple[int, int], where: Path) -> np.ndarray:
    """Instance map with polygon k (1-based, file order) filled as id k; warns about outlines left empty."""
    from skimage.draw import polygon as fill_polygon

    inst = np.zeros(shape, dtype=np.int32)
    for k, pts in enumerate(polygons, start=1):
        rr, cc = fill_polygon(pts[:, 1], pts[:, 0], shape=shape)
        inst[rr, cc] = k
    present = np.zeros(len(polygons) + 1, dtype=bool)
    present[np.unique(inst)] = True
    lost = int((~present[1:]).sum())
    if lost:
        warnings.warn(f"{where}: {lost} of {len(polygons)} outlines have no pixel left (overlapped or degenerate)",
                      DataWarning, stacklevel=3)
    return inst


def _split_items(folder: Path, images: Path, annotations: Path, split: str) -> list[Item]:
    items = []
    xmls = sorted(annotations.glob("*.xml"))
    outlined = {x.stem for x in xmls}
    bare = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.stem not in outlined)
    if bare:  # the release outlines every image: one without is a lost file, not one to skip
        raise InputError(bare[0], f"has no annotation file {annotations / (bare[0].stem + '.xml')} ({len(bare)} "
                                  f"image(s) of split '{split}' have none)")
    for xml in xmls:
        image = find_with_suffix(images, xml.stem, IMAGE_SUFFIXES)
        if image is None:
            raise InputError(images / f"{xml.stem}.tif", f"missing image for {xml.name}")
        items.append(Item(xml.stem, xml.stem, image, xml, extra={"split": split}))
    if not items:
        raise InputError(folder, "no annotation XML files found")
    return items


class MonusegDataset(WholeImageReader):
    format_name = "monuseg"
    name = "monuseg"
    class_names = ("nucleus",)

    def __init__(self, root: Path, split: str | None = None, **options) -> None:
        super().__init__(root, split)
        opts = parse_options(MonusegOptions, options, self.root)
        self.mpp = opts.mpp
        layout = self.split_dirs(self.root)
        if not layout:
            raise InputError(self.root, f"no MoNuSeg layout here (expected '{TRAIN_DIR}' or '{TEST_DIR}')")
        wanted = list(layout) if split is None else [split]  # exact: one spelling per split
        items: list[Item] = []
        for s in wanted:
            if s not in layout:
                raise InputError(self.root, f"MoNuSeg split '{s}' is missing (have: {', '.join(layout)})")
            items += _split_items(*layout[s], s)
        self._setup(items, WindowOptions(**opts.model_dump(include=set(WindowOptions.model_fields))))

    @staticmethod
    def split_dirs(root: Path) -> dict[str, tuple[Path, Path, Path]]:
        """split → (folder, image folder, annotation folder) for the release's train and test folders."""
        out = {}
        trains = [f for f in (root / TRAIN_DIR, root) if (f / "Tissue Images").is_dir() and (f / "Annotations").is_dir()]
        tests = [f for f in (root / TEST_DIR, root) if f.is_dir() and any(f.glob("*.xml"))]
        if trains:
            tests = [f for f in tests if f != root]  # a training layout here: the root's XML files are not a split
        for split, found in (("train", trains), ("test", tests)):
            if len(found) > 1:  # which one is meant would be a guess
                raise InputError(root, f"holds two MoNuSeg {split} layouts ({found[0]} and {found[1]}); give the "
                                       "folder of one")
        if trains:
            out["train"] = (trains[0], trains[0] / "Tissue Images", trains[0] / "Annotations")
        if tests:
            out["test"] = (tests[0], tests[0], tests[0])
        return out

    @classmethod
    def released_splits(cls, root: Path) -> list[str]:
        return list(cls.split_dirs(Path(root)))

    def load_labels(self, item: Item) -> tuple[np.ndarray, np.ndarray | None]:
        polygons = read_outlines(item.label)
        return rasterise(polygons, image_size(item.image), item.label), None
