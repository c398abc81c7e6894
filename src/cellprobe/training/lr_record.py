"""Records in the run itself the learning rate each epoch trains with, so that a refit can replay the schedule
without reading back framework logs."""

from __future__ import annotations

import lightning as L

from cellprobe.run.run_folder import Run


class LearningRateRecord(L.Callback):
    """At the start of every epoch (after the plateau or ``lr_steps`` has set it), the rate of the first
    parameter group goes into ``run.json`` (rank zero only)."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero and trainer.optimizers:
            self.run.record_learning_rate(trainer.current_epoch, trainer.optimizers[0].param_groups[0]["lr"])
