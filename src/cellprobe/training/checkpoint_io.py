"""Lightning's checkpoint I/O through :mod:`cellprobe.run.checkpoint`.

Lightning's own writer truncates then writes, so a kill mid-write can leave a torn ``last.ckpt``; this
CheckpointIO writes atomically and reads weights-only, like every other checkpoint access of cellprobe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.plugins.io import CheckpointIO

from cellprobe.run.checkpoint import load_checkpoint, save_checkpoint


class AtomicCheckpointIO(CheckpointIO):
    """Lightning CheckpointIO: atomic writes, weights-only reads."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        save_checkpoint(checkpoint, path)

    def load_checkpoint(self, path: Any, map_location: Any | None = None, weights_only: bool | None = None) -> dict[str, Any]:
        return load_checkpoint(path, map_location if map_location is not None else "cpu")

    def remove_checkpoint(self, path: Any) -> None:
        Path(path).unlink(missing_ok=True)
