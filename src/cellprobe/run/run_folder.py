"""The run folder: one trained decoder with everything needed to re-run, resume, tune and evaluate it.

Layout (names fixed here and nowhere else)::

    config.yaml        the fully resolved TrainConfig
    run.json           version stamp and facts of the run (encoder identity, classes, status, the learning
                       rate of every epoch trained)
    best.ckpt          the checkpoint with the best selection metric
    last.ckpt          the latest epoch (resume point)
    postprocess.json   post-processing thresholds (defaults until `cellprobe tune`)
    logs/              CSV (and TensorBoard, when installed) logs
    metrics.json, per_image.csv   written by `cellprobe evaluate`

A run written by another cellprobe version is refused with an InputError: checkpoints and configs are only
guaranteed to mean the same thing within one version. A run of an earlier run format (1: no typed encoder
identity, no learning-rate record, the network's weights at the checkpoints' top level; 2: no record of the
training data's digest and start time) is refused with the command that converts it (``cellprobe upgrade``,
:mod:`cellprobe.run.upgrade`). Format 3 writes every key of :class:`RunStamp` from the start, so a key missing
from a current run.json is a damaged record, never an older one whose checks would be skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cellprobe import __version__, atomic
from cellprobe.config import differing_keys, dump_config, load_yaml, parse_config, read_json
from cellprobe.data.io import refuse_output_inside
from cellprobe.encoders.identity import EncoderIdentity
from cellprobe.errors import InputError, not_a_file
from cellprobe.hashing import is_sha256
from cellprobe.locking import LOCK, refuse_if_in_use
from cellprobe.run.train_config import TrainConfig

if TYPE_CHECKING:
    from cellprobe.postprocess import PostprocessParams

RUN_FORMAT = 3
CONFIG = "config.yaml"
STAMP = "run.json"
BEST = "best.ckpt"
LAST = "last.ckpt"
POSTPROCESS = "postprocess.json"
LOGS = "logs"
METRICS = "metrics.json"
#: settings that change how a run executes, not what it computes: a resume may change them
RUNTIME_KEYS = frozenset({"trainer.threads", "trainer.progress", "trainer.max_minutes", "trainer.num_workers",
                          "trainer.log_every_n_steps"})
PER_IMAGE = "per_image.csv"
#: earlier run formats that ``cellprobe upgrade`` converts
UPGRADABLE = (1, 2)
#: key of run.json's info that makes a run folder an ensemble of other runs (cellprobe.run.ensemble)
ENSEMBLE_KEY = "ensemble"
#: key of run.json's info where ``cellprobe upgrade`` records each checkpoint it rewrote: name → [sha256 before,
#: after], so that records of the checkpoint made before (an ensemble's, a benchmark cell's) still know it
UPGRADED_KEY = "upgraded_checkpoints"


@dataclass
class RunStamp:
    """What run.json holds. ``encoder``: the frozen encoder's identity (None until training has built it);
    ``learning_rates``: the rate each epoch trained with (index = 0-based epoch; a resumed epoch overwrites its
    entry), which a refit replays; ``data_sha256``: what its epochs trained and validated on."""

    version: str = __version__
    run_format: int = RUN_FORMAT
    status: str = "training"  # "training" until the fit ends, then "finished"
    encoder: EncoderIdentity | None = None
    class_names: list[str] = field(default_factory=list)
    mpp: float | None = None
    learning_rates: list[float] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    #: sha256 of the training and validation samples the run started on (a resume on other data is refused)
    data_sha256: str | None = None
    #: when training started (seconds since the epoch): bounds the training time a checkpoint can claim
    started: float | None = None

    def write(self, run_dir: Path) -> None:
        data = {**self.__dict__, "encoder": None if self.encoder is None else self.encoder.to_json()}
        atomic.write_json(Path(run_dir) / STAMP, data)


def stamp_data(path: Path) -> dict[str, Any]:
    """The mapping of a run.json, its ``version`` a string and its ``run_format`` an integer as written (JSON
    ``2.0`` or ``true`` is not format 2 or 1, though Python compares them equal)."""
    data = read_json(path, "run stamp")
    if not isinstance(data, dict) or "version" not in data or "run_format" not in data:
        raise InputError(path, "not a cellprobe run stamp (no version / run_format)")
    if not isinstance(data["version"], str):
        raise InputError(path, f"version {data['version']!r} is not a version string")
    if not isinstance(data["run_format"], int) or isinstance(data["run_format"], bool):
        raise InputError(path, f"run_format {data['run_format']!r} is not an integer")
    return data


def check_version(data: dict[str, Any], run_dir: Path) -> None:
    """Refuse a stamp written by another cellprobe version (its files may mean other things)."""
    if data["version"] != __version__:
        raise InputError(run_dir, f"run written by cellprobe {data['version']} (run format {data['run_format']}); "
                                  f"this is cellprobe {__version__} (run format {RUN_FORMAT}): re-train the run "
                                  f"or use cellprobe {data['version']}")


def read_stamp(run_dir: Path) -> RunStamp:
    path = run_dir / STAMP
    if not path.exists():
        raise InputError(run_dir, f"not a cellprobe run folder (no {STAMP})")
    data = stamp_data(path)
    check_version(data, run_dir)
    if data["run_format"] in UPGRADABLE:
        raise InputError(run_dir, f"run folder of the earlier run format {data['run_format']}; convert it with "
                                  f"`cellprobe upgrade {run_dir}`")
    if data["run_format"] != RUN_FORMAT:
        raise InputError(run_dir, f"unknown run format {data['run_format']} (this cellprobe reads {RUN_FORMAT})")
    return stamp_from_record(data, run_dir)


def stamp_from_record(data: dict[str, Any], run_dir: Path) -> RunStamp:
    """The checked stamp of a current-format run.json's mapping ``data`` (the upgrade checks what it is about to
    write with it, before writing)."""
    path = run_dir / STAMP
    known = set(RunStamp.__dataclass_fields__)
    missing = sorted(known - set(data))
    if missing:  # every key is written from the first stamp on: none is optional
        raise InputError(path, f"lacks {', '.join(missing)} (run format {RUN_FORMAT} writes every key from the start): "
                               "a damaged or hand-edited record, whose checks would be skipped")
    stamp = RunStamp(**{k: v for k, v in data.items() if k in known})
    _check_stamp(stamp, path)
    trained = stamp.status == "finished" or any((run_dir / name).exists() for name in (BEST, LAST))
    if ENSEMBLE_KEY not in stamp.info and trained and (
            stamp.data_sha256 is None or stamp.started is None or stamp.encoder is None or not stamp.class_names):
        # training records them before its first epoch: a run that trained without them is a damaged record
        raise InputError(path, f"data_sha256 {stamp.data_sha256!r}, started {stamp.started!r}, encoder "
                               f"{'null' if stamp.encoder is None else 'recorded'}, class_names "
                               f"{stamp.class_names!r}: training records them before its first checkpoint, so this "
                               "run's checks would be skipped or its network unknown (a hand-edited record?)")
    if stamp.encoder is not None:
        stamp.encoder = EncoderIdentity.from_json(stamp.encoder, path)
    return stamp


def _check_stamp(stamp: RunStamp, path: Path) -> None:
    """A hand-edited or torn run.json is refused naming the field, not met later as a traceback."""
    def number(x: Any) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)

    problems = [
        (stamp.status not in ("training", "finished"), f"status {stamp.status!r} is not 'training' or 'finished'"),
        (not isinstance(stamp.class_names, list) or not all(isinstance(c, str) for c in stamp.class_names),
         "class_names must be a list of names"),
        (stamp.mpp is not None and not (number(stamp.mpp) and stamp.mpp > 0), f"mpp {stamp.mpp!r} is not > 0"),
        (not isinstance(stamp.learning_rates, list) or not all(number(r) and r > 0 for r in stamp.learning_rates),
         "learning_rates must be a list of positive numbers"),
        (not isinstance(stamp.info, dict), "info must be a mapping"),
        (stamp.started is not None and not (number(stamp.started) and stamp.started > 0),
         f"started {stamp.started!r} is not a time"),
        ((stamp.started is None) != (stamp.data_sha256 is None),  # both are written when training starts
         f"started {stamp.started!r} beside data_sha256 {stamp.data_sha256!r}: training records both or neither"),
        (stamp.data_sha256 is not None and not is_sha256(stamp.data_sha256),
         f"data_sha256 {stamp.data_sha256!r} is not a sha256"),
    ]
    for bad, problem in problems:
        if bad:
            raise InputError(path, problem)
    epochs = stamp.info.get("epochs")
    if stamp.status == "finished" and ENSEMBLE_KEY not in stamp.info and not (
            type(epochs) is int and 0 <= epochs <= len(stamp.learning_rates)):
        # what training writes when it finishes: a status set by hand would pass an interrupted run as done
        raise InputError(path, f"status 'finished' without the record training writes when it finishes (info.epochs "
                               f"{epochs!r}, {len(stamp.learning_rates)} learning rate(s) recorded): the run may "
                               "not have finished (a status set by hand?)")


def same_checkpoint(run_dir: Path, name: str, recorded: str | None, now: str | None) -> bool:
    """Whether the run's checkpoint ``name``, whose sha256 is ``now``, is the one a record made earlier knows as
    ``recorded``: the same bytes, or what ``cellprobe upgrade`` rewrote those bytes into (run.json says so)."""
    if recorded == now:
        return True
    upgraded = read_stamp(Path(run_dir)).info.get(UPGRADED_KEY)  # an unreadable run.json is named, not guessed
    return isinstance(upgraded, dict) and upgraded.get(name) == [recorded, now]


def read_config(run_dir: Path) -> TrainConfig:
    """The run's config.yaml, which train writes with every key: one lacking a key (cut, or edited) is refused
    rather than completed with today's defaults, which may not be what the run was trained with."""
    path = run_dir / CONFIG
    if not path.exists() and not path.is_symlink():
        raise InputError(run_dir, f"not a cellprobe run folder (no {CONFIG})")
    problem = not_a_file(path)
    if problem is not None:
        raise InputError(path, f"{problem}: the run's config cannot be read")
    data = load_yaml(path)
    config = parse_config(TrainConfig, data, path)
    missing = _missing_keys(config.model_dump(mode="json"), data)
    if missing:
        raise InputError(path, f"lacks {len(missing)} key(s) train writes ({', '.join(missing[:5])}): the run's "
                               "file is cut or edited; its settings would be guessed from defaults")
    return config


