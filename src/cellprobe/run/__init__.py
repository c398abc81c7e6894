"""A trained run: its folder and files (:mod:`~cellprobe.run.run_folder`), its config
(:mod:`~cellprobe.run.train_config`), safe checkpoints (:mod:`~cellprobe.run.checkpoint`), ensemble
membership (:mod:`~cellprobe.run.ensemble`) and its network (:mod:`~cellprobe.run.network`, torch loaded on
first use). Training writes runs; inference, evaluation and the benchmark read them."""

from cellprobe.run.run_folder import Run, RunStamp
from cellprobe.run.train_config import TrainConfig, train_config

__all__ = ["Run", "RunStamp", "TrainConfig", "train_config"]
