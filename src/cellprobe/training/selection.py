"""Validation PQ during training: the metric the run is judged by, as a selection signal.

The summed validation loss is a proxy; this callback post-processes each validation batch's outputs with
fixed thresholds (``selection.postprocess``) and scores binary PQ against the true instance maps, so that
``selection.monitor: val_pq`` can pick ``best.ckpt``, stop early and cut the learning rate on it. Cost:
post-processing and scoring only (about 7 ms per 256² patch); the network outputs are those of the
validation loss.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch

from cellprobe.postprocess.params import PostprocessParams


def batch_pq(semantic_logits: torch.Tensor, distance: torch.Tensor, true_inst: torch.Tensor,
             params: PostprocessParams) -> np.ndarray:
    """Binary PQ of each patch of a batch, as the evaluation scores it (metrics engine, CoNIC semantics)."""
    from cellprobe.metrics import score_maps
    from cellprobe.postprocess.maps import instances_from_maps

    prob = semantic_logits.detach().float().softmax(1).cpu().numpy()
    dist = distance.detach().float().cpu().numpy()
    truth = list(true_inst.cpu().numpy())
    pred = [instances_from_maps(p, d, params) for p, d in zip(prob, dist, strict=True)]
    result = score_maps(truth, [(t > 0).astype(np.uint8) for t in truth], pred,
                        [(p > 0).astype(np.uint8) for p in pred], num_classes=1)
    return result.per_image["pq"].to_numpy(np.float64)


class ValidationPQ(L.Callback):
    """Logs ``val_pq``: the mean binary PQ over all validation patches (summed across DDP ranks)."""

    def __init__(self, params: PostprocessParams) -> None:
        self.params = params
        self._sum, self._count = 0.0, 0

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sum, self._count = 0.0, 0

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                                batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        pq = batch_pq(outputs["semantic"], outputs["distance"], batch["inst"], self.params)
        known = ~np.isnan(pq)
        self._sum += float(pq[known].sum())
        self._count += int(known.sum())

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        totals = torch.tensor([self._sum, float(self._count)], dtype=torch.float32, device=pl_module.device)
        totals = trainer.strategy.reduce(totals, reduce_op="sum")
        value = totals[0] / totals[1] if totals[1] > 0 else torch.zeros((), device=pl_module.device)
        pl_module.log("val_pq", value, prog_bar=True, on_epoch=True)
