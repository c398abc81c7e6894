"""The benchmark matrix: its cells (:class:`CellTask`, in :func:`expand`'s stable order) and what a cell
function gives back (:class:`CellOutput`). Shared by the runner and the cell function, which import it, not
each other."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from cellprobe.bench import layout
from cellprobe.bench.bench_config import BenchConfig, DatasetSpec, EncoderEntry, FoldSpec, TestDataset


@dataclass(frozen=True)
class CellTask:
    """Everything one cell needs: its identity and the specs it was expanded from."""

    cell: layout.Cell
    dataset: DatasetSpec
    fold: FoldSpec
    encoder: EncoderEntry
    config: BenchConfig
    bench_dir: Path | None = None  # set by run_bench
    progress: Callable[[str, int, int], None] | None = None  # (label, done, total) inside a cell, e.g. epochs
    test_only: tuple[TestDataset, ...] = ()  # the test-only datasets this cell is also scored on

    @property
    def test_only_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.test_only)

    def feature_cache_dir(self) -> Path | None:
        """A feature cache shared by the cells that encode the same images with the same weights (seeds of a
        pretrained encoder); random weights depend on the seed, so each seed gets its own."""
        if self.bench_dir is None:
            return None
        c = self.cell
        key = f"{c.dataset}__f{c.fold}__{c.encoder}__{Path(c.weights).name}"
        if c.weights == "random":
            key += f"__s{c.seed}"
        return self.bench_dir / "feature_cache" / layout.safe_name(key)


@dataclass
class CellOutput:
    """What a cell function returns: the metrics summary, the per-image table and extra facts, and the same
    for each test-only dataset it was scored on (``test_only``: name → its scores)."""

    summary: dict[str, Any]
    per_image: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)
    examples: dict[str, np.ndarray] | None = None
    test_only: dict[str, layout.Scores] = field(default_factory=dict)


class CellFn(Protocol):
    def __call__(self, task: CellTask, work_dir: Path) -> CellOutput: ...


def expand(config: BenchConfig) -> Iterator[CellTask]:
    """The matrix in a stable order: dataset, fold, encoder, weights, seed."""
    for dataset in config.datasets:
        test_only = tuple(config.test_datasets_for(dataset.name))
        for f, fold in enumerate(dataset.folds):
            for encoder in config.encoders:
                for weights in encoder.weights:
                    for seed in config.seeds:
                        cell = layout.Cell(dataset.name, encoder.name, weights, f, seed)
                        yield CellTask(cell, dataset, fold, encoder, config, test_only=test_only)


def unfinished_cells(bench_dir: Path, config: BenchConfig) -> list[tuple[layout.Cell, bool]]:
    """The cells of ``config``'s matrix with no finished result in ``bench_dir`` (each with whether it failed:
    its error.txt is there), in matrix order: what a report of the folder does not cover."""
    return [(t.cell, (layout.cell_dir(bench_dir, t.cell) / layout.ERROR).is_file()) for t in expand(config)
            if not layout.is_done(bench_dir, t.cell, t.test_only_names)]

