"""The training config: everything a run depends on, validated, stored resolved in the run folder.

Two models own its keys. :class:`TrainSettings` holds every setting of how a decoder trains: the top-level keys
a benchmark changes most (``epochs``, ``cache_features``, ...), the sections that group the rest, and the
encoder's and data's settings (``encoder.taps``, ``encoder.input_scale``, ``data.val_fraction``,
``data.split_seed``); it is the benchmark's ``training:`` section. :class:`TrainConfig` adds what names one run:
its ``output``, ``seed``, encoder (``encoder.name``, ``encoder.weights``) and data (``data.path``,
``data.format``, ``data.options``, ``data.train_split``, ``data.val_split``), its ``cache_dir`` and ``refit_of``.
``cellprobe train --set epochs=3`` and the benchmark's ``training:`` mapping use the same dotted keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, Strict, model_validator

from cellprobe.config import StrictModel, expand_dotted, load_yaml, parse_config, with_overrides
from cellprobe.data.augment import AugmentConfig
from cellprobe.data.targets import TargetConfig
from cellprobe.decoder.decoder_config import DecoderConfig, LossConfig
from cellprobe.encoders.registry import INPUT_SCALE_RANGE, Fit
from cellprobe.postprocess.params import PostprocessParams

#: seeds feed numpy and Lightning, which take 0 .. 2**32 - 1
MAX_SEED = 2**32 - 1
#: patches per batch beyond any memory (a typo such as 1e20 is refused, not met as an overflow)
MAX_BATCH = 65536


class EncoderSettings(StrictModel):
    """How the frozen encoder is used: optional ``taps`` (None: the registry's), ``fit``: how images are fitted
    to the encoder's input (None: the registry's default; ``card``: its model card's preprocessing, where the
    registry has one; ``cellprobe encoders`` lists both), and ``input_scale``: magnification of the images
    before the encoder (the decoder stays at image size)."""

    taps: list[int] | None = None
    fit: Fit | None = None
    input_scale: float = Field(1.0, ge=INPUT_SCALE_RANGE[0], le=INPUT_SCALE_RANGE[1])


class EncoderSection(EncoderSettings):
    """Which frozen encoder: a registry name and ``pretrained`` / ``random`` / a weights file."""

    name: str
    weights: str = "pretrained"


class DataSource(StrictModel):
    """A dataset on disk: its folder, its reader (``format`` of ``cellprobe.data.open_dataset``; None:
    detected) and extra reader ``options``. A benchmark's datasets are data sources too."""

    path: Path
    format: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class DataSplits(StrictModel):
    """Which splits of a data source train and validate; ``val_split: null`` draws validation images from the
    training split (:class:`DataSettings`). A benchmark's folds are data splits too."""

    train_split: str | None = "train"
    val_split: str | None = None


class DataSettings(StrictModel):
    """How validation is drawn when there is no ``val_split``: ``val_fraction`` of the training split's source
    images (never single patches: patches of one image overlap); ``val_fraction: 0`` trains on every patch with
    no validation at all: a refit (``cellprobe refit``). ``split_seed`` draws those validation images (null: the
    run's ``seed``); runs that differ only in ``seed`` but share it train and validate on the same patches, so
    they can be tuned and ensembled together."""

    val_fraction: float = Field(0.2, ge=0, lt=1)
    split_seed: int | None = Field(None, ge=0, le=MAX_SEED)


class DataSection(DataSettings, DataSplits, DataSource):
    """The training data: a data source, its splits and how validation is drawn."""

    @property
    def has_validation(self) -> bool:
        return self.val_split is not None or self.val_fraction > 0


#: whether a smaller or a larger value of each selection metric is better
MONITOR_MODES: dict[str, Literal["min", "max"]] = {"val_loss": "min", "val_pq": "max"}


class SelectionSection(StrictModel):
    """What picks ``best.ckpt`` and drives the learning-rate plateau and early stopping.

    ``val_loss``: the summed validation loss. ``val_pq``: binary PQ of the validation patches (mean over
    patches, as evaluated) after post-processing with ``postprocess``, fixed during training (``cellprobe tune``
    refits it afterwards). The summed loss includes the cell-type terms, whose epoch-to-epoch noise can stop a
    run and halve its learning rate while its segmentation still improves (BENCHMARKS.md, "Segmenter").
    """

    monitor: Literal["val_loss", "val_pq"] = "val_loss"
    postprocess: PostprocessParams = Field(default_factory=PostprocessParams)

    @property
    def mode(self) -> Literal["min", "max"]:
        return MONITOR_MODES[self.monitor]


class PlateauSection(StrictModel):
    """ReduceLROnPlateau on the selection metric (``selection.monitor``)."""

    factor: float = Field(0.5, gt=0, lt=1)
    patience: int = Field(3, ge=0)
    min_lr: float = Field(1e-6, ge=0)


class EarlyStoppingSection(StrictModel):
    patience: int = Field(8, ge=1)
    min_delta: float = Field(0.0, ge=0)


