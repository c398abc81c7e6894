"""Exponential moving average of the trainable weights, on Lightning's ``WeightAveraging`` callback.

Lightning's ``EMAWeightAveraging`` uses one decay from the first step, so early in a run the average is mostly
the random initial weights: with ``val_pq`` selection, validation then scores 0 for epochs, which cuts the
learning rate and can stop the run (seen on CoNSeP, decay 0.995: PQ 0 for 6 epochs). Here the decay warms up
as in TensorFlow's ``ExponentialMovingAverage(num_updates=...)``: ``min(decay, (1 + n) / (10 + n))`` after n
updates, so the average follows the weights closely at first and settles to ``decay``.

Cost in online mode: ``WeightAveraging`` copies the whole LightningModule, frozen encoder included, and
averages and swaps every parameter; the encoder's copy never changes and never reaches a checkpoint, but it
costs its memory once more and a pass over its weights per step. Cached mode (the default) holds no encoder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def warmed_decay(decay: float, updates: int) -> float:
    """The decay of update number ``updates`` (0-based count of earlier updates)."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


def ema_update(decay: float) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor | int], torch.Tensor]:
    """``avg_fn`` for ``torch.optim.swa_utils.AveragedModel``: the warmed-up EMA step."""
    if not 0.0 < decay < 1.0:
        raise ValueError(f"ema decay must be in (0, 1), got {decay}")

    @torch.no_grad()
    def update(average: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor | int) -> torch.Tensor:
        d = warmed_decay(decay, int(num_averaged))
        return d * average + (1.0 - d) * current

    return update


def ema_callback(decay: float) -> Any:
    """A Lightning callback averaging after every optimizer step (buffers included, so BatchNorm statistics
    match the averaged weights); validation, checkpoints' ``state_dict`` and inference get the average."""
    from lightning.pytorch.callbacks import WeightAveraging

    return WeightAveraging(avg_fn=ema_update(decay), use_buffers=True)
