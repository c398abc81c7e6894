"""Benchmark cells on Dask (BENCHMARKS.md, "### Benchmark cells on a Dask cluster").

One run measures, on the same machine and data:
  * a 4-cell bench (EfficientNet-Lite0 pretrained and random × seeds 0, 1; the demo's CoNSeP patches, 1 epoch,
    one torch thread per cell) in-process, then on a LocalCluster of 1 and of 2 worker processes
    (`cellprobe bench --cluster local:N`): wall-clock seconds and the 1-vs-2-worker ratio; the three index.csv
    must be equal apart from timings and hosts;
  * the engine's overhead per cell: N no-op cells on 1 worker, minus the same command with every cell already
    done (cluster start, shared-folder check, shutdown), minus the N no-op cells in-process (writing results and
    index.csv, as without Dask), divided by N: scheduling and transfer;
  * a cohort of 4 generated slides (real CoNSeP tissue, 1024² px at 0.25 µm/px) one after another in-process,
    then as tasks of a LocalCluster of 1 and of 2 workers (`cellprobe slide --cluster local:N`): wall-clock
    seconds, the 1-vs-2-worker ratio, equal cells.parquet, and the overhead per slide (local:1 minus the rerun
    that skips every slide, minus in-process, divided by 4: scheduling, transfer, the worker's run loading).

    nice -n 10 .venv/bin/python benchmarks/bench_dask.py --out /tmp/bench-dask [--parts cells slides]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cellprobe.bench.bench_config import BenchConfig
from cellprobe.bench.matrix import CellOutput
from cellprobe.bench.runner import run_bench
from cellprobe.cluster import ClusterSpec
from cellprobe.config import parse_config

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "src" / "cellprobe" / "resources" / "demo"
#: the demo's decoder widths (half the default), as in `cellprobe demo`
DECODER = {"decoder_channels": [32, 24, 16, 8, 8], "stem_channels": [4, 8]}


def bench_config(data: Path, **changes) -> BenchConfig:
    return parse_config(BenchConfig, {
        "name": "dask-bench",
        "datasets": [{"name": "consep-demo", "path": str(data), "format": "patches",
                      "folds": [{"train_split": "train", "val_split": "val", "test_split": "test"}]}],
        "encoders": [{"name": "efficientnet-lite0", "weights": ["pretrained", "random"], "group": "general"}],
        "seeds": [0, 1], "examples": 0, "tune": False,
        "training": {"epochs": 1, "batch_size": 4, "cache_features": True, "cache_views": 1, "decoder": DECODER,
                     "trainer": {"accelerator": "cpu", "progress": False, "threads": 1}},
        **changes})


def noop_cell(task, work_dir) -> CellOutput:
    """A cell that does no work: what is left of its time is the engine's (scheduling, transfer, writing)."""
    from cellprobe.metrics import score_maps

    inst = np.zeros((16, 16), np.int32)
    inst[4:9, 4:9] = 1
    cls = (inst > 0).astype(np.uint8)
    score = score_maps([inst], [cls], [inst], [cls], num_classes=1, image_names=["p0"])
    per_image = score.per_image.copy()
    per_image.index = pd.Index(["p0"], name="image")
    return CellOutput(score.summary, per_image, {})


def timed(label: str, call) -> tuple[float, object]:
    start = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - start
    print(f"{label}: {seconds:.1f} s", flush=True)
    return seconds, result


def index(folder: Path) -> pd.DataFrame:
    table = pd.read_csv(folder / "index.csv")
    return table.drop(columns=[c for c in table.columns if c.startswith(("seconds", "host"))])


