"""`predict` hands images above the size threshold to the whole-slide engine; tile_cells measures in level-0
pixels and µm whatever the scale."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from tests.training.tiny import shared_run

from cellprobe.data.targets import make_targets
from cellprobe.inference.slide_cells import CellContext, tile_cells
from cellprobe.inference.slide_config import SlideSettings
from cellprobe.inference.slide_tiles import make_grid
from cellprobe.postprocess import PostprocessParams


def test_predict_sends_a_large_image_to_the_engine(tmp_path_factory, tmp_path):
    from cellprobe.inference.predict import predict_files
    from cellprobe.inference.segmenter import Segmenter

    run = shared_run(tmp_path_factory)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (320, 300, 3), np.uint8)).save(tmp_path / "big.png")
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), np.uint8)).save(tmp_path / "small.png")
    settings = SlideSettings(predict_large_pixels=300 * 300, tile=256, overlap=64, workers=0)
    segmenter = Segmenter(run, device="cpu")
    written = predict_files(segmenter, [tmp_path / "big.png", tmp_path / "small.png"], tmp_path / "out",
                            slide=settings)
    assert written[0]["cells"] == tmp_path / "out" / "big" / "cells.parquet"
    assert all(p.is_file() for p in written[0].values()) and all(p.is_file() for p in written[1].values())
    summary = json.loads(written[0]["summary"].read_text())
    assert summary["level0"] == {"width": 300, "height": 320} and summary["tiles"]["grid"] == 4
    # the 28th probe: its µm/px was recorded as given by --mpp, which predict has not
    assert summary["mpp"]["source"] == ("the run's (predict reads every image at it)" if summary["mpp"]["run"]
                                        else "nominal (the run records none; predict reads every image at the run's)")
    assert summary["mpp"]["slide"] == summary["mpp"]["target"]


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_tile_cells_measures_in_level0_pixels_and_microns(scale):
    inst = np.zeros((128, 128), np.int32)
    inst[10:20, 30:44] = 1  # 140 px, centroid (36.5, 15) in pixel-centre coordinates... +0.5
    inst[100:128, 60:70] = 2  # touches the bottom edge
    cls = np.where(inst > 0, 2, 0).astype(np.uint8)
    tg = make_targets(inst, cls)
    maps = {"semantic": np.eye(3, dtype=np.float32)[tg.semantic].transpose(2, 0, 1),
            "distance": tg.distance, "types": np.eye(3, dtype=np.float32)[tg.cls].transpose(2, 0, 1)}
    grid = make_grid((0, 0), (224, 128), 128, 32, scale)
    tile = grid.tile_at(0)  # a right neighbour only: the bottom edge is the slide's
    ctx = CellContext(PostprocessParams(min_size=1, min_marker_size=1), 2, scale, 0.5 * scale, "s")
    cells = tile_cells(maps, tile, ctx)
    assert len(cells) == 2 and cells.cut == 0
    assert cells.x[0] == pytest.approx(37.0 * scale) and cells.y[0] == pytest.approx(15.0 * scale)
    assert cells.area[0] == pytest.approx(140 * (0.5 * scale) ** 2)
    assert cells.outline[0][:, 0].min() == pytest.approx(30.5 * scale)
    assert list(cells.cls) == [2, 2] and np.allclose(cells.probs[:, 1], 1)
    # a nucleus on the edge shared with the right neighbour is that neighbour's or cut, never this tile's
    inst2 = np.zeros_like(inst)
    inst2[50:60, 110:128] = 1
    tg = make_targets(inst2, np.where(inst2 > 0, 1, 0).astype(np.uint8))
    maps2 = {"semantic": np.eye(3, dtype=np.float32)[tg.semantic].transpose(2, 0, 1),
             "distance": tg.distance, "types": np.eye(3, dtype=np.float32)[tg.cls].transpose(2, 0, 1)}
    edge = tile_cells(maps2, tile, ctx)
    assert len(edge) == 0 and edge.cut == 0  # centroid x 119.5 lies beyond the core (< 112)
