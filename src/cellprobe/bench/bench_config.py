"""The benchmark config: which encoders, datasets, folds and seeds, and how each cell trains.

One vocabulary with the training config (:mod:`cellprobe.run.train_config`): a dataset is its
:class:`~cellprobe.run.train_config.DataSource` with a name and folds, a fold its
:class:`~cellprobe.run.train_config.DataSplits` with a test split, and ``training`` its
:class:`~cellprobe.run.train_config.TrainSettings`, keys and checks included. What a cell decides (encoder name
and weights, data source and splits, seed, output, feature cache folder) is refused in ``training``.
:func:`cell_train_data` puts the two together; every dataset and fold is checked that way when the file loads.
"""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from cellprobe import atomic
from cellprobe.config import (
    KEY_ERROR,
    ConfigKeyError,
    Seed,
    StrictModel,
    expand_dotted,
    key_error,
    plain_data,
    with_overrides,
)
from cellprobe.data.catalog import PLAIN_NAME
from cellprobe.run.train_config import (
    DRAW_KEYS,
    DataSection,
    DataSettings,
    DataSource,
    DataSplits,
    EncoderSection,
    EncoderSettings,
    TrainConfig,
    TrainSettings,
    check_epoch_keys,
)


class FoldSpec(DataSplits):
    """Which split of the dataset trains, validates and tests (the training config's ``data.train_split`` and
    ``data.val_split``, plus ``test_split``). ``val_split: null`` splits validation off the training split by
    source image (never by patch): ``training.data.val_fraction`` of it."""

    test_split: str = "test"

    @model_validator(mode="after")
    def _no_leakage(self) -> FoldSpec:
        """No split both trains (or validates) and tests (validation is held out by :class:`DataSplits`)."""
        if self.test_split == self.train_split:
            raise key_error(["test_split", "train_split"], f"test_split '{self.test_split}' is also the train_split (the test images would be "
                             "trained on)")
        if self.test_split == self.val_split:
            raise key_error(["test_split", "val_split"], f"test_split '{self.test_split}' is also the val_split (the test images would tune "
                             "the model)")
        if self.train_split is None:
            raise key_error(["train_split", "test_split"], f"train_split null trains on every image, test_split "
                                                           f"'{self.test_split}' among them (the test images would be "
                                                           "trained on)")
        return self


class DatasetSpec(DataSource):
    """A named data source (the training config's ``data.path``, ``data.format``, ``data.options``) and its
    folds."""

    # a plain name: it becomes part of folder names (cells, feature caches) under the benchmark folder
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    folds: list[FoldSpec] = Field(default_factory=lambda: [FoldSpec()], min_length=1)


class TestDataset(DataSource):
    """A dataset only tested on (cross-dataset evaluation): every cell trained on a dataset of ``trained_on``
    (default: every dataset) is also scored on its ``split``, class-agnostic where its classes differ from the
    cell's (:func:`cellprobe.evaluation.evaluate`), and the report sets those scores beside the in-domain ones."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    split: str = "test"
    trained_on: list[str] | None = Field(None, min_length=1)


class EncoderEntry(StrictModel):
    name: str
    weights: list[str] = Field(default_factory=lambda: ["pretrained"], min_length=1)  # or "random", or a path
    group: Literal["general", "histopathology"] | None = None  # None: from the encoder registry


def _cell_decided() -> dict[str, str]:
    """Each training-config key a cell decides (absent from :class:`TrainSettings`) → what decides it."""
    by = {"encoder": "the 'encoders' list", "data": "the 'datasets' list",
          "data.train_split": "the dataset's 'folds'", "data.val_split": "the dataset's 'folds'",
          "seed": "'seeds'", "output": "the runner (the cell's folder)",
          "cache_dir": "the runner (one feature cache per dataset, fold, encoder and weights)",
          "refit_of": "cellprobe refit"}
    keys = {k: k for k in set(TrainConfig.model_fields) - set(TrainSettings.model_fields)}
    for section, full, settings in (("encoder", EncoderSection, EncoderSettings),
                                    ("data", DataSection, DataSettings)):
        keys |= {f"{section}.{k}": section for k in set(full.model_fields) - set(settings.model_fields)}
    return {key: by.get(key, by.get(group, "each cell")) for key, group in sorted(keys.items())}


#: the training-config keys that each cell decides, refused in the benchmark's ``training`` section
CELL_DECIDED = _cell_decided()


class BenchTraining(TrainSettings):
    """The benchmark's ``training`` section: the training config's settings (same keys, same checks; dotted
    keys such as ``trainer.threads`` allowed), without what each cell decides (:data:`CELL_DECIDED`)."""

    @classmethod
    def prepare_input(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Dotted keys (``trainer.threads``) expanded; keys a cell decides refused with their reason (keys relative
        to the section: :class:`BenchConfig` puts them under ``training``)."""
        data = expand_dotted(data)
        for key, by in CELL_DECIDED.items():
            section, _, sub = key.partition(".")
            node = data.get(section) if sub else data
            if isinstance(node, dict) and (sub or section) in node:
                raise ConfigKeyError(key, f"config key 'training': '{key}' is decided per cell, by {by}; remove it "
                                          "from 'training'")
        check_epoch_keys(data)
        return data




