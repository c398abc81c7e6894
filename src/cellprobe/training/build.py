"""The training side of a run's config: its training and validation data, the class weights of the loss, and
the Lightning module around the run's network (assembled by :mod:`cellprobe.run.network`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cellprobe.data.sample import PatchDataset
from cellprobe.decoder import CellLoss, class_weights_from_counts
from cellprobe.encoders.identity import EncoderIdentity
from cellprobe.errors import InputError
from cellprobe.run.train_config import TrainConfig


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


def class_pixel_counts(dataset: PatchDataset, positions: np.ndarray, num_classes: int) -> np.ndarray:
    counts = np.zeros(num_classes + 1, dtype=np.int64)
    for p in positions:
        cls = dataset[int(p)].cls
        counts += np.bincount(cls.ravel(), minlength=num_classes + 1)[: num_classes + 1]
    return counts


def resolve_class_weights(config: TrainConfig, data: TrainData, num_classes: int) -> list[float] | None:
    cw = config.loss.class_weights
    if cw is None:
        return None
    if cw == "auto":
        return class_weights_from_counts(class_pixel_counts(data.train, data.train_positions, num_classes))
    if len(cw) != num_classes + 1:
        raise InputError(None, f"loss.class_weights has {len(cw)} values; needs {num_classes + 1} "
                               "(background first, then each class)")
    return list(cw)


def build_module(config: TrainConfig, encoder: EncoderIdentity, class_names: list[str], frozen: Any | None,
                 class_weights: list[float] | None):
    """The Lightning module of a fresh network; ``frozen``: the encoder module (None for cached mode, where
    taps come with the batch)."""
    from cellprobe.run.network import build_network
    from cellprobe.training.module import SegmenterModule

    num_classes = len(class_names)
    network = build_network(config, encoder, num_classes, frozen)
    loss = CellLoss(num_classes, config.loss, class_weights)
    return SegmenterModule(network, loss, encoder, class_names, lr=config.lr, weight_decay=config.weight_decay,
                           plateau=config.plateau, monitor=config.selection.monitor, lr_steps=config.lr_steps)
