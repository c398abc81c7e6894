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
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from cellprobe.config import (
    ConfigKeyError,
    Seed,
    StrictModel,
    config_origin,
    expand_dotted,
    int_choice,
    key_error,
    load_yaml,
    override_of,
    parse_config,
    plain_data,
    with_overrides,
)
from cellprobe.data.augment import AugmentConfig
from cellprobe.data.targets import TargetConfig
from cellprobe.decoder.decoder_config import DecoderConfig, LossConfig
from cellprobe.encoders.registry import INPUT_SCALE_RANGE, Fit
from cellprobe.errors import InputError
from cellprobe.machine import usable_cores
from cellprobe.postprocess.params import PostprocessParams

#: patches per batch beyond any memory (a typo such as 1e20 is refused, not met as an overflow)
MAX_BATCH = 65536
#: the largest learning rate: AdamW steps each weight by about the rate, so past 1 the decoder only diverges
#: (and past float32's range, 3.4e38, torch fails inside the optimizer step)
MAX_LR = 1.0
#: dihedral views of the feature cache: the identity view only, or all 8
CacheViews = int_choice(1, 8)


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

    @model_validator(mode="after")
    def _validation_held_out(self) -> DataSplits:
        """Validation picks the best checkpoint, stops the run and tunes the thresholds: on images the network
        trains on it would pick what fits them best, not what generalises."""
        if self.val_split is not None and self.val_split == self.train_split:
            raise key_error(["val_split", "train_split"], f"val_split '{self.val_split}' is also the train_split "
                                                          "(validation would not be held out)")
        if self.val_split is not None and self.train_split is None:
            raise key_error(["train_split", "val_split"], f"train_split null trains on every image, val_split "
                                                          f"'{self.val_split}' among them (validation would not be "
                                                          "held out)")
        return self


class DataSettings(StrictModel):
    """How validation is drawn when there is no ``val_split``: ``val_fraction`` of the training split's source
    images (never single patches: patches of one image overlap); ``val_fraction: 0`` trains on every patch with
    no validation at all: a refit (``cellprobe refit``). ``split_seed`` draws those validation images (null: the
    run's ``seed``); runs that differ only in ``seed`` but share it train and validate on the same patches, so
    they can be tuned and ensembled together."""

    val_fraction: float = Field(0.2, ge=0, lt=1)
    split_seed: Seed | None = None


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
    # wall-clock budget of the fit (counted across resumes); at most 10^7 (19 years): Lightning's timer is a
    # timedelta, which ends at 1.4e12 minutes
    max_minutes: float | None = Field(None, gt=0, le=1e7)


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
    cache_views: CacheViews = 8
    epochs: int = Field(40, ge=1)
    batch_size: int = Field(8, ge=1, le=MAX_BATCH)
    lr: float = Field(1e-3, gt=0, le=MAX_LR)
    weight_decay: float = Field(1e-4, ge=0)
    ema_decay: float | None = Field(None, gt=0, lt=1)
    # JSON, which strict parsing goes through, makes every mapping key a string (and pydantic reads "1" back as 1):
    # the epochs of user config are checked to be integers before (check_epoch_keys); a run's stored config.yaml
    # written before integer keys were kept (config.dump_config) has them as strings, and still opens
    lr_steps: dict[int, float] | None = None
    plateau: PlateauSection = Field(default_factory=PlateauSection)
    early_stopping: EarlyStoppingSection = Field(default_factory=EarlyStoppingSection)
    selection: SelectionSection = Field(default_factory=SelectionSection)
    targets: TargetConfig = Field(default_factory=TargetConfig)
    decoder: DecoderConfig = Field(default_factory=DecoderConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)  # online mode only (cached: dihedral views)
    trainer: TrainerSection = Field(default_factory=TrainerSection)

    @model_validator(mode="after")
    def _mode_options(self) -> TrainSettings:
        """Options of the other training mode would change nothing: refused, not ignored."""
        if self.cache_features:
            changed = [f"augment.{k}" for k in self.augment.non_default()]
            if changed:
                raise key_error([changed[0], "cache_features"], f"{', '.join(changed[:3])} applies only with "
                                "cache_features: false (online augmentation); cached training draws one of the "
                                "cache_views dihedral views per patch and epoch, nothing else")
        elif self.non_default("cache_views"):
            raise key_error(["cache_views", "cache_features"], "cache_views applies only with cache_features: true; "
                            "online training augments with the augment section")
        return self

    @model_validator(mode="after")
    def _schedule(self) -> TrainSettings:
        if self.lr_steps is not None:
            if 0 not in self.lr_steps:
                raise key_error("lr_steps", "lr_steps must give the learning rate of epoch 0")
            if any(e < 0 for e in self.lr_steps) or any(not 0 < lr <= MAX_LR for lr in self.lr_steps.values()):
                raise key_error("lr_steps", f"lr_steps: epochs must be >= 0 and learning rates > 0 and at most "
                                            f"{MAX_LR:g}")
            late = sorted(e for e in self.lr_steps if e >= self.epochs)
            if late:
                raise key_error(["lr_steps", "epochs"], f"lr_steps gives a rate from epoch {late[0]}, but the run "
                                f"trains epochs 0..{self.epochs - 1} (epochs {self.epochs}): it would never apply")
            if self.lr_steps[0] != self.lr:
                raise key_error(["lr_steps", "lr"], f"lr_steps gives epoch 0 the rate {self.lr_steps[0]}, lr is "
                                f"{self.lr}: set both to the same value")
        elif self.plateau.min_lr >= self.lr:
            raise key_error(["plateau.min_lr", "lr"], f"plateau.min_lr {self.plateau.min_lr} is not below lr "
                            f"{self.lr}: the plateau could never lower the learning rate")
        top = max(self.lr_steps.values()) if self.lr_steps else self.lr
        if top * self.weight_decay >= 1:
            raise key_error(["weight_decay", "lr_steps" if self.lr_steps else "lr"], f"weight_decay "
                            f"{self.weight_decay:g} times the learning rate {top:g} is not below 1: AdamW multiplies "
                            "the weights by 1 - lr·weight_decay each step, which would zero or flip them")
        return self


