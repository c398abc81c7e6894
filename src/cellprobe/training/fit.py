"""``train(config) -> Run``: fit the decoder with Lightning, resumably.

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
import shutil
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from cellprobe.config import keys_attributed
from cellprobe.encoders.registry import get_spec
from cellprobe.errors import InputError
from cellprobe.locking import exclusive
from cellprobe.run import run_folder as R
from cellprobe.run.network import build_encoder
from cellprobe.run.train_config import TrainConfig, check_machine, train_config
from cellprobe.training.build import (
    TrainData,
    build_module,
    check_data_unchanged,
    data_mpp,
    open_training_data,
    resolve_class_weights,
)
from cellprobe.training.checkpoint_io import AtomicCheckpointIO
from cellprobe.training.datasets import OnlineSet
from cellprobe.training.lr_record import LearningRateRecord
from cellprobe.training.module import ENCODER_PREFIX
from cellprobe.training.resume_check import check_resumable
from cellprobe.training.sampling import EpochSampler


class SegmenterData(L.LightningDataModule):
    """Loaders whose samplers shard by DDP rank and draw views/augmentation seeds per epoch; ``train_repeats``:
    how many times an epoch draws each training item (a split file's oversampling; None: once each)."""

    def __init__(self, train_set: Any, val_set: Any, config: TrainConfig, views: int,
                 train_repeats: Any | None = None) -> None:
        super().__init__()
        self.train_set, self.val_set, self.config, self.views = train_set, val_set, config, views
        self.train_repeats = train_repeats

    def _loader(self, dataset: Any, shuffle: bool, views: int, repeats: Any | None = None, *,
                pad: bool) -> DataLoader:
        """Training shards are padded to equal lengths (DDP needs equal step counts), validation's are not (each
        patch scored once)."""
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        sampler = EpochSampler(len(dataset), self.config.seed, shuffle=shuffle, views=views, rank=rank, world=world,
                               repeats=repeats, pad=pad)
        workers = self.config.trainer.num_workers
        return DataLoader(dataset, batch_size=self.config.batch_size, sampler=sampler, num_workers=workers,
                          persistent_workers=workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, True, self.views, self.train_repeats, pad=True)

    def val_dataloader(self) -> DataLoader | list:
        return [] if self.val_set is None else self._loader(self.val_set, False, 1, pad=False)


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


def _callbacks(config: TrainConfig, run: R.Run, extra: Sequence[Any]) -> list[Any]:
    """Weight averaging (``ema_decay``), validation PQ (when it is the selection metric), plateau step, early
    stopping, ``best.ckpt`` (best selection metric) and ``last.ckpt`` (every epoch; a second checkpoint
    callback: ``save_last`` only writes when a top-k checkpoint was written). Without validation (a refit)
    there is nothing to select on or stop early for: ``best.ckpt`` is written every epoch like ``last.ckpt``."""
    from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint

    from cellprobe.training.module import PlateauStep

    common = {"dirpath": str(run.path), "save_top_k": 1, "enable_version_counter": False,
              "auto_insert_metric_name": False, "save_on_train_epoch_end": True}
    validated = config.data.has_validation
    # without validation "best" is the latest epoch (ModelCheckpoint always offers "epoch" to monitor)
    monitor, mode = (config.selection.monitor, config.selection.mode) if validated else ("epoch", "max")
    best = ModelCheckpoint(filename=Path(R.BEST).stem, monitor=monitor, mode=mode, **common)
    last = ModelCheckpoint(filename=Path(R.LAST).stem, monitor=None, **common)
    callbacks: list[Any] = [LearningRateRecord(run), LearningRateMonitor(logging_interval="epoch"), best, last]
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
        from cellprobe.training.online_augment import online_augment

        augment = online_augment(config)
        # the Augmenter draws the dihedral view itself (from the draw's seed): no separate view draw
        val = None if data.val is None else OnlineSet(data.val, data.val_positions, None, config.targets)
        return OnlineSet(data.train, data.train_positions, augment, config.targets), val, 1
    from cellprobe.training.cached import cached_sets

    return cached_sets(config, data, encoder)


# what the frameworks print during a fit goes to <run>/logs/framework.log, not to the terminal
FRAMEWORK_LOG = "framework.log"
FRAMEWORK_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "lightning_utilities",
                     "pytorch_lightning", "lightning_fabric")
