"""Training of the decoder on a frozen encoder: ``train(config) -> Run`` (Lightning, resumable) and
``refit(reference, out)``. Lightning loads on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cellprobe.training.fit import train
    from cellprobe.training.refit import refit

__all__ = ["refit", "train"]

_LAZY = {"train": "fit", "refit": "refit"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"cellprobe.training.{_LAZY[name]}"), name)
    raise AttributeError(name)
