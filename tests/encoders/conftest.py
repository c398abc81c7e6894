"""Tiny stand-ins for the registry's architectures: same timm classes and families, a few thousand parameters,
so forward passes stay fast. Built from real registry specs with ``EncoderSpec.replace``."""

from __future__ import annotations

import pytest

from cellprobe.encoders.registry import WeightSource, get_spec


def tiny_specs() -> dict[str, object]:
    """One small spec per family (and one patch-14 ViT), named like the registry entry they shrink."""
    local = WeightSource("hub", "cellprobe-test/tiny", license="test")
    vit = get_spec("vit-b16").replace(
        name="tiny-vit", timm_kwargs={"embed_dim": 32, "depth": 4, "num_heads": 2, "dynamic_img_size": True},
        default_taps=(0, 1, 2, 3), tap_channels=(32,) * 4, weights=local)
    vit14 = get_spec("dinov2-s14").replace(
        name="tiny-vit14", timm_kwargs={"embed_dim": 32, "depth": 4, "num_heads": 2, "img_size": 224,
                                        "dynamic_img_size": True},
        default_taps=(0, 1, 2, 3), tap_channels=(32,) * 4, weights=local)
    swin = get_spec("swinv2-b").replace(
        name="tiny-swin", arch="swinv2_tiny_window16_256",
        timm_kwargs={"embed_dim": 16, "depths": (1, 1, 1, 1), "num_heads": (1, 1, 1, 1), "dynamic_img_size": True},
        tap_channels=(16, 32, 64, 128), weights=local)
    cnn = get_spec("convnext-b").replace(
        name="tiny-cnn", arch="convnext_atto", timm_kwargs={"dims": (8, 16, 32, 64), "depths": (1, 1, 1, 1)},
        tap_channels=(8, 16, 32, 64), weights=local)
    hybrid = get_spec("vit-r50-b16").replace(
        name="tiny-hybrid", timm_kwargs={"embed_dim": 32, "depth": 4, "num_heads": 2, "dynamic_img_size": True},
        default_taps=(1, 2, 4 + 1, 4 + 3), tap_channels=(256, 512, 32, 32), weights=local)
    return {s.name: s for s in (vit, vit14, swin, cnn, hybrid)}


@pytest.fixture(scope="session")
def tiny():
    return tiny_specs()


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One torch thread while these tests run: on the shared 2-core machine two OpenMP threads stall on each
    other whenever another process holds a core (a 40 ms forward then takes 2 s)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
