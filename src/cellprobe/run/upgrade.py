"""Convert a run folder of an earlier run format to the current one (3), in place.

Format 1 differs in three ways, each converted here and nowhere else:

* the encoder identity in run.json and in each checkpoint was an untyped dict (no taps, fit or input scale):
  it becomes an :class:`~cellprobe.encoders.identity.EncoderIdentity`, completed from the run's config and
  the encoder registry (the taps and fit the run was built with);
* checkpoints held the neck and decoder at the top level of ``state_dict`` (``neck.*``, ``decoder.*``): they
  move under the network (``network.*``), in the averaged and in the raw (EMA) weights;
* the learning rate of each epoch was only in Lightning's CSV logs: it is read from them once and recorded
  in run.json.

Formats 1 and 2 may lack the training data's digest and the time training started (format 3 writes both
keys from the first stamp on, so a missing one is damage, not age), and their checkpoints do not record the
training data's µm/px. For a run that trained, the upgrade records the digest of the training data as it is
now (the caller computes it: reading data is training's job), as the start now less the training time the last
checkpoint says was spent (so a later resume cannot claim more than it had), and run.json's µm/px in each
checkpoint. The new stamp is checked as every command will check it before any file is rewritten, and a run
of another cellprobe version is refused, not relabelled.

Checkpoints are rewritten atomically, and the stamp's format is bumped last, so a killed upgrade is simply
run again. An ensemble's members are upgraded with it, and its record of their checkpoints' digests follows
what their upgrade rewrote (each upgraded run keeps the before and after digests in run.json's info).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cellprobe import atomic
from cellprobe.encoders.identity import EncoderIdentity
from cellprobe.errors import InputError
from cellprobe.hashing import is_sha256
from cellprobe.run import run_folder as R
from cellprobe.run.checkpoint import (
    IDENTITY_KEY,
    NETWORK_PREFIX,
    RAW_STATE_KEY,
    load_checkpoint,
)
from cellprobe.run.train_config import TrainConfig

#: the state-dict entries of format 1 that belong to the network
NETWORK_PARTS = ("neck.", "decoder.")


def lr_from_logs(run_dir: Path) -> dict[int, float]:
    """The learning rate each epoch of a format-1 run trained with, read from its CSV logs (all sessions of a
    resumed run): Lightning's LearningRateMonitor logs the rate at the start of each epoch with the global
    step only, and the epoch of that step is the first epoch whose logged rows reach it."""
    import pandas as pd

    logs = [*sorted((run_dir / R.LOGS).glob("metrics.session-*.csv")), run_dir / R.LOGS / "metrics.csv"]
    frames = []
    for path in logs:
        if path.is_file():
            try:
                frames.append(pd.read_csv(path))
            except (OSError, ValueError) as exc:
                raise InputError(path, f"unreadable training log ({exc})") from None
    if not frames:
        raise InputError(run_dir / R.LOGS, "no metrics.csv: the run's learning-rate schedule is unknown")
    table = pd.concat(frames, ignore_index=True)
    lr_cols = [c for c in table.columns if c.startswith("lr-")]
    if not lr_cols or "step" not in table or "epoch" not in table:
        raise InputError(run_dir / R.LOGS, "logs hold no learning rate (lr-*) with steps and epochs")
    column = pd.to_numeric(table[lr_cols[0]], errors="coerce")
    if column.notna().sum() != table[lr_cols[0]].notna().sum():
        raise InputError(run_dir / R.LOGS, f"column {lr_cols[0]} holds values that are not numbers")
    ends = table.dropna(subset=["epoch"]).groupby("epoch")["step"].max().sort_index()
    rates: dict[int, float] = {}
    for step, lr in zip(table["step"][column.notna()], column[column.notna()], strict=True):
        reached = ends[ends >= step]
        if len(reached):
            rates[int(reached.index[0])] = float(lr)
    return dict(sorted(rates.items()))


def identity_from_v1(saved: dict[str, Any], config: TrainConfig, where: Any) -> EncoderIdentity:
    """A format-1 identity dict, completed with the taps and fit the run's encoder was built with."""
    from cellprobe.encoders.registry import get_spec

    try:
        spec = get_spec(saved["encoder"])
        return EncoderIdentity(
            name=spec.name, family=str(saved["family"]), weights_digest=str(saved["weights_digest"]),
            taps=tuple(int(t) for t in (config.encoder.taps or spec.default_taps)),
            fit=str(config.encoder.fit or spec.fit),
            input_scale=float(config.encoder.input_scale),
            tap_channels=tuple(int(c) for c in saved["tap_channels"]),
            tap_strides=tuple(float(s) for s in saved["tap_strides"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(where, f"format-1 encoder identity is incomplete ({exc})") from None


def check_v1_stamp(data: dict[str, Any], path: Path) -> None:
    """The fields of a format-1 stamp the upgrade reads, refused naming the field when malformed."""
    if not isinstance(data.get("info", {}), dict):
        raise InputError(path, "'info' must be a mapping")
    data.setdefault("info", {})
    names = data.get("class_names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InputError(path, "'class_names' must be a list of names")
    if data.get("encoder") is not None and not isinstance(data["encoder"], dict):
        raise InputError(path, "'encoder' must be a mapping")


#: the fields of a format-1 identity that say which network a checkpoint holds
V1_IDENTITY = ("encoder", "family", "weights_digest", "tap_channels", "tap_strides")


def check_earlier_checkpoint(path: Path, stamp_encoder: dict[str, Any], class_names: list[str],
                             encoder: EncoderIdentity, mpp: float | None) -> None:
    """Refuse a checkpoint of format 1 or 2 that is not the run's: its own saved identity (encoder, weights
    digest, taps' channels and strides, class names; a format-1 one in its untyped form) must be the stamp's, as
    a current checkpoint's must. The upgrade stamps the run's identity on it, so a foreign one would pass every
    later check. The µm/px, which only format 3 keeps in checkpoints, is taken from run.json."""
    from cellprobe.run.checkpoint import check_identity

    ckpt = load_checkpoint(path)
    saved = ckpt.get(IDENTITY_KEY)
    if isinstance(saved, dict) and isinstance(saved.get("encoder"), dict):  # format 2 (or converted from 1)
        ckpt[IDENTITY_KEY] = {"mpp": mpp, **saved}  # format 2 kept none: run.json's is the one recorded
        check_identity(ckpt, encoder, class_names, path, mpp=mpp)
        return
    if not isinstance(saved, dict):
        raise InputError(path, "holds no format-1 identity: which encoder and classes it was trained for is "
                               "unknown; it cannot be upgraded")
    differ = [k for k in V1_IDENTITY if saved.get(k) != stamp_encoder.get(k)]
    if "class_names" in saved and saved["class_names"] != class_names:
        differ.append("class_names")
    if differ:
        raise InputError(path, f"was trained for another encoder or classes than the run's run.json (differs at "
                               f"{', '.join(differ)}): not this run's checkpoint; it cannot be upgraded")


def upgrade_checkpoint(path: Path, encoder: EncoderIdentity, class_names: list[str], mpp: float | None,
                       pending: Path) -> None:
    """Rewrite one checkpoint of format 1 or 2 (checked first: :func:`check_earlier_checkpoint`) with the
    current identity record, unless it already has it. Its sha256 before and after are added to ``pending``
    (a record the stamp takes over once the upgrade ends) before the file is replaced: a killed upgrade's rerun
    still knows what it rewrote."""
    import hashlib

    from cellprobe.hashing import file_sha256
    from cellprobe.run.checkpoint import checkpoint_bytes, identity_record

    ckpt = load_checkpoint(path)
    saved = ckpt.get(IDENTITY_KEY)
    record = identity_record(encoder, class_names, mpp)
    if saved == record:
        return  # converted by an earlier, interrupted upgrade
    if not (isinstance(saved, dict) and isinstance(saved.get("encoder"), dict)):  # format 1's layout
        for key in ("state_dict", RAW_STATE_KEY):
            if key in ckpt:
                ckpt[key] = {(NETWORK_PREFIX + k if k.startswith(NETWORK_PARTS) else k): v
                             for k, v in ckpt[key].items()}
    ckpt[IDENTITY_KEY] = record
    data = checkpoint_bytes(ckpt)
    rewritten = {**_pending(pending), path.name: [file_sha256(path), hashlib.sha256(data).hexdigest()]}
    atomic.write_json(pending, rewritten)
    atomic.write_bytes(path, data)


def _pending(path: Path) -> dict[str, list[str]]:
    """The checkpoints an unfinished upgrade rewrote (name → [sha256 before, after]); {} when there is none."""
    from cellprobe.config import read_json

    if not path.exists() and not path.is_symlink():
        return {}
    if not path.is_file():
        raise InputError(path, "is in the way of cellprobe's upgrade record (not a plain file); move it")
    data = read_json(path, "upgrade record")
    if not (isinstance(data, dict) and set(data) <= {R.BEST, R.LAST} and all(
            isinstance(v, list) and len(v) == 2 and all(is_sha256(d) for d in v) for v in data.values())):
        raise InputError(path, "is not the record of an upgrade cellprobe writes; the upgrade cannot tell what it "
                               "rewrote")
    return data


#: the record, in a run folder being upgraded, of the checkpoints rewritten so far (run.json takes it over)
PENDING = ".cellprobe-upgrade.json"
#: what :func:`upgrade_run` is handed to read a config's training data: (samples' sha256, µm/px)
DataFacts = Callable[[TrainConfig], tuple[str, float | None]]


@dataclass
class _Member:
    """An ensemble member as its ensemble records it, with its folder and its own upgrade (None: current)."""

    entry: dict[str, Any]
    folder: Path
    plan: _Plan | None


@dataclass
class _Plan:
    """One run's upgrade, worked out and checked, nothing rewritten yet."""

    run_dir: Path
    was: int
    new: dict[str, Any]  # the stamp to write, less what rewriting the checkpoints adds
    stamp: R.RunStamp
    done: list[str]
    members: list[_Member] = field(default_factory=list)


def upgrade_run(run_dir: str | Path, data_facts: DataFacts) -> list[str]:
    """Convert ``run_dir`` in place; returns what was done, one line each (nothing for a current run).
    ``data_facts``: reads a config's training data as run.json records it. Everything is worked out and
    checked before the first file is rewritten, for an ensemble its members' upgrades too (a refused member
    leaves every run as it was); checkpoints go first and the stamp last."""
    from contextlib import ExitStack

    run_dir = Path(run_dir)
    if not (run_dir / R.STAMP).exists():
        raise InputError(run_dir, f"not a cellprobe run folder (no {R.STAMP})")
    with ExitStack() as locks:  # every run the upgrade rewrites is held until it ends
        plan = _plan(run_dir, data_facts, locks)
        return [] if plan is None else _apply(plan)


def _plan(run_dir: Path, data_facts: DataFacts, locks: Any) -> _Plan | None:
    """``run_dir``'s upgrade checked (None: the run is current), its lock taken into ``locks``: two upgrades of
    one run would each think the other's rewrite theirs."""
    from cellprobe.locking import exclusive

    locks.enter_context(exclusive(run_dir, "upgrading"))
    path = run_dir / R.STAMP
    data = R.stamp_data(path)
    R.check_version(data, run_dir)  # another version's files may mean other things: not relabelled as ours
    if data["run_format"] not in (*R.UPGRADABLE, R.RUN_FORMAT):
        raise InputError(path, f"run format {data['run_format']!r} cannot be upgraded")
    if data["run_format"] == R.RUN_FORMAT:
        R.Run.open(run_dir)  # read as every other command reads it: "already current" means usable as it is
        return None
    config = R.read_config(run_dir)
    check_v1_stamp(data, path)
    was, new = data["run_format"], dict(data)
    done = _from_format_1(run_dir, new, config, path) if was == 1 else []
    done += _record_training_facts(run_dir, new, config, data_facts)
    new["run_format"] = R.RUN_FORMAT
    stamp = R.stamp_from_record(new, run_dir)  # what every command will check, checked before any change
    plan = _Plan(run_dir, was, new, stamp, done)
    if R.ENSEMBLE_KEY in stamp.info:
        plan.members = _plan_members(run_dir, new, data_facts, locks)
    elif stamp.encoder is not None:
        _pending(run_dir / PENDING)  # a damaged record of a killed upgrade is named now, not halfway
        for name in (R.BEST, R.LAST):
            if (run_dir / name).is_file():
                check_earlier_checkpoint(run_dir / name, data.get("encoder") or {}, stamp.class_names,
                                         stamp.encoder, stamp.mpp)
    return plan


def _plan_members(run_dir: Path, data: dict[str, Any], data_facts: DataFacts, locks: Any) -> list[_Member]:
    """The members of the ensemble whose stamp is ``data``, each checked and its upgrade planned; a checkpoint
    changed since the ensemble was made (other than by an upgrade) is refused, as every command using the
    ensemble refuses it."""
    from cellprobe.hashing import file_sha256

    entries = data["info"][R.ENSEMBLE_KEY]
    if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("path"), str)
                                                and isinstance(e.get("checkpoints"), dict) for e in entries):
        raise InputError(run_dir / R.STAMP, "ensemble member entries are not paths with their checkpoints' sha256")
    planned: list[_Member] = []
    for entry in entries:
        member = Path(entry["path"]) if Path(entry["path"]).is_absolute() else run_dir / entry["path"]
        if not member.is_dir():
            raise InputError(run_dir / R.STAMP, f"ensemble member {entry['path']} is missing (resolved to {member})")
        info = R.stamp_data(member / R.STAMP).get("info") if (member / R.STAMP).is_file() else None
        if member.resolve() == run_dir.resolve() or (isinstance(info, dict) and R.ENSEMBLE_KEY in info):
            raise InputError(run_dir / R.STAMP, f"ensemble member {entry['path']} is an ensemble (or this one): "
                                                "members are single runs")
        if any(member.resolve() == other.folder.resolve() for other in planned):
            raise InputError(run_dir / R.STAMP, f"ensemble member {entry['path']} is listed twice")
        for name in (R.BEST, R.LAST):
            if not (member / name).is_file():
                raise InputError(member / name, "is gone (the ensemble was made with it); restore it, or make the "
                                                "ensemble again")
        plan = _plan(member, data_facts, locks)
        rewritten = _pending(member / PENDING) if plan is not None else {}
        for which, name in (("best", R.BEST), ("last", R.LAST)):
            recorded, now = entry["checkpoints"].get(which), file_sha256(member / name)
            known = (R.same_checkpoint(member, name, recorded, now) if plan is None  # upgraded on its own
                     else recorded == now or rewritten.get(name) == [recorded, now])  # or by a killed upgrade
            if not known:
                raise InputError(member / name, "checkpoint changed since the ensemble was made (not by an "
                                                "upgrade); make the ensemble again")
        planned.append(_Member(entry, member, plan))
    return planned


def _apply(plan: _Plan) -> list[str]:
    """Rewrite what ``plan`` checked: an ensemble's members first, then the checkpoints, the stamp last (a
    killed upgrade leaves the earlier format, and runs again)."""
    from cellprobe.hashing import file_sha256

    done, run_dir, stamp = list(plan.done), plan.run_dir, plan.stamp
    pending = run_dir / PENDING
    if plan.members:
        followed = []
        for member in plan.members:
            if member.plan is not None:
                done += [f"member {member.entry['path']}: {line}" for line in _apply(member.plan)]
            digests = dict(member.entry["checkpoints"])
            for which, name in (("best", R.BEST), ("last", R.LAST)):
                now = file_sha256(member.folder / name)
                if digests.get(which) != now:  # what the member's upgrade rewrote (checked in the plan)
                    digests[which] = now
                    done.append(f"{R.STAMP}: member {member.entry['path']}'s {name} as its upgrade rewrote it")
            followed.append({**member.entry, "checkpoints": digests})
        plan.new["info"] = {**plan.new["info"], R.ENSEMBLE_KEY: followed}
    elif R.ENSEMBLE_KEY not in stamp.info and stamp.encoder is not None:
        for name in (R.BEST, R.LAST):
            if (run_dir / name).is_file():
                upgrade_checkpoint(run_dir / name, stamp.encoder, stamp.class_names, stamp.mpp, pending)
        rewritten = _pending(pending)
        done += [f"{name}: the run's identity (encoder, classes, µm/px)"
                 + (f", network weights under '{NETWORK_PREFIX}'" if plan.was == 1 else "") for name in rewritten]
        if rewritten:
            plan.new["info"] = {**plan.new["info"], R.UPGRADED_KEY: rewritten}
    atomic.write_json(run_dir / R.STAMP, plan.new)
    pending.unlink(missing_ok=True)
    done.append(f"{R.STAMP}: run format {plan.was} → {R.RUN_FORMAT}")
    return done


def _from_format_1(run_dir: Path, data: dict[str, Any], config: TrainConfig, path: Path) -> list[str]:
    """Format 1's encoder identity and learning rates converted (``data``: its stamp, updated)."""
    done: list[str] = []
    is_ensemble = R.ENSEMBLE_KEY in data["info"]
    if not data.get("encoder"):
        # format 1 wrote the encoder when training started: without it there is nothing to convert from
        raise InputError(path, "holds no encoder identity (training never got past its start): train the run "
                               "again rather than upgrade it")
    encoder = identity_from_v1(data["encoder"], config, path)
    if not is_ensemble and not (run_dir / R.LOGS).is_dir() and data.get("status") == "finished":
        raise InputError(run_dir / R.LOGS, "missing: a finished format-1 run keeps its learning rates only in "
                                           "its logs, which a refit needs; restore the folder, or retrain")
    if not is_ensemble and (run_dir / R.LOGS).is_dir():
        rates = lr_from_logs(run_dir)
        # epochs 0, 1, ... as far as the logs have them without a gap
        data["learning_rates"] = [rates[e] for e in range(next(e for e in range(len(rates) + 1) if e not in rates))]
        done.append(f"{R.STAMP}: learning rates of {len(data['learning_rates'])} epoch(s) from the CSV logs")
    data["encoder"] = encoder.to_json()
    data.setdefault("learning_rates", [])
    return done


def _record_training_facts(run_dir: Path, data: dict[str, Any], config: TrainConfig,
                           data_facts: DataFacts) -> list[str]:
    """``data_sha256`` and ``started`` in the stamp ``data`` (updated), for a run that trained: the training
    data is read (its µm/px must be run.json's, and its digest the recorded one where there is one: the
    µm/px the checkpoints will carry is then the data's); the start, where none is recorded, is now less the
    training time last.ckpt's time budget says was spent (the latest start it allows: a later resume may not
    claim more). None (both) for a run that never trained and for an ensemble (its members keep theirs)."""
    import math
    import time

    from cellprobe.run.checkpoint import saved_training_seconds

    trained = R.ENSEMBLE_KEY not in data["info"] and (
        data.get("status") == "finished" or any((run_dir / name).exists() for name in (R.BEST, R.LAST)))
    done: list[str] = []
    if not trained:
        data.setdefault("data_sha256", None)
        data.setdefault("started", None)
        return done
    try:
        digest, mpp = data_facts(config)
    except InputError as exc:
        raise InputError(exc.path, f"{exc.problem}; the upgrade reads the run's training data ({config.data.path}) "
                                   "for its digest and µm/px: restore it, then upgrade") from None
    recorded = data.get("data_sha256")
    if is_sha256(recorded) and recorded != digest:
        raise InputError(run_dir / R.STAMP, f"the training data ({config.data.path}) changed since the run trained on "
                                            "it, so its µm/px then is unknown; restore the data, then upgrade")
    if data.get("mpp") != mpp:
        raise InputError(run_dir / R.STAMP, f"records mpp {data.get('mpp')!r}, but the training data "
                                            f"({config.data.path}) is at {mpp!r} µm/px now: the data (its "
                                            "dataset.yaml?) or run.json changed since training; restore it, then "
                                            "upgrade")
    if recorded is None:
        data["data_sha256"] = digest
        done.append(f"{R.STAMP}: the sha256 of the training data as it is now ({config.data.path}), which a resume, "
                    "refit or tune compares with")
    if data.get("started") is None:
        last = run_dir / R.LAST
        spent = saved_training_seconds(load_checkpoint(last)) if last.is_file() else 0.0
        if not (math.isfinite(spent) and spent < time.time()):
            raise InputError(last, f"its time budget's saved training time ({spent:g} s) is more than since 1970: "
                                   "a damaged checkpoint; the run cannot be upgraded")
        data["started"] = time.time() - spent
        done.append(f"{R.STAMP}: the time training started taken as now less the {spent:.0f} s its last checkpoint "
                    "says were spent")
    return done
