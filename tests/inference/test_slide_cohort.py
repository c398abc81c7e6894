"""Slides spread over a real Dask LocalCluster (2 worker processes, loopback): the same outputs as one slide
after another in this process; a rerun skips them; the CLI's --cluster path."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from tests.training.tiny import TINY_DECODER

from cellprobe.cluster import CLIENT_SETTINGS, ClusterSpec
from cellprobe.data.slide_fixtures import consep_mosaic, write_aperio_tiff
from cellprobe.inference.segmenter import Segmenter
from cellprobe.inference.slide_cohort import NetworkChoice, run_cohort
from cellprobe.inference.slide_config import SlideSettings
from cellprobe.inference.slide_engine import run_slide
from cellprobe.inference.slide_plan import SlideInputs

MPP = 0.25
SETTINGS = {"tile": 256, "overlap": 64, "workers": 0, "tissue": {"method": "all"}}


#: the demo's real CoNSeP patches (shipped with cellprobe): a run that finds nuclei after a few seconds' training
DEMO = Path(__file__).parents[2] / "src" / "cellprobe" / "resources" / "demo"


@pytest.fixture(scope="module")
def cohort(consep_root, tmp_path_factory):
    """A small run that finds nuclei (frozen ImageNet EfficientNet-Lite0, 3 short epochs on the demo's patches)
    and two generated slides of real CoNSeP tissue (other tiles in each)."""
    from cellprobe.training import train

    root = tmp_path_factory.mktemp("cohort")
    run = train({"output": str(root / "run"), "encoder": {"name": "efficientnet-lite0", "weights": "pretrained"},
                 "data": {"path": str(DEMO), "format": "patches", "val_split": "val"}, "epochs": 3,
                 "batch_size": 4, "cache_features": True, "cache_views": 1, "lr": 0.003, "decoder": dict(TINY_DECODER),
                 "trainer": {"accelerator": "cpu", "progress": False, "limit_train_batches": 10, "threads": 2}}).path
    slides = []
    for seed in (0, 1):
        image, _, _ = consep_mosaic(consep_root, 2, 2, seed=seed)
        slides.append(write_aperio_tiff(root / f"slide{seed}.svs", image, image.shape[1], image.shape[0], MPP,
                                        levels=(1, 4)))
    return run, slides


def test_slides_on_a_cluster_give_the_outputs_of_one_after_another(cohort, tmp_path):
    import dask
    from distributed import Client, LocalCluster

    run, slides = cohort
    settings = SlideSettings.model_validate(SETTINGS)
    inputs = SlideInputs()
    segmenter = Segmenter(run, device="cpu")
    for path in slides:
        run_slide(segmenter, path, tmp_path / "local", settings, None, inputs)
    with dask.config.set(CLIENT_SETTINGS), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                         dashboard_address=":0", silence_logs=40) as cluster, Client(cluster):
        spec = ClusterSpec("scheduler", address=cluster.scheduler_address)
        events, lines = [], []
        summaries = run_cohort(spec, NetworkChoice(str(run), device="cpu"), slides, tmp_path / "dask", settings,
                               inputs, False, on_progress=events.append, notify=lines.append)
        assert [s.name for s in summaries] == ["slide0", "slide1"] and not any(s.skipped for s in summaries)
        assert {e[0] for e in events} == {"start", "advance"} and "2 slide(s)" in lines[0]
        again = run_cohort(spec, NetworkChoice(str(run), device="cpu"), slides, tmp_path / "dask", settings, inputs,
                           False)
        assert all(s.skipped for s in again)
    for name in ("slide0", "slide1"):
        local = pd.read_parquet(tmp_path / "local" / name / "cells.parquet")
        spread = pd.read_parquet(tmp_path / "dask" / name / "cells.parquet")
        assert len(local) > 0
        pd.testing.assert_frame_equal(spread, local)


def test_slide_cluster_options_are_checked_before_any_work(cli, cohort, tmp_path):
    run, slides = cohort
    out = tmp_path / "out"
    for option in (("--cluster", "local:0"), ("--cluster", "nowhere"), ("--scheduler", "tcp://127.0.0.1:9")):
        rc, _, err = cli("slide", run, slides[0], "--out", out, *option)
        assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert not out.exists()
