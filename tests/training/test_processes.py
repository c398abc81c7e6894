"""Real processes: a SIGKILLed training resumes to the same weights; DDP with two CPU processes (gloo)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from tests.training.tiny import tiny_config

from cellprobe.run.checkpoint import load_checkpoint
from cellprobe.training import train

pytestmark = pytest.mark.slow


def _cli(cfg: dict, tmp_path, *extra: str) -> list[str]:
    cfg = dict(cfg)
    path = tmp_path / f"cfg-{len(list(tmp_path.glob('cfg-*')))}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return [sys.executable, "-m", "cellprobe.cli.app", "train", "--encoder", cfg["encoder"]["name"],
            "--weights", cfg["encoder"]["weights"], "--data", cfg["data"]["path"], "--out", cfg["output"],
            "--config", str(path), *extra]


def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1"}


def test_sigkill_then_resume_gives_the_uninterrupted_weights(tiny_data, tmp_path):
    common = {"epochs": 4, "trainer": {"accelerator": "cpu", "progress": False, "threads": 1}}
    reference = train(tiny_config(tiny_data, tmp_path / "ref", **common)).path
    cfg = tiny_config(tiny_data, tmp_path / "killed", **common)
    proc = subprocess.Popen(_cli(cfg, tmp_path), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = tmp_path / "killed" / "last.ckpt"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if last.is_file():  # killed after its first epoch: three left, a margin on a busy machine
            break
        time.sleep(0.2)
    assert proc.poll() is None, "training ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads((tmp_path / "killed" / "run.json").read_text())["status"] == "training"
    done = subprocess.run(_cli(cfg, tmp_path), env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    a = load_checkpoint(reference / "last.ckpt")["state_dict"]
    b = load_checkpoint(tmp_path / "killed" / "last.ckpt")["state_dict"]
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6), key


def test_ddp_on_two_cpu_processes(tmp_path):
    """Eight patches of eight sources, three held out for validation: the two ranks validate 2 + 1 patches
    (validation is not padded, so its steps differ in number across ranks), and training still ends."""
    from cellprobe.data.fixtures import synthetic_set, write_patches

    images, inst, cls = synthetic_set(8, seed=0, size=64, num_classes=2, n_nuclei=5)
    names = [f"p{i}" for i in range(8)]
    data = write_patches(tmp_path / "data" / "train", images, inst, cls, names, names).parent
    cfg = tiny_config(data, tmp_path / "ddp", epochs=2, batch_size=1,
                      trainer={"accelerator": "cpu", "devices": 2, "strategy": "ddp", "progress": False,
                               "threads": 1})
    cfg["data"]["val_fraction"] = 0.375
    done = subprocess.run(_cli(cfg, tmp_path), env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "interrupted" not in done.stderr, done.stderr[-3000:]  # the second rank too returns the finished run
    stamp = json.loads((tmp_path / "ddp" / "run.json").read_text())
    assert stamp["status"] == "finished" and stamp["info"]["epochs"] == 2
    ckpt = load_checkpoint(tmp_path / "ddp" / "last.ckpt")
    assert ckpt["global_step"] == 2 * 3  # 5 training patches, batch 1, 2 ranks (padded to 3 + 3) → 3 steps
