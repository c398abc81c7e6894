"""Training and evaluation of the decoder: ``train(config) -> run_dir``, ``evaluate(run_dir, data, split)``,
``tune(run_dir)``. Imported lazily: torch and Lightning load on first use, not on ``import cellprobe``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cellprobe.training.config import TrainConfig
    from cellprobe.training.evaluate import evaluate
    from cellprobe.training.fit import train
    from cellprobe.training.tune import tune

__all__ = ["TrainConfig", "evaluate", "train", "tune"]

_WHERE = {"train": "fit", "evaluate": "evaluate", "tune": "tune", "TrainConfig": "config"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"cellprobe.training.{_WHERE[name]}"), name)
    raise AttributeError(name)