def cells(args: argparse.Namespace, figures: dict[str, float]) -> None:
    config = bench_config(DEMO)
    figures["sequential_s"], _ = timed("4 cells in-process", lambda: run_bench(config, args.out / "seq"))
    for workers in (1, 2):
        figures[f"local{workers}_s"], summary = timed(
            f"4 cells, --cluster local:{workers}",
            lambda w=workers: run_bench(config, args.out / f"local{w}", cluster=ClusterSpec("local", workers=w)))
        assert len(summary.done) == 4 and not summary.failed, summary
        pd.testing.assert_frame_equal(index(args.out / f"local{workers}"), index(args.out / "seq"))
    for run in ("seq", "local1", "local2"):  # what each cell took where it ran (CPU contention shows here)
        figures[f"{run}_mean_cell_s"] = float(pd.read_csv(args.out / run / "index.csv")["seconds"].mean())
    figures["ratio_1_vs_2_workers"] = figures["local1_s"] / figures["local2_s"]

    noop = bench_config(DEMO, seeds=list(range(args.noop_cells // 2)))
    spec = ClusterSpec("local", workers=1)
    figures["noop_inprocess_s"], _ = timed(f"{args.noop_cells} no-op cells in-process",
                                           lambda: run_bench(noop, args.out / "noop-seq", noop_cell, check_inputs=False))
    figures["noop_local1_s"], _ = timed(f"{args.noop_cells} no-op cells, local:1", lambda: run_bench(
        noop, args.out / "noop", noop_cell, check_inputs=False, cluster=spec))
    figures["cluster_start_and_close_s"], _ = timed("the same, every cell done (start, check, close)", lambda: run_bench(
        noop, args.out / "noop", noop_cell, check_inputs=False, cluster=spec))
    figures["engine_overhead_per_cell_s"] = (figures["noop_local1_s"] - figures["cluster_start_and_close_s"]
                                             - figures["noop_inprocess_s"]) / args.noop_cells


def quick_run(out: Path) -> Path:
    """A run that finds nuclei: frozen ImageNet EfficientNet-Lite0, 3 short epochs on the demo's patches."""
    from cellprobe.training import train

    return train({"output": str(out), "encoder": {"name": "efficientnet-lite0", "weights": "pretrained"},
                  "data": {"path": str(DEMO), "format": "patches", "val_split": "val"}, "epochs": 3,
                  "batch_size": 4, "cache_features": True, "cache_views": 1, "lr": 0.003, "decoder": DECODER,
                  "trainer": {"accelerator": "cpu", "progress": False, "limit_train_batches": 10,
                              "threads": 2}}).path


def slides(args: argparse.Namespace, figures: dict[str, float]) -> None:
    from cellprobe.data.slide_fixtures import consep_mosaic, write_aperio_tiff
    from cellprobe.inference.segmenter import Segmenter
    from cellprobe.inference.slide_cohort import NetworkChoice, run_cohort
    from cellprobe.inference.slide_config import SlideSettings
    from cellprobe.inference.slide_engine import make_pool, run_slide
    from cellprobe.inference.slide_plan import SlideInputs

    run = args.run or quick_run(args.out / "run")
    paths = []
    for seed in range(4):
        image, _, _ = consep_mosaic(args.data, 4, 4, seed=seed)
        paths.append(write_aperio_tiff(args.out / "slides" / f"slide{seed}.svs", image, image.shape[1],
                                       image.shape[0], 0.25, levels=(1, 4)))
    settings, inputs = SlideSettings.model_validate({"workers": 1}), SlideInputs()
    network = NetworkChoice(str(run), device="cpu")

    def in_process() -> None:
        segmenter, pool = Segmenter(run, device="cpu"), make_pool(settings.workers)
        try:
            for path in paths:
                run_slide(segmenter, path, args.out / "slides-seq", settings, None, inputs, False, pool)
        finally:
            pool.shutdown()

    figures["slides_sequential_s"], _ = timed("4 slides in-process", in_process)
    for workers in (1, 2):
        spec = ClusterSpec("local", workers=workers)
        figures[f"slides_local{workers}_s"], _ = timed(f"4 slides, --cluster local:{workers}", lambda s=spec, w=workers:
                                                      run_cohort(s, network, paths, args.out / f"slides-local{w}",
                                                                 settings, inputs, False))
        for path in paths:
            name = path.stem
            pd.testing.assert_frame_equal(pd.read_parquet(args.out / f"slides-local{workers}" / name / "cells.parquet"),
                                          pd.read_parquet(args.out / "slides-seq" / name / "cells.parquet"))
    figures["slides_ratio_1_vs_2_workers"] = figures["slides_local1_s"] / figures["slides_local2_s"]
    figures["slides_cluster_start_and_close_s"], _ = timed("the same, every slide done (start, check, close)", lambda:
                                                           run_cohort(ClusterSpec("local", workers=1), network, paths,
                                                                      args.out / "slides-local1", settings, inputs,
                                                                      False))
    figures["engine_overhead_per_slide_s"] = (figures["slides_local1_s"] - figures["slides_cluster_start_and_close_s"]
                                              - figures["slides_sequential_s"]) / len(paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--noop-cells", type=int, default=24)
    parser.add_argument("--parts", nargs="+", choices=("cells", "slides"), default=["cells", "slides"])
    parser.add_argument("--run", type=Path, help="run folder for the slides (default: a quick one trained here)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "consep")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    figures: dict[str, float] = {}
    for part in args.parts:
        {"cells": cells, "slides": slides}[part](args, figures)
    print(json.dumps({k: round(v, 2) for k, v in figures.items()}, indent=1))


if __name__ == "__main__":
    main()
