"""The one decoder (U-Net over the encoder pyramid + full-resolution image stem), its heads and losses."""

from cellprobe.decoder.decoder_config import DecoderConfig, LossConfig
from cellprobe.decoder.losses import CellLoss, class_weights_from_counts
from cellprobe.decoder.model import INPUT_MULTIPLE, PYRAMID_STRIDES, CellDecoder

__all__ = ["INPUT_MULTIPLE", "PYRAMID_STRIDES", "CellDecoder", "CellLoss", "DecoderConfig", "LossConfig", "class_weights_from_counts"]