#: the validation-drawing settings, which only a training split without ``val_split`` uses
DRAW_KEYS = ("val_fraction", "split_seed")


def check_unused_settings(config: TrainConfig) -> None:
    """Settings of a user's training config that this run would not use, refused: ``val_fraction`` and
    ``split_seed`` beside a ``val_split``; the plateau beside ``lr_steps`` (which replace it); early stopping
    and the selection metric without validation; ``cache_dir`` without a feature cache; ``refit_of`` (refit's).
    Not a validator: a benchmark's ``training`` section gives them
    to every fold, some of which use them, and a refit keeps its reference's plateau while replaying its rates."""
    if config.data.val_split is not None:
        unused = config.data.non_default(*DRAW_KEYS)
        if unused:
            raise InputError(None, f"config key 'data.{unused[0]}': applies only without data.val_split (validation "
                                   f"here is the split '{config.data.val_split}')")
    if config.refit_of is not None:
        raise InputError(None, "config key 'refit_of': is written by `cellprobe refit` (the run whose schedule and "
                               "thresholds a refit took); train does not use it")
    unused = {"without lr_steps (they replace the plateau)": ("plateau",) if config.lr_steps is not None else (),
              "with validation": () if config.data.has_validation else ("early_stopping", "selection.monitor"),
              "with cache_features: true (a feature cache)": () if config.cache_features else ("cache_dir",)}
    for when, keys in unused.items():
        changed = config.non_default(*keys) if keys else []
        if changed:
            raise InputError(None, f"config key '{changed[0]}': applies only {when}; this run would not use it")


def check_epoch_keys(data: dict[str, Any]) -> None:
    """User config's ``lr_steps`` epochs are integers as written (YAML ``1``, not ``'1'`` nor ``1.0``): strict
    parsing goes through JSON, whose keys are all strings, so only the raw mapping tells them apart. Raises
    :class:`~cellprobe.config.ConfigKeyError` about ``lr_steps``."""
    steps = data.get("lr_steps")
    if isinstance(steps, dict):
        for epoch in steps:
            if not isinstance(epoch, int) or isinstance(epoch, bool):
                raise ConfigKeyError("lr_steps", f"config key 'lr_steps': epoch {epoch!r} is not an integer (write "
                                                 "it unquoted, e.g. {0: 0.001, 10: 0.0005})")


