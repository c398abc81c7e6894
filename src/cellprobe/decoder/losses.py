"""The training losses of the three heads, weighted by :class:`~cellprobe.decoder.decoder_config.LossConfig`.

- semantic (background / boundary / body): cross-entropy (optionally class-weighted) + soft Dice;
- distances (4 maps in [-1, 1]): L1 (background pixels down-weighted: their target is 0 and they are most of
  the image; the boundary band between touching nuclei optionally up-weighted) + gradient loss (squared
  difference of Sobel derivatives inside nuclei, where the maps carry the information that separates touching
  nuclei, as in HoVer-Net);
- types (background + C classes): class-weighted cross-entropy + Tversky.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cellprobe.data.targets import BOUNDARY
from cellprobe.decoder.decoder_config import LossConfig

_EPS = 1.0


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − mean over classes of the soft Dice between softmax(logits) and one-hot(target)."""
    return tversky_loss(logits, target, 0.5, 0.5)


def tversky_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """1 − mean over classes of TP / (TP + alpha·FP + beta·FN), soft, summed over the batch (stable for
    classes absent from one image); classes absent from the whole batch and never predicted add 0."""
    prob = logits.float().softmax(dim=1)
    onehot = F.one_hot(target, prob.shape[1]).permute(0, 3, 1, 2).to(prob.dtype)
    dims = (0, 2, 3)
    tp = (prob * onehot).sum(dims)
    fp = (prob * (1 - onehot)).sum(dims)
    fn = ((1 - prob) * onehot).sum(dims)
    index = (tp + _EPS) / (tp + alpha * fp + beta * fn + _EPS)
    return 1.0 - index.mean()


def _sobel_kernels(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=device, dtype=dtype) / 8.0
    return torch.stack([kx, kx.t()])[:, None]  # (2, 1, 3, 3): d/dx, d/dy


def sobel(maps: torch.Tensor) -> torch.Tensor:
    """Horizontal and vertical Sobel derivatives of every channel: (B, C, H, W) → (B, 2C, H, W)."""
    b, c, h, w = maps.shape
    k = _sobel_kernels(maps.device, maps.dtype)
    out = F.conv2d(F.pad(maps.reshape(b * c, 1, h, w), (1, 1, 1, 1), mode="replicate"), k)
    return out.reshape(b, 2 * c, h, w)


def distance_losses(pred: torch.Tensor, target: torch.Tensor, semantic: torch.Tensor,
                    background_weight: float, boundary_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(L1, gradient loss) of the distance maps; ``semantic`` (B,H,W) holds the 3-class targets.

    Pixel weights: ``background_weight`` on background (target 0, most of the image), ``boundary_weight`` on
    the boundary band where cells touch (where the maps must fall from +1 to -1 within a few pixels: the
    only evidence that separates touching nuclei, and a few per cent of the nucleus pixels), 1 on cell
    bodies. Both terms are weighted means; the gradient loss covers nucleus pixels only.
    """
    pred, target = pred.float(), target.float()
    semantic = semantic[:, None]
    fg = (semantic > 0).to(pred.dtype)
    inside = torch.where(semantic == BOUNDARY, boundary_weight, 1.0).to(pred.dtype) * fg
    weight = inside + background_weight * (1 - fg)
    l1 = ((pred - target).abs() * weight).sum() / (weight.sum() * pred.shape[1]).clamp_min(1e-6)
    grad_err = (sobel(pred) - sobel(target)) ** 2
    grad = (grad_err * inside).sum() / (inside.sum() * grad_err.shape[1]).clamp_min(1e-6)
    return l1, grad


def class_weights_from_counts(counts: Sequence[float] | np.ndarray) -> list[float]:
    """Inverse square-root frequency weights normalised to mean 1; classes never seen get the largest weight."""
    counts = np.asarray(counts, dtype=np.float64)
    seen = counts > 0
    if not seen.any():
        return [1.0] * len(counts)
    freq = counts / counts.sum()
    w = np.zeros_like(freq)
    w[seen] = 1.0 / np.sqrt(freq[seen])
    w[~seen] = w[seen].max()
    return (w / w.mean()).tolist()


class CellLoss(nn.Module):
    """Weighted sum of the six terms; ``forward`` returns ``(total, {term: value})`` for logging."""

    def __init__(self, num_classes: int, config: LossConfig | None = None,
                 class_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.config = config or LossConfig()
        if class_weights is not None and len(class_weights) != num_classes + 1:
            raise ValueError(f"{len(class_weights)} class weights for {num_classes} classes + background")
        weights = torch.ones(num_classes + 1) if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        self.register_buffer("class_weights", weights)
        self.register_buffer("semantic_weights", torch.tensor(self.config.semantic_weights, dtype=torch.float32),
                             persistent=False)  # from the config; not in checkpoints

    def forward(self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.config
        semantic, cls = batch["semantic"].long(), batch["cls"].long()
        terms = {
            "semantic_ce": F.cross_entropy(out["semantic"].float(), semantic, weight=self.semantic_weights),
            "semantic_dice": soft_dice_loss(out["semantic"], semantic),
            "types_ce": F.cross_entropy(out["types"].float(), cls, weight=self.class_weights),
            "types_tversky": tversky_loss(out["types"], cls, c.tversky_alpha, c.tversky_beta),
        }
        terms["distance_l1"], terms["distance_grad"] = distance_losses(
            out["distance"], batch["distance"], semantic, c.distance_background, c.distance_boundary)
        total = sum(getattr(c, name) * value for name, value in terms.items())
        return total, terms