def _missing_keys(full: Any, given: Any, prefix: str = "") -> list[str]:
    """Dotted keys of the mapping ``full`` absent from ``given`` (nested mappings compared key by key)."""
    if not isinstance(full, dict) or not isinstance(given, dict):
        return []
    given = {str(k): v for k, v in given.items()}  # YAML keeps lr_steps' epochs integers, the dump strings
    out = []
    for key, value in full.items():
        if str(key) in given:
            out += _missing_keys(value, given[str(key)], f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}")
    return out


@dataclass
class Run:
    """An existing run folder, checked: its stamp is from this version and its config parses."""

    path: Path
    config: TrainConfig
    stamp: RunStamp

    @classmethod
    def open(cls, run_dir: str | Path) -> Run:
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise InputError(run_dir, "run folder does not exist")
        stamp = read_stamp(run_dir)
        return cls(run_dir, read_config(run_dir), stamp)

    def checkpoint(self, which: str = "best") -> Path:
        name = {"best": BEST, "last": LAST}.get(which)
        if name is None:
            raise InputError(self.path, f"unknown checkpoint {which!r} (best or last)")
        if self.is_ensemble:
            raise InputError(self.path, "an ensemble has no checkpoint of its own (its members have)")
        path = self.path / name
        if not path.exists() and not path.is_symlink():
            raise InputError(path, "checkpoint missing: the run has not finished an epoch")
        problem = not_a_file(path)
        if problem is not None:
            raise InputError(path, f"{problem}: not a checkpoint")
        return path

    @property
    def is_ensemble(self) -> bool:
        """An ensemble run folder: no checkpoints of its own, its members' listed under info.ensemble."""
        return ENSEMBLE_KEY in self.stamp.info

    @property
    def finished(self) -> bool:
        return self.stamp.status == "finished"

    def save_stamp(self) -> None:
        self.stamp.write(self.path)

    def record_learning_rate(self, epoch: int, lr: float) -> None:
        """Record the rate epoch ``epoch`` trains with; later entries (of an epoch being replayed after a
        resume) are dropped."""
        rates = self.stamp.learning_rates[:epoch]
        if len(rates) < epoch:
            raise ValueError(f"learning rate of epoch {epoch} recorded before that of epoch {len(rates)}")
        self.stamp.learning_rates = [*rates, float(lr)]
        self.save_stamp()