class BenchConfig(StrictModel):
    """A matrix encoders × weights × datasets × folds × seeds; every cell trains one decoder and evaluates it."""

    @classmethod
    def prepare_input(cls, data: dict[str, Any]) -> dict[str, Any]:
        if isinstance(data.get("training"), dict):
            try:
                return {**data, "training": BenchTraining.prepare_input(data["training"])}
            except ConfigKeyError as exc:
                raise ConfigKeyError([f"training.{k}" for k in exc.keys], exc.problem) from None
        return data

    # a plain folder name: the default output is runs/bench/<name>, which '../x', '/abs' or '' would leave
    name: str = Field("bench", pattern=PLAIN_NAME)
    output: Path | None = None  # default BENCH_DIR when the CLI gets none
    datasets: list[DatasetSpec] = Field(min_length=1)
    test_datasets: list[TestDataset] = Field(default_factory=list)  # cross-dataset evaluation only
    encoders: list[EncoderEntry] = Field(min_length=1)
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1)
    training: BenchTraining = Field(default_factory=BenchTraining)  # how every cell trains
    examples: int = Field(3, ge=0)  # test patches with predictions kept per cell for the report
    # every cell fits its post-processing thresholds on its own validation patches before the test split is
    # scored (the watershed thresholds that suit one decoder's maps do not suit another's)
    tune: bool = True
    tune_metric: str = "pq"
    tta: int = Field(1, ge=1, le=8)  # dihedral views averaged in tuning and evaluation
    on_error: Literal["stop", "continue"] = "continue"

    @field_validator("tune_metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        """A metric the tuning knows (else every cell would fail after training)."""
        from cellprobe.postprocess.param_search import tunable_metrics

        if metric not in tunable_metrics():
            raise ValueError(f"unknown metric '{metric}' (known: {', '.join(tunable_metrics())})")
        return metric

    @model_validator(mode="after")
    def _unique(self) -> BenchConfig:
        names = [d.name for d in self.datasets]
        if len({n.casefold() for n in names}) != len(names):  # they name folders: 'a' and 'A' are one on macOS
            raise key_error("datasets", f"dataset names must be unique in any case (they name folders), got {names}")
        encoders = [e.name for e in self.encoders]
        if len(set(encoders)) != len(encoders):
            raise key_error("encoders", f"encoder names must be unique, got {encoders}")
        for i, e in enumerate(self.encoders):
            if len(set(e.weights)) != len(e.weights):
                raise key_error(f"encoders.{i}.weights", f"encoder '{e.name}': weights must be unique, got {e.weights}")
            labels = [atomic.portable_name(PurePath(w).name) for w in e.weights]
            if len(set(labels)) != len(labels):  # models and feature caches are known by the file's name
                raise key_error(f"encoders.{i}.weights", f"encoder '{e.name}': two weights files share a file name "
                                                         f"({e.weights}): the report would show them as one model "
                                                         "and their cells would share a feature cache; rename one")
        for d_i, d in enumerate(self.datasets):
            folds = [f.model_dump_json() for f in d.folds]
            for i, fold in enumerate(folds):
                if fold in folds[:i]:
                    raise key_error(f"datasets.{d_i}.folds", f"dataset '{d.name}': folds {folds.index(fold)} and {i} "
                                    "are the same splits (their cells would be duplicates)")
        if len(set(self.seeds)) != len(self.seeds):
            raise key_error("seeds", f"seeds must be unique, got {self.seeds}")
        return self

    @model_validator(mode="after")
    def _test_only(self) -> BenchConfig:
        """Test-only datasets have their own names and name trained datasets (that they are other data than
        what the cells train, validate and test on is checked on disk: ``runner.check_distinct_data``)."""
        trained = {d.name: d for d in self.datasets}
        seen = {name.casefold() for name in trained}  # names of folders: one in any case on macOS and Windows
        for i, t in enumerate(self.test_datasets):
            if t.name.casefold() in seen:
                raise key_error(f"test_datasets.{i}.name", f"test_datasets: the name '{t.name}' is already used "
                                "(in any case: it names a folder); every dataset needs its own")
            seen.add(t.name.casefold())
            if t.trained_on and len(set(t.trained_on)) != len(t.trained_on):  # as seeds and weights: no repeats
                raise key_error(f"test_datasets.{i}.trained_on", f"test_datasets '{t.name}': trained_on must be "
                                f"unique, got {t.trained_on}")
            for name in t.trained_on or []:
                if name not in trained:
                    raise key_error(f"test_datasets.{i}.trained_on", f"test_datasets '{t.name}': trained_on names "
                                    f"'{name}', which is not in 'datasets' ({', '.join(trained)})")
        return self

    @model_validator(mode="after")
    def _settings_used(self) -> BenchConfig:
        """Settings no cell would use are refused, not ignored."""
        if not self.tune and self.non_default("tune_metric"):
            raise key_error(["tune_metric", "tune"], "tune_metric applies only with tune: true (no cell tunes)")
        if all(f.val_split is not None for d in self.datasets for f in d.folds):
            unused = self.training.data.non_default(*DRAW_KEYS)
            if unused:
                raise key_error(f"training.data.{unused[0]}", f"training.data.{unused[0]} applies only to folds "
                                "without a val_split, and every fold here has one")
        t = self.training
        if t.lr_steps is not None and t.non_default("plateau"):
            raise key_error("training.plateau", "training.plateau applies only without lr_steps (they replace it)")
        validates = any(f.val_split is not None for d in self.datasets for f in d.folds) or t.data.val_fraction > 0
        if not validates and t.non_default("early_stopping", "selection.monitor"):
            raise key_error("training.early_stopping", "training.early_stopping and selection.monitor apply only "
                            "with validation, and no fold here validates")
        return self

    def test_datasets_for(self, dataset: str) -> list[TestDataset]:
        """The test-only datasets the cells trained on ``dataset`` are also scored on."""
        return [t for t in self.test_datasets if t.trained_on is None or dataset in t.trained_on]

    @model_validator(mode="after")
    def _cells_train(self) -> BenchConfig:
        """Every dataset and fold with ``training`` makes a valid training config (e.g. a fold without
        validation split needs ``training.data.val_fraction`` > 0 or ``training.lr_steps``)."""
        encoder = self.encoders[0]
        for d_i, dataset in enumerate(self.datasets):
            for f_i, fold in enumerate(dataset.folds):
                data = cell_train_data(self.training, dataset, fold, encoder.name, encoder.weights[0],
                                       self.seeds[0], Path("run"))
                try:
                    TrainConfig.model_validate(data)
                except ValidationError as exc:
                    first = exc.errors()[0]
                    loc = [str(p) for p in first["loc"]]
                    keys = ([".".join([*loc, k]) for k in first["ctx"]["keys"]] if first["type"] == KEY_ERROR
                            else [".".join(loc)] if loc else [])
                    # the keys as the benchmark config gives them (its training section, the dataset, the fold)
                    raise key_error([_bench_key(k, d_i, f_i) for k in keys],
                                    f"datasets.{d_i}.folds.{f_i} (dataset '{dataset.name}'): "
                                    f"{first['msg'].removeprefix('Value error, ')}") from None
        return self

    def resolve_paths(self, base: Path) -> BenchConfig:
        """Relative dataset paths, and a dataset's relative ``split_file`` reader option, are relative to the
        config file's folder."""
        for d in (*self.datasets, *self.test_datasets):
            if not d.path.is_absolute():
                d.path = (base / d.path).resolve()
            split_file = d.options.get("split_file")
            if isinstance(split_file, str) and not Path(split_file).is_absolute():
                d.options = {**d.options, "split_file": str((base / split_file).resolve())}
        return self


def _bench_key(key: str, dataset: int, fold: int) -> str:
    """Where the benchmark config gives the cell's training-config ``key``: its dataset, its fold, or ``training``."""
    if key in ("data.train_split", "data.val_split"):
        return f"datasets.{dataset}.folds.{fold}.{key.removeprefix('data.')}"
    if key in ("data.path", "data.format", "data.options") or key.startswith("data.options."):
        return f"datasets.{dataset}.{key.removeprefix('data.')}"
    if key.startswith(("encoder.name", "encoder.weights")):
        return "encoders"
    return f"training.{key}"


def cell_train_data(training: TrainSettings, dataset: DatasetSpec, fold: FoldSpec, encoder: str, weights: str,
                    seed: int, output: Path, cache_dir: Path | None = None) -> dict[str, Any]:
    """The training config of one cell, as a mapping: the benchmark's ``training`` section with the cell's
    encoder, data source and splits, seed, output and feature cache folder."""
    source = dataset.model_dump(mode="json", include=set(DataSource.model_fields))
    splits = fold.model_dump(mode="json", include=set(DataSplits.model_fields))
    cell = {"encoder.name": encoder, "encoder.weights": weights,
            **{f"data.{k}": v for k, v in {**source, **splits}.items()},
            "seed": seed, "output": str(output)}
    if cache_dir is not None:
        cell["cache_dir"] = str(cache_dir)
    return with_overrides(plain_data(training), cell)  # integer epoch keys (lr_steps) stay integers
