"""The one decoder (U-Net over the encoder pyramid + full-resolution image stem), its heads and losses."""

from cellprobe.decoder.config import DecoderConfig, LossConfig
from cellprobe.decoder.losses import CellLoss, class_weights_from_counts
from cellprobe.decoder.model import PYRAMID_STRIDES, CellDecoder

__all__ = ["PYRAMID_STRIDES", "CellDecoder", "CellLoss", "DecoderConfig", "LossConfig", "class_weights_from_counts"]
