"""Build the pieces of a run from its config: data, encoder, neck + decoder + loss (the Lightning module).

Shared by training (fit), evaluation, tuning and prediction, so that a model is assembled the same way
everywhere from a run's config.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cellprobe.data.sample import PatchDataset
from cellprobe.decoder import CellDecoder, CellLoss, class_weights_from_counts
from cellprobe.errors import InputError
from cellprobe.training.config import TrainConfig


@dataclass
class TrainData:
    """The training dataset and the positions of its training and validation patches (a second dataset when
    the validation split is a released split of its own; None for a run without validation)."""

    train: PatchDataset
    train_positions: np.ndarray
    val: PatchDataset | None
    val_positions: np.ndarray

    @property
    def class_names(self) -> list[str]:
        return list(self.train.class_names)


def open_training_data(config: TrainConfig) -> TrainData:
    from cellprobe.data import open_dataset
    from cellprobe.data.splits import split_by_source

    d = config.data
    train = open_dataset(d.path, format=d.format, split=d.train_split, **d.options)
    if d.val_split is not None:
        val = open_dataset(d.path, format=d.format, split=d.val_split, **d.options)
        if tuple(val.class_names) != tuple(train.class_names):
            raise InputError(d.path, f"split '{d.val_split}' has classes {val.class_names}, split "
                                     f"'{d.train_split}' has {train.class_names}")
        return TrainData(train, np.arange(len(train)), val, np.arange(len(val)))
    if not d.has_validation:
        return TrainData(train, np.arange(len(train)), None, np.arange(0))
    train_idx, val_idx = split_by_source(train.sources(), d.val_fraction, config.split_seed)
    return TrainData(train, np.asarray(train_idx), train, np.asarray(val_idx))


def build_encoder(config: TrainConfig, device: Any = "cpu"):
    from cellprobe.encoders import build_encoder as build

    e = config.encoder
    return build(e.name, e.weights, e.taps, input_scale=e.input_scale, seed=config.seed, device=device)


def encoder_identity(encoder: Any, num_classes: int, class_names: list[str], config: TrainConfig) -> dict[str, Any]:
    """What a checkpoint must agree with to be loaded: encoder, weights, taps, classes."""
    return {
        "encoder": encoder.spec.name,
        "family": encoder.spec.family,
        "weights": config.encoder.weights,
        "weights_digest": encoder.weights_digest,
        "tap_channels": list(encoder.tap_channels),
        "tap_strides": [float(s) for s in encoder.tap_strides],
        "num_classes": num_classes,
        "class_names": list(class_names),
    }


def class_pixel_counts(dataset: PatchDataset, positions: np.ndarray, num_classes: int) -> np.ndarray:
    counts = np.zeros(num_classes + 1, dtype=np.int64)
    for p in positions:
        cls = dataset[int(p)].cls
        counts += np.bincount(cls.ravel(), minlength=num_classes + 1)[: num_classes + 1]
    return counts


def resolve_class_weights(config: TrainConfig, data: TrainData | None, num_classes: int) -> list[float] | None:
    cw = config.loss.class_weights
    if cw is None:
        return None
    if cw == "auto":
        if data is None:
            return [1.0] * (num_classes + 1)  # placeholder: the real values come with the checkpoint buffer
        return class_weights_from_counts(class_pixel_counts(data.train, data.train_positions, num_classes))
    if len(cw) != num_classes + 1:
        raise InputError(None, f"loss.class_weights has {len(cw)} values; needs {num_classes + 1} "
                               "(background first, then each class)")
    return list(cw)


def build_module(config: TrainConfig, identity: dict[str, Any], encoder: Any | None,
                 class_weights: list[float] | None):
    """The Lightning module; ``encoder`` None for cached mode (taps come with the batch)."""
    from cellprobe.encoders.necks import build_neck
    from cellprobe.training.module import SegmenterModule

    num_classes = int(identity["num_classes"])
    neck = build_neck(identity["family"], identity["tap_channels"], identity["tap_strides"],
                      out_channels=config.decoder.pyramid_channels)
    decoder = CellDecoder(config.decoder.pyramid_channels, num_classes, config.decoder)
    loss = CellLoss(num_classes, config.loss, class_weights)
    return SegmenterModule(neck, decoder, loss, identity, encoder=encoder, lr=config.lr,
                           weight_decay=config.weight_decay, plateau=config.plateau,
                           monitor=config.selection.monitor, lr_steps=config.lr_steps)