#: cellprobe's own lines about a fit (the training data it draws) go to the same file
RUN_LOGGER = "cellprobe.training"


@contextlib.contextmanager
def _framework_log(run_dir: Path) -> Iterator[Path]:
    """Route Lightning's log records (banners such as "GPU available: ...", tips), cellprobe's own records about
    the fit (:data:`RUN_LOGGER`: the training images and the draws an epoch makes of them) and every Python
    warning raised meanwhile (Lightning's "does not have many workers", torch's, timm's) to
    ``<run>/logs/framework.log`` (appended: a resumed run adds its session), so the terminal shows only
    cellprobe's own lines and progress bars. cellprobe's own warnings (categories defined in cellprobe, e.g. DataWarning) are logged and shown as
    before. The loggers' handlers, levels and propagation and the warnings machinery are restored on exit."""
    path = run_dir / R.LOGS / FRAMEWORK_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved = []
    for name in (*FRAMEWORK_LOGGERS, RUN_LOGGER):
        logger = logging.getLogger(name)
        saved.append((logger, logger.handlers[:], logger.level, logger.propagate))
        logger.handlers = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
    try:
        with warnings.catch_warnings():
            shown = warnings.showwarning  # the one in effect (pytest's recorder in tests)

            def to_log(message, category, filename, lineno, file=None, line=None) -> None:
                text = warnings.formatwarning(message, category, filename, lineno, line).rstrip()
                handler.handle(logging.LogRecord("py.warnings", logging.WARNING, filename, lineno, text, None, None))
                if category.__module__.split(".")[0] == "cellprobe":
                    shown(message, category, filename, lineno, file, line)

            warnings.showwarning = to_log
            yield path
    finally:
        for logger, handlers, level, propagate in saved:
            logger.handlers, logger.propagate = handlers, propagate
            logger.setLevel(level)
        handler.close()


def train(config: TrainConfig | dict[str, Any] | str | Path, *, callbacks: Sequence[Any] = (),
          overrides: dict[str, Any] | None = None) -> R.Run:
    """Train (or resume, or find finished) the run of ``config``; returns the run (``run.finished`` is False
    when training was interrupted: calling again resumes).

    ``config``: a TrainConfig, a mapping of its keys (dotted keys allowed) or a YAML file; ``callbacks``:
    extra Lightning callbacks (tests, benchmarks).
    """
    cfg = train_config(config, overrides)
    existing = R.find_run(cfg)
    if existing is not None and existing.finished:
        return existing
    # the machine, the encoder's name, then the data, are checked before the run folder is made: a refused
    # command leaves nothing behind (the corrected command would otherwise meet a folder of another config); a
    # key found bad only now is reported where it was given (the config file or the --set that set it)
    with keys_attributed(cfg):
        check_machine(cfg.trainer)
        get_spec(cfg.encoder.name)
        data = open_training_data(cfg)
        if cfg.trainer.threads is not None:
            torch.set_num_threads(cfg.trainer.threads)
        started = time.perf_counter()
        encoder = build_encoder(cfg)  # the weights file read and checked, the taps too
        class_weights = resolve_class_weights(cfg, data, len(data.class_names))
    output = Path(cfg.output)
    fresh, made = not (output / R.STAMP).exists(), not output.exists()
    try:
        with exclusive(output, "training"):
            return _train(cfg, data, encoder, class_weights, callbacks, started)
    except InputError:  # found only in the run folder (a damaged shared feature cache, data that changed)
        if fresh:
            _remove_unstarted(output, made)
        raise


