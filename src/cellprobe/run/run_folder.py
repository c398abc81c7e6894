"""The run folder: one trained decoder with everything needed to re-run, resume, tune and evaluate it.

Layout (names fixed here and nowhere else)::

    config.yaml        the fully resolved TrainConfig
    run.json           version stamp and facts of the run (encoder identity, classes, status)
    best.ckpt          the checkpoint with the lowest validation loss
    last.ckpt          the latest epoch (resume point)
    postprocess.json   post-processing thresholds (defaults until `cellprobe tune`)
    logs/              CSV (and TensorBoard, when installed) logs
    metrics.json, per_image.csv   written by `cellprobe evaluate`

A run written by another cellprobe version or run-folder format is refused with an InputError: checkpoints
and configs are only guaranteed to mean the same thing within one version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cellprobe import __version__, atomic
from cellprobe.config import dump_config, parse_config
from cellprobe.errors import InputError
from cellprobe.training.config import TrainConfig

RUN_FORMAT = 1
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
#: key of run.json's info that makes a run folder an ensemble of other runs (cellprobe.training.ensemble)
ENSEMBLE_KEY = "ensemble"


@dataclass
class RunStamp:
    """What run.json holds. ``encoder``: name, weights, digest, tap channels/strides, family."""

    version: str = __version__
    run_format: int = RUN_FORMAT
    status: str = "training"  # "training" until the fit ends, then "finished"
    encoder: dict[str, Any] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)
    mpp: float | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def write(self, run_dir: Path) -> None:
        atomic.write_json(run_dir / STAMP, self.__dict__)


def read_stamp(run_dir: Path) -> RunStamp:
    path = run_dir / STAMP
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(run_dir, f"not a cellprobe run folder (no {STAMP})") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(path, f"unreadable run stamp ({exc})") from None
    if not isinstance(data, dict) or "version" not in data or "run_format" not in data:
        raise InputError(path, "not a cellprobe run stamp (no version / run_format)")
    if data["run_format"] != RUN_FORMAT or data["version"] != __version__:
        raise InputError(run_dir, f"run written by cellprobe {data['version']} (run format {data['run_format']}); "
                                  f"this is cellprobe {__version__} (run format {RUN_FORMAT}): re-train the run "
                                  f"or use cellprobe {data['version']}")
    known = set(RunStamp.__dataclass_fields__)
    return RunStamp(**{k: v for k, v in data.items() if k in known})


def read_config(run_dir: Path) -> TrainConfig:
    path = run_dir / CONFIG
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise InputError(run_dir, f"not a cellprobe run folder (no {CONFIG})") from None
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(path, f"unreadable run config ({exc})") from None
    return parse_config(TrainConfig, data, path)


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
        if not path.is_file():
            raise InputError(path, "checkpoint missing: the run has not finished an epoch")
        return path

    @property
    def is_ensemble(self) -> bool:
        """An ensemble run folder: no checkpoints of its own, its members' listed under info.ensemble."""
        return ENSEMBLE_KEY in self.stamp.info

    @property
    def finished(self) -> bool:
        return self.stamp.status == "finished"


def start_run(config: TrainConfig) -> tuple[Path, Path | None, bool]:
    """Create the run folder for ``config``, or find the one to resume.

    Returns ``(run_dir, resume_checkpoint or None, finished)``. A folder holding a different config is an
    InputError: results are never silently overwritten or mixed.
    """
    run_dir = Path(config.output)
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(run_dir, "output exists and is not a folder")
    if run_dir.is_dir() and (run_dir / CONFIG).exists():
        run = Run.open(run_dir)
        old, new = run.config.model_dump(mode="json"), config.model_dump(mode="json")
        diff = sorted(k for k in _diff_keys(old, new) if k not in RUNTIME_KEYS)
        if diff:
            raise InputError(run_dir, f"holds a run with a different config (differs at {', '.join(diff[:5])}); "
                                      "choose another --out")
        if old != new:  # only how it runs changed (threads, time budget, ...): record the new settings
            atomic.write_text(run_dir / CONFIG, dump_config(config))
        if run.finished:
            return run_dir, None, True
        last = run_dir / LAST
        return run_dir, (last if last.is_file() else None), False
    if run_dir.is_dir() and any(p.name not in (STAMP, "feature_cache") for p in run_dir.iterdir()):
        raise InputError(run_dir, "output folder is not empty and holds no cellprobe run; choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    RunStamp().write(run_dir)  # the stamp first: a folder with a config always has one
    atomic.write_text(run_dir / CONFIG, dump_config(config))
    return run_dir, None, False


def _diff_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out += _diff_keys(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [prefix.rstrip(".")]
