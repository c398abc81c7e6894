"""Necks: every family's taps become exactly H/4, H/8, H/16, H/32 maps of the configured widths."""

from __future__ import annotations

import pytest
import torch

from cellprobe.encoders.necks import build_neck, fit_to_grid

# (family, tap widths, tap strides): the layouts the registry's families produce, with small widths.
LAYOUTS = {
    "cnn": ("cnn", (8, 12, 16, 20), (4, 8, 16, 32)),
    "cnn-stride2": ("cnn", (8, 12, 16, 20), (2, 8, 16, 32)),
    "swin": ("swin", (8, 16, 32, 64), (4, 8, 16, 32)),
    "vit": ("vit", (24,) * 4, (16,) * 4),
    "vit-pad14": ("vit", (24,) * 4, (14,) * 4),
    "hybrid": ("hybrid", (16, 24, 32, 32), (4, 8, 16, 16)),
}


def _taps(widths, strides, size, batch=2):
    return [torch.randn(batch, c, -(-size[0] // s), -(-size[1] // s)) for c, s in zip(widths, strides, strict=True)]


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("size", [(256, 256), (128, 192)])
def test_pyramid_shapes(layout, size):
    family, widths, strides = LAYOUTS[layout]
    neck = build_neck(family, widths, strides, out_channels=(8, 16, 24, 32))
    out = neck(_taps(widths, strides, size), size)
    assert [tuple(o.shape) for o in out] == [(2, c, size[0] // s, size[1] // s)
                                             for c, s in zip((8, 16, 24, 32), (4, 8, 16, 32), strict=True)]


def test_families_get_their_branches():
    vit = build_neck("vit", (24,) * 4, (16,) * 4, (8, 8, 8, 8))
    assert [len([m for m in b.rescale if isinstance(m, torch.nn.ConvTranspose2d)]) for b in vit.branches] == \
        [2, 1, 0, 0]
    assert isinstance(vit.branches[3].rescale[0], torch.nn.MaxPool2d)
    hybrid = build_neck("hybrid", (16, 24, 32, 32), (4, 8, 16, 16), (8, 8, 8, 8))
    assert [type(b).__name__ for b in hybrid.branches] == ["ProjectResample", "ProjectResample",
                                                           "TokenRescale", "TokenRescale"]
    cnn = build_neck("cnn", (8, 12, 16, 20), (4, 8, 16, 32), (8, 8, 8, 8))
    assert all(type(b).__name__ == "ProjectResample" for b in cnn.branches)


def test_neck_is_trainable_and_accepts_half_precision_taps():
    neck = build_neck("vit", (24,) * 4, (16,) * 4, (8, 8, 8, 8))
    taps = [t.half() for t in _taps((24,) * 4, (16,) * 4, (64, 64))]
    loss = sum(o.square().mean() for o in neck(taps, (64, 64)))
    loss.backward()
    assert all(p.grad is not None for p in neck.parameters())


def test_fit_to_grid_aligns_padded_maps_top_left():
    x = torch.arange(19.0).view(1, 1, 1, 19).expand(1, 1, 19, 19)  # 14-px cells, 266 px covered
    out = fit_to_grid(x, 14, 16, (16, 16))  # crop the padded margin after rescaling by 14/16
    assert out.shape[-2:] == (16, 16)
    assert out[0, 0, 0, 0] < 0.6 and abs(float(out[0, 0, 0, 15]) - 15 * 16 / 14) < 1.0


def test_bad_neck_configuration():
    with pytest.raises(ValueError, match="4 taps"):
        build_neck("cnn", (8, 8, 8), (4, 8, 16), (8, 8, 8, 8))
    with pytest.raises(ValueError, match="unknown encoder family"):
        build_neck("rnn", (8,) * 4, (4, 8, 16, 32))
    neck = build_neck("cnn", (8,) * 4, (4, 8, 16, 32), (8,) * 4)
    with pytest.raises(ValueError, match="divisible by 32"):
        neck(_taps((8,) * 4, (4, 8, 16, 32), (100, 100)), (100, 100))