class TrainConfig(TrainSettings):
    """One decoder training run: :class:`TrainSettings` plus what names the run.

    ``encoder`` and ``data`` gain the encoder's identity and the data source and splits; ``seed`` seeds the run;
    ``cache_dir``: where the feature cache lives (shared by runs of the same encoder and data); default
    ``<output>/feature_cache``. ``refit_of``: the run whose schedule and post-processing a refit took
    (provenance only).
    """

    #: the run folder's config.yaml keeps ``lr_steps``' epochs integers: it reads back as user config (``-c``)
    dump_int_keys: ClassVar[bool] = True

    encoder: EncoderSection
    data: DataSection
    output: Path
    seed: Seed = 0
    cache_dir: Path | None = None
    refit_of: str | None = None

    @model_validator(mode="after")
    def _schedule_without_validation(self) -> TrainConfig:
        if not self.data.has_validation and self.lr_steps is None:
            raise key_error(["lr_steps", "data.val_fraction", "data.val_split"],
                            "a run without validation (data.val_fraction 0) needs lr_steps: the plateau follows a "
                            "validation metric")
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
    and before ``overrides``. A TrainConfig keeps where its keys were given (:func:`cellprobe.config.config_source`)."""
    given: dict[str, str] = {}
    if isinstance(source, TrainConfig):
        data = plain_data(source)  # integer epoch keys stay integers
        where, given = config_origin(source)
    elif isinstance(source, dict):
        data, where = source, None
    else:
        data, where = load_yaml(source), source
    given = {**given, **{key: f"--set {key}" for key in overrides or {}}}  # a bad override: as the user gave it
    data = with_overrides(expand_dotted(data), overrides)
    try:
        check_epoch_keys(data)
    except ConfigKeyError as exc:
        raise InputError(override_of(exc.keys, given) or where, exc.problem) from None
    return parse_config(TrainConfig, data, where, given)


#: data-loading workers (and torch threads) allowed per usable core: loading waits on disk as much as on the
#: CPU, so a few per core is common (the presets' 8 workers and the demo's 2 threads run on a 2-core or 1-core
#: machine), while hundreds only exhaust memory and processes
DATA_WORKERS_PER_CORE = 4


def check_machine(trainer: TrainerSection, section: str = "trainer") -> None:
    """What ``trainer`` asks of the machine that is about to train, checked before anything is made: no more
    ``devices`` than its accelerator has (Lightning would start a DDP rank per device, several on one CPU core,
    and pad every rank's patches with repeats), no more data ``num_workers`` than usable cores. Machine-dependent,
    so not part of validation (a run trained on 4 GPUs opens on a laptop): the trainer's caller checks.
    Raises :class:`InputError` naming the key (``config key 'trainer.devices': ...``)."""
    cores = usable_cores()
    if trainer.num_workers > DATA_WORKERS_PER_CORE * cores:
        raise InputError(None, f"config key '{section}.num_workers': {trainer.num_workers} data-loading workers, "
                               f"but this machine has {cores} usable CPU cores (at most "
                               f"{DATA_WORKERS_PER_CORE * cores}: {DATA_WORKERS_PER_CORE} per core)")
    if trainer.threads is not None and trainer.threads > DATA_WORKERS_PER_CORE * cores:
        raise InputError(None, f"config key '{section}.threads': {trainer.threads} torch threads, but this machine "
                               f"has {cores} usable CPU cores (at most {DATA_WORKERS_PER_CORE * cores}: "
                               f"{DATA_WORKERS_PER_CORE} per core)")
    if trainer.devices == "auto":
        return
    accelerator = trainer.accelerator
    if accelerator == "auto":
        import torch

        accelerator = "cuda" if torch.cuda.is_available() else (
            "mps" if torch.backends.mps.is_available() else "cpu")
    if accelerator == "cpu":
        have, unit = cores, "usable CPU cores"
    elif accelerator == "mps":
        have, unit = 1, "MPS device"
    else:
        import torch

        have, unit = torch.cuda.device_count(), "GPUs"
    if trainer.devices > have:
        raise InputError(None, f"config key '{section}.devices': {trainer.devices} devices, but this machine has "
                               f"{have} {unit} for accelerator '{accelerator}' (at most {have})")
