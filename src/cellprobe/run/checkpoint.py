"""Checkpoint files: written atomically, read with ``torch.load(weights_only=True)``.

Lightning's own writer truncates then writes, so a kill mid-write can leave a torn ``last.ckpt``; this
CheckpointIO goes through :mod:`cellprobe.atomic` instead, and every load refuses pickled code.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import CheckpointIO

from cellprobe import atomic
from cellprobe.errors import InputError


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """A checkpoint dict, loaded safely; unreadable or non-checkpoint files are InputErrors."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise InputError(path, "checkpoint not found") from None
    except Exception as exc:  # torch raises several types for torn or foreign files
        raise InputError(path, f"not a loadable checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise InputError(path, "not a cellprobe checkpoint (no state_dict)")
    return ckpt


class AtomicCheckpointIO(CheckpointIO):
    """Lightning CheckpointIO: atomic writes, weights-only reads."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic.write_bytes(path, buffer.getvalue())

    def load_checkpoint(self, path: Any, map_location: Any | None = None, weights_only: bool | None = None) -> dict[str, Any]:
        return load_checkpoint(path, map_location if map_location is not None else "cpu")

    def remove_checkpoint(self, path: Any) -> None:
        Path(path).unlink(missing_ok=True)
