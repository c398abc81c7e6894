"""``refit(reference, out)``: train again on every training patch, validation patches included, with what the
reference run found on validation.

A run with a validation split spends a fifth of the training images on choosing its checkpoint, its
learning-rate drops and its post-processing thresholds. Once those are chosen, the refit trains the same
config on all training images for the reference's best epoch + 1 epochs, replaying the learning rate the
reference's plateau took at each epoch (``lr_steps``, from the rates the reference recorded in its run.json),
and takes over the reference's tuned
``postprocess.json``. It has no validation to tune on, so ``cellprobe tune`` needs ``--data`` for it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from cellprobe import atomic
from cellprobe.errors import InputError
from cellprobe.run import run_folder as R
from cellprobe.run.checkpoint import load_checkpoint
from cellprobe.run.train_config import TrainConfig, train_config
from cellprobe.training.build import check_data_unchanged, open_training_data


def best_epoch(run: R.Run) -> int:
    """The 0-based epoch of the run's ``best.ckpt``, as written (an integer) and one the run trained: within
    the epochs its run.json records a learning rate for (the schedule a refit replays)."""
    path = run.checkpoint("best")
    epoch = load_checkpoint(path).get("epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise InputError(path, f"records no epoch a refit can take (epoch {epoch!r}, expected an integer >= 0)")
    trained = len(run.stamp.learning_rates)
    if epoch >= trained:
        raise InputError(path, f"is from epoch {epoch}, but the run's run.json records {trained} trained epoch(s): "
                               "the checkpoint is not this run's")
    return epoch


def check_recorded_rates(run: R.Run) -> None:
    """The rates run.json records (which a refit replays) are ones the run's config could give: epoch 0 at
    ``lr``, then ``lr_steps``' table, or the plateau's drops (each epoch the rate before, or that times
    ``plateau.factor``, not below ``plateau.min_lr``). A rate edited by hand would be replayed silently."""
    config, rates = run.config, run.stamp.learning_rates
    steps = config.lr_steps
    previous: float | None = None
    for epoch, rate in enumerate(rates):
        if steps is not None:
            allowed = [steps[max(e for e in steps if e <= epoch)]]
        elif previous is None:
            allowed = [config.lr]
        else:
            allowed = [previous, max(previous * config.plateau.factor, config.plateau.min_lr)]
        if not any(math.isclose(rate, a, rel_tol=1e-6) for a in allowed):
            how = "lr_steps" if steps is not None else ("lr" if previous is None else "the plateau")
            raise InputError(run.path / R.STAMP, f"learning_rates[{epoch}] is {rate:g}, which {how} of the run's "
                                                 f"config could not give ({', '.join(f'{a:g}' for a in allowed)}): "
                                                 "a refit would replay it")
        previous = rate


def schedule(rates: dict[int, float], epochs: int) -> dict[int, float]:
    """The epochs where the rate changes (epoch 0 always), within the first ``epochs``."""
    steps: dict[int, float] = {}
    previous = None
    for epoch, lr in sorted(rates.items()):
        if epoch < epochs and lr != previous:
            steps[epoch] = previous = lr
    if 0 not in steps:
        raise InputError(None, "the reference run recorded no learning rate for epoch 0")
    return steps


def refit_config(reference: str | Path, out: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The reference run's config on all training patches: no validation, ``epochs`` = its best epoch + 1,
    ``lr_steps`` = the rates it used up to then; ``overrides`` (dotted keys) may change only how it runs
    (:data:`~cellprobe.run.run_folder.RUNTIME_KEYS`): everything else is the reference's."""
    allowed = R.RUNTIME_KEYS - {"trainer.max_minutes"}  # a refit cut short by a time budget is no refit
    decided = sorted(k for k in (overrides or {}) if k not in allowed)
    if decided:
        raise InputError(None, f"refit decides {', '.join(decided)} from the reference run (it trains the "
                               "reference's config, data and encoder on all its training patches, for its best "
                               "epoch + 1 epochs at the rates it used); --set takes only how it runs "
                               f"({', '.join(sorted(allowed))})")
    ref = R.Run.open(reference)
    if not ref.finished:
        raise InputError(ref.path, "reference run has not finished training")
    if not ref.config.data.has_validation:
        raise InputError(ref.path, "reference run has no validation split (is it a refit itself?)")
    if ref.config.data.val_split is not None:
        raise InputError(ref.path, f"reference validates on its own split '{ref.config.data.val_split}': "
                                   "a refit merges only source images held out of the training split")
    epochs = best_epoch(ref) + 1
    check_recorded_rates(ref)
    steps = schedule(dict(enumerate(ref.stamp.learning_rates)), epochs)
    data = ref.config.model_dump(mode="json")
    data.update(output=str(out), epochs=epochs, lr=steps[0], lr_steps=steps, refit_of=str(ref.path))
    data["trainer"]["max_minutes"] = None  # the reference's time budget would cut the refit's epochs short
    data["data"]["val_fraction"] = 0.0
    return train_config(data, overrides)


def refit(reference: str | Path, out: str | Path, overrides: dict[str, Any] | None = None) -> R.Run:
    """Train (or resume) the refit of ``reference`` into ``out``; once finished, ``out`` gets the reference's
    ``postprocess.json`` (never overwriting one already there). Returns the run."""
    from cellprobe.training.fit import train

    reference = Path(reference)
    cfg = refit_config(reference, out, overrides)
    if not (reference / R.POSTPROCESS).exists():  # the refit has no validation to tune on by itself
        raise InputError(reference / R.POSTPROCESS, "no such file: the reference is untuned, and a refit takes over "
                                                    f"its tuned thresholds; run `cellprobe tune {reference}` first")
    R.load_postprocess(reference)  # the thresholds the refit takes over are checked before it trains
    ref = R.Run.open(reference)
    check_data_unchanged(ref, open_training_data(ref.config), "the refit would replay its epoch count, learning "
                                                              "rates and thresholds, chosen on the old data")
    run = train(cfg)
    tuned, target = reference / R.POSTPROCESS, run.path / R.POSTPROCESS
    if run.finished and tuned.is_file() and not target.exists():
        atomic.write_bytes(target, tuned.read_bytes())
    return run


__all__ = ["best_epoch", "check_recorded_rates", "refit", "refit_config", "schedule"]
