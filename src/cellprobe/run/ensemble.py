"""Ensemble run folders: several finished runs whose maps are averaged, tuned and evaluated as one run.

``make_ensemble(members, out)`` writes a run folder without checkpoints of its own::

    run.json       stamp (status finished); info.ensemble: each member's path, relative to this folder when
                   possible (so copying the two side by side keeps it valid), and the sha256 of its checkpoints
    config.yaml    the first member's config: the validation patches ``cellprobe tune`` uses and the untuned
                   post-processing thresholds
    postprocess.json, metrics.json, ...   written by ``cellprobe tune`` / ``evaluate`` as for any run

:class:`~cellprobe.inference.segmenter.Segmenter` loads every member (:func:`checkpoints`) and averages their probabilities and
distance maps, computing each distinct frozen encoder's taps once. Members must share classes, resolution and
training/validation patches (``data.split_seed``): tuning on validation patches one member trained on would
make the thresholds look better than they are.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cellprobe import atomic
from cellprobe.config import dump_config
from cellprobe.data.io import refuse_output_inside
from cellprobe.errors import InputError
from cellprobe.hashing import file_sha256, is_sha256
from cellprobe.run import run_folder as R
from cellprobe.run.train_config import TrainConfig


@dataclass(frozen=True)
class Member:
    """One member of an ensemble: its run and the checkpoint digests recorded when the ensemble was made."""

    run: R.Run
    digests: dict[str, str]

    def checkpoint(self, which: str = "best") -> Path:
        """The member's checkpoint, refused if it changed since the ensemble was made."""
        path = self.run.checkpoint(which)
        if which in self.digests and file_sha256(path) != self.digests[which]:
            raise InputError(path, "checkpoint changed since the ensemble was made; make the ensemble again")
        return path


def members(run: R.Run) -> list[Member]:
    """The members of an ensemble run folder, opened and checked (version, config)."""
    entries = run.stamp.info.get(R.ENSEMBLE_KEY)
    if not isinstance(entries, list) or not entries:
        raise InputError(run.path / R.STAMP, "ensemble lists no members")
    stamp_path = run.path / R.STAMP
    out: list[Member] = []
    for entry in entries:  # as make_ensemble writes it: a path, and both checkpoints' digests
        digests = entry.get("checkpoints") if isinstance(entry, dict) else None
        if not (isinstance(entry, dict) and set(entry) == {"path", "checkpoints"} and isinstance(entry["path"], str)
                and isinstance(digests, dict) and set(digests) == {"best", "last"}
                and all(is_sha256(d) for d in digests.values())):
            raise InputError(stamp_path, f"ensemble member entry {str(entry)[:120]} is not a path with its "
                                         "checkpoints' sha256 (best, last)")
        path = Path(entry["path"])
        path = path if path.is_absolute() else run.path / path
        if not path.is_dir():
            raise InputError(stamp_path, f"ensemble member {entry['path']} is missing (resolved to {path})")
        member = Member(R.Run.open(path), dict(digests))
        for earlier in out:
            if earlier.run.path.resolve() == path.resolve() or earlier.digests["best"] == digests["best"]:
                raise InputError(stamp_path, f"ensemble lists the network of {entry['path']} twice")
        for attr in ("class_names", "mpp"):  # the ensemble's own, which its results are labelled with
            if getattr(member.run.stamp, attr) != getattr(run.stamp, attr):
                raise InputError(stamp_path, f"ensemble member {entry['path']} has {attr} "
                                             f"{getattr(member.run.stamp, attr)}, the ensemble "
                                             f"{getattr(run.stamp, attr)}")
        if training_patches(member.run.config) != training_patches(run.config):  # tune reads the ensemble's
            raise InputError(run.path / R.CONFIG, f"the ensemble's data section differs from its member "
                                                  f"{entry['path']}'s (the patches it trained and validated on): "
                                                  "tuning would not be on held-out patches; make the ensemble again")
        out.append(member)
    if run.stamp.encoder != out[0].run.stamp.encoder:  # what its results (a slide's stamp) are labelled with
        differ = ("null" if run.stamp.encoder is None
                  else "; ".join(out[0].run.stamp.encoder.differences(run.stamp.encoder)))
        raise InputError(stamp_path, f"the ensemble's encoder identity is not its first member's ({differ}): "
                                     "run.json edited by hand? make the ensemble again")
    return out


def checkpoints(run: R.Run, which: str = "best") -> list[tuple[TrainConfig, Path]]:
    """(config, checkpoint) of each network of ``run``: its own, or each member's for an ensemble."""
    if run.is_ensemble:
        return [(m.run.config, m.checkpoint(which)) for m in members(run)]
    return [(run.config, run.checkpoint(which))]


