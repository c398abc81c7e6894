import itertools

import numpy as np
import pytest
import torch

from cellprobe.inference.window import WindowConfig, blend_weights, predict_maps, window_starts


def _pointwise(batch: torch.Tensor) -> dict[str, torch.Tensor]:
    """A 'model' without context: every output pixel depends on its own input pixel only."""
    r, g, b = batch[:, 0:1], batch[:, 1:2], batch[:, 2:3]
    return {"semantic": torch.cat([r, g, b], 1) * 4, "distance": torch.cat([r - g, g - b, b - r, r * 0], 1),
            "types": torch.cat([r, 2 * g, b, r + b], 1)}


@pytest.mark.parametrize("shape", [(300, 200), (64, 64), (40, 100), (257, 64)])
def test_stitched_maps_equal_the_whole_image_maps(shape):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    cfg = WindowConfig(tile=64, overlap=16, batch_size=3)
    maps = predict_maps(image, _pointwise, cfg)
    whole = _pointwise(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255)
    assert maps["semantic"].shape == (3, *shape)
    np.testing.assert_allclose(maps["semantic"], whole["semantic"].softmax(1)[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(maps["distance"], whole["distance"][0].numpy(), atol=1e-5)
    np.testing.assert_allclose(maps["types"], whole["types"].softmax(1)[0].numpy(), atol=1e-5)


def test_window_starts_cover_with_overlap():
    assert window_starts(64, 64, 16) == [0]
    starts = window_starts(300, 64, 16)
    assert starts[0] == 0 and starts[-1] == 300 - 64
    assert all(b - a <= 64 - 16 for a, b in itertools.pairwise(starts))


def test_blend_weights_ramp_only_inside_the_image():
    w = blend_weights(64, 16, 8, 0, 0, 64, 200)  # left image border, a neighbour on the right
    assert w[32, 0] == 1.0 and w[0, 32] == 1.0 and w.min() > 0
    assert w[32, -4] < 1e-3 and w[32, -8] == pytest.approx(0.5, abs=0.07) and w[32, -13] == 1.0


@pytest.mark.parametrize("blend", [0, 8, 16])
def test_neighbouring_weights_cross_fade_to_one_around_the_seam(blend):
    """Two windows overlapping by exactly ``overlap``: their weights sum to 1 across the overlap."""
    a = blend_weights(64, 16, blend, 0, 0, 64, 112)[0]  # x = 0..63, a neighbour on the right
    b = blend_weights(64, 16, blend, 0, 48, 64, 112)[0]  # x = 48..111
    np.testing.assert_allclose(a[48:] + b[:16], 1.0, atol=2e-4)


def test_window_config_is_checked():
    with pytest.raises(ValueError, match="multiple of 32"):
        WindowConfig(tile=100)
    with pytest.raises(ValueError, match="overlap"):
        WindowConfig(tile=64, overlap=32)
    with pytest.raises(ValueError, match="blend"):
        WindowConfig(tile=64, overlap=8, blend=16)
