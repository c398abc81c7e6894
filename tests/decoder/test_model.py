import pytest
import torch

from cellprobe.decoder import PYRAMID_STRIDES, CellDecoder, DecoderConfig

TINY = DecoderConfig(pyramid_channels=(4, 6, 8, 10), decoder_channels=(8, 8, 6, 4, 4), stem_channels=(2, 4))


def _pyramid(b: int, h: int, w: int, channels=TINY.pyramid_channels):
    return [torch.randn(b, c, h // s, w // s) for c, s in zip(channels, PYRAMID_STRIDES, strict=True)]


def test_output_shapes_and_ranges():
    torch.manual_seed(0)
    dec = CellDecoder(TINY.pyramid_channels, num_classes=5, config=TINY)
    out = dec(_pyramid(2, 64, 96), torch.rand(2, 3, 64, 96))
    assert out["semantic"].shape == (2, 3, 64, 96)
    assert out["distance"].shape == (2, 4, 64, 96)
    assert out["types"].shape == (2, 6, 64, 96)
    assert out["distance"].abs().max() <= 1.0


def test_image_stem_carries_full_resolution_detail():
    """With the pyramid fixed, changing one pixel of the image changes the output at that pixel."""
    torch.manual_seed(0)
    dec = CellDecoder(TINY.pyramid_channels, num_classes=2, config=TINY).eval()
    pyr = _pyramid(1, 32, 32)
    img = torch.rand(1, 3, 32, 32)
    a = dec(pyr, img)["semantic"]
    img2 = img.clone()
    img2[0, :, 10, 10] = 1.0 - img2[0, :, 10, 10]
    b = dec(pyr, img2)["semantic"]
    assert (a - b).abs()[0, :, 10, 10].max() > 0


def test_wrong_pyramid_is_rejected():
    dec = CellDecoder(TINY.pyramid_channels, num_classes=2, config=TINY)
    with pytest.raises(ValueError, match="stride 8"):
        dec(_pyramid(1, 32, 32, (4, 7, 8, 10)), torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="4 pyramid maps"):
        dec(_pyramid(1, 32, 32)[:3], torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="differ"):
        CellDecoder((1, 2, 3, 4), num_classes=2, config=TINY)


def test_gradients_reach_every_parameter():
    dec = CellDecoder(TINY.pyramid_channels, num_classes=3, config=TINY)
    out = dec(_pyramid(2, 32, 32), torch.rand(2, 3, 32, 32))
    sum(v.sum() for v in out.values()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in dec.parameters())


def test_stem_depth_adds_convs_and_keeps_depth_one_names():
    """Deeper stems add 3×3 convs per level; depth 1 keeps the parameter names of earlier checkpoints."""
    shallow = CellDecoder(TINY.pyramid_channels, num_classes=2, config=TINY)
    deep_cfg = TINY.model_copy(update={"stem_depth": 3})
    deep = CellDecoder(TINY.pyramid_channels, num_classes=2, config=deep_cfg)
    convs = lambda m: sum(isinstance(x, torch.nn.Conv2d) for x in m.stem.modules())  # noqa: E731
    assert (convs(shallow), convs(deep)) == (2, 6)
    assert {k for k in shallow.state_dict() if k.startswith("stem.")} == {
        f"stem.{level}.{i}.{p}" for level in ("s1", "s2") for i, p in
        [(0, "weight"), (1, "weight"), (1, "bias"), (1, "running_mean"), (1, "running_var"), (1, "num_batches_tracked")]}
    out = deep(_pyramid(1, 32, 32), torch.rand(1, 3, 32, 32))
    assert out["semantic"].shape == (1, 3, 32, 32)
    with pytest.raises(ValueError):
        DecoderConfig(stem_depth=0)
