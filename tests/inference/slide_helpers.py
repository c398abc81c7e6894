"""Shared by the whole-slide tests: an oracle network over coordinate-coded images, and the GeoJSON checks."""

from __future__ import annotations

import gzip
import itertools
import json
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from cellprobe.data.targets import make_targets

#: the colour of slide pixels beyond the slide's edge (read as white): the oracle treats it as background
WHITE = 255


def coordinate_image(h: int, w: int) -> np.ndarray:
    """Each pixel encodes its own (y, x) (up to 4096 px per side): (y % 256, x % 256, 16 · y//256 + x//256)."""
    yy, xx = np.mgrid[:h, :w]
    return np.stack([yy % 256, xx % 256, (yy // 256) * 16 + xx // 256], -1).astype(np.uint8)


def oracle(inst: np.ndarray, cls: np.ndarray, num_classes: int):
    """A 'network' returning, for every tile, the exact maps of the truth cropped to that tile (a nucleus cut
    by the tile's edge looks cut, as to a real network); it finds the tile's place from the coded pixels."""
    h, w = inst.shape

    def fn(batch: torch.Tensor) -> dict[str, torch.Tensor]:
        outs: dict[str, list[torch.Tensor]] = {"semantic": [], "distance": [], "types": []}
        t = batch.shape[-1]
        for window in batch:
            code = (window[:, 0, 0] * 255).round().long().tolist()
            y0, x0 = code[0] + 256 * (code[2] // 16), code[1] + 256 * (code[2] % 16)
            crop_i = np.zeros((t, t), np.int32)
            crop_c = np.zeros((t, t), np.uint8)
            hh, ww = min(t, h - y0), min(t, w - x0)
            crop_i[:hh, :ww] = inst[y0:y0 + hh, x0:x0 + ww]
            crop_c[:hh, :ww] = cls[y0:y0 + hh, x0:x0 + ww]
            tg = make_targets(crop_i, crop_c)
            outs["semantic"].append(torch.from_numpy(np.eye(3, dtype=np.float32)[tg.semantic].transpose(2, 0, 1) * 20))
            outs["distance"].append(torch.from_numpy(tg.distance))
            outs["types"].append(torch.from_numpy(
                np.eye(num_classes + 1, dtype=np.float32)[tg.cls].transpose(2, 0, 1) * 20))
        return {k: torch.stack(v) for k, v in outs.items()}

    return fn


def batch_sensitive(fn: Any, passes: list[int] | None = None) -> Any:
    """``fn`` whose every map is shifted by 1e-3 per window in its pass, as a real network's results change in
    their last bits with the batch size (BLAS and cuDNN choose kernels by it; on 2 CPU threads EfficientNet-Lite0
    gives other bits for batches of 1, 3 and 7 than of 2, 4 and 8). ``passes`` collects each pass's size."""
    def shifted(batch: torch.Tensor) -> dict[str, torch.Tensor]:
        if passes is not None:
            passes.append(int(batch.shape[0]))
        return {k: v + 1e-3 * batch.shape[0] for k, v in fn(batch).items()}

    return shifted


def oracle_segmenter(inst: np.ndarray, cls: np.ndarray, class_names: list[str], mpp: float, params: Any,
                     run_dir: Path) -> Any:
    """A stand-in for :class:`cellprobe.inference.segmenter.Segmenter` around :func:`oracle`: what the engine
    uses of one (run stamp, classes, thresholds, forward, device)."""
    stamp = SimpleNamespace(mpp=mpp, class_names=class_names, encoder=None)
    run = SimpleNamespace(path=run_dir, stamp=stamp)
    return SimpleNamespace(run=run, class_names=class_names, num_classes=len(class_names), params=params, tta=1,
                           networks=[], device=torch.device("cpu"), _forward=oracle(inst, cls, len(class_names)))


def _segments_cross(p: np.ndarray, q: np.ndarray, r: np.ndarray, s: np.ndarray) -> bool:
    def orient(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
        return float((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))

    return orient(p, q, r) * orient(p, q, s) < 0 and orient(r, s, p) * orient(r, s, q) < 0


def ring_is_valid(ring: list[list[float]]) -> bool:
    """A closed ring of >= 4 positions, non-zero area, no two non-adjacent edges properly crossing."""
    pts = np.asarray(ring, dtype=np.float64)
    if len(pts) < 4 or not np.array_equal(pts[0], pts[-1]):
        return False
    area = 0.5 * abs(np.dot(pts[:-1, 0], pts[1:, 1]) - np.dot(pts[1:, 0], pts[:-1, 1]))
    if area <= 0:
        return False
    n = len(pts) - 1
    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue
            if _segments_cross(pts[i], pts[i + 1], pts[j], pts[j + 1]):
                return False
    return True


def check_geojson(path: Path, width: int, height: int, class_names: list[str]) -> list[dict[str, Any]]:
    """What QuPath needs to import the file as classified detections; returns the features."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        data = json.load(handle)
    assert data["type"] == "FeatureCollection"
    ids = set()
    for f in data["features"]:
        assert f["type"] == "Feature"
        assert uuid.UUID(f["id"]).version == 5 and f["id"] not in ids
        ids.add(f["id"])
        geom = f["geometry"]
        assert geom["type"] == "Polygon" and len(geom["coordinates"]) == 1
        ring = geom["coordinates"][0]
        assert ring_is_valid(ring), ring
        xy = np.asarray(ring)
        assert (xy[:, 0] >= 0).all() and (xy[:, 0] <= width).all()
        assert (xy[:, 1] >= 0).all() and (xy[:, 1] <= height).all()
        props = f["properties"]
        assert props["objectType"] == "detection"
        assert props["classification"]["name"] in class_names
        colour = props["classification"]["color"]
        assert len(colour) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in colour)
        assert props["measurements"]["Area µm^2"] > 0
        assert abs(sum(props["measurements"][f"Probability: {n}"] for n in class_names) - 1) < 1e-3
    return data["features"]


def rasterise(cells: Path, shape: tuple[int, int], origin: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """(instance map, class map) of cells.parquet's outlines (level 0 = target px), in a frame of ``shape``
    at ``origin`` (x, y): the outlines trace boundary pixel centres, so filling them gives the pixels back."""
    import cv2
    import pyarrow.parquet as pq

    table = pq.read_table(cells, columns=["outline", "class_id"]).to_pydict()
    inst = np.zeros(shape, np.int32)
    cls = np.zeros(shape, np.uint8)
    for k, (ring, c) in enumerate(zip(table["outline"], table["class_id"], strict=True), start=1):
        pts = np.round(np.asarray(ring) - 0.5 - np.asarray(origin)).astype(np.int32)
        mask = np.zeros(shape, np.uint8)
        cv2.fillPoly(mask, [pts], 1)
        inst[mask > 0] = k
        cls[mask > 0] = c
    return inst, cls


def write_coded_slide(path: Path, h: int, w: int, mpp: float, kind: str = "ome") -> Path:
    """A lossless pyramidal slide whose pixels code their own coordinates (for :func:`oracle`)."""
    from cellprobe.data.slide_fixtures import write_aperio_tiff, write_ome_tiff

    image = coordinate_image(h, w)
    if kind == "ome":
        return write_ome_tiff(path, image, w, h, mpp, levels=(1, 4), compression=None)
    return write_aperio_tiff(path, image, w, h, mpp, levels=(1, 4), compression=None)


def outlines(inst: np.ndarray, origin: tuple[int, int] = (0, 0)) -> set[tuple[float, ...]]:
    """Every instance's outline as the engine writes it (largest piece, level 0 = these pixels), for exact
    comparison with cells.parquet's ``outline`` column (:func:`table_outlines`)."""
    from scipy import ndimage

    from cellprobe.inference.export import instance_rings

    out = set()
    for label, where in enumerate(ndimage.find_objects(inst), start=1):
        if where is None:
            continue
        rings = instance_rings(inst[where] == label, (where[0].start + origin[1], where[1].start + origin[0]))
        ring = max(rings, key=lambda r: abs(sum(a[0] * b[1] - b[0] * a[1] for a, b in itertools.pairwise(r))))
        out.add(tuple(round(v, 2) for p in ring for v in p))
    return out


def table_outlines(cells: Path) -> set[tuple[float, ...]]:
    import pyarrow.parquet as pq

    rings = pq.read_table(cells, columns=["outline"]).column(0).to_pylist()
    return {tuple(round(float(v), 2) for p in ring for v in p) for ring in rings}
