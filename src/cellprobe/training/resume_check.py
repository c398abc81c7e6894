"""What a ``last.ckpt`` must hold before a run resumes from it.

Lightning restores a checkpoint as it finds it: weights with a negative BatchNorm variance or NaN, optimizer
moments of NaN or a learning rate of NaN resume without a word, validation turns NaN and early stopping ends
the run as "finished". Inference refuses such weights (:func:`cellprobe.torch_files.state_problems`); a resume
is held to the same rules, and to the optimizer's, before Lightning reads the file.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from cellprobe.errors import InputError
from cellprobe.run.checkpoint import RAW_STATE_KEY, check_identity, load_checkpoint
from cellprobe.torch_files import state_problems
from cellprobe.training.module import PLATEAU_KEY

#: the advice that ends every refusal: the run can always start over
START_OVER = "remove it to train the run from its first epoch"


#: what Lightning restores besides the weights, and its kind: without one it stops with a KeyError (optimizer,
#: schedulers) or silently restarts the epoch count, early stopping's patience or the best score (loops, callbacks)
_TRAINING_STATE = {"optimizer_states": list, "lr_schedulers": list, "loops": dict, "callbacks": dict}


def check_resumable(path: Path, module: Any, encoder_prefix: str, early_stopping_patience: int | None = None,
                    started: float | None = None) -> None:
    """Refuse ``path`` (a run's ``last.ckpt``) unless ``module`` (the training module it is about to resume)
    could take it as a finished epoch wrote it: its identity, every weight (the averaged and the raw ones; keys,
    shapes, finite values of the right kind, variances ≥ 0), non-negative whole epoch and step counts, the loop,
    callback and scheduler states, and an optimizer state of finite numbers and positive learning rates.
    ``encoder_prefix``: keys of the frozen encoder, which checkpoints leave out."""
    ckpt = load_checkpoint(path)
    check_identity(ckpt, module.encoder_identity, module.class_names, path, mpp=module.mpp)
    expected = {k: v for k, v in module.state_dict().items() if not k.startswith(encoder_prefix)}
    for key in ("state_dict", RAW_STATE_KEY):
        if key in ckpt:
            problems = state_problems(expected, ckpt[key]) if isinstance(ckpt[key], dict) else ["not a mapping"]
            if problems:
                raise InputError(path, f"cannot resume from this checkpoint: its {key} does not fit the run "
                                       f"({'; '.join(problems)}); {START_OVER}")
    for key in ("epoch", "global_step"):
        value = ckpt.get(key)
        if type(value) is not int or value < 0:
            raise InputError(path, f"cannot resume from this checkpoint: its {key} is {value!r}, not a whole "
                                   f"number ≥ 0; {START_OVER}")
    for key, kind in _TRAINING_STATE.items():
        value = ckpt.get(key)
        if not isinstance(value, kind) or (key == "optimizer_states" and not value) or (
                key == "loops" and not isinstance(value.get("fit_loop"), dict)):
            raise InputError(path, f"cannot resume from this checkpoint: it lacks the training state "
                                   f"'{key}' a finished epoch saves (a weights-only or edited file); {START_OVER}")
    problem = (_loop_problem(ckpt["loops"]["fit_loop"], ckpt["epoch"], ckpt["global_step"])
               or (_averaging_problem(ckpt) if RAW_STATE_KEY in ckpt else None))
    if problem:
        raise InputError(path, f"cannot resume from this checkpoint: {problem}; {START_OVER}")
    for n, optimizer in enumerate(ckpt["optimizer_states"]):
        problem = _optimizer_problem(optimizer)
        if problem:
            raise InputError(path, f"cannot resume from this checkpoint: optimizer {n} {problem}; {START_OVER}")
    problem = (_callbacks_problem(ckpt["callbacks"], early_stopping_patience, started)
               or _best_score_problem(ckpt["callbacks"], path.parent / "best.ckpt"))
    if problem:
        raise InputError(path, f"cannot resume from this checkpoint: {problem}; {START_OVER}")
    if module.lr_steps is None:  # the plateau follows the selection metric: its saved state is restored as found
        problem = _plateau_problem(ckpt.get(PLATEAU_KEY), module)
        if problem:
            raise InputError(path, f"cannot resume from this checkpoint: its learning-rate plateau {problem}; "
                                   f"{START_OVER}")


def _callbacks_problem(callbacks: dict[str, Any], patience: int | None, started: float | None = None) -> str | None:
    """Why the early-stopping and checkpoint callbacks' saved states cannot be resumed (None: they can): each
    there (``patience``: the config's early stopping, None for a run without validation, which has none).
    Lightning restores them as found: early stopping's ``patience`` from the file overrides the config's, and
    the scores decide when the run stops and which epoch becomes ``best.ckpt``."""
    def whole(x: Any) -> bool:
        return type(x) is int and x >= 0

    def score(x: Any, optional: bool = False) -> bool:  # a number (±inf: none yet), never NaN
        if x is None:
            return optional
        if isinstance(x, torch.Tensor):
            x = float(x) if x.numel() == 1 else None
        return isinstance(x, (int, float)) and not isinstance(x, bool) and not math.isnan(x)

    kinds = [str(name).split("{")[0] for name in callbacks]
    wanted = {"ModelCheckpoint": 2, "EarlyStopping": 0 if patience is None else 1}  # best.ckpt and last.ckpt
    for kind, count in wanted.items():
        if kinds.count(kind) != count:
            return (f"it holds {kinds.count(kind)} saved {kind} state(s), where a finished epoch of this run saves "
                    f"{count} (Lightning would start the missing ones over)")
    for name, state in callbacks.items():
        if not isinstance(state, dict):
            return f"the saved state of callback {name} is not a mapping"
        if str(name).startswith("EarlyStopping"):
            if patience is not None and state.get("patience") != patience:
                return (f"early stopping's saved patience {state.get('patience')!r} is not the config's "
                        f"early_stopping.patience {patience}")
            for key in ("wait_count", "stopped_epoch"):
                if not whole(state.get(key)):
                    return f"early stopping's {key} is {state.get(key)!r}, not a whole number ≥ 0"
            if not score(state.get("best_score")):
                return f"early stopping's best_score is {state.get('best_score')!r}, not a number"
        elif str(name).startswith("Timer"):  # trainer.max_minutes: the training time spent so far
            spent = state.get("time_elapsed")
            values = list(spent.values()) if isinstance(spent, dict) else [None]
            if not all(score(v) and v >= 0 and math.isfinite(v) for v in values):
                return f"the time budget's saved elapsed times {spent!r} are not seconds ≥ 0"
            since = None if started is None else time.time() - started
            if since is not None and sum(values) > since + 60:
                return (f"the time budget's saved elapsed time ({sum(values):.0f} s) is more than the run has existed "
                        f"({since:.0f} s since it started)")
        elif str(name).startswith("ModelCheckpoint"):
            for key in ("best_model_score", "current_score"):
                if not score(state.get(key), optional=True):
                    return f"checkpoint callback's {key} is {state.get(key)!r}, not a number"
    return None


def _as_float(x: Any) -> float | None:
    if isinstance(x, torch.Tensor) and x.numel() == 1:
        return float(x)
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _best_score_problem(callbacks: dict[str, Any], best_path: Path) -> str | None:
    """The best score the selection callback saved (what a later epoch must beat to replace ``best.ckpt``) is
    the score ``best.ckpt`` was written with: an edited one would keep a worse epoch as the run's best."""
    for name, state in callbacks.items():
        if not (str(name).startswith("ModelCheckpoint") and state.get("monitor") is not None):
            continue
        saved = _as_float(state.get("best_model_score"))
        if saved is None or not best_path.is_file():
            return None
        best = load_checkpoint(best_path)
        own = best.get("callbacks", {}).get(name) if isinstance(best.get("callbacks"), dict) else None
        written = _as_float(own.get("current_score")) if isinstance(own, dict) else None
        if written is None or not math.isclose(saved, written, rel_tol=1e-6, abs_tol=1e-12):
            return (f"its best {state.get('monitor')} {saved:g} is not the score best.ckpt was written with "
                    f"({written if written is None else f'{written:g}'})")
    return None


#: the plateau scheduler's settings, which come from the run's config (the rest of its state is its progress)
_PLATEAU_SETTINGS = ("factor", "min_lrs", "patience", "cooldown", "eps", "mode", "threshold", "threshold_mode")


def _plateau_problem(state: Any, module: Any) -> str | None:
    """Why the checkpoint's plateau state cannot be resumed (None: it can): missing (patience would restart),
    settings other than the config's (a hand-edited factor or patience would drive the rest of the run), or
    counters that are not whole numbers ≥ 0."""
    from cellprobe.run.train_config import MONITOR_MODES

    if not isinstance(state, dict):
        return "state is missing (its patience and best value would start over)"
    probe = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=module.lr)
    expected = torch.optim.lr_scheduler.ReduceLROnPlateau(
        probe, mode=MONITOR_MODES[module.monitor], factor=module.plateau.factor, patience=module.plateau.patience,
        min_lr=module.plateau.min_lr).state_dict()
    differ = [k for k in _PLATEAU_SETTINGS if state.get(k) != expected[k]]
    if differ:
        shown = ", ".join(f"{k} {state.get(k)!r} vs {expected[k]!r}" for k in differ[:3])
        return f"settings differ from the run's config ({shown})"
    for key in ("num_bad_epochs", "cooldown_counter", "last_epoch"):
        value = state.get(key)
        if type(value) is not int or value < 0:
            return f"{key} is {value!r}, not a whole number ≥ 0"
    best = state.get("best")
    if not isinstance(best, (int, float)) or isinstance(best, bool) or math.isnan(best):
        return f"best value is {best!r}, not a number"
    return None


def _loop_problem(fit_loop: dict[str, Any], epoch: int, step: int) -> str | None:
    """Why the fit loop's saved progress disagrees with the checkpoint's epoch and step (None: it agrees).
    Lightning resumes from the loop's counts, not from ``epoch``: an edited count skips epochs unsaid, or
    stops the run later with a traceback. Written at the end of epoch ``epoch``: that many epochs completed,
    one more started, and ``step`` optimizer steps taken."""
    def at(mapping: Any, *keys: str) -> Any:
        for key in keys:
            mapping = mapping.get(key) if isinstance(mapping, dict) else None
        return mapping

    epochs = at(fit_loop, "epoch_progress", "total")
    expected = {"ready": epoch + 1, "started": epoch + 1, "processed": epoch + 1, "completed": epoch}
    if not isinstance(epochs, dict) or any(epochs.get(k) != v for k, v in expected.items()):
        return f"its loop's epoch progress {epochs!r} is not that of the end of epoch {epoch}"
    steps = at(fit_loop, "epoch_loop.automatic_optimization.optim_progress", "optimizer", "step", "total",
               "completed")
    stepped = at(fit_loop, "epoch_loop.state_dict", "_batches_that_stepped")
    if steps != step or stepped != step:
        return f"its loop counts {steps!r} optimizer steps ({stepped!r} batches stepped), its global_step is {step}"
    return None


def _averaging_problem(ckpt: dict[str, Any]) -> str | None:
    """Why a weight-averaging run's saved average state disagrees with its step count (None: it agrees). The
    average is updated after every optimizer step, so it has been updated ``global_step`` times; torch restarts
    an average whose count is 0 from the current weights, and the warmed-up decay follows the count, so an
    edited count changes the run's averaged weights unsaid."""
    step = ckpt["global_step"]
    state = ckpt.get("averaging_state")
    count = state.get("n_averaged") if isinstance(state, dict) else None
    if isinstance(count, torch.Tensor) and count.numel() == 1 and not count.is_floating_point():
        count = int(count)
    if type(count) is not int or count != step:
        return f"its weight average counts {count!r} updates, where {step} optimizer steps made {step}"
    latest = next((v.get("latest_update_step") for k, v in ckpt["callbacks"].items()
                   if str(k).startswith("WeightAveraging") and isinstance(v, dict)), None)
    if latest != step:
        return f"its weight-averaging callback's latest update step is {latest!r}, its global_step {step}"
    return None


def _optimizer_problem(state: Any) -> str | None:
    """Why an optimizer's saved state cannot be resumed from (its moments and learning rates), or None."""
    if not isinstance(state, dict):
        return "state is not a mapping"
    for group in state.get("param_groups") or []:
        lr = group.get("lr") if isinstance(group, dict) else None
        if isinstance(lr, torch.Tensor):
            lr = float(lr) if lr.numel() == 1 else None
        if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not math.isfinite(lr) or lr <= 0:
            return f"has learning rate {lr!r} (a finite number > 0 expected)"
    for param, moments in (state.get("state") or {}).items():
        for name, value in (moments.items() if isinstance(moments, dict) else []):
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                if value.is_meta or not bool(torch.isfinite(value).all()):
                    return f"holds NaN, infinite or missing values in '{name}' of parameter {param}"
                if name == "exp_avg_sq" and bool((value < 0).any()):
                    return f"holds a negative second moment ('{name}' of parameter {param})"
    return None
