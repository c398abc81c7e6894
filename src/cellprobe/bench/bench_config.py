"""The benchmark config: which encoders, datasets, folds and seeds, and how each cell trains."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from cellprobe.config import StrictModel


class FoldSpec(StrictModel):
    """Which split of the dataset trains, validates and tests. ``val: null`` splits validation off the
    training split by source image (never by patch) inside the training module."""

    train: str = "train"
    val: str | None = None
    test: str = "test"


class DatasetSpec(StrictModel):
    name: str
    path: Path
    format: str | None = None  # reader name for cellprobe.data.open_dataset; None: detected
    folds: list[FoldSpec] = Field(default_factory=lambda: [FoldSpec()], min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)  # extra reader options


class EncoderEntry(StrictModel):
    name: str
    weights: list[str] = Field(default_factory=lambda: ["pretrained"], min_length=1)  # or "random", or a path
    group: Literal["general", "histopathology"] | None = None  # None: from the encoder registry


class BenchConfig(StrictModel):
    """A matrix encoders × weights × datasets × folds × seeds; every cell trains one decoder and evaluates it."""

    name: str = "bench"
    output: Path | None = None  # default BENCH_DIR when the CLI gets none
    datasets: list[DatasetSpec] = Field(min_length=1)
    encoders: list[EncoderEntry] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    training: dict[str, Any] = Field(default_factory=dict)  # training config overrides (training module's keys)
    feature_cache: bool = True  # train on cached frozen features (shared by cells of one encoder)
    examples: int = Field(3, ge=0)  # test patches with predictions kept per cell for the report
    # every cell fits its post-processing thresholds on its own validation patches before the test split is
    # scored (the watershed thresholds that suit one decoder's maps do not suit another's)
    tune: bool = True
    tune_metric: str = "pq"
    tta: int = Field(1, ge=1, le=8)  # dihedral views averaged in tuning and evaluation
    on_error: Literal["stop", "continue"] = "continue"

    @model_validator(mode="after")
    def _unique(self) -> BenchConfig:
        names = [d.name for d in self.datasets]
        if len(set(names)) != len(names):
            raise ValueError(f"dataset names must be unique, got {names}")
        encoders = [e.name for e in self.encoders]
        if len(set(encoders)) != len(encoders):
            raise ValueError(f"encoder names must be unique, got {encoders}")
        return self

    def resolve_paths(self, base: Path) -> BenchConfig:
        """Relative dataset paths are relative to the config file's folder."""
        for d in self.datasets:
            if not d.path.is_absolute():
                d.path = (base / d.path).resolve()
        return self
