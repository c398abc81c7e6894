"""A trained run as a segmenter: images in, maps / instances / cell types out.

Rebuilds the encoder, neck and decoder from the run's config.yaml, checks that the encoder is the one the
checkpoint was trained with (name, weights digest, taps), loads the checkpoint weights-only, and runs the
sliding window and post-processing with the run's postprocess.json. An ensemble run folder loads each member
that way and averages their maps.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from cellprobe.errors import InputError
from cellprobe.inference.tta import dihedral_tta, mean_outputs
from cellprobe.inference.window import WindowConfig, predict_maps
from cellprobe.training.run import POSTPROCESS, Run

if TYPE_CHECKING:
    from cellprobe.postprocess import PostprocessParams


def load_postprocess(run_dir: Path, untuned: PostprocessParams | None = None) -> PostprocessParams:
    """The run's tuned thresholds; before ``cellprobe tune``, ``untuned`` (default: the post-processing
    defaults)."""
    from cellprobe.config import parse_config
    from cellprobe.postprocess import PostprocessParams

    path = Path(run_dir) / POSTPROCESS
    if not path.is_file():
        return untuned or PostprocessParams()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(path, f"unreadable post-processing parameters ({exc})") from None
    return parse_config(PostprocessParams, data, path)


def pick_device(device: str | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class Segmenter:
    """``maps(image)`` → probability/distance maps; ``segment(image)`` → (inst, class map, {id: class})."""

    def __init__(self, run: Run | str | Path, checkpoint: str = "best", device: str | None = None,
                 window: WindowConfig | None = None, tta: int = 1) -> None:
        """``tta``: dihedral views averaged per window (1: none, 8: all; :mod:`cellprobe.inference.tta`).
        An ensemble run folder (:mod:`cellprobe.training.ensemble`) loads every member's ``checkpoint``."""
        from cellprobe.training.build import build_encoder
        from cellprobe.training.ensemble import members

        self.run = run if isinstance(run, Run) else Run.open(run)
        cfg, stamp = self.run.config, self.run.stamp
        self.device = pick_device(device)
        self.class_names = list(stamp.class_names)
        self.num_classes = len(self.class_names)
        if self.run.is_ensemble:
            parts = [(m.run.config, m.checkpoint(checkpoint)) for m in members(self.run)]
        else:
            parts = [(cfg, self.run.checkpoint(checkpoint))]
        #: one module per member; members with the same frozen encoder share it (and its taps, see _network)
        self.modules: list[Any] = []
        self._groups: dict[str, list[Any]] = {}
        encoders: dict[str, Any] = {}
        for member_cfg, path in parts:
            key = encoder_key(member_cfg)
            if key not in encoders:
                encoders[key] = build_encoder(member_cfg)
            module = self._load_module(member_cfg, path, encoders[key])
            self.modules.append(module)
            self._groups.setdefault(key, []).append(module)
        self.window = window or WindowConfig()
        # untuned runs use the thresholds validation PQ selected the checkpoint with (the defaults unless
        # selection.monitor is val_pq); `cellprobe tune` starts its search there
        self.params = load_postprocess(self.run.path, cfg.selection.postprocess)
        self.tta = tta
        self._forward = dihedral_tta(self._network, tta)

    def _load_module(self, cfg: Any, path: Path, encoder: Any) -> Any:
        """A member's module on ``encoder`` with its checkpoint loaded (the encoder identity checked)."""
        from cellprobe.training.build import build_module, encoder_identity, resolve_class_weights
        from cellprobe.training.checkpoint import load_checkpoint

        ckpt = load_checkpoint(path)
        identity = encoder_identity(encoder, self.num_classes, self.class_names, cfg)
        module = build_module(cfg, identity, encoder, resolve_class_weights(cfg, None, self.num_classes))
        module.load_weights(ckpt, where=path)
        return module.eval().to(self.device)

    @torch.no_grad()
    def _network(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        batch = batch.to(self.device)
        if len(self.modules) == 1:
            return self.modules[0](batch)
        outputs = []
        for group in self._groups.values():
            taps = group[0].taps(batch)  # the frozen encoder runs once per distinct encoder, not per member
            outputs += [module(batch, taps) for module in group]
        return mean_outputs(outputs)

    def maps(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Maps of one (H, W, 3) uint8 image of any size (sliding window beyond one tile)."""
        check_image(image, "image")
        return predict_maps(image, self._forward, self.window, self.device)

    def patch_maps(self, images: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Maps of a list of patches: batched in one pass when they share a size that fits one window."""
        shapes = {im.shape for im in images}
        h, w = next(iter(shapes))[:2] if len(shapes) == 1 else (0, 0)
        if len(shapes) != 1 or h % 32 or w % 32 or h > self.window.tile or w > self.window.tile:
            return [self.maps(im) for im in images]
        out: list[dict[str, np.ndarray]] = []
        bs = self.window.batch_size
        for i in range(0, len(images), bs):
            batch = np.stack(images[i:i + bs])
            x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)
            with torch.no_grad():
                raw = self._forward(x)
                probs = {"semantic": raw["semantic"].float().softmax(1), "distance": raw["distance"].float(),
                         "types": raw["types"].float().softmax(1)}
            arrays = {k: v.cpu().numpy() for k, v in probs.items()}
            out += [{k: v[j] for k, v in arrays.items()} for j in range(len(batch))]
        return out

    def instances(self, maps: dict[str, np.ndarray], params: Any = None) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
        """Post-process maps into (instance map int32, class map uint8, {instance id: class id})."""
        from cellprobe.postprocess import assign_types, instances_from_maps

        inst = instances_from_maps(maps["semantic"], maps["distance"], params or self.params)
        cls_map, types = assign_types(inst, maps["types"])
        return inst, cls_map, types

    def segment(self, image: np.ndarray, params: Any = None) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
        return self.instances(self.maps(image), params)


def encoder_key(cfg: Any) -> str:
    """What decides a run's frozen encoder (random weights depend on the seed too)."""
    section = cfg.encoder.model_dump(mode="json")
    return json.dumps({**section, "seed": cfg.seed if cfg.encoder.weights == "random" else None}, sort_keys=True)


def check_image(image: Any, where: str) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise InputError(where, f"expected an RGB uint8 image (H, W, 3), got {shape} {dtype}")
