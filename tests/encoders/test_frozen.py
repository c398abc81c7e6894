"""FrozenEncoder: taps per family, normalisation and fitting inside, and frozen means frozen."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cellprobe.encoders import build_encoder
from cellprobe.encoders.necks import build_neck
from cellprobe.errors import InputError

FAMILY_SPECS = ["tiny-cnn", "tiny-swin", "tiny-vit", "tiny-vit14", "tiny-hybrid"]


@pytest.mark.parametrize("name", FAMILY_SPECS)
def test_taps_have_the_declared_widths_and_strides(tiny, name):
    encoder = build_encoder(tiny[name], weights="random")
    images = torch.rand(2, 3, 128, 192)
    taps = encoder(images)
    assert len(taps) == len(encoder.taps) == 4
    for tap, c, s in zip(taps, encoder.tap_channels, encoder.tap_strides, strict=True):
        assert tuple(tap.shape) == (2, c, 128 // s, 192 // s)
        assert not tap.requires_grad
    assert encoder.tap_channels == tiny[name].tap_channels
    assert [tuple(s) for s in encoder.feature_shapes(128, 192)] == [tuple(t.shape[1:]) for t in taps]


def test_normalisation_happens_inside(tiny):
    encoder = build_encoder(tiny["tiny-cnn"], weights="random")
    images = torch.rand(1, 3, 64, 64)
    mean, std = torch.tensor(encoder.spec.mean).view(1, 3, 1, 1), torch.tensor(encoder.spec.std).view(1, 3, 1, 1)
    with torch.no_grad():
        manual = encoder.model.forward_intermediates((images - mean) / std, indices=[0, 1, 2, 3],
                                                     intermediates_only=True)
    for a, b in zip(encoder(images), manual, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_patch14_fit_resize_and_pad(tiny):
    spec = tiny["tiny-vit14"]
    resized = build_encoder(spec, weights="random")
    assert resized.fit == "resize" and resized.tap_strides == (16,) * 4
    assert tuple(resized(torch.rand(1, 3, 256, 256))[0].shape) == (1, 32, 16, 16)  # 256 → 224 px, 16×16 tokens
    padded = build_encoder(spec, weights="random", fit="pad")
    assert padded.tap_strides == (14,) * 4
    assert tuple(padded(torch.rand(1, 3, 256, 256))[0].shape) == (1, 32, 19, 19)  # 256 → 266 px
    with pytest.raises(ValueError, match="divisible by 16"):
        resized(torch.rand(1, 3, 250, 256))
    with pytest.raises(InputError, match="fit must be"):
        build_encoder(spec, weights="random", fit="crop")


def test_resize_feeds_the_model_the_native_grid(tiny, monkeypatch):
    encoder = build_encoder(tiny["tiny-vit14"], weights="random")
    seen = []
    monkeypatch.setattr(encoder.model, "forward_intermediates",
                        lambda x, **kw: seen.append(tuple(x.shape)) or [torch.zeros(1)] * 4)
    encoder(torch.rand(1, 3, 256, 512))
    assert seen == [(1, 3, 224, 448)]


@pytest.mark.parametrize("name", ["tiny-cnn", "tiny-vit14"])
def test_input_scale_magnifies_before_the_model_and_divides_the_strides(tiny, name):
    plain = build_encoder(tiny[name], weights="random")
    magnified = build_encoder(tiny[name], weights="random", input_scale=2.0)
    assert magnified.tap_strides == tuple(s / 2 for s in plain.tap_strides)
    images = torch.rand(1, 3, 64, 96)
    up = torch.nn.functional.interpolate(images, scale_factor=2, mode="bilinear", align_corners=False)
    for a, b in zip(magnified(images), plain(up), strict=True):  # same as magnifying by hand (bilinear is affine)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert [tuple(s) for s in magnified.feature_shapes(64, 96)] == [tuple(t.shape[1:]) for t in magnified(images)]
    neck = build_neck(magnified.spec.family, magnified.tap_channels, magnified.tap_strides, (4, 4, 4, 4))
    assert [tuple(p.shape[-2:]) for p in neck(magnified(images), (64, 96))] == [(16, 24), (8, 12), (4, 6), (2, 3)]
    for bad in (0.0, 8.0):
        with pytest.raises(InputError, match="input_scale"):
            build_encoder(tiny[name], weights="random", input_scale=bad)


def test_taps_can_be_overridden_and_are_validated(tiny):
    encoder = build_encoder("efficientnet-lite0", weights="random", taps=(0, 2, 3, 4))
    assert encoder.tap_strides == (2, 8, 16, 32) and encoder.tap_channels == (16, 40, 112, 320)
    assert encoder.tap_names == ["blocks.0", "blocks.2", "blocks.4", "blocks.6"]
    for bad in ((0, 0, 1, 2), (3, 2, 1, 0), (1, 2, 3, 9), ()):
        with pytest.raises(InputError, match="taps must be"):
            build_encoder(tiny["tiny-vit"], weights="random", taps=bad)


def test_train_mode_cannot_unfreeze(tiny):
    encoder = build_encoder(tiny["tiny-cnn"], weights="random")
    wrapper = nn.Sequential(encoder)
    wrapper.train()
    assert not encoder.training and not any(m.training for m in encoder.modules())
    assert not any(p.requires_grad for p in encoder.parameters())


class _Segmenter(nn.Module):
    """Frozen encoder + trainable neck + a 1×1 head: the shape of what training builds."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder
        self.neck = build_neck(encoder.spec.family, encoder.tap_channels, encoder.tap_strides, (8, 8, 8, 8))
        self.head = nn.Conv2d(8, 3, 1)

    def forward(self, x):
        return self.head(self.neck(self.encoder(x), x.shape[-2:])[0])


def test_optimizer_step_leaves_encoder_parameters_and_bn_statistics_bit_identical():
    encoder = build_encoder("efficientnet-lite0", weights="random")  # real BatchNorm layers
    model = _Segmenter(encoder)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    neck_before = [p.clone() for p in model.neck.parameters()]
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.5)  # the whole segmenter
    model.train()
    for _ in range(2):
        optimizer.zero_grad()
        out = model(torch.rand(2, 3, 64, 64))
        out.square().mean().backward()
        optimizer.step()
    assert all(p.grad is None for p in encoder.parameters())
    for key, value in encoder.state_dict().items():  # weights, BN running mean/var, num_batches_tracked
        assert torch.equal(value, before[key]), key
    assert any(not torch.equal(a, b) for a, b in zip(model.neck.parameters(), neck_before, strict=True))
