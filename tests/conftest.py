"""Shared test fixtures. Tests never reach a model hub: HF_HUB_OFFLINE is set before anything imports it."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def consep_root() -> Path:
    """The real CoNSeP patches of ../shared/data/consep (train/ and test/), or skip with the reason."""
    root = SHARED_DATA / "consep"
    if not (root / "test" / "labels.npz").is_file():
        pytest.skip(f"real-data test: {root} is absent (it ships beside the project checkout, not with it)")
    return root


@pytest.fixture
def cli(capsys):
    """Run the cellprobe CLI in-process: returns (exit status, stdout, stderr)."""
    from cellprobe.cli.app import main

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return rc, out, err

    return run


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """The tiny synthetic patches dataset of tests/training/tiny.py (train/ and test/ splits, 2 classes)."""
    from tests.training.tiny import make_tiny_data

    return make_tiny_data(tmp_path_factory.mktemp("tiny-data"))


@pytest.fixture
def held_elsewhere():
    """``held_elsewhere(folder, what)``: a context in which another process holds ``folder``'s cellprobe lock
    (as a running command does; this process's own locks never stand in its way)."""
    import contextlib
    import subprocess
    import sys

    @contextlib.contextmanager
    def hold(folder: Path, what: str):
        code = ("import sys\nfrom cellprobe.locking import exclusive\n"
                f"with exclusive({str(folder)!r}, {what!r}):\n    print('held', flush=True)\n    sys.stdin.read()\n")
        proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
            yield
        finally:
            proc.communicate("", timeout=60)

    return hold
