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
    for bad in ((0, 0, 1, 2), (3, 2, 1, 0), (1, 2, 3, 9), (), (1, 2, 3), (0, 1, 2, 3, 4)):
        with pytest.raises(InputError, match="takes 4 distinct increasing indices"):
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


# ------------------------------------------------------------------ fit="card": the model card's preprocessing


def _card(tiny, name, size=224, resize=True, interpolation="bicubic"):
    from cellprobe.encoders.registry import CardFit

    return tiny[name].replace(card=CardFit(size, resize=resize, interpolation=interpolation, source="test"))


def _normalised(encoder, images):
    mean, std = torch.tensor(encoder.spec.mean).view(1, 3, 1, 1), torch.tensor(encoder.spec.std).view(1, 3, 1, 1)
    return (images - mean) / std


def test_card_fit_resizes_with_the_cards_interpolation(tiny, monkeypatch):
    """Virchow / DINOv2 cards: 256 → 224 bicubic where the default ``resize`` fit is bilinear; same grid."""
    import torch.nn.functional as F

    spec = _card(tiny, "tiny-vit14")
    images = torch.rand(1, 3, 256, 256)
    seen = {}
    for fit in ("resize", "card"):
        encoder = build_encoder(spec, weights="random", fit=fit)
        monkeypatch.setattr(encoder.model, "forward_intermediates",
                            lambda x, fit=fit, **kw: seen.__setitem__(fit, x) or [torch.zeros(1)] * 4)
        encoder(images)
        assert encoder.tap_strides == (16,) * 4
    expected = F.interpolate(_normalised(encoder, images), size=(224, 224), mode="bicubic", align_corners=False,
                             antialias=True)
    torch.testing.assert_close(seen["card"], expected, rtol=0, atol=0)
    assert seen["resize"].shape == seen["card"].shape and not torch.equal(seen["resize"], seen["card"])
    assert build_encoder(spec, weights="random").fit == "resize"  # the default is unchanged


def test_card_fit_feeds_a_patch16_model_the_cards_224_pixels(tiny):
    """UNI / Phikon cards: a 256-px patch is resized to 224 (14×14 tokens of 256/14 input pixels)."""
    spec = _card(tiny, "tiny-vit", interpolation="bilinear")
    native = build_encoder(spec, weights="random")
    card = build_encoder(spec, weights="random", fit="card")
    assert native.fit == "native" and native.tap_strides == (16,) * 4
    assert card.tap_strides == pytest.approx((16 * 256 / 224,) * 4)
    images = torch.rand(2, 3, 256, 256)
    assert [tuple(t.shape) for t in card(images)] == [(2, 32, 14, 14)] * 4
    assert [tuple(t.shape) for t in native(images)] == [(2, 32, 16, 16)] * 4
    neck = build_neck("vit", card.tap_channels, card.tap_strides, (4, 4, 4, 4))
    assert [tuple(p.shape[-2:]) for p in neck(card(images), (256, 256))] == [(64, 64), (32, 32), (16, 16), (8, 8)]
    for size in ((128, 192), (256, 512)):  # any side: padded so that the resize is exact, then windowed
        assert [tuple(s) for s in card.feature_shapes(*size)] == [tuple(t.shape[1:]) for t in card(torch.rand(1, 3, *size))]


def test_unresized_card_fit_stitches_224_pixel_windows(tiny):
    """Prov-GigaPath / H-optimus-0 cards: unresized 224-px tiles. A 256-px patch (padded to 266 for 14-px
    patches) is seen as 4 overlapping windows on the patch grid; overlapping tokens are averaged."""
    spec = _card(tiny, "tiny-vit14", resize=False)
    encoder = build_encoder(spec, weights="random", fit="card")
    assert encoder.tap_strides == (14,) * 4
    images = torch.rand(1, 3, 256, 256)
    taps = encoder(images)
    assert [tuple(t.shape) for t in taps] == [(1, 32, 19, 19)] * 4
    x = torch.nn.functional.pad(_normalised(encoder, images), (0, 10, 0, 10))  # 266 = 19 × 14
    with torch.no_grad():
        windows = {(r, c): encoder.model.forward_intermediates(
            x[..., r:r + 224, c:c + 224], indices=list(encoder.taps), norm=True, output_fmt="NCHW",
            intermediates_only=True) for r in (0, 42) for c in (0, 42)}
    for i, tap in enumerate(taps):
        torch.testing.assert_close(tap[..., 0, 0], windows[0, 0][i][..., 0, 0])  # one window sees it
        torch.testing.assert_close(tap[..., 18, 0], windows[42, 0][i][..., 15, 0])
        torch.testing.assert_close(tap[..., 5, 18], (windows[0, 42][i][..., 5, 15] + windows[42, 42][i][..., 2, 15]) / 2)
        torch.testing.assert_close(tap[..., 8, 8], sum(w[i][..., 8 - r // 14, 8 - c // 14]
                                                        for (r, c), w in windows.items()) / 4)
    small = encoder(torch.rand(1, 3, 128, 128))  # smaller than a window: one window, padded to 224
    assert [tuple(t.shape) for t in small] == [(1, 32, 16, 16)] * 4


def test_card_fit_is_part_of_the_identity_and_the_cache_key(tiny):
    from cellprobe.encoders.cache import CacheKey

    spec = _card(tiny, "tiny-vit14")
    default, card = build_encoder(spec, weights="random"), build_encoder(spec, weights="random", fit="card")
    assert default.identity.fit == "resize" and card.identity.fit == "card"
    assert default.identity.differences(card.identity) == ["fit='resize' vs 'card'"]
    keys = [CacheKey(e.identity, (256, 256), "f" * 64, 10, 0) for e in (default, card)]
    assert keys[0].to_json()["fit"] == "resize" and keys[1].to_json()["fit"] == "card"
    assert keys[0].digest() != keys[1].digest()


def test_card_fit_only_where_the_spec_has_a_card(tiny):
    with pytest.raises(InputError, match=r"'tiny-vit' has no model-card fit \(its fits: native, resize, pad\)"):
        build_encoder(tiny["tiny-vit"], weights="random", fit="card")
    with pytest.raises(InputError, match="has no model-card fit"):
        build_encoder("efficientnet-lite0", weights="random", fit="card")
    with pytest.raises(InputError, match=r"fit must be one of native, resize, pad, card, got 'crop'"):
        build_encoder(_card(tiny, "tiny-vit14"), weights="random", fit="crop")
