"""Current run folders laid out as the earlier run formats wrote them (the inverse of ``cellprobe upgrade``)."""

from __future__ import annotations

import json

from cellprobe.run import run_folder as R
from cellprobe.run.checkpoint import load_checkpoint, save_checkpoint


def to_format_1(run_dir):
    """Lay a current run folder out as run format 1 wrote it (the inverse of the upgrade)."""
    stamp = json.loads((run_dir / R.STAMP).read_text())
    enc = stamp["encoder"]
    old_identity = {"encoder": enc["name"], "family": enc["family"], "weights": "random",
                    "weights_digest": enc["weights_digest"], "tap_channels": enc["tap_channels"],
                    "tap_strides": enc["tap_strides"], "num_classes": len(stamp["class_names"]),
                    "class_names": stamp["class_names"]}
    for name in (R.BEST, R.LAST):
        ckpt = load_checkpoint(run_dir / name)
        ckpt["state_dict"] = {k.removeprefix("network."): v for k, v in ckpt["state_dict"].items()}
        ckpt["cellprobe"] = dict(old_identity)
        save_checkpoint(ckpt, run_dir / name)
    for key in ("learning_rates", "data_sha256", "started"):
        del stamp[key]
    stamp.update(run_format=1, encoder=old_identity)
    (run_dir / R.STAMP).write_text(json.dumps(stamp))


def to_format_2(run_dir, kept=()):
    """Lay a current run folder out as run format 2 wrote it: no µm/px in the checkpoints, data_sha256 and
    started only where ``kept``."""
    stamp = json.loads((run_dir / R.STAMP).read_text())
    for name in (R.BEST, R.LAST):
        ckpt = load_checkpoint(run_dir / name)
        del ckpt["cellprobe"]["mpp"]
        save_checkpoint(ckpt, run_dir / name)
    (run_dir / R.STAMP).write_text(json.dumps({**{k: v for k, v in stamp.items() if k in kept or k not in
                                                  ("data_sha256", "started")}, "run_format": 2}))
    return stamp
