"""Large images through the sliding window: nuclei on window borders come out whole and once.

An oracle 'network' returns, for every window, the exact maps of the ground truth *cropped to that window* (so
a nucleus cut by the window edge looks cut, as it does to a real network). The image made by tiling patches
encodes each pixel's coordinates so that the oracle knows where its window lies.
"""

from __future__ import annotations

import numpy as np
from tests.inference.slide_helpers import coordinate_image
from tests.inference.slide_helpers import oracle as make_oracle

from cellprobe.data.fixtures import synthetic_patch
from cellprobe.data.targets import make_targets
from cellprobe.inference.window import WindowConfig, predict_maps, window_starts
from cellprobe.metrics import score_maps
from cellprobe.postprocess import PostprocessParams, assign_types, instances_from_maps


def _tiled_truth(rows: int, cols: int, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Instance and class maps of a large image made by tiling synthetic patches (ids made unique)."""
    rng = np.random.default_rng(seed)
    inst = np.zeros((rows * size, cols * size), np.int32)
    cls = np.zeros_like(inst, dtype=np.uint8)
    offset = 0
    for r in range(rows):
        for c in range(cols):
            _, i, k = synthetic_patch(rng, size, n_nuclei=6, num_classes=3, radius=(4, 9))
            sl = np.s_[r * size:(r + 1) * size, c * size:(c + 1) * size]
            inst[sl] = np.where(i > 0, i + offset, 0)
            cls[sl] = k
            offset += 100
    return inst, cls


def _segment(maps: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    params = PostprocessParams(min_size=1, min_marker_size=1)
    inst = instances_from_maps(maps["semantic"], maps["distance"], params)
    return inst, assign_types(inst, maps["types"])[0]


def _whole_image_reference(inst: np.ndarray, cls: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The oracle's maps of the whole image at once (no window borders), post-processed the same way."""
    tg = make_targets(inst, cls)
    return _segment({"semantic": np.eye(3, dtype=np.float32)[tg.semantic].transpose(2, 0, 1),
                     "distance": tg.distance,
                     "types": np.eye(num_classes + 1, dtype=np.float32)[tg.cls].transpose(2, 0, 1)})


def _agreement(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[float, int, int]:
    score = score_maps([a[0]], [a[1]], [b[0]], [b[1]], num_classes=3).summary
    return score["pq"], len(np.unique(a[0])) - 1, len(np.unique(b[0])) - 1


def test_nuclei_on_window_borders_are_neither_duplicated_nor_cut():
    inst, cls = _tiled_truth(4, 5)  # 256 × 320 px, 20 windows of 96 px
    h, w = inst.shape
    image = coordinate_image(h, w)
    oracle = make_oracle(inst, cls, 3)
    reference = _whole_image_reference(inst, cls, 3)
    assert len(window_starts(h, 96, 40)) > 3 and len(window_starts(w, 96, 40)) > 3

    tiled = _segment(predict_maps(image, oracle, WindowConfig(tile=96, overlap=40, blend=8, batch_size=4)))
    pq, n_ref, n_tiled = _agreement(reference, tiled)
    assert n_tiled == n_ref and pq > 0.999, (pq, n_ref, n_tiled)
    assert np.array_equal(tiled[1] > 0, reference[1] > 0)

    # every nucleus crossing a seam (middle of an overlap) is one predicted nucleus, whole
    seams = [s + 20 for s in window_starts(w, 96, 40)[1:]]
    crossing = {int(i) for sx in seams for i in np.unique(reference[0][:, sx - 1:sx + 1]) if i}
    assert len(crossing) >= 5
    for label in crossing:
        ids = np.unique(tiled[0][reference[0] == label])
        assert len(ids) == 1 and ids[0] > 0
        assert np.array_equal(tiled[0] == ids[0], reference[0] == label)

    # the test has teeth: windows that merely touch (no overlap) cut and duplicate nuclei
    naive = _segment(predict_maps(image, oracle, WindowConfig(tile=96, overlap=0, blend=0)))
    _, _, n_naive = _agreement(reference, naive)
    assert n_naive > n_ref
