"""Necks: any encoder's taps → one pyramid of 4 maps at exactly H/4, H/8, H/16, H/32 with fixed widths.

The pyramid is the single interface of the decoder, so one decoder definition serves every encoder. Tap ``i``
feeds pyramid level ``i`` (taps are ordered shallow → deep). The family decides how a tap reaches its level:

* ``cnn`` / ``swin``: the stages already sit at strides 4..32, so a 1×1 projection (+ GroupNorm, GELU) and, if
  the stride differs, bilinear resampling.
* ``vit``: all taps share the token stride (16), so, as in ViTDet's simple feature pyramid and UNETR, learned
  2× transposed convolutions climb to finer levels (two for H/4, one for H/8), max-pooling descends to H/32,
  then a 1×1 and a 3×3 convolution set the width.
* ``hybrid``: taps on the token grid (the coarsest tap stride) get the ViT branch, the CNN stem's stages the
  CNN branch (R50+ViT: CNN stages at H/4 and H/8, tokens at H/16 and, max-pooled, H/32).

Strides that are not a power-of-two ratio of the level (patch-14 models with ``fit="pad"``: 14-pixel cells) are
brought onto the exact grid by resampling with the true scale factor and cropping the padded margin, which keeps
cells aligned with the image's top-left corner.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

PYRAMID_STRIDES = (4, 8, 16, 32)


def _norm(channels: int) -> nn.GroupNorm:
    """GroupNorm, not BatchNorm: batches of cached features are small and their statistics noisy."""
    return nn.GroupNorm(math.gcd(32, channels), channels)


def fit_to_grid(x: torch.Tensor, in_stride: float, out_stride: int, size: tuple[int, int]) -> torch.Tensor:
    """Resample a map of cells ``in_stride`` px wide to ``out_stride`` px cells and crop/pad it to ``size``.

    The map's top-left corner is the image's; maps that cover more than the image (padded input) are cropped.
    """
    if x.shape[-2:] == size and in_stride == out_stride:
        return x
    scale = in_stride / out_stride
    scaled = (max(1, round(x.shape[-2] * scale)), max(1, round(x.shape[-1] * scale)))
    if scaled != tuple(x.shape[-2:]):
        x = F.interpolate(x, size=scaled, mode="bilinear", align_corners=False, antialias=scale < 1)
    x = x[..., : size[0], : size[1]]
    pad_h, pad_w = size[0] - x.shape[-2], size[1] - x.shape[-1]
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x


class ProjectResample(nn.Module):
    """CNN branch: 1×1 projection, norm, GELU; resampling to the level's grid."""

    def __init__(self, in_channels: int, in_stride: float, out_channels: int, out_stride: int) -> None:
        super().__init__()
        self.in_stride, self.out_stride = in_stride, out_stride
        self.proj = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), _norm(out_channels),
                                  nn.GELU())

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return fit_to_grid(self.proj(x), self.in_stride, self.out_stride, size)


class TokenRescale(nn.Module):
    """ViT branch (ViTDet simple pyramid): transposed convs up / max-pool down, then 1×1 + 3×3 convolutions."""

    def __init__(self, in_channels: int, in_stride: float, out_channels: int, out_stride: int) -> None:
        super().__init__()
        self.in_stride = in_stride
        self.out_stride = out_stride
        steps = round(math.log2(in_stride / out_stride))
        layers: list[nn.Module] = []
        channels = in_channels
        for i in range(max(steps, 0)):
            nxt = max(out_channels, channels // 2)
            layers.append(nn.ConvTranspose2d(channels, nxt, 2, stride=2))
            if i < steps - 1:
                layers += [_norm(nxt), nn.GELU()]
            channels = nxt
        layers += [nn.MaxPool2d(2)] * max(-steps, 0)
        self.rescale = nn.Sequential(*layers)
        self.effective_stride = in_stride / 2.0**steps
        self.out = nn.Sequential(nn.Conv2d(channels, out_channels, 1, bias=False), _norm(out_channels),
                                 nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
                                 _norm(out_channels), nn.GELU())

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        x = self.out(self.rescale(x))
        return fit_to_grid(x, self.effective_stride, self.out_stride, size)


class PyramidNeck(nn.Module):
    """Taps → [H/4, H/8, H/16, H/32] maps of widths ``out_channels``. Trainable."""

    def __init__(self, family: str, tap_channels: Sequence[int], tap_strides: Sequence[float],
                 out_channels: Sequence[int] = (64, 128, 256, 512)) -> None:
        super().__init__()
        if family not in ("cnn", "swin", "vit", "hybrid"):
            raise ValueError(f"unknown encoder family '{family}'")
        if not len(tap_channels) == len(tap_strides) == len(out_channels) == len(PYRAMID_STRIDES):
            raise ValueError(f"a neck needs 4 taps and 4 output widths, got {len(tap_channels)} taps, "
                             f"{len(tap_strides)} strides, {len(out_channels)} widths")
        self.family = family
        self.out_channels = tuple(int(c) for c in out_channels)
        branches = []
        token_stride = max(tap_strides)
        for c_in, s_in, c_out, s_out in zip(tap_channels, tap_strides, out_channels, PYRAMID_STRIDES, strict=True):
            token = family == "vit" or (family == "hybrid" and s_in == token_stride)
            branch = TokenRescale if token else ProjectResample
            branches.append(branch(int(c_in), float(s_in), int(c_out), s_out))
        self.branches = nn.ModuleList(branches)

    def forward(self, taps: Sequence[torch.Tensor], image_size: tuple[int, int]) -> list[torch.Tensor]:
        height, width = int(image_size[0]), int(image_size[1])
        if height % 32 or width % 32:
            raise ValueError(f"the pyramid needs image sides divisible by 32, got {height}x{width}")
        dtype = self.branches[0].parameters().__next__().dtype
        return [branch(tap.to(dtype), (height // s, width // s))
                for branch, tap, s in zip(self.branches, taps, PYRAMID_STRIDES, strict=True)]


def build_neck(family: str, tap_channels: Sequence[int], tap_strides: Sequence[float],
               out_channels: Sequence[int] = (64, 128, 256, 512)) -> PyramidNeck:
    """The neck for an encoder family (see the module docstring for what each family gets)."""
    return PyramidNeck(family, tap_channels, tap_strides, out_channels)
