"""The one decoder: a U-Net over the encoder pyramid (strides 4..32) plus a full-resolution image stem.

Encoder-specific adaptation happens only in the neck (``cellprobe.encoders.necks``), which maps any encoder's
taps to the fixed pyramid this decoder expects; the decoder itself is identical for every encoder, so that
differences in scores come from the embeddings alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cellprobe.decoder.decoder_config import DecoderConfig

PYRAMID_STRIDES = (4, 8, 16, 32)
#: image sides the decoder takes are multiples of its coarsest pyramid stride
INPUT_MULTIPLE = PYRAMID_STRIDES[-1]


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UpBlock(nn.Module):
    """Upsample ×2 (bilinear), concatenate the skip, two 3×3 conv-BN-ReLU."""

    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(cin + cskip, cout), conv_bn_relu(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.body(torch.cat([x, skip], dim=1))


class ImageStem(nn.Module):
    """Full-resolution features straight from the pixels, at strides 1 and 2, ``depth`` 3×3 convs at each.

    No encoder pyramid reaches below stride 4, so the thin gaps between touching nuclei are seen only here:
    one conv per level sees 3×3 (stride 1) and 7×7 (stride 2) pixels; each extra conv widens that.
    """

    def __init__(self, c1: int, c2: int, depth: int = 1) -> None:
        super().__init__()
        # flat Sequentials: with depth 1 the parameter names are those of earlier checkpoints
        self.s1 = nn.Sequential(*conv_bn_relu(3, c1), *(m for _ in range(depth - 1) for m in conv_bn_relu(c1, c1)))
        self.s2 = nn.Sequential(*conv_bn_relu(c1, c2, stride=2),
                                *(m for _ in range(depth - 1) for m in conv_bn_relu(c2, c2)))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f1 = self.s1((image - 0.5) / 0.25)  # fixed centring: the stem's BN does the rest
        return f1, self.s2(f1)


class CellDecoder(nn.Module):
    """``forward(pyramid, image)`` → ``{"semantic": (B,3,H,W) logits, "distance": (B,4,H,W) in [-1,1],
    "types": (B,C+1,H,W) logits}``.

    ``pyramid``: 4 maps at H/4, H/8, H/16, H/32 with ``pyramid_channels``; ``image``: (B,3,H,W) in [0,1],
    H and W multiples of 32.
    """

    def __init__(self, pyramid_channels: Sequence[int], num_classes: int, config: DecoderConfig | None = None) -> None:
        super().__init__()
        cfg = config or DecoderConfig(pyramid_channels=tuple(pyramid_channels))
        if tuple(pyramid_channels) != tuple(cfg.pyramid_channels):
            raise ValueError(f"pyramid_channels {tuple(pyramid_channels)} differ from the config's "
                             f"{cfg.pyramid_channels}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.pyramid_channels = tuple(pyramid_channels)
        p4, p8, p16, p32 = self.pyramid_channels
        d16, d8, d4, d2, d1 = cfg.decoder_channels
        s1, s2 = cfg.stem_channels
        self.stem = ImageStem(s1, s2, cfg.stem_depth)
        self.up16 = UpBlock(p32, p16, d16)
        self.up8 = UpBlock(d16, p8, d8)
        self.up4 = UpBlock(d8, p4, d4)
        self.up2 = UpBlock(d4, s2, d2)
        self.up1 = UpBlock(d2, s1, d1)
        # 1×1 heads on the shared full-resolution features: 3×3 heads at stride 1 would double the cost
        self.semantic_head = nn.Conv2d(d1, 3, 1)
        self.distance_head = nn.Conv2d(d1, 4, 1)
        self.types_head = nn.Conv2d(d1, num_classes + 1, 1)

    def forward(self, pyramid: Sequence[torch.Tensor], image: torch.Tensor) -> dict[str, torch.Tensor]:
        if len(pyramid) != 4:
            raise ValueError(f"expected 4 pyramid maps (strides {PYRAMID_STRIDES}), got {len(pyramid)}")
        h, w = image.shape[-2:]
        for level, (fmap, stride, ch) in enumerate(zip(pyramid, PYRAMID_STRIDES, self.pyramid_channels, strict=True)):
            want = (image.shape[0], ch, h // stride, w // stride)
            if tuple(fmap.shape) != want:
                raise ValueError(f"pyramid level {level} (stride {stride}) has shape {tuple(fmap.shape)}, "
                                 f"expected {want}")
        f1, f2 = self.stem(image)
        p4, p8, p16, p32 = pyramid
        x = self.up16(p32, p16)
        x = self.up8(x, p8)
        x = self.up4(x, p4)
        x = self.up2(x, f2)
        x = self.up1(x, f1)
        return {
            "semantic": self.semantic_head(x),
            "distance": torch.tanh(self.distance_head(x)),
            "types": self.types_head(x),
        }
