"""The registry: every architecture builds with the published parameter count and the declared taps."""

from __future__ import annotations

import pytest

from cellprobe.encoders.registry import get_spec, list_encoders, parse_count, vit_taps
from cellprobe.errors import InputError

SPECS = list_encoders()
PAPER = {"convnext-b", "swinv2-b", "vit-b16", "vit-r50-b16", "dinov2-b14", "dinov2-l14", "uni", "virchow2",
         "prov-gigapath"}
REQUIRED = PAPER | {"uni2-h", "h-optimus-0", "phikon-v2", "efficientnet-lite0"}


def test_registry_has_the_required_encoders_once():
    names = [s.name for s in SPECS]
    assert len(names) == len(set(names))
    assert REQUIRED <= set(names)
    assert {s.family for s in SPECS} == {"cnn", "swin", "vit", "hybrid"}


def test_unknown_encoder_is_input_error():
    with pytest.raises(InputError, match=r"unknown encoder 'nope'.*convnext-b"):
        get_spec("nope")


def test_parse_count_and_vit_taps():
    assert parse_count("304.4M") == pytest.approx((304.4e6, 0.1e6))
    assert parse_count("1.1B") == pytest.approx((1.1e9, 0.1e9))
    assert parse_count("89M") == (89e6, 1e6)
    assert vit_taps(24) == (5, 11, 17, 23)
    assert vit_taps(12) == (2, 5, 8, 11)
    assert vit_taps(40) == (9, 19, 29, 39)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_spec_is_consistent(spec):
    assert len(spec.default_taps) == len(spec.tap_channels) == len(spec.tap_strides) == 4
    assert list(spec.default_taps) == sorted(set(spec.default_taps))
    assert spec.fit in ("native", "resize", "pad")
    assert spec.fit != "resize" or spec.patch_size != 16
    assert len(spec.mean) == len(spec.std) == 3
    assert spec.weights.license
    if spec.family == "vit" and spec.fit == "resize":
        assert spec.patch_size == 14 and set(spec.tap_strides) == {16}
    if spec.family in ("cnn", "swin"):  # images as they are: no patch grid to fit
        assert spec.fits == ("native",) and spec.card is None
    else:
        assert spec.fits == (("native", "resize", "pad", "card") if spec.card else ("native", "resize", "pad"))
    if spec.card is not None:  # a model card's input: a ViT's, whole patches, its filter named
        assert spec.family == "vit" and spec.card.size % spec.patch_size == 0
        assert spec.card.interpolation in ("bilinear", "bicubic") and spec.card.source


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_parameter_count_and_taps_match_the_model(spec):
    """Build the exact architecture (meta device: no memory, no time) once and check it against the registry.

    Parameters within 1 % of the published figure, or within the precision it is published with ("1.1B" is
    ±0.05B); tap widths and strides as declared.
    """
    from cellprobe.encoders.frozen import FrozenEncoder, create_timm_model
    from cellprobe.encoders.weights import ResolvedWeights

    model = create_timm_model(spec, num_classes=spec.params_num_classes, device="meta")
    counted = sum(p.numel() for p in model.parameters())
    published, resolution = spec.published_params()
    assert abs(counted - published) <= max(0.01 * published, resolution / 2), (
        f"{spec.name}: counted {counted / 1e6:.2f}M, published {spec.params_published} ({spec.params_source})")
    encoder = FrozenEncoder(spec, model, spec.default_taps, spec.fit, ResolvedWeights("random", None, "random"))
    assert encoder.tap_channels == spec.tap_channels
    assert encoder.tap_strides == spec.tap_strides
    assert len(encoder.tap_names) == 4


@pytest.mark.slow
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_tap_shapes_at_256(spec):
    """A shape-only forward of every full-size encoder at 256×256 gives maps of the declared width and stride."""
    from cellprobe.encoders import build_encoder

    encoder = build_encoder(spec.name, weights="random", device="meta")
    for (c, h, w), width, stride in zip(encoder.feature_shapes(256, 256), spec.tap_channels, spec.tap_strides,
                                        strict=True):
        assert (c, h, w) == (width, 256 // stride, 256 // stride)


#: Today's default fits: ``card`` is opt-in and changes none of them.
DEFAULT_FITS = {"convnext-b": "native", "swinv2-b": "native", "vit-b16": "native", "vit-r50-b16": "native",
                "dinov2-b14": "resize", "dinov2-l14": "resize", "uni": "native", "virchow2": "resize",
                "prov-gigapath": "native", "uni2-h": "resize", "h-optimus-0": "resize", "virchow": "resize",
                "phikon-v2": "native", "phikon": "native", "dinov2-s14": "resize", "resnet50": "native",
                "efficientnet-lite0": "native"}

#: What each model card feeds the network, on a 256-pixel patch: (side, resized?, interpolation if resized).
CARDS = {"uni": (224, True, "bilinear"), "phikon": (224, True, "bilinear"), "virchow": (224, True, "bicubic"),
         "virchow2": (224, True, "bicubic"), "dinov2-s14": (224, True, "bicubic"),
         "dinov2-b14": (224, True, "bicubic"), "dinov2-l14": (224, True, "bicubic"),
         "prov-gigapath": (224, False, None), "h-optimus-0": (224, False, None)}


def test_default_fits_are_unchanged_and_cards_are_declared():
    assert {s.name: s.fit for s in SPECS} == DEFAULT_FITS
    declared = {s.name: (s.card.size, s.card.resize, s.card.interpolation if s.card.resize else None)
                for s in SPECS if s.card is not None}
    assert declared == CARDS
    assert get_spec("uni").card.describe() == "256→224 px bilinear"
    assert get_spec("h-optimus-0").card.describe() == "224-px windows, unresized"


@pytest.mark.parametrize("name,stride,grid", [("uni", 16 * 256 / 224, 14), ("h-optimus-0", 14, 19)])
def test_card_fit_of_the_registered_encoders(name, stride, grid):
    """Shape-only (meta) builds with ``fit="card"``: the token stride on the input and the map at 256 px."""
    from cellprobe.encoders import build_encoder

    spec = get_spec(name)
    encoder = build_encoder(name, weights="random", device="meta", fit="card")
    assert encoder.fit == "card" and encoder.tap_strides == pytest.approx((stride,) * 4)
    assert encoder.feature_shapes(256, 256) == [(spec.tap_channels[0], grid, grid)] * 4


def test_phikon_layernorms_have_the_published_eps():
    """Phikon's published config has layer_norm_eps 1e-12 (timm's ViT: 1e-6): every LayerNorm is built with it."""
    from torch import nn

    from cellprobe.encoders.frozen import create_timm_model

    norms = [m for m in create_timm_model(get_spec("phikon"), device="meta").modules() if isinstance(m, nn.LayerNorm)]
    assert len(norms) == 2 * 12 + 1  # norm1 and norm2 of 12 blocks, and the final norm
    assert {m.eps for m in norms} == {1e-12}
    vit_b = [m for m in create_timm_model(get_spec("vit-b16"), device="meta").modules() if isinstance(m, nn.LayerNorm)]
    assert {m.eps for m in vit_b} == {1e-6}