def training_patches(config: TrainConfig) -> dict[str, Any]:
    """What decides a run's training and validation patches; members must agree on it."""
    data = config.data.model_dump(mode="json", exclude={"split_seed"})
    data["path"] = str(Path(config.data.path).resolve())
    return {**data, "split_seed": config.split_seed if config.data.val_split is None else None}


def make_ensemble(member_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """Write the ensemble run folder ``out`` over finished runs ``member_dirs``; returns its path."""
    if len(member_dirs) < 2:
        raise InputError(None, "an ensemble needs at least two runs")
    out = Path(out)
    if out.is_symlink():  # the ensemble is renamed into place: onto a link it cannot go
        raise InputError(out, f"is a link (to {os.readlink(out)}); give the folder's own path as --out")
    atomic.output_folder(out.parent, create=False)  # a file or a link to nothing on the way: one line
    from cellprobe.locking import LOCK

    # a lock file alone is what a killed command left (the kernel released its lock): the folder is empty
    if out.exists() and (not out.is_dir() or any(p.name != LOCK for p in out.iterdir())):
        raise InputError(out, "output exists and is not an empty folder; choose another --out")
    runs = [R.Run.open(d) for d in member_dirs]
    seen: dict[Path, Path] = {}
    for r in runs:
        if r.path.resolve() in seen:
            raise InputError(r.path, f"run is listed twice (also as {seen[r.path.resolve()]})")
        seen[r.path.resolve()] = r.path
    R.refuse_inside_run(out)  # a member's folder or any other run's
    for r in runs:  # an ensemble is a run: tuning it writes into it, so never into the data it would read
        refuse_output_inside(out, r.config.data.path)
    first = runs[0]
    for r in runs:
        if r.is_ensemble:
            raise InputError(r.path, "is an ensemble itself; list its members instead")
        if not r.finished:
            raise InputError(r.path, "run has not finished training")
        for attr in ("class_names", "mpp"):
            if getattr(r.stamp, attr) != getattr(first.stamp, attr):
                raise InputError(r.path, f"{attr} {getattr(r.stamp, attr)} differ from {first.path}'s "
                                         f"{getattr(first.stamp, attr)}")
        mine, theirs = training_patches(r.config), training_patches(first.config)
        if mine != theirs:
            differ = ", ".join(f"{'data.' if k != 'split_seed' else ''}{k} {mine[k]!r} vs {theirs[k]!r}"
                               for k in mine if mine[k] != theirs.get(k))
            raise InputError(r.path, f"trained or validated on other patches than {first.path} ({differ}); "
                                     "members must share the data section (and, validating on a fraction of the "
                                     "training split, data.split_seed)")
    from cellprobe.run.network import check_checkpoint

    for r in runs:  # each member's networks load, as the ensemble's first use would find out too late
        for which in ("best", "last"):
            check_checkpoint(r.config, r.stamp.encoder, r.stamp.class_names, r.checkpoint(which), r.stamp.mpp)
    entries = [{"path": _relative(r.path, out),
                "checkpoints": {which: file_sha256(r.checkpoint(which)) for which in ("best", "last")}}
               for r in runs]
    same: dict[str, Path] = {}
    for r, entry in zip(runs, entries, strict=True):  # a copied run folder adds no second network
        best = entry["checkpoints"]["best"]
        if best in same:
            raise InputError(r.path, f"its best checkpoint is byte-identical to {same[best]}'s: the same network "
                                     "twice is no ensemble")
        same[best] = r.path
    # written beside ``out`` and renamed into place: a killed command leaves no half-made ensemble
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic.temporary_folder(out.parent, prefix=f".{out.name}.")
    try:
        stamp = R.RunStamp(status="finished", encoder=first.stamp.encoder,
                           class_names=list(first.stamp.class_names), mpp=first.stamp.mpp,
                           info={R.ENSEMBLE_KEY: entries})
        stamp.write(tmp)
        atomic.write_text(tmp / R.CONFIG, dump_config(first.config.model_copy(update={"output": out})))
        (out / LOCK).unlink(missing_ok=True)
        os.replace(tmp, out)  # onto a missing or empty folder
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _relative(path: Path, start: Path) -> str:
    """``path`` relative to ``start`` when both are on one drive (paths keep working when copied together)."""
    try:
        return os.path.relpath(path.resolve(), start.resolve())
    except ValueError:  # another drive (Windows)
        return str(path.resolve())