class TrainerSection(StrictModel):
    """Lightning trainer settings. ``precision: auto`` is 16-bit mixed on a GPU, 32-bit on a CPU."""

    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    devices: Annotated[int, Field(ge=1)] | Literal["auto"] = 1
    strategy: Literal["auto", "ddp", "ddp_spawn"] = "auto"
    precision: Literal["auto", "32-true", "16-mixed", "bf16-mixed"] = "auto"
    num_workers: int = Field(0, ge=0)
    progress: bool = True
    log_every_n_steps: int = Field(10, ge=1)
    limit_train_batches: int | None = Field(None, ge=1)  # a cap per epoch (quick checks), None: all
    threads: int | None = Field(None, ge=1)  # torch CPU threads; None leaves torch's default
    max_minutes: float | None = Field(None, gt=0)  # wall-clock budget of the fit (counted across resumes)


class TrainSettings(StrictModel):
    """How a decoder trains, whatever its encoder, data and output: the benchmark's ``training:`` section, and
    the body of :class:`TrainConfig`.

    ``cache_features``: train on the frozen encoder's taps from the feature cache (all 8 dihedral views
    cached, one drawn per patch and epoch) instead of running the encoder with full augmentation (online).
    ``lr_steps``: the learning rate from each listed epoch on (0-based; epoch 0 must be listed, with ``lr``), replayed
    instead of the plateau: a refit replays the schedule its reference run's plateau took. None: the plateau
    on the selection metric. A run without validation needs it (nothing else would lower the rate), and has no
    early stopping: it trains ``epochs`` epochs, and ``best.ckpt`` is the last one.
    ``ema_decay``: keep an exponential moving average of the trainable weights (updated after every optimizer
    step, buffers included, the decay warmed up from 0.1; ``training/averaging.py``); validation, ``best.ckpt``
    and inference then use the average, and the raw weights travel in the checkpoints only to resume. None: no
    averaging.
    """

    encoder: EncoderSettings = Field(default_factory=EncoderSettings)
    data: DataSettings = Field(default_factory=DataSettings)
    cache_features: bool = True
    cache_views: Literal[1, 8] = 8
    epochs: int = Field(40, ge=1)
    batch_size: int = Field(8, ge=1, le=MAX_BATCH)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    ema_decay: float | None = Field(None, gt=0, lt=1)
    # JSON (and strict parsing through it) writes mapping keys as strings: epoch keys are read back as numbers
    lr_steps: dict[Annotated[int, Strict(False)], float] | None = None
    plateau: PlateauSection = Field(default_factory=PlateauSection)
    early_stopping: EarlyStoppingSection = Field(default_factory=EarlyStoppingSection)
    selection: SelectionSection = Field(default_factory=SelectionSection)
    targets: TargetConfig = Field(default_factory=TargetConfig)
    decoder: DecoderConfig = Field(default_factory=DecoderConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)  # online mode only (cached: dihedral views)
    trainer: TrainerSection = Field(default_factory=TrainerSection)

    @model_validator(mode="after")
    def _schedule(self) -> TrainSettings:
        if self.lr_steps is not None:
            if 0 not in self.lr_steps:
                raise ValueError("lr_steps must give the learning rate of epoch 0")
            if any(e < 0 for e in self.lr_steps) or any(not lr > 0 for lr in self.lr_steps.values()):
                raise ValueError("lr_steps: epochs must be >= 0 and learning rates > 0")
            if self.lr_steps[0] != self.lr:
                raise ValueError(f"lr_steps gives epoch 0 the rate {self.lr_steps[0]}, lr is {self.lr}: "
                                 "set both to the same value")
        return self


class TrainConfig(TrainSettings):
    """One decoder training run: :class:`TrainSettings` plus what names the run.

    ``encoder`` and ``data`` gain the encoder's identity and the data source and splits; ``seed`` seeds the run;
    ``cache_dir``: where the feature cache lives (shared by runs of the same encoder and data); default
    ``<output>/feature_cache``. ``refit_of``: the run whose schedule and post-processing a refit took
    (provenance only).
    """

    encoder: EncoderSection
    data: DataSection
    output: Path
    seed: int = Field(0, ge=0, le=MAX_SEED)
    cache_dir: Path | None = None
    refit_of: str | None = None

    @model_validator(mode="after")
    def _schedule_without_validation(self) -> TrainConfig:
        if not self.data.has_validation and self.lr_steps is None:
            raise ValueError("a run without validation (data.val_fraction 0) needs lr_steps: the plateau "
                             "follows a validation metric")
        return self

    def feature_cache_dir(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else self.output / "feature_cache"

    @property
    def split_seed(self) -> int:
        """The seed that draws the validation images from the training split."""
        return self.seed if self.data.split_seed is None else self.data.split_seed


def train_config(source: TrainConfig | dict[str, Any] | str | Path,
                 overrides: dict[str, Any] | None = None) -> TrainConfig:
    """A TrainConfig from a model, a mapping (e.g. the benchmark's) or a YAML file, with dotted overrides.

    Dotted keys of the mapping or file (``"trainer.threads"``) are overrides too, applied after its plain keys
    and before ``overrides``."""
    if isinstance(source, TrainConfig):
        data, where = source.model_dump(mode="json"), None
    elif isinstance(source, dict):
        data, where = source, None
    else:
        data, where = load_yaml(source), source
    given = {key: f"--set {key}" for key in overrides or {}}  # a bad override is reported as the user gave it
    return parse_config(TrainConfig, with_overrides(expand_dotted(data), overrides), where, given)
