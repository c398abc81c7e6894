"""Evaluation of trained runs: ``tune(run_dir)`` fits the post-processing thresholds on validation patches,
``evaluate(run_dir, data, split)`` scores a split with the metrics engine. Both see a run through the
inference layer's :class:`~cellprobe.inference.segmenter.Segmenter`; torch loads on first use."""

from cellprobe.evaluation.evaluate import evaluate
from cellprobe.evaluation.tune import tune

__all__ = ["evaluate", "tune"]