def _remove_unstarted(output: Path, made: bool) -> None:
    """Remove what a refused first session put in ``output`` before training wrote anything (config.yaml,
    run.json, logs, the lock; the folder too when this command made it), so that the corrected command is not
    met by a run of the refused config. A folder holding anything else (a checkpoint, the run's own feature
    cache) is left as it is: the corrected command then resumes or names it."""
    from cellprobe.locking import LOCK

    entries = {p.name for p in output.iterdir()} if output.is_dir() else {"?"}
    if not entries <= {R.CONFIG, R.STAMP, R.LOGS, LOCK}:
        return
    shutil.rmtree(output / R.LOGS, ignore_errors=True)
    for name in (R.CONFIG, R.STAMP, LOCK):
        (output / name).unlink(missing_ok=True)
    if made:
        output.rmdir()


def _train(cfg: TrainConfig, data: TrainData, encoder: Any, class_weights: list[float] | None,
           callbacks: Sequence[Any], started: float) -> R.Run:
    """The fit itself, in the checked and locked run folder."""
    run, resume = R.start_run(cfg)
    if run.finished:  # finished by another command meanwhile
        return run
    if resume is not None:
        check_data_unchanged(run, data, "its later epochs would train or validate on other samples than its first")
    fingerprint = data.fingerprint()
    with _framework_log(run.path):
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        run.stamp.data_sha256 = fingerprint
        run.stamp.started = run.stamp.started or time.time()  # a resumed run keeps its first start
        run.stamp.encoder, run.stamp.class_names = encoder.identity, data.class_names
        run.stamp.mpp = data_mpp(data)
        run.save_stamp()
        if resume is not None and L.pytorch.utilities.rank_zero_only.rank == 0:
            _keep_earlier_logs(run.path)
        train_set, val_set, views = _datasets(cfg, data, encoder)
        logging.getLogger(RUN_LOGGER).info(data.describe())
        L.seed_everything(cfg.seed, workers=True, verbose=False)  # the same initial weights in both modes
        module = build_module(cfg, encoder.identity, data.class_names, None if cfg.cache_features else encoder,
                              class_weights, run.stamp.mpp)
        if resume is not None:  # Lightning would restore NaN weights or optimizer moments without a word
            check_resumable(resume, module, ENCODER_PREFIX,
                            cfg.early_stopping.patience if cfg.data.has_validation else None, run.stamp.started)
        trainer = L.Trainer(
            default_root_dir=str(run.path),
            max_epochs=cfg.epochs,
            accelerator=cfg.trainer.accelerator,
            devices=cfg.trainer.devices,
            strategy=cfg.trainer.strategy,
            precision=_precision(cfg),
            callbacks=_callbacks(cfg, run, callbacks),
            logger=_loggers(run.path),
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
        trainer.fit(module, datamodule=SegmenterData(train_set, val_set, cfg, views, data.train_repeats),
                    ckpt_path=str(resume) if resume else None, weights_only=True)
    if trainer.interrupted:  # Ctrl-C: Lightning returns; the run stays resumable
        return run
    if trainer.is_global_zero:
        _finish(run, trainer, time.perf_counter() - started, resumed=resume is not None)
    if trainer.world_size > 1:  # DDP: the other ranks return the run as rank 0 finished it, not as unfinished
        trainer.strategy.barrier("cellprobe-finished")
        if not trainer.is_global_zero:
            run = R.Run.open(run.path)
    return run


def _finish(run: R.Run, trainer: L.Trainer, seconds: float, resumed: bool) -> None:
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    stop = next((c for c in trainer.callbacks if isinstance(c, EarlyStopping)), None)
    stopped = bool(stop is not None and stop.stopped_epoch)
    stamp = run.stamp
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
    run.save_stamp()


__all__ = ["SegmenterData", "train"]
