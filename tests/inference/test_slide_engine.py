"""The whole-slide engine on generated slides of real CoNSeP nuclei: the same nuclei as whole-image prediction,
none duplicated or cut on tile borders, regions, the worker pool, and the outputs' structure.

An oracle network (tests/inference/slide_helpers.py) returns the truth cropped to each network window, found
from pixels that code their own coordinates, so the expected nuclei are known exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from tests.inference.slide_helpers import (
    batch_sensitive,
    check_geojson,
    coordinate_image,
    oracle,
    oracle_segmenter,
    outlines,
    rasterise,
    table_outlines,
    write_coded_slide,
)

from cellprobe.data.slide_fixtures import consep_mosaic
from cellprobe.data.targets import make_targets
from cellprobe.inference.slide_config import SlideSettings
from cellprobe.inference.slide_engine import run_slide
from cellprobe.inference.slide_plan import SlideInputs
from cellprobe.inference.window import WindowConfig, predict_maps
from cellprobe.metrics import score_maps
from cellprobe.postprocess import PostprocessParams, assign_types, instances_from_maps

CLASSES = ["other", "inflammatory", "epithelial", "spindle-shaped"]
PARAMS = PostprocessParams(min_size=1, min_marker_size=1)
MPP = 0.25
WINDOW = WindowConfig(tile=256, overlap=64, blend=16, batch_size=4)
# small tiles so that a 768 × 1024 slide has tile borders everywhere
SETTINGS = SlideSettings(tile=320, overlap=96, workers=0, part_tiles=2, tissue={"method": "all"}, overview_side=256)


@pytest.fixture(scope="module")
def truth(consep_root):
    _, inst, cls = consep_mosaic(consep_root, 3, 4, seed=1)
    return inst, cls


def _segment(maps):
    inst = instances_from_maps(maps["semantic"], maps["distance"], PARAMS)
    return inst, assign_types(inst, maps["types"])[0]


def _truth_reference(inst, cls):
    """The truth's own maps of the whole image at once (no window, no tile), post-processed."""
    tg = make_targets(inst, cls)
    return _segment({"semantic": np.eye(3, dtype=np.float32)[tg.semantic].transpose(2, 0, 1),
                     "distance": tg.distance,
                     "types": np.eye(len(CLASSES) + 1, dtype=np.float32)[tg.cls].transpose(2, 0, 1)})


def _whole_image(inst, cls, image):
    """Whole-image prediction (the sliding window over the whole image), post-processed."""
    return _segment(predict_maps(image, oracle(inst, cls, len(CLASSES)), WINDOW))


def _segmenter(inst, cls, tmp_path):
    seg = oracle_segmenter(inst, cls, CLASSES, MPP, PARAMS, tmp_path / "run")
    seg.window = WINDOW
    return seg


def _pq(a, b):
    return score_maps([a[0]], [a[1]], [b[0]], [b[1]], num_classes=len(CLASSES)).summary["pq"]


