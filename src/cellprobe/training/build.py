"""The training side of a run's config: its training and validation data, the class weights of the loss, and
the Lightning module around the run's network (assembled by :mod:`cellprobe.run.network`)."""

from __future__ import annotations

import hashlib
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
    the validation split is a released split of its own; None for a run without validation).

    ``train_repeats``: how many times an epoch draws each training position (aligned with
    ``train_positions``; a split file that oversamples images by listing them several times, such as CISCA's),
    None: once each. Validation reads each patch once."""

    train: PatchDataset
    train_positions: np.ndarray
    val: PatchDataset | None
    val_positions: np.ndarray
    train_repeats: np.ndarray | None = None

    @property
    def class_names(self) -> list[str]:
        return list(self.train.class_names)

    @property
    def draws_per_epoch(self) -> int:
        return len(self.train_positions) if self.train_repeats is None else int(self.train_repeats.sum())

    def fingerprint(self) -> str:
        """sha256 over every training and validation sample (pixels, instance and class maps), in order, and the
        draws per epoch: what a run's epochs depend on. A resumed run compares it with the one it started with
        (a dataset changed in between would train its later epochs on other data, unsaid)."""
        digest = hashlib.sha256()
        for role, dataset, positions in (("train", self.train, self.train_positions),
                                         ("val", self.val, self.val_positions)):
            digest.update(f"{role}:{0 if dataset is None else len(positions)}|".encode())
            for position in positions if dataset is not None else ():
                sample = dataset[int(position)]
                for array in (sample.image, sample.inst, sample.cls):
                    digest.update(f"{array.shape}{array.dtype}|".encode())
                    digest.update(np.ascontiguousarray(array).tobytes())
        if self.train_repeats is not None:
            digest.update(np.ascontiguousarray(self.train_repeats, dtype=np.int64).tobytes())
        return digest.hexdigest()

    def describe(self) -> str:
        """One line for the run's log: unique training images and the draws an epoch makes of them."""
        n = len(self.train_positions)
        if self.train_repeats is None:
            line = f"training data: {n:,} images, each drawn once per epoch"
        else:
            line = (f"training data: {n:,} unique images, {self.draws_per_epoch:,} weighted draws per epoch (the "
                    f"split lists {int((self.train_repeats > 1).sum()):,} images several times, up to "
                    f"{int(self.train_repeats.max())}×: oversampling)")
        if self.val is not None:
            line += f"; validation: {len(self.val_positions):,} images, each once"
        return line


def check_data_unchanged(run: Any, data: TrainData, why: str) -> None:
    """Refuse ``data`` (the run's training data, opened now) when it is not what the run trained and validated
    on: its samples' sha256 differs from the one run.json records, or its class names or µm/px (checked first:
    the digest covers the samples only). ``why``: what would go wrong (a resume training later epochs on other
    data, a refit replaying choices made on other data, thresholds tuned on other validation patches). Every
    run that trained records the digest (run format 3)."""
    from cellprobe.run import run_folder as R

    for what, now, then in (("class names", list(data.class_names), list(run.stamp.class_names)),
                            ("µm/px", data_mpp(data), run.stamp.mpp)):
        if run.stamp.data_sha256 is not None and now != then:  # what the samples' digest does not cover
            raise InputError(run.path / R.STAMP, f"the training data ({run.config.data.path}) has {what} {now!r}, the "
                                                 f"run trained with {then!r}: {why}; restore the data, or train the "
                                                 "run again")
    if data.fingerprint() != run.stamp.data_sha256:
        raise InputError(run.path / R.STAMP, f"the training data ({run.config.data.path}) changed since the run "
                                             f"trained on it: {why}; restore the data, or train the run again")


def training_data_facts(config: TrainConfig) -> tuple[str, float | None]:
    """What run.json records of ``config``'s training data as it is now: its samples' digest and its µm/px
    (``cellprobe upgrade`` reads them for a run of an earlier format)."""
    data = open_training_data(config)
    return data.fingerprint(), data_mpp(data)


def data_mpp(data: TrainData) -> float | None:
    """The training data's µm/px as run.json and the checkpoints record it (a plain number, or None)."""
    mpp = getattr(data.train, "mpp", None)
    return None if mpp is None else float(mpp)


def _repeats_at(dataset: PatchDataset, positions: np.ndarray) -> np.ndarray | None:
    repeats = dataset.repeats()
    if repeats is None:
        return None
    repeats = np.asarray(repeats, dtype=np.int64)[positions]
    return repeats if (repeats > 1).any() else None


def _open_split(config: TrainConfig, split: str | None) -> Any:
    """One split of the config's data; a refused reader option is named where the config gave it (its file, or
    the --set), as the config key ``data.options.<name>``, rather than at the dataset folder."""
    from cellprobe.config import config_source
    from cellprobe.data import open_dataset
    from cellprobe.data.base import ReaderOptionError

    d = config.data
    try:
        return open_dataset(d.path, format=d.format, split=split, **d.options)
    except ReaderOptionError as exc:
        where = config_source(config, f"data.options.{exc.option.split('.')[0]}")
        if where is None:
            raise
        raise InputError(where, f"config key 'data.options.{exc.option}'{exc.detail} (a reader option of "
                                f"{d.path})") from None


def open_training_data(config: TrainConfig) -> TrainData:
    from cellprobe.data.base import shared_images
    from cellprobe.data.splits import split_by_source

    d = config.data
    train = _open_split(config, d.train_split)
    everything = np.arange(len(train))
    if d.val_split is not None:
        val = _open_split(config, d.val_split)
        shared = shared_images(val, train)
        if shared:  # a link, or the split folder spelt otherwise
            raise InputError(d.path, f"{shared} of the {len(val)} patches of split '{d.val_split}' show images of the "
                                     f"training split '{d.train_split}' (the same files): validating there would pick "
                                     "the epoch on what the network learnt; give a split of other patches, or a "
                                     "val_fraction")
        if tuple(val.class_names) != tuple(train.class_names):
            raise InputError(d.path, f"split '{d.val_split}' has classes {val.class_names}, split "
                                     f"'{d.train_split}' has {train.class_names}")
        return TrainData(train, everything, val, np.arange(len(val)), _repeats_at(train, everything))
    if not d.has_validation:
        return TrainData(train, everything, None, np.arange(0), _repeats_at(train, everything))
    train_idx, val_idx = split_by_source(train.sources(), d.val_fraction, config.split_seed, d.path)
    train_idx = np.asarray(train_idx)
    return TrainData(train, train_idx, train, np.asarray(val_idx), _repeats_at(train, train_idx))


def class_pixel_counts(dataset: PatchDataset, positions: np.ndarray, num_classes: int,
                       repeats: np.ndarray | None = None) -> np.ndarray:
    """Pixels per class (background first) over ``positions``, each counted ``repeats`` times (the times an
    epoch draws it; None: once)."""
    counts = np.zeros(num_classes + 1, dtype=np.int64)
    for i, p in enumerate(positions):
        cls = dataset[int(p)].cls
        times = 1 if repeats is None else int(repeats[i])
        counts += times * np.bincount(cls.ravel(), minlength=num_classes + 1)[: num_classes + 1]
    return counts


def resolve_class_weights(config: TrainConfig, data: TrainData, num_classes: int) -> list[float] | None:
    cw = config.loss.class_weights
    if cw is None:
        return None
    if cw == "auto":
        return class_weights_from_counts(class_pixel_counts(data.train, data.train_positions, num_classes,
                                                            data.train_repeats))
    if len(cw) != num_classes + 1:
        raise InputError(None, f"config key 'loss.class_weights': {len(cw)} values; needs {num_classes + 1} "
                               "(background first, then each class)")
    return list(cw)


def build_module(config: TrainConfig, encoder: EncoderIdentity, class_names: list[str], frozen: Any | None,
                 class_weights: list[float] | None, mpp: float | None):
    """The Lightning module of a fresh network; ``frozen``: the encoder module (None for cached mode, where
    taps come with the batch); ``mpp``: the training data's µm/px (its checkpoints record it)."""
    from cellprobe.run.network import build_network
    from cellprobe.training.module import SegmenterModule

    num_classes = len(class_names)
    network = build_network(config, encoder, num_classes, frozen)
    loss = CellLoss(num_classes, config.loss, class_weights)
    return SegmenterModule(network, loss, encoder, class_names, lr=config.lr, weight_decay=config.weight_decay,
                           plateau=config.plateau, monitor=config.selection.monitor, lr_steps=config.lr_steps,
                           mpp=mpp)