def enclosing_run(folder: str | Path) -> Path | None:
    """The run folder (one holding cellprobe's run stamp and a config, as every run and ensemble does) that
    ``folder`` lies inside, links resolved; None when none does. A run folder holds one run: another inside it
    would be read as part of its files, and deleting the outer run would delete it. A user's own files of
    those names (no cellprobe stamp in run.json) make no run folder."""
    start = Path(folder).resolve()
    return next((p for p in start.parents if (p / CONFIG).is_file() and _holds_run_stamp(p)), None)


def owning_run(folder: str | Path) -> Path | None:
    """The run folder ``folder`` is (resolved) or lies inside, as :func:`enclosing_run`; None when neither."""
    start = Path(folder).resolve()
    return start if (start / CONFIG).is_file() and _holds_run_stamp(start) else enclosing_run(start)


def _holds_run_stamp(folder: Path) -> bool:
    """Whether ``folder``'s run.json is cellprobe's (a mapping with its version and run format)."""
    try:
        data = read_json(folder / STAMP, "run stamp")
    except InputError:
        return False
    return isinstance(data, dict) and "version" in data and "run_format" in data


def refuse_results_place(folder: str | Path, run_dir: str | Path, *, into_run: bool = False) -> None:
    """An InputError when ``folder``, an output for results of the run ``run_dir``, is or lies inside a run
    folder (another run's: the results would read as that run's; the run's own too unless ``into_run``, for
    evaluate's scores, which are the run's record) or the data the run trained on (only read: results there
    would be read as its data next time)."""
    owner = owning_run(folder)
    own = Path(run_dir).resolve()
    if owner is not None and not (into_run and owner == own):
        where = "the" if owner == Path(folder).resolve() else "inside the"
        if owner == own:
            raise InputError(folder, f"is {where} run folder {owner}, where the run keeps its own files: its results "
                                     "go in a folder of their own; give --out outside it")
        raise InputError(folder, f"is {where} run folder {owner}: results of {run_dir} there would read as that "
                                 "run's; give --out outside it")
    refuse_output_inside(folder, read_config(Path(run_dir)).data.path)


