"""``train(config) -> run_dir``: fit the decoder with Lightning, resumably.

AdamW, ReduceLROnPlateau and early stopping on the selection metric (the validation loss, or validation PQ
after post-processing: ``selection.monitor``), ``best.ckpt`` and ``last.ckpt`` written
atomically every epoch, CSV (and TensorBoard, when installed) logs, rich progress, 16-bit mixed precision on a
GPU, DDP when asked. Calling ``train`` again with the same config resumes from ``last.ckpt`` (nothing lost but
the unfinished epoch, which is replayed identically: every random draw derives from the seed and the epoch);
on a finished run it returns at once.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from cellprobe.training import run as R
from cellprobe.training.build import (
    TrainData,
    build_encoder,
    build_module,
    encoder_identity,
    open_training_data,
    resolve_class_weights,
)
from cellprobe.training.checkpoint import AtomicCheckpointIO
from cellprobe.training.config import TrainConfig, train_config
from cellprobe.training.datasets import OnlineSet
from cellprobe.training.sampling import EpochSampler


class SegmenterData(L.LightningDataModule):
    """Loaders whose samplers shard by DDP rank and draw views/augmentation seeds per epoch."""

    def __init__(self, train_set: Any, val_set: Any, config: TrainConfig, views: int) -> None:
        super().__init__()
        self.train_set, self.val_set, self.config, self.views = train_set, val_set, config, views

    def _loader(self, dataset: Any, shuffle: bool, views: int) -> DataLoader:
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        sampler = EpochSampler(len(dataset), self.config.seed, shuffle=shuffle, views=views, rank=rank, world=world)
        workers = self.config.trainer.num_workers
        return DataLoader(dataset, batch_size=self.config.batch_size, sampler=sampler, num_workers=workers,
                          persistent_workers=workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, True, self.views)

    def val_dataloader(self) -> DataLoader | list:
        return [] if self.val_set is None else self._loader(self.val_set, False, 1)


def _precision(config: TrainConfig) -> str:
    if config.trainer.precision != "auto":
        return config.trainer.precision
    gpu = config.trainer.accelerator in ("gpu", "cuda") or (
        config.trainer.accelerator == "auto" and torch.cuda.is_available())
    return "16-mixed" if gpu else "32-true"


def _keep_earlier_logs(run_dir: Path) -> None:
    """Lightning's CSVLogger deletes a metrics.csv it finds when it starts; a resumed run first moves the
    earlier sessions' rows to ``metrics.session-<k>.csv`` (k = 0, 1, ...), so no epoch's log is lost."""
    log = run_dir / R.LOGS / "metrics.csv"
    if log.is_file():
        k = len(list(log.parent.glob("metrics.session-*.csv")))
        log.rename(log.parent / f"metrics.session-{k}.csv")


def _loggers(run_dir: Path) -> list[Any]:
    from lightning.pytorch.loggers import CSVLogger

    loggers: list[Any] = [CSVLogger(str(run_dir), name=R.LOGS, version="")]
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return loggers
    from lightning.pytorch.loggers import TensorBoardLogger

    loggers.append(TensorBoardLogger(str(run_dir), name=R.LOGS, version="tensorboard"))
    return loggers


def _callbacks(config: TrainConfig, run_dir: Path, extra: Sequence[Any]) -> list[Any]:
    """Weight averaging (``ema_decay``), validation PQ (when it is the selection metric), plateau step, early
    stopping, ``best.ckpt`` (best selection metric) and ``last.ckpt`` (every epoch; a second checkpoint
    callback: ``save_last`` only writes when a top-k checkpoint was written). Without validation (a refit)
    there is nothing to select on or stop early for: ``best.ckpt`` is written every epoch like ``last.ckpt``."""
    from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint

    from cellprobe.training.module import PlateauStep

    common = {"dirpath": str(run_dir), "save_top_k": 1, "enable_version_counter": False,
              "auto_insert_metric_name": False, "save_on_train_epoch_end": True}
    validated = config.data.has_validation
    # without validation "best" is the latest epoch (ModelCheckpoint always offers "epoch" to monitor)
    monitor, mode = (config.selection.monitor, config.selection.mode) if validated else ("epoch", "max")
    best = ModelCheckpoint(filename=Path(R.BEST).stem, monitor=monitor, mode=mode, **common)
    last = ModelCheckpoint(filename=Path(R.LAST).stem, monitor=None, **common)
    callbacks: list[Any] = [LearningRateMonitor(logging_interval="epoch"), best, last]
    if validated:
        stop = EarlyStopping(monitor=monitor, mode=mode, patience=config.early_stopping.patience,
                             min_delta=config.early_stopping.min_delta)
        callbacks[:0] = [PlateauStep(), stop]
    if validated and monitor == "val_pq":
        from cellprobe.training.selection import ValidationPQ

        callbacks.insert(0, ValidationPQ(config.selection.postprocess))
    if config.ema_decay is not None:
        from cellprobe.training.averaging import ema_callback

        # swaps the averaged weights in for validation and writes them as the checkpoints' state_dict
        callbacks.insert(0, ema_callback(config.ema_decay))
    if config.trainer.progress:
        from lightning.pytorch.callbacks import RichProgressBar

        callbacks.append(RichProgressBar(leave=True))
    return callbacks + list(extra)


def _datasets(config: TrainConfig, data: TrainData, encoder: Any) -> tuple[Any, Any, int]:
    """(train set, val set, number of views drawn) for the run's mode."""
    if not config.cache_features:
        from cellprobe.training.augment import online_augment

        augment = online_augment(config)
        # the Augmenter draws the dihedral view itself (from the draw's seed): no separate view draw
        val = None if data.val is None else OnlineSet(data.val, data.val_positions, None, config.targets)
        return OnlineSet(data.train, data.train_positions, augment, config.targets), val, 1
    from cellprobe.training.cached import cached_sets

    return cached_sets(config, data, encoder)


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Silence what Lightning prints on every fit that says nothing about this run: the run folder is never
    empty (config.yaml and run.json come first, by design), nor is a resumed run's log folder, the
    cloud-logger advertisement, and a deprecation inside Lightning itself. Every other warning still shows."""
    from lightning_utilities.core import rank_zero

    def no_tip(record: logging.LogRecord) -> bool:
        return "litlogger" not in str(record.msg)

    rank_zero.log.addFilter(no_tip)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
            # its CSV logger deletes an old metrics.csv: _keep_earlier_logs has moved it away already
            warnings.filterwarnings("ignore", message=r"Experiment logs directory .* exists and is not empty")
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
            # online mode: the frozen encoder is in eval mode on purpose (SegmenterModule.train keeps it there)
            warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
            yield
    finally:
        rank_zero.log.removeFilter(no_tip)


def train(config: TrainConfig | dict[str, Any] | str | Path, *, callbacks: Sequence[Any] = (),
          overrides: dict[str, Any] | None = None) -> Path:
    """Train (or resume, or find finished) the run of ``config``; returns the run folder.

    ``config``: a TrainConfig, a mapping of its keys (dotted keys allowed) or a YAML file; ``callbacks``:
    extra Lightning callbacks (tests, benchmarks).
    """
    cfg = train_config(config, overrides)
    run_dir, resume, finished = R.start_run(cfg)
    if finished:
        return run_dir
    if cfg.trainer.threads is not None:
        torch.set_num_threads(cfg.trainer.threads)
    started = time.perf_counter()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    data = open_training_data(cfg)
    encoder = build_encoder(cfg)
    num_classes = len(data.class_names)
    identity = encoder_identity(encoder, num_classes, data.class_names, cfg)
    stamp = R.RunStamp(encoder=identity, class_names=data.class_names, mpp=getattr(data.train, "mpp", None))
    stamp.write(run_dir)
    if resume is not None and L.pytorch.utilities.rank_zero_only.rank == 0:
        _keep_earlier_logs(run_dir)
    train_set, val_set, views = _datasets(cfg, data, encoder)
    L.seed_everything(cfg.seed, workers=True, verbose=False)  # the same initial weights in both modes
    module = build_module(cfg, identity, None if cfg.cache_features else encoder,
                          resolve_class_weights(cfg, data, num_classes))
    with _quiet_lightning():
        trainer = L.Trainer(
            default_root_dir=str(run_dir),
            max_epochs=cfg.epochs,
            accelerator=cfg.trainer.accelerator,
            devices=cfg.trainer.devices,
            strategy=cfg.trainer.strategy,
            precision=_precision(cfg),
            callbacks=_callbacks(cfg, run_dir, callbacks),
            logger=_loggers(run_dir),
            plugins=[AtomicCheckpointIO()],
            log_every_n_steps=cfg.trainer.log_every_n_steps,
            limit_train_batches=cfg.trainer.limit_train_batches,
            max_time=None if cfg.trainer.max_minutes is None else {"minutes": cfg.trainer.max_minutes},
            enable_progress_bar=cfg.trainer.progress,
            enable_model_summary=False,
            use_distributed_sampler=False,  # our sampler shards by rank itself
            num_sanity_val_steps=0,
            limit_val_batches=None if cfg.data.has_validation else 0,
        )
        trainer.fit(module, datamodule=SegmenterData(train_set, val_set, cfg, views),
                    ckpt_path=str(resume) if resume else None, weights_only=True)
    if trainer.interrupted:  # Ctrl-C: Lightning returns; the run stays resumable
        return run_dir
    if trainer.is_global_zero:
        _finish(run_dir, stamp, trainer, time.perf_counter() - started, resumed=resume is not None)
    return run_dir


def _finish(run_dir: Path, stamp: R.RunStamp, trainer: L.Trainer, seconds: float, resumed: bool) -> None:
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    stop = next((c for c in trainer.callbacks if isinstance(c, EarlyStopping)), None)
    stopped = bool(stop is not None and stop.stopped_epoch)
    stamp.status = "finished"
    stamp.info = {
        "epochs": trainer.current_epoch,
        "stopped_early": stopped,
        "time_limit_reached": trainer.current_epoch < trainer.max_epochs and not stopped,
        "monitor": None if stop is None else stop.monitor,
        "seconds_last_session": round(seconds, 1),
        "resumed": resumed,
    }
    if stop is not None:
        ckpt = next(c for c in trainer.callbacks if isinstance(c, ModelCheckpoint) and c.monitor == stop.monitor)
        best = ckpt.best_model_score
        stamp.info[f"best_{stop.monitor}"] = None if best is None else float(best)
    stamp.write(run_dir)


__all__ = ["SegmenterData", "train"]
