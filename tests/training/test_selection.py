"""Validation PQ as the selection metric: the per-batch score, and a run that selects on it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from tests.training.tiny import tiny_config

from cellprobe.data.fixtures import synthetic_set
from cellprobe.data.targets import make_targets
from cellprobe.postprocess.params import PostprocessParams
from cellprobe.run import run_folder as R
from cellprobe.run.checkpoint import load_checkpoint
from cellprobe.run.train_config import train_config
from cellprobe.training import train
from cellprobe.training.selection import batch_pq


def _oracle_outputs(inst: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder-shaped outputs made from the truth: confident semantic logits, exact distance maps."""
    sem, dist = [], []
    for labels in inst:
        t = make_targets(labels, (labels > 0).astype(np.int64))
        sem.append(np.eye(3, dtype=np.float32)[t.semantic].transpose(2, 0, 1) * 20.0)
        dist.append(t.distance)
    return torch.from_numpy(np.stack(sem)), torch.from_numpy(np.stack(dist))


def test_batch_pq_scores_oracle_high_and_misses_low():
    _, inst, _ = synthetic_set(4, seed=3, size=64, num_classes=1, n_nuclei=6)
    inst = np.stack(inst).astype(np.int64)
    sem, dist = _oracle_outputs(inst)
    params = PostprocessParams(min_size=3)
    pq = batch_pq(sem, dist, torch.from_numpy(inst), params)
    assert pq.shape == (4,) and pq.mean() >= 0.95 and np.all(pq >= 0.85), pq
    # shifted truth: the same maps score far lower against another image's nuclei
    wrong = batch_pq(sem, dist, torch.from_numpy(np.roll(inst, 1, axis=0)), params)
    assert np.all(wrong < 0.5), wrong
    # an image with neither true nor predicted nuclei scores what the evaluation gives it (0, as in the
    # official CoNIC code), so the mean over batches equals the evaluated mean
    empty = np.zeros((1, 64, 64), np.int64)
    sem0, dist0 = _oracle_outputs(empty)
    assert batch_pq(sem0, dist0, torch.from_numpy(empty), params)[0] == 0.0


def test_selection_config_checks():
    cfg = train_config({"output": "x", "encoder": {"name": "efficientnet-lite0"}, "data": {"path": "d"}})
    assert cfg.selection.monitor == "val_loss" and cfg.selection.mode == "min"
    cfg = train_config(cfg, {"selection.monitor": "val_pq", "selection.postprocess.min_size": 7})
    assert cfg.selection.mode == "max" and cfg.selection.postprocess.min_size == 7
    from cellprobe.errors import InputError

    with pytest.raises(InputError, match="monitor"):
        train_config(cfg, {"selection.monitor": "val_dice"})


def test_run_selects_on_validation_pq(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, tmp_path / "pq", epochs=3, cache_views=1,
                      selection={"monitor": "val_pq", "postprocess": {"min_size": 3, "body_threshold": 0.45, "contour_step": 2}})
    run_dir = train(cfg).path
    log = pd.read_csv(run_dir / R.LOGS / "metrics.csv")
    scores = log.dropna(subset=["val_pq"]).groupby("epoch")["val_pq"].last()
    assert list(scores.index) == [0, 1, 2]
    assert ((scores >= 0) & (scores <= 1)).all()
    info = json.loads((run_dir / R.STAMP).read_text())["info"]
    assert info["monitor"] == "val_pq"
    assert info["best_val_pq"] == pytest.approx(scores.max(), abs=1e-6)
    best_epoch = int(scores[scores == scores.max()].index[0])  # ties keep the first
    assert load_checkpoint(run_dir / R.BEST)["epoch"] == best_epoch
    # before tuning, the run post-processes with the thresholds it was selected with, and tuning starts there
    from cellprobe.evaluation import tune
    from cellprobe.inference.segmenter import Segmenter

    selected = PostprocessParams(min_size=3, body_threshold=0.45, contour_step=2)  # not the defaults
    assert Segmenter(run_dir).params == selected
    tune(run_dir)
    first = pd.read_csv(run_dir / "tune.csv").iloc[0]
    assert all(first[name] == getattr(selected, name) for name in first.index if name != "pq")
    assert (run_dir / R.POSTPROCESS).is_file()
