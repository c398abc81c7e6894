import json

import cv2
import numpy as np
import tifffile

from cellprobe.inference.export import class_colour, instance_rings, overlay, to_geojson, write_prediction


def _inst() -> np.ndarray:
    inst = np.zeros((40, 50), dtype=np.int32)
    cv2.circle(inst, (12, 12), 7, 1, -1)
    cv2.rectangle(inst, (30, 5), (44, 15), 2, -1)
    inst[30:32, 5:7] = 3  # a 2×2 nucleus
    inst[25:28, 30:33] = 4  # two pieces of one instance
    inst[35:38, 40:43] = 4
    return inst


def _rasterise(polygon_rings, shape) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    for ring in polygon_rings:
        pts = np.round(np.asarray(ring) - 0.5).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1)
    return mask.astype(bool)


def test_geojson_polygons_round_trip_and_carry_class_and_colour():
    inst = _inst()
    gj = to_geojson(inst, {1: 1, 2: 2, 3: 1, 4: 2}, ["tumour", "immune"])
    assert gj["type"] == "FeatureCollection" and len(gj["features"]) == 4
    json.dumps(gj)  # plain JSON
    by_id = {f["properties"]["instance_id"]: f for f in gj["features"]}
    assert by_id[2]["properties"]["classification"] == {"name": "immune", "color": list(class_colour(2))}
    assert by_id[1]["properties"]["objectType"] == "detection"
    assert by_id[4]["geometry"]["type"] == "MultiPolygon"
    for label in (1, 2, 3):
        geom = by_id[label]["geometry"]
        assert geom["type"] == "Polygon"
        ring = geom["coordinates"][0]
        assert ring[0] == ring[-1] and len(ring) >= 4
        back = _rasterise([ring], inst.shape)
        truth = inst == label
        assert (back & truth).sum() / (back | truth).sum() > 0.95


def test_unclassified_instances_have_no_classification():
    gj = to_geojson(_inst(), {1: 0}, ["a"])
    assert all("classification" not in f["properties"] for f in gj["features"])


def test_rings_offset():
    mask = np.zeros((5, 5), bool)
    mask[1:4, 1:4] = True
    ring = instance_rings(mask, (10, 20))[0]
    xs, ys = [p[0] for p in ring], [p[1] for p in ring]
    assert min(xs) == 21.5 and max(ys) == 13.5


def test_write_prediction_files(tmp_path):
    inst = _inst()
    image = np.full((*inst.shape, 3), 128, np.uint8)
    cls_map = np.where(inst > 0, 1, 0).astype(np.uint8)
    paths = write_prediction(tmp_path, "img", image, inst, cls_map, {1: 1, 2: 1, 3: 1, 4: 1}, ["a"])
    assert np.array_equal(tifffile.imread(paths["inst"]), inst)
    assert np.array_equal(tifffile.imread(paths["class"]), cls_map)
    png = cv2.imread(str(paths["overlay"]))
    assert png.shape == (*inst.shape, 3) and (png != 128).any()
    assert len(json.loads(paths["geojson"].read_text())["features"]) == 4
    assert (overlay(image, inst, {1: 1}) != image).any()
