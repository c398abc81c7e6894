"""The Lightning module: the run's network (:class:`~cellprobe.run.network.SegmentationNetwork`) and its loss.

Online mode's network holds the frozen encoder and runs it on every (augmented) batch; cached mode's gets the
encoder's taps with the batch. The encoder's weights never go into checkpoints (they can be gigabytes and are
reproducible from its identity); the checkpoint records the encoder's identity instead, and resuming against
a different encoder is an InputError (:mod:`cellprobe.run.checkpoint`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch

from cellprobe.decoder import CellLoss
from cellprobe.encoders.identity import EncoderIdentity
from cellprobe.errors import InputError
from cellprobe.run.checkpoint import (
    IDENTITY_KEY,
    NETWORK_PREFIX,
    RAW_STATE_KEY,
    check_identity,
    identity_record,
)
from cellprobe.run.network import SegmentationNetwork
from cellprobe.run.train_config import MONITOR_MODES, PlateauSection

#: the frozen encoder's weights in the module's state dict (left out of checkpoints)
ENCODER_PREFIX = NETWORK_PREFIX + "encoder."
PLATEAU_KEY = "cellprobe_plateau"


class PlateauStep(L.Callback):
    """Steps the module's ReduceLROnPlateau on the epoch's selection metric (``pl_module.monitor``) at the end
    of validation, which runs before the checkpoint callbacks (Lightning orders those last), so checkpoints
    include the step."""

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or pl_module.monitor not in trainer.callback_metrics:
            return
        pl_module.step_plateau(float(trainer.callback_metrics[pl_module.monitor]))


class SegmenterModule(L.LightningModule):
    """``encoder`` and ``class_names``: what a checkpoint must match to be resumed or loaded; saved in every
    checkpoint under ``"cellprobe"``. ``monitor``: the logged metric the plateau scheduler follows (a key of
    :data:`~cellprobe.run.train_config.MONITOR_MODES`)."""

    def __init__(
        self,
        network: SegmentationNetwork,
        loss: CellLoss,
        encoder: EncoderIdentity,
        class_names: Sequence[str],
        *,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        plateau: PlateauSection | None = None,
        monitor: str = "val_loss",
        lr_steps: dict[int, float] | None = None,
        mpp: float | None = None,
    ) -> None:
        super().__init__()
        self.network = network
        self.loss = loss
        self.encoder_identity = encoder
        self.class_names = list(class_names)
        #: the training data's µm/px, kept in every checkpoint beside the encoder and classes
        self.mpp = mpp
        self.lr = lr
        self.weight_decay = weight_decay
        self.plateau = plateau or PlateauSection()
        if monitor not in MONITOR_MODES:
            raise ValueError(f"monitor must be one of {sorted(MONITOR_MODES)}, got {monitor!r}")
        self.monitor = monitor
        self.lr_steps = dict(lr_steps) if lr_steps is not None else None
        self._scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
        self._scheduler_state: dict[str, Any] | None = None

    # -- model ---------------------------------------------------------------------------------------------
    def forward(self, image: torch.Tensor, taps: Sequence[torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        return self.network(image, taps)

    # -- steps ---------------------------------------------------------------------------------------------
    def _step(self, batch: dict[str, Any], stage: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = self(batch["image"], batch.get("taps"))
        total, terms = self.loss(out, batch)
        n = batch["image"].shape[0]
        on_step = stage == "train"
        self.log(f"{stage}_loss", total, prog_bar=True, on_step=on_step, on_epoch=True, batch_size=n, sync_dist=True)
        for name, value in terms.items():
            self.log(f"{stage}/{name}", value, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        return total, out

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        total = self._step(batch, "train")[0]
        diverged = not bool(torch.isfinite(total.detach()))
        if self._trainer is not None:  # every process stops, not only the one whose loss it was
            diverged = self.trainer.strategy.reduce_boolean_decision(diverged, all=False)
        if diverged:  # else the weights turn NaN, and the run would go on to evaluate them
            rate = self.optimizers().param_groups[0]["lr"] if self._trainer is not None else self.lr
            raise InputError(None, f"training diverged: the loss is not finite at epoch {self.current_epoch}, "
                                   f"step {self.global_step} (learning rate {rate:g}); train again with a lower lr "
                                   "into another --out")
        return total

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        """The outputs go to the callbacks' ``on_validation_batch_end`` (validation PQ scores them)."""
        return {k: v.detach() for k, v in self._step(batch, "val")[1].items()}

    def configure_optimizers(self) -> Any:
        """AdamW; the plateau scheduler is stepped by :class:`PlateauStep` right after validation, *before* the
        epoch's checkpoints are written (Lightning steps it after them, so a resumed run would miss one step).
        With ``lr_steps`` the rate follows that table instead (an epoch scheduler Lightning steps, saves and
        restores itself)."""
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        if self.lr_steps is not None:
            table = sorted(self.lr_steps.items())
            base = self.lr

            def factor(epoch: int) -> float:
                return [lr for start, lr in table if start <= epoch][-1] / base

            return {"optimizer": opt,
                    "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, factor), "interval": "epoch"}}
        self._scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode=MONITOR_MODES[self.monitor], factor=self.plateau.factor, patience=self.plateau.patience, min_lr=self.plateau.min_lr)
        if self._scheduler_state is not None:
            self._scheduler.load_state_dict(self._scheduler_state)
        return opt

    def step_plateau(self, value: float) -> None:
        if self._scheduler is not None:
            self._scheduler.step(value)

    # -- checkpoints ---------------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Runs after the callbacks' hooks, so the weight-averaging copy of the raw weights is stripped too."""
        for key in ("state_dict", RAW_STATE_KEY):
            if key in checkpoint:
                checkpoint[key] = {k: v for k, v in checkpoint[key].items() if not k.startswith(ENCODER_PREFIX)}
        checkpoint[IDENTITY_KEY] = identity_record(self.encoder_identity, self.class_names, self.mpp)
        if self._scheduler is not None:
            checkpoint[PLATEAU_KEY] = self._scheduler.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        check_identity(checkpoint, self.encoder_identity, self.class_names, where=None, mpp=self.mpp)
        self._scheduler_state = checkpoint.get(PLATEAU_KEY)
        encoder = self.network.encoder
        if encoder is not None:  # put the (not saved) frozen weights back so the loads stay strict
            for key in ("state_dict", RAW_STATE_KEY):
                if key in checkpoint:
                    checkpoint[key].update({ENCODER_PREFIX + k: v for k, v in encoder.state_dict().items()})