def test_slide_equals_whole_image_prediction_and_keeps_every_nucleus_once_and_whole(truth, tmp_path):
    inst, cls = truth
    h, w = inst.shape
    slide = write_coded_slide(tmp_path / "mosaic.ome.tif", h, w, MPP)
    summary = run_slide(_segmenter(inst, cls, tmp_path), slide, tmp_path / "out", SETTINGS)
    folder = tmp_path / "out" / "mosaic"
    assert summary.folder == folder and sorted(p.name for p in folder.iterdir()) == [
        "cells.geojson.gz", "cells.parquet", "overview.png", "summary.json"]
    assert not any(p.name.endswith(".partial") for p in (tmp_path / "out").iterdir())
    got = rasterise(folder / "cells.parquet", (h, w))

    whole = _whole_image(inst, cls, coordinate_image(h, w))
    n_whole = len(np.unique(whole[0])) - 1
    # the same nuclei as whole-image prediction, outline for outline but for float-rounding ties (a vertex)
    assert summary.nuclei == n_whole
    assert len(table_outlines(folder / "cells.parquet") ^ outlines(whole[0])) <= 0.02 * n_whole
    reference = _truth_reference(inst, cls)
    n_ref = len(np.unique(reference[0])) - 1
    assert _pq(reference, got) >= 0.99 and abs(summary.nuclei - n_ref) <= 0.005 * n_ref

    # nuclei across the cores' borders (tile seams) come out once, whole
    data = json.loads((folder / "summary.json").read_text())
    assert data["nuclei"]["cut_at_tile_edges"] == 0 and data["tiles"]["grid"] == 15
    seams = [320 - 48 + k * 224 for k in range(4)]
    crossing = {int(i) for s in seams if s < w for i in np.unique(reference[0][:, s - 1:s + 1]) if i}
    crossing |= {int(i) for s in seams if s < h for i in np.unique(reference[0][s - 1:s + 1, :]) if i}
    assert len(crossing) >= 20
    table = pq.read_table(folder / "cells.parquet")
    for label in crossing:
        ids = np.unique(got[0][reference[0] == label])
        assert len(ids) == 1 and ids[0] > 0, label
        assert (got[0] == ids[0]).sum() == (reference[0] == label).sum()
    assert len(set(table["uuid"].to_pylist())) == table.num_rows
    assert table["id"].to_pylist() == list(range(1, table.num_rows + 1))

    # measurements: µm = level-0 px · µm/px; area = pixels · (µm/px)²; probabilities sum to 1
    x_px, x_um = table["x_px"].to_numpy(), table["x_um"].to_numpy()
    assert np.allclose(x_um, x_px * MPP)
    areas = np.sort(np.bincount(whole[0].ravel())[1:] * MPP**2)
    assert np.mean(np.isclose(np.sort(table["area_um2"].to_numpy()), areas[areas > 0])) > 0.98
    probs = np.stack([table[f"prob_{c}"].to_numpy() for c in CLASSES], 1)
    assert np.allclose(probs.sum(1), 1, atol=1e-5)
    assert data["nuclei"]["total"] == summary.nuclei and data["mpp"]["target"] == MPP and data["reader"] == "tiff"
    assert sum(data["nuclei"]["per_class"].values()) == summary.nuclei
    assert data["tissue_mm2"] == pytest.approx(h * w * MPP**2 / 1e6, rel=0.02)
    check_geojson(folder / "cells.geojson.gz", w, h, CLASSES)

    # the test has teeth: tiles without overlap cut nuclei on their borders
    naive = SETTINGS.model_copy(update={"overlap": 0})
    cut = run_slide(_segmenter(inst, cls, tmp_path), slide, tmp_path / "naive", naive)
    assert cut.data["nuclei"]["cut_at_tile_edges"] > 0 and cut.nuclei < n_whole
    # ... and says so (the 29th probe: --overlap 0 lost 22 % of a slide's nuclei, said only in summary.json)
    import warnings

    from cellprobe.data.validate import DataWarning
    from cellprobe.inference.slide_engine import say_cut_nuclei

    with pytest.warns(DataWarning, match=rf"^mosaic: {cut.data['nuclei']['cut_at_tile_edges']} nuclei reached past "
                                         r"the tile overlap \(0 px\) and were cut by tile edges"):
        say_cut_nuclei(cut)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        say_cut_nuclei(summary)  # none cut: nothing said


def test_every_network_pass_holds_batch_size_windows(truth, tmp_path):
    """Windows a tile takes from the cache do not break its passes, and its last pass is filled up: a window's
    maps do not then depend on which windows shared its pass (see test_slide_resume)."""
    inst, cls = truth
    slide = write_coded_slide(tmp_path / "mosaic.ome.tif", *inst.shape, MPP)
    seg = _segmenter(inst, cls, tmp_path)
    passes: list[int] = []
    seg._forward = batch_sensitive(seg._forward, passes)
    summary = run_slide(seg, slide, tmp_path / "out", SETTINGS.model_copy(update={"batch_size": 3}))
    assert passes and set(passes) == {3}
    computed, filler = summary.data["windows"]["computed"], summary.data["windows"]["filler"]
    assert len(passes) * 3 == computed + filler and filler < 3 * summary.data["tiles"]["grid"]  # one per tile at most


def test_worker_pool_and_region_give_the_same_nuclei(truth, tmp_path):
    inst, cls = truth
    h, w = inst.shape
    slide = write_coded_slide(tmp_path / "mosaic.svs", h, w, MPP, kind="aperio")
    region = (200, 130, 560, 600)
    inputs = SlideInputs(region=region)
    pooled = run_slide(_segmenter(inst, cls, tmp_path), slide, tmp_path / "a",
                       SETTINGS.model_copy(update={"workers": 1}), inputs=inputs)
    serial = run_slide(_segmenter(inst, cls, tmp_path), slide, tmp_path / "b", SETTINGS, inputs=inputs)
    a, b = (pq.read_table(s.folder / "cells.parquet") for s in (pooled, serial))
    assert pooled.data["reader"] == "openslide" and a.num_rows > 50 and a.equals(b)
    assert (pooled.folder / "cells.geojson.gz").read_bytes() == (serial.folder / "cells.geojson.gz").read_bytes()

    # a region is whole-image prediction of the region's pixels, in slide coordinates
    x, y, rw, rh = region
    crop = np.s_[y:y + rh, x:x + rw]
    whole = _whole_image(inst, cls, np.ascontiguousarray(coordinate_image(h, w)[crop]))
    assert pooled.nuclei == len(np.unique(whole[0])) - 1
    assert len(table_outlines(pooled.folder / "cells.parquet") ^ outlines(whole[0], origin=(x, y))) <= 0.02 * pooled.nuclei
    xs, ys = a["x_px"].to_numpy(), a["y_px"].to_numpy()
    assert xs.min() >= x and xs.max() <= x + rw and ys.min() >= y and ys.max() <= y + rh
    assert pooled.data["region"] == list(region)


