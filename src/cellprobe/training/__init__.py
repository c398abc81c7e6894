"""Training and evaluation of the decoder: ``train(config) -> run_dir``, ``evaluate(run_dir, data, split)``,
``tune(run_dir)``.

``evaluate`` and ``tune`` are bound here eagerly: their modules share their names, and binding the functions
after importing the modules keeps ``cellprobe.training.evaluate`` the function whatever is imported later
(both modules import torch only inside their functions). ``train`` loads Lightning on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cellprobe.training.evaluate import evaluate
from cellprobe.training.tune import tune

if TYPE_CHECKING:
    from cellprobe.training.config import TrainConfig
    from cellprobe.training.fit import train

__all__ = ["TrainConfig", "evaluate", "train", "tune"]

_LAZY = {"train": "fit", "TrainConfig": "config"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"cellprobe.training.{_LAZY[name]}"), name)
    raise AttributeError(name)
