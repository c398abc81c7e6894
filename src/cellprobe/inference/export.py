"""Write predictions for people and for QuPath: instance/class maps, an overlay PNG, GeoJSON polygons.

The GeoJSON is a FeatureCollection of QuPath detections: one Polygon (or MultiPolygon, for an instance in
several pieces) per nucleus, in pixel coordinates of the input image, with ``classification`` = class name and
RGB colour, which QuPath (>= 0.3, File → Import objects) reads as classified detection objects.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tifffile
from scipy import ndimage

from cellprobe import atomic

#: class colours (RGB) in class-id order 1..C; beyond ten classes they repeat
PALETTE = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
)
UNCLASSIFIED = (200, 200, 200)


def class_colour(class_id: int) -> tuple[int, int, int]:
    return UNCLASSIFIED if class_id <= 0 else PALETTE[(class_id - 1) % len(PALETTE)]


def instance_rings(mask: np.ndarray, offset: tuple[int, int] = (0, 0)) -> list[list[list[float]]]:
    """Outer rings of each connected piece of a binary mask, as closed [x, y] lists in image coordinates.

    OpenCV traces the centres of the boundary pixels; +0.5 puts them at pixel centres in QuPath's convention
    (pixel (x, y) covers [x, x+1] × [y, y+1]). Holes are dropped: nuclei have none worth drawing.
    """
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    rings = []
    for c in contours:
        pts = c[:, 0, :].astype(np.float64) + 0.5
        pts[:, 0] += offset[1]
        pts[:, 1] += offset[0]
        if len(pts) < 3:  # a one- or two-pixel piece: a tiny square around its pixels
            x0, y0 = pts[:, 0].min() - 0.5, pts[:, 1].min() - 0.5
            x1, y1 = pts[:, 0].max() + 0.5, pts[:, 1].max() + 0.5
            pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        ring = [[round(float(x), 2), round(float(y), 2)] for x, y in pts]
        ring.append(ring[0])
        rings.append(ring)
    return rings


def to_geojson(inst: np.ndarray, types: Mapping[int, int], class_names: Sequence[str]) -> dict[str, Any]:
    """A QuPath-readable FeatureCollection: one classified detection per instance of ``inst``."""
    features = []
    for label, where in enumerate(ndimage.find_objects(inst), start=1):
        if where is None:
            continue
        crop = inst[where] == label
        rings = instance_rings(crop, (where[0].start, where[1].start))
        if not rings:
            continue
        geometry = ({"type": "Polygon", "coordinates": [rings[0]]} if len(rings) == 1
                    else {"type": "MultiPolygon", "coordinates": [[r] for r in rings]})
        cid = int(types.get(label, 0))
        props: dict[str, Any] = {"objectType": "detection", "isLocked": False, "instance_id": label}
        if 1 <= cid <= len(class_names):
            props["classification"] = {"name": class_names[cid - 1], "color": list(class_colour(cid))}
        features.append({"type": "Feature", "id": f"nucleus-{label}", "geometry": geometry, "properties": props})
    return {"type": "FeatureCollection", "features": features}


def overlay(image: np.ndarray, inst: np.ndarray, types: Mapping[int, int], thickness: int = 1) -> np.ndarray:
    """The image with each nucleus outlined in its class colour (RGB uint8)."""
    out = image.copy()
    for label, where in enumerate(ndimage.find_objects(inst), start=1):
        if where is None:
            continue
        crop = (inst[where] == label).astype(np.uint8)
        contours, _ = cv2.findContours(crop, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cid = int(types.get(label, 0))
        shifted = [c + np.array([[where[1].start, where[0].start]]) for c in contours]
        cv2.drawContours(out, shifted, -1, class_colour(cid), thickness)
    return out


def prediction_paths(out_dir: Path, stem: str) -> dict[str, Path]:
    """Where the outputs of the input named ``stem`` go (names fixed here and nowhere else)."""
    return {
        "inst": out_dir / f"{stem}_inst.tif",
        "class": out_dir / f"{stem}_class.tif",
        "overlay": out_dir / f"{stem}_overlay.png",
        "geojson": out_dir / f"{stem}.geojson",
    }


def write_prediction(out_dir: Path, stem: str, image: np.ndarray, inst: np.ndarray, cls_map: np.ndarray,
                     types: Mapping[int, int], class_names: Sequence[str]) -> dict[str, Path]:
    """``<stem>_inst.tif`` (int32), ``<stem>_class.tif`` (uint8), ``<stem>_overlay.png``, ``<stem>.geojson``."""
    paths = prediction_paths(out_dir, stem)
    for key, arr in (("inst", inst.astype(np.int32)), ("class", cls_map.astype(np.uint8))):
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, arr, compression="zlib")
        atomic.write_bytes(paths[key], buffer.getvalue())
    ok, png = cv2.imencode(".png", cv2.cvtColor(overlay(image, inst, types), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    atomic.write_bytes(paths["overlay"], png.tobytes())
    atomic.write_text(paths["geojson"], json.dumps(to_geojson(inst, types, class_names)))
    return paths
