"""Sizes of the decoder and weights of its losses, as validated config models.

The defaults are deliberately small (CPU training is the design point): widths can be raised in a run's
config without touching code. The neck's output widths live here too because the decoder consumes them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from cellprobe.config import StrictModel


class DecoderConfig(StrictModel):
    """Widths of the U-Net decoder.

    ``pyramid_channels``: what the neck emits at strides 4, 8, 16, 32 (the decoder's skip inputs).
    ``decoder_channels``: output width of the decoder block at strides 16, 8, 4, 2, 1.
    ``stem_channels``: width of the full-resolution image stem at strides 1 and 2 (fine detail that patch
    tokens lose); ``stem_depth``: 3×3 convs at each of those two levels.
    """

    pyramid_channels: tuple[int, int, int, int] = (32, 48, 64, 96)
    decoder_channels: tuple[int, int, int, int, int] = (64, 48, 32, 16, 16)
    stem_channels: tuple[int, int] = (8, 16)
    stem_depth: int = Field(1, ge=1, le=4)

    @model_validator(mode="after")
    def _positive(self) -> DecoderConfig:
        for name in ("pyramid_channels", "decoder_channels", "stem_channels"):
            if min(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        return self


class LossConfig(StrictModel):
    """Weights of the six loss terms and the parameters of the type loss.

    ``class_weights``: weights of the type cross-entropy over classes 0..C (background first; each >= 0, 0 leaves
    a class out, not all 0); ``"auto"`` uses inverse square-root pixel frequencies of the training targets (rare
    classes count more), ``None`` leaves all classes at 1.
    ``semantic_weights``: weights of the semantic cross-entropy per class (background, boundary, body; each
    >= 0, not all 0); the boundary band between touching cells is a few per cent of the pixels, yet it is what
    separates them.
    ``tversky_alpha`` penalises false positives, ``tversky_beta`` false negatives (beta > alpha favours
    recall of rare cell types).
    """

    semantic_ce: float = Field(1.0, ge=0)
    semantic_dice: float = Field(1.0, ge=0)
    distance_l1: float = Field(1.0, ge=0)
    distance_grad: float = Field(1.0, ge=0)
    types_ce: float = Field(1.0, ge=0)
    types_tversky: float = Field(1.0, ge=0)
    tversky_alpha: float = Field(0.3, ge=0)
    tversky_beta: float = Field(0.7, ge=0)
    class_weights: list[float] | Literal["auto"] | None = "auto"
    semantic_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)  # CE weights: background, boundary, body
    distance_background: float = Field(0.1, ge=0, le=1)  # L1 weight of background pixels (target 0 there)
    distance_boundary: float = Field(1.0, gt=0)  # distance-loss weight of the boundary band (body pixels: 1)

    @field_validator("class_weights", "semantic_weights")
    @classmethod
    def _weights(cls, weights: list[float] | tuple[float, ...] | str | None) -> list[float] | tuple[float, ...] | str | None:
        """Cross-entropy class weights: none negative (it would reward the wrong class), not all zero (the
        loss would be 0/0); a zero for some classes leaves those out, which may be meant."""
        if weights is None or isinstance(weights, str):
            return weights
        if any(w < 0 for w in weights):
            raise ValueError(f"weights must be >= 0, got {list(weights)}")
        if weights and not any(w > 0 for w in weights):
            raise ValueError(f"weights must not all be 0 (no pixel would count), got {list(weights)}")
        return weights