def refuse_inside_run(folder: str | Path, itself: bool = False) -> None:
    """An InputError when ``folder`` (an output about to hold a run, or runs) lies inside another run's folder,
    or, with ``itself``, is one (a bench folder: its cells are runs)."""
    outer = owning_run(folder) if itself else enclosing_run(folder)
    if outer is not None:
        where = "the" if outer == Path(folder).resolve() else "inside the"
        raise InputError(folder, f"is {where} run folder {outer}: a run folder holds one run; choose a folder "
                                 "outside it")


def find_run(config: TrainConfig) -> Run | None:
    """The existing run folder of ``config`` (None when there is none yet), with the config it holds; writes
    nothing. A folder holding a different config, or files that are not a run, is an InputError: results are
    never silently overwritten or mixed."""
    run_dir = Path(config.output)
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(run_dir, "output exists and is not a folder")
    refuse_if_in_use(run_dir)  # a run training now is not compared with this config: it is not what it will be
    refuse_inside_run(run_dir)
    for made in (run_dir, config.cache_dir):  # the run, its feature cache: never into the data they come from
        if made is not None:
            refuse_output_inside(made, config.data.path)
    cache = config.feature_cache_dir()
    if config.cache_features and ((cache.is_symlink() and not cache.exists()) or (cache.exists() and not cache.is_dir())):
        raise InputError(cache, "is in the way of the feature cache folder (a file, or a link to nothing); move it")
    if config.cache_features and config.cache_dir is None and cache.is_symlink():  # the run's own: never a link
        raise InputError(cache, "is a link, where the run keeps its own feature cache; remove it, or give the "
                                "folder as cache_dir")
    if not (run_dir.is_dir() and (run_dir / CONFIG).exists()):
        if run_dir.is_dir() and any(p.name not in (STAMP, "feature_cache", LOCK) for p in run_dir.iterdir()):
            raise InputError(run_dir, "output folder is not empty and holds no cellprobe run; choose another --out")
        return None
    run = Run.open(run_dir)
    if run.is_ensemble:  # its config is its first member's: the same command would find it "trained"
        raise InputError(run_dir, "holds an ensemble of other runs, not a run to train; choose another --out")
    _refuse_in_the_way(run_dir)
    old, new = run.config.model_dump(mode="json"), config.model_dump(mode="json")
    for section in (old, new):  # data paths spelt relative, through a link or with '..': the same files
        section["data"]["path"] = str(Path(section["data"]["path"]).resolve())
        options = section["data"].get("options") or {}
        if isinstance(options.get("split_file"), str):
            options["split_file"] = str(Path(options["split_file"]).expanduser().resolve())
    # the folder is the one found, however ``output`` spells it (relative, trailing slash, a symlink); the
    # feature cache is keyed by its contents, so where it lives (a bench folder moved, spelt otherwise) is how
    # the run runs, not what it is
    diff = sorted(k for k in differing_keys(old, new) if k not in RUNTIME_KEYS and k not in ("output", "cache_dir"))
    if diff and not (run_dir / LAST).exists() and run.stamp.status != "finished":
        raise InputError(run_dir, f"holds a run of a different config (differs at {', '.join(diff[:5])}) that "
                                  "never finished an epoch, so nothing of it would be lost: delete the folder, or "
                                  "choose another --out")
    if diff:
        raise InputError(run_dir, f"holds a run with a different config (differs at {', '.join(diff[:5])}); "
                                  "choose another --out")
    return run  # its config equals ``config`` but perhaps for how it runs (threads, time budget, ...)