def test_nuclei_beyond_the_tissue_mask_are_left_out_of_the_cells_and_the_density(truth, tmp_path):
    """The 28th probe: with a tissue mask (a region a user drew), the windows at its edge saw nuclei beyond it,
    and those were kept and counted in nuclei per mm² of the mask's area (inflated by 20 % on its repro)."""
    from scipy import ndimage

    inst, cls = truth
    h, w = inst.shape
    slide = write_coded_slide(tmp_path / "mosaic.ome.tif", h, w, MPP)
    edge = 400
    mask = tmp_path / "left.geojson"
    mask.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": {
        "type": "Polygon", "coordinates": [[[0, 0], [edge, 0], [edge, h], [0, h], [0, 0]]]}}))
    settings = SETTINGS.model_copy(update={"tissue": SETTINGS.tissue.model_copy(update={"method": "otsu"})})
    summary = run_slide(_segmenter(inst, cls, tmp_path), slide, tmp_path / "out", settings,
                        inputs=SlideInputs(tissue_mask=mask))
    xs = pq.read_table(summary.folder / "cells.parquet")["x_px"].to_numpy()
    whole = _whole_image(inst, cls, coordinate_image(h, w))[0]
    centroids = np.asarray(ndimage.center_of_mass(whole > 0, whole, np.arange(1, whole.max() + 1)))[:, 1] + 0.5
    assert xs.max() < edge + 1 and summary.data["nuclei"]["outside_tissue"] > 10
    assert (centroids < edge - 2).sum() <= summary.nuclei <= (centroids < edge + 2).sum()
    assert summary.data["tissue_mm2"] == pytest.approx(edge * h * MPP**2 / 1e6, rel=0.01)
    assert summary.data["nuclei"]["per_mm2"] == pytest.approx(summary.nuclei / summary.data["tissue_mm2"])


@pytest.mark.slow
def test_a_trained_network_gives_the_same_nuclei_as_whole_image_prediction(consep_root, tmp_path):
    """A real run (frozen pretrained EfficientNet-Lite0 trained as ``cellprobe demo`` does, on the shipped
    CoNSeP demo patches): the engine's nuclei against whole-image ``Segmenter.segment`` of the same pixels.
    (A network trained for fewer epochs merges nuclei into blobs wider than the overlap, which tiles cut:
    ``cut_at_tile_edges`` in summary.json counts them.)"""
    from importlib.resources import files

    from tests.training.tiny import tiny_config

    from cellprobe.data.slide_fixtures import write_aperio_tiff
    from cellprobe.inference.segmenter import Segmenter
    from cellprobe.training import train

    demo = Path(str(files("cellprobe.resources") / "demo"))
    cfg = tiny_config(demo, tmp_path / "run", epochs=8, cache_views=1, lr=0.003, targets={"boundary_radius": 2})
    cfg["encoder"]["weights"] = "pretrained"
    cfg["data"] = {"path": str(demo), "format": "patches", "train_split": "train", "val_split": "val"}
    cfg["decoder"] = {"decoder_channels": [32, 24, 16, 8, 8], "stem_channels": [4, 8]}
    run = train(cfg)
    image, _, _ = consep_mosaic(consep_root, 3, 4, seed=2)
    slide = write_aperio_tiff(tmp_path / "tissue.svs", image, image.shape[1], image.shape[0], MPP, levels=(1, 4),
                              compression=None)
    segmenter = Segmenter(run.path, device="cpu")
    whole = segmenter.segment(image)[:2]
    summary = run_slide(segmenter, slide, tmp_path / "out", SETTINGS.model_copy(update={"workers": 1}),
                        inputs=SlideInputs(target_mpp=MPP))
    got = rasterise(summary.folder / "cells.parquet", image.shape[:2])
    n_whole = int(whole[0].max())
    assert n_whole > 200 and abs(summary.nuclei - n_whole) <= 0.005 * n_whole
    assert summary.data["nuclei"]["cut_at_tile_edges"] <= 0.005 * n_whole
    assert _pq(whole, got) >= 0.99
    assert len(table_outlines(summary.folder / "cells.parquet") ^ outlines(whole[0])) <= 0.02 * n_whole


def _sigint_handler_is_ignore(_: int) -> bool:
    import signal

    return signal.getsignal(signal.SIGINT) == signal.SIG_IGN


def test_post_processing_workers_leave_ctrl_c_to_the_command():
    """The fourteenth probe: Ctrl-C during `slide` printed a worker's KeyboardInterrupt traceback (the terminal
    sends SIGINT to the whole process group); the command itself stops the pool."""
    from cellprobe.inference.slide_engine import make_pool

    pool = make_pool(1)
    try:
        assert pool.submit(_sigint_handler_is_ignore, 0).result(timeout=60)
    finally:
        pool.shutdown()
