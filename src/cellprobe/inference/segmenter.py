"""A trained run as a segmenter: images in, maps / instances / cell types out.

Loads the run's network (:func:`cellprobe.run.network.load_network`: encoder identity checked, checkpoint
read weights-only) and runs the sliding window and post-processing with the run's postprocess.json. An
ensemble run folder loads each member's network that way and averages their maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cellprobe.errors import InputError
from cellprobe.inference.tta import dihedral_tta, mean_outputs
from cellprobe.inference.window import WindowConfig, predict_batch, predict_maps
from cellprobe.run.run_folder import STAMP, Run, load_postprocess


def pick_device(device: str | None) -> torch.device:
    """``device`` (None or "auto": a GPU when there is one), refused with one line when torch does not know
    it or this machine does not have it."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        picked = torch.device(device)
    except (RuntimeError, ValueError):
        raise InputError("--device", f"unknown device {device!r} (cpu, cuda, cuda:N, mps, or auto)") from None
    if picked.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (picked.index or 0) >= count:
            raise InputError("--device", f"{device}: this machine has {count} CUDA device(s)")
    elif picked.type == "mps" and not torch.backends.mps.is_available():
        raise InputError("--device", f"{device}: MPS is not available on this machine")
    elif picked.type not in ("cpu", "cuda", "mps"):
        raise InputError("--device", f"unsupported device {device!r} (cpu, cuda, cuda:N, mps, or auto)")
    return picked


class Segmenter:
    """``maps(image)`` → probability/distance maps; ``segment(image)`` → (inst, class map, {id: class})."""

    def __init__(self, run: Run | str | Path, checkpoint: str = "best", device: str | None = None,
                 window: WindowConfig | None = None, tta: int = 1) -> None:
        """``tta``: dihedral views averaged per window (1: none, 8: all; :mod:`cellprobe.inference.tta`).
        An ensemble run folder (:mod:`cellprobe.run.ensemble`) loads every member's ``checkpoint``."""
        from cellprobe.run.ensemble import checkpoints
        from cellprobe.run.network import build_encoder, encoder_build_key, load_network

        self.device = pick_device(device)
        self.run = run if isinstance(run, Run) else Run.open(run)
        cfg, stamp = self.run.config, self.run.stamp
        if not self.run.finished:  # a killed run's checkpoints so far: usable, but said
            import warnings

            from cellprobe.data.validate import DataWarning

            warnings.warn(f"{self.run.path}: has not finished training ({len(stamp.learning_rates)} of "
                          f"{cfg.epochs} epochs begun): its {checkpoint}.ckpt so far is used", DataWarning,
                          stacklevel=2)
        self.class_names = list(stamp.class_names)
        self.num_classes = len(self.class_names)
        #: one network per member; members with the same frozen encoder share it (and its taps, see _network)
        self.networks: list[Any] = []
        self._groups: dict[str, list[Any]] = {}
        encoders: dict[str, Any] = {}
        for member_cfg, path in checkpoints(self.run, checkpoint):
            key = encoder_build_key(member_cfg)
            if key not in encoders:
                encoders[key] = build_encoder(member_cfg)
            network = load_network(member_cfg, path, encoders[key], self.class_names, stamp.mpp).to(self.device)
            if not self.run.is_ensemble and stamp.encoder != encoders[key].identity:
                # the network's checkpoint was checked against the built encoder; run.json must say the same
                raise InputError(self.run.path / STAMP, "its encoder identity is not the one the run's config builds "
                                                        f"({'; '.join(encoders[key].identity.differences(stamp.encoder))}"
                                                        "): run.json edited by hand?")
            self.networks.append(network)
            self._groups.setdefault(key, []).append(network)
        self.window = window or WindowConfig()
        # untuned runs use the thresholds validation PQ selected the checkpoint with (the defaults unless
        # selection.monitor is val_pq); `cellprobe tune` starts its search there
        self.params = load_postprocess(self.run.path, cfg.selection.postprocess)
        self.tta = tta
        self._forward = dihedral_tta(self._network, tta)

    @torch.no_grad()
    def _network(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        batch = batch.to(self.device)
        if len(self.networks) == 1:
            return self.networks[0](batch)
        outputs = []
        for group in self._groups.values():
            taps = group[0].taps(batch)  # the frozen encoder runs once per distinct encoder, not per member
            outputs += [network(batch, taps) for network in group]
        return mean_outputs(outputs)

    def maps(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Maps of one (H, W, 3) uint8 image of any size (sliding window beyond one tile)."""
        check_image(image, "image")
        return predict_maps(image, self._forward, self.window, self.device)

    def patch_maps(self, images: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Maps of a list of patches: batched in one pass when they share a size that fits one window."""
        for i, image in enumerate(images):
            check_image(image, f"image[{i}]")
        shapes = {im.shape for im in images}
        h, w = next(iter(shapes))[:2] if len(shapes) == 1 else (0, 0)
        m = self.networks[0].input_multiple
        if len(shapes) != 1 or h % m or w % m or h > self.window.tile or w > self.window.tile:
            return [self.maps(im) for im in images]
        out: list[dict[str, np.ndarray]] = []
        bs = self.window.batch_size
        for i in range(0, len(images), bs):
            arrays = predict_batch(np.stack(images[i:i + bs]), self._forward, self.device)
            out += [{k: v[j] for k, v in arrays.items()} for j in range(len(arrays["semantic"]))]
        return out

    def instances(self, maps: dict[str, np.ndarray], params: Any = None) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
        """Post-process maps into (instance map int32, class map uint8, {instance id: class id})."""
        from cellprobe.postprocess import assign_types, instances_from_maps

        inst = instances_from_maps(maps["semantic"], maps["distance"], params or self.params)
        cls_map, types = assign_types(inst, maps["types"])
        return inst, cls_map, types

    def segment(self, image: np.ndarray, params: Any = None) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
        return self.instances(self.maps(image), params)


def check_image(image: Any, where: str) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise InputError(where, f"expected an RGB uint8 image (H, W, 3), got {shape} {dtype}")