#: what training writes in a run folder, as files (else as folders): checked before a resume trains an epoch
_TRAINING_FILES = (BEST, LAST, f"{LOGS}/metrics.csv", f"{LOGS}/framework.log")


def _refuse_in_the_way(run_dir: Path) -> None:
    """A folder (or link to one, or anything else) where training writes a file, or a file where it makes its
    logs folder, is one line now rather than a traceback at the end of the first epoch."""
    logs = run_dir / LOGS
    if (logs.exists() or logs.is_symlink()) and not logs.is_dir():
        raise InputError(logs, "is in the way of the run's logs folder (not a folder); move it")
    for name in _TRAINING_FILES:
        path = run_dir / name
        if atomic.in_the_way(path):
            raise InputError(path, "is in the way of a file training writes (not a file); move it")
    for path in (logs, *(run_dir / name for name in _TRAINING_FILES if name.startswith(f"{LOGS}/"))):
        if path.is_symlink():  # the logs are appended to where they are: never through a link, out of the run
            raise InputError(path, "is a link, where the run keeps its own logs; remove the link (nothing it points "
                                   "at is touched)")


def start_run(config: TrainConfig) -> tuple[Run, Path | None]:
    """The run folder of ``config``, created when :func:`find_run` finds none (call it once the config's
    encoder and data have been checked: a refused command leaves nothing behind), and the checkpoint to
    resume from (None for a new or finished run)."""
    run = find_run(config)
    if run is not None:
        if run.config != config:  # only how it runs changed: record the new settings
            atomic.write_text(run.path / CONFIG, dump_config(config))
            run.config = config
        last = run.path / LAST
        return run, (last if last.is_file() and not run.finished else None)
    run_dir = Path(config.output)
    run_dir.mkdir(parents=True, exist_ok=True)
    stamp = RunStamp()
    stamp.write(run_dir)  # the stamp first: a folder with a config always has one
    atomic.write_text(run_dir / CONFIG, dump_config(config))
    return Run(run_dir, config, stamp), None


def load_postprocess(run_dir: Path, untuned: PostprocessParams | None = None) -> PostprocessParams:
    """The run's tuned thresholds; before ``cellprobe tune``, ``untuned`` (default: the post-processing
    defaults)."""
    from cellprobe.postprocess import PostprocessParams

    path = Path(run_dir) / POSTPROCESS
    if atomic.in_the_way(path):  # not "untuned": it would score otherwise
        raise InputError(path, f"{not_a_file(path)}: the run's tuned thresholds go here; move it, then tune "
                               "again")
    if not path.is_file():
        return untuned or PostprocessParams()
    values = read_json(path, "post-processing parameters")
    missing = [k for k in PostprocessParams.model_fields if k not in values] if isinstance(values, dict) else []
    if missing:  # tune writes every threshold: a cut or hand-edited file would take defaults silently
        raise InputError(path, f"lacks {len(missing)} threshold(s) ({', '.join(missing)}): tune writes all of "
                               "them; run `cellprobe tune --overwrite` again, or give every key")
    return parse_config(PostprocessParams, values, path)
