"""Checkpoint files: written atomically, read with ``torch.load(weights_only=True)`` (never pickled code).

A checkpoint holds the trainable weights of the network under ``state_dict`` (prefixed ``network.``; the
frozen encoder's weights are never saved: they can be gigabytes and are reproducible from its identity) and,
under ``"cellprobe"``, the identity of the encoder it was trained on and its class names. Loading it onto a
network whose encoder has another identity is an InputError.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from cellprobe import atomic
from cellprobe.encoders.identity import EncoderIdentity
from cellprobe.errors import InputError
from cellprobe.torch_files import load_torch_file

#: the checkpoint entry holding the encoder identity and the class names
IDENTITY_KEY = "cellprobe"
#: where the training module keeps the network: its weights' key prefix in ``state_dict``
NETWORK_PREFIX = "network."
#: where Lightning's weight averaging keeps the raw (not averaged) weights; ``state_dict`` holds the average
RAW_STATE_KEY = "current_model_state"


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """A checkpoint dict, loaded safely; unreadable or non-checkpoint files are InputErrors."""
    path = Path(path)
    try:
        ckpt = load_torch_file(path, "checkpoint", map_location)
    except FileNotFoundError:
        raise InputError(path, "checkpoint not found") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise InputError(path, "not a cellprobe checkpoint (no state_dict)")
    state = ckpt["state_dict"]
    if not isinstance(state, dict):
        raise InputError(path, f"state_dict is a {type(state).__name__}, not a mapping of weight names to tensors: "
                               "not written by cellprobe")
    odd = next((k for k in state if not isinstance(k, str)), None)
    if odd is not None:
        raise InputError(path, f"state_dict key {odd!r} is a {type(odd).__name__}, not a weight name: not written "
                               "by cellprobe")
    odd = next((k for k, v in state.items() if not isinstance(v, torch.Tensor)), None)
    if odd is not None:
        raise InputError(path, f"state_dict entry {odd!r} is a {type(state[odd]).__name__}, not a tensor: not "
                               "written by cellprobe")
    return ckpt


def checkpoint_bytes(checkpoint: dict[str, Any]) -> bytes:
    """The bytes :func:`save_checkpoint` writes for ``checkpoint``."""
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.getvalue()


def save_checkpoint(checkpoint: dict[str, Any], path: str | Path) -> None:
    """Write ``checkpoint`` atomically (a killed write leaves the previous file intact)."""
    atomic.write_bytes(path, checkpoint_bytes(checkpoint))


def identity_record(encoder: EncoderIdentity, class_names: list[str], mpp: float | None) -> dict[str, Any]:
    """What a checkpoint stores under :data:`IDENTITY_KEY`: the encoder, the classes and the µm/px of the
    training data (None: unknown), which run.json records too; a run.json edited by hand is told from them."""
    return {"encoder": encoder.to_json(), "class_names": list(class_names), "mpp": mpp}


def saved_training_seconds(checkpoint: dict[str, Any]) -> float:
    """The training time a checkpoint's time budget (Lightning's Timer callback state) says was spent; 0 without
    one (a value that is not seconds is left to the resume's check, :mod:`cellprobe.training.resume_check`)."""
    callbacks = checkpoint.get("callbacks")
    total = 0.0
    for name, state in (callbacks.items() if isinstance(callbacks, dict) else ()):
        spent = state.get("time_elapsed") if str(name).startswith("Timer") and isinstance(state, dict) else None
        for value in (spent.values() if isinstance(spent, dict) else ()):
            if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < float("inf"):
                total += float(value)
    return total


def check_identity(checkpoint: dict[str, Any], encoder: EncoderIdentity, class_names: list[str], where: Any,
                   mpp: float | None) -> None:
    """Refuse a checkpoint trained on another encoder (weights, taps, fit, ...), for other classes or on data
    of another µm/px than ``mpp`` (the run's record of it)."""
    saved = checkpoint.get(IDENTITY_KEY)
    if not isinstance(saved, dict) or "encoder" not in saved:
        raise InputError(where, "checkpoint has no cellprobe identity: not written by cellprobe (or by a version "
                                "before run format 2: `cellprobe upgrade` its run folder)")
    trained = EncoderIdentity.from_json(saved["encoder"], where)
    diff = trained.differences(encoder)
    if diff:
        raise InputError(where, f"checkpoint was trained on another encoder than the model's ({'; '.join(diff[:3])}) "
                                "(encoder/checkpoint mismatch)")
    if list(saved.get("class_names", [])) != list(class_names):
        raise InputError(where, f"checkpoint was trained for classes {saved.get('class_names')}, the model has "
                                f"{list(class_names)}")
    if "mpp" not in saved:
        raise InputError(where, "checkpoint records no µm/px of its training data, which every checkpoint of run "
                                "format 3 does: one of an earlier format (put back by hand?) or edited; restore the "
                                "run's own checkpoint")
    if saved["mpp"] != mpp:
        raise InputError(where, f"checkpoint was trained on data at {saved['mpp']!r} µm/px, the run records "
                                f"{mpp!r} (run.json edited by hand?)")


def network_state(checkpoint: dict[str, Any], where: Any = None) -> dict[str, torch.Tensor]:
    """The network's trainable weights (neck and decoder) from a checkpoint's ``state_dict``; the training
    module's other entries (the loss's class weights) are left out. Weights that are not finite (a diverged
    run, a damaged file) are refused: they would give empty maps and scores of 0, not an error."""
    state = {k[len(NETWORK_PREFIX):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(NETWORK_PREFIX)}
    empty = next((k for k, v in state.items() if v.is_meta), None)
    if empty is not None:
        raise InputError(where, f"checkpoint weight '{empty}' has no values (a tensor on device 'meta'): not "
                                "written by cellprobe")
    sparse = next((k for k, v in state.items() if v.layout != torch.strided or v.is_quantized), None)
    if sparse is not None:
        raise InputError(where, f"checkpoint weight '{sparse}' is not a dense tensor "
                                f"({str(state[sparse].layout).removeprefix('torch.')}): not written by cellprobe")
    bad = next((k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)
    if bad is not None:
        raise InputError(where, f"checkpoint weight '{bad}' holds NaN or infinite values (training diverged, or "
                                "the file is damaged)")
    return state
