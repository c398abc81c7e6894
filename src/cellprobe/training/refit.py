"""``refit(reference, out)``: train again on every training patch, validation patches included, with what the
reference run found on validation.

A run with a validation split spends a fifth of the training images on choosing its checkpoint, its
learning-rate drops and its post-processing thresholds. Once those are chosen, the refit trains the same
config on all training images for the reference's best epoch + 1 epochs, replaying the learning rate the
reference's plateau took at each epoch (``lr_steps``), and takes over the reference's tuned
``postprocess.json``. It has no validation to tune on, so ``cellprobe tune`` needs ``--data`` for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from cellprobe import atomic
from cellprobe.errors import InputError
from cellprobe.training import run as R
from cellprobe.training.checkpoint import load_checkpoint
from cellprobe.training.config import TrainConfig, train_config


def lr_by_epoch(run_dir: Path) -> dict[int, float]:
    """The learning rate each epoch of a run trained with, read from its CSV logs (all sessions of a resumed
    run): Lightning's LearningRateMonitor logs the rate at the start of each epoch with the global step only,
    and the epoch of that step is the first epoch whose logged rows reach it."""
    logs = [*sorted((run_dir / R.LOGS).glob("metrics.session-*.csv")), run_dir / R.LOGS / "metrics.csv"]
    frames = [pd.read_csv(p) for p in logs if p.is_file()]
    if not frames:
        raise InputError(run_dir / R.LOGS, "no metrics.csv: the run's learning-rate schedule is unknown")
    table = pd.concat(frames, ignore_index=True)
    lr_cols = [c for c in table.columns if c.startswith("lr-")]
    if not lr_cols or "step" not in table or "epoch" not in table:
        raise InputError(run_dir / R.LOGS, "logs hold no learning rate (lr-*) with steps and epochs")
    ends = table.dropna(subset=["epoch"]).groupby("epoch")["step"].max().sort_index()
    rates: dict[int, float] = {}
    for step, lr in table.dropna(subset=[lr_cols[0]])[["step", lr_cols[0]]].itertuples(index=False):
        reached = ends[ends >= step]
        if len(reached):
            rates[int(reached.index[0])] = float(lr)
    return dict(sorted(rates.items()))


def best_epoch(run: R.Run) -> int:
    """The 0-based epoch of the run's ``best.ckpt``."""
    return int(load_checkpoint(run.checkpoint("best"))["epoch"])


def schedule(rates: dict[int, float], epochs: int) -> dict[int, float]:
    """The epochs where the rate changes (epoch 0 always), within the first ``epochs``."""
    steps: dict[int, float] = {}
    previous = None
    for epoch, lr in sorted(rates.items()):
        if epoch < epochs and lr != previous:
            steps[epoch] = previous = lr
    if 0 not in steps:
        raise InputError(None, "the reference's logs have no learning rate for epoch 0")
    return steps


def refit_config(reference: str | Path, out: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The reference run's config on all training patches: no validation, ``epochs`` = its best epoch + 1,
    ``lr_steps`` = the rates it used up to then; ``overrides`` (dotted keys) last."""
    ref = R.Run.open(reference)
    if not ref.finished:
        raise InputError(ref.path, "reference run has not finished training")
    if not ref.config.data.has_validation:
        raise InputError(ref.path, "reference run has no validation split (is it a refit itself?)")
    if ref.config.data.val_split is not None:
        raise InputError(ref.path, f"reference validates on its own split '{ref.config.data.val_split}': "
                                   "a refit merges only source images held out of the training split")
    epochs = best_epoch(ref) + 1
    steps = schedule(lr_by_epoch(ref.path), epochs)
    data = ref.config.model_dump(mode="json")
    data.update(output=str(out), epochs=epochs, lr=steps[0], lr_steps=steps, refit_of=str(ref.path))
    data["data"]["val_fraction"] = 0.0
    return train_config(data, overrides)


def refit(reference: str | Path, out: str | Path, overrides: dict[str, Any] | None = None) -> Path:
    """Train (or resume) the refit of ``reference`` into ``out``; once finished, ``out`` gets the reference's
    ``postprocess.json`` (never overwriting one already there). Returns the run folder."""
    from cellprobe.training.fit import train

    reference = Path(reference)
    cfg = refit_config(reference, out, overrides)
    run_dir = train(cfg)
    tuned, target = reference / R.POSTPROCESS, run_dir / R.POSTPROCESS
    if R.read_stamp(run_dir).status == "finished" and tuned.is_file() and not target.exists():
        atomic.write_bytes(target, tuned.read_bytes())
    return run_dir


__all__ = ["best_epoch", "lr_by_epoch", "refit", "refit_config", "schedule"]
