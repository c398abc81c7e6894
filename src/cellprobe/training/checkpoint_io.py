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
        checkpoint = load_checkpoint(path, map_location if map_location is not None else "cpu")
        return follow_moved_run(checkpoint, Path(path).parent)

    def remove_checkpoint(self, path: Any) -> None:
        Path(path).unlink(missing_ok=True)


def follow_moved_run(checkpoint: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """The checkpoint callbacks' saved states with their folder and file paths moved to ``run_dir``, where the
    run is now: Lightning drops a checkpoint callback's best score and best file when its saved folder is not
    the current one, so a run copied or moved, then resumed, would take its first resumed epoch for the best
    whatever came before."""
    callbacks = checkpoint.get("callbacks")
    if not isinstance(callbacks, dict):
        return checkpoint
    run_dir = run_dir.resolve()  # Lightning keeps the callback's folder as a real path

    def moved(old: Any) -> Any:
        return str(run_dir / Path(old).name) if isinstance(old, str) and old else old

    for name, state in callbacks.items():
        if not (str(name).startswith("ModelCheckpoint") and isinstance(state, dict)):
            continue
        if isinstance(state.get("dirpath"), str) and Path(state["dirpath"]) != run_dir:
            state["dirpath"] = str(run_dir)
            for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
                state[key] = moved(state.get(key))
            if isinstance(state.get("best_k_models"), dict):
                state["best_k_models"] = {moved(k): v for k, v in state["best_k_models"].items()}
    return checkpoint

