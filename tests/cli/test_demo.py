"""`cellprobe demo`: the shipped data, the plumbing (cell function faked, fast) and the real run (slow)."""

from __future__ import annotations

import csv
import importlib.util
import time
from pathlib import Path

import numpy as np
import pytest

from cellprobe.cli.demo_cmd import demo_config_path

_SPEC = importlib.util.spec_from_file_location("cellprobe_test_synth", Path(__file__).parents[1] / "bench" / "synth.py")
synth = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(synth)

DEMO = demo_config_path().parent


def test_shipped_demo_data_is_real_consep_small_licensed_and_split_by_image():
    assert "Apache-2.0" in (DEMO / "LICENSE").read_text() and "HoVer-Net" in (DEMO / "LICENSE").read_text()
    readme = (DEMO / "README.md").read_text()
    assert "CoNSeP" in readme and "spindle-shaped" in readme
    size = sum(p.stat().st_size for p in DEMO.rglob("*") if p.is_file())
    assert size < 3_000_000
    sources = {}
    for split in ("train", "val", "test"):
        with np.load(DEMO / split / "labels.npz") as z:
            inst, cls = z["inst"], z["cls"]
        rows = list(csv.DictReader((DEMO / split / "patch_info.csv").open()))
        assert inst.shape == (len(rows), 256, 256) and inst.dtype == np.int32 and cls.dtype == np.uint8
        assert set(np.unique(cls)) <= {0, 1, 2, 3, 4} and np.array_equal(inst > 0, cls > 0)
        assert all((DEMO / split / "images" / f"{r['patch']}.jpg").is_file() for r in rows)
        sources[split] = {r["source_image"] for r in rows}
    assert sources["train"].isdisjoint(sources["val"]) and sources["train"].isdisjoint(sources["test"])
    assert sources["val"].isdisjoint(sources["test"])
    assert len(sources["test"]) >= 14  # independent units enough for the paired test to mean something


def test_the_demo_images_are_consep_files_unchanged(consep_root):
    for split, source in (("test", "test"), ("train", "train"), ("val", "train")):
        for image in sorted((DEMO / split / "images").glob("*.jpg"))[:3]:
            assert image.read_bytes() == (consep_root / source / "images" / image.name).read_bytes()


def test_demo_plumbing_with_a_fake_cell(cli, tmp_path, monkeypatch):
    seen = []

    def fake(task, work_dir):
        seen.append(task)
        quality = 0.9 if task.cell.weights == "pretrained" else 0.5
        return synth.fake_cell_output(task.cell.dataset, task.cell.model, task.cell.seed, quality)

    # the runner holds its own reference to the default cell function: patched first, so that importing the
    # runner here binds the real one, which the undo then puts back
    monkeypatch.setattr("cellprobe.bench.runner.run_cell", fake)
    monkeypatch.setattr("cellprobe.bench.cell.run_cell", fake)
    rc, out, err = cli("demo", "--quick", "--out", tmp_path / "demo")
    assert rc == 0, err
    assert f"The demo report is at {(tmp_path / 'demo' / 'report.html').resolve()}" in out
    assert [t.cell.weights for t in seen] == ["pretrained", "random"]
    assert seen[0].cell.encoder == "efficientnet-lite0" and seen[0].dataset.path == DEMO.resolve()
    md = (tmp_path / "demo" / "report.md").read_text()
    assert "efficientnet-lite0 (random)" in md
    # the thirteenth probe: --set training.epochs=5 silently won over --quick's one epoch
    for key in ("training.epochs=5", "training={epochs: 5}", "examples=4"):
        rc, _, err = cli("demo", "--quick", "--out", tmp_path / "demo2", "--set", key)
        assert rc == 2 and "conflicts with --quick for" in err and err.count("\n") == 1, err
    # the fifteenth probe: --set output was recorded in bench.yaml and never used
    for extra in ((), ("--out", tmp_path / "demo2")):
        rc, _, err = cli("demo", "--quick", *extra, "--set", f"output={tmp_path / 'demo3'}")
        assert rc == 2 and "--set output conflicts with --out for 'output'" in err, err
    assert not (tmp_path / "demo2").exists()


@pytest.mark.slow
def test_full_demo_runs_offline_within_budget_and_pretrained_wins(cli, tmp_path):
    start = time.perf_counter()
    rc, _, err = cli("demo", "--out", tmp_path / "demo")
    seconds = time.perf_counter() - start
    assert rc == 0, err
    assert seconds < 600, f"demo took {seconds:.0f} s"
    import pandas as pd

    index = pd.read_csv(tmp_path / "demo" / "index.csv").set_index("model")
    assert index.loc["efficientnet-lite0", "pq"] > index.loc["efficientnet-lite0 (random)", "pq"]
    page = (tmp_path / "demo" / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 3
    # the PQ difference is supported by the statistics: 14 independent test images, p < 0.05
    md = (tmp_path / "demo" / "report.md").read_text()
    assert "14 source images" in md
    row = next(line for line in md.splitlines() if line.startswith("| PQ (image-avg.) | efficientnet-lite0 |"))
    p = row.split("|")[6].strip()  # metric | A | B | A − B | n units | p
    assert p == "<0.001" or float(p) < 0.05, row


@pytest.mark.slow
def test_quick_demo_trains_for_real(cli, tmp_path):
    rc, out, err = cli("demo", "--quick", "--out", tmp_path / "demo")
    assert rc == 0, err
    assert "The demo report is at" in out
    import pandas as pd

    index = pd.read_csv(tmp_path / "demo" / "index.csv")
    assert len(index) == 2 and index["n_test_images"].tolist() == [28, 28]
    assert (tmp_path / "demo" / "cells" / index["cell_id"][0] / "examples.npz").is_file()
