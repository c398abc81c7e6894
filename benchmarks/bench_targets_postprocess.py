"""Time target generation and post-processing on the 224 CoNSeP test patches, on one core; oracle quality.

    .venv/bin/python benchmarks/bench_targets_postprocess.py [--data ../shared/data/consep] [--repeats 5]
        [--boundary-radius 2] [--quality-only]

One core: BLAS/OpenMP/OpenCV threads set to 1 and the process pinned to one CPU (``sched_setaffinity``).
Each call is timed ``--repeats`` times on the same patch and its fastest run kept, in CPU time of the thread
(``time.thread_time``: the machine is shared, and wall time counts the slices other jobs take); the table gives
the mean and median over the 224 patches of these per-patch times, and the wall time of one whole pass (best
of 3), and the minor page faults per call (a small fresh process can take ~600 per call, as glibc hands
freed blocks back to the kernel; each costs ~5 µs on this virtual machine; a process that holds data, as
here or in training, takes none). Timed:
- ``make_targets`` on the patch labels;
- ``instances_from_maps`` on the oracle maps (one-hot semantic, exact distance maps) and on degraded maps
  (blurred + noise, as a decoder gives; ``tests/postprocess/oracle.py``);
- ``assign_types`` on one-hot type probabilities (5 channels);
- ``instances_from_hv`` (HoVer-Net's post-processing) on the hv maps with the true foreground.
Quality: CoNIC binary PQ (``cellprobe.metrics.score_maps``) of each post-processing against the truth.
Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the oracle / degraded maps live in the tests

from tests.postprocess.oracle import degrade, one_hot  # noqa: E402

from cellprobe.data.targets import TargetConfig, make_targets  # noqa: E402
from cellprobe.metrics import score_maps  # noqa: E402
from cellprobe.postprocess import assign_types, instances_from_hv, instances_from_maps  # noqa: E402


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def per_patch(fn, n: int, repeats: int) -> tuple[list[float], float, float]:
    """(fastest of ``repeats`` runs per patch in CPU ms, best of 3 whole passes in wall s, page faults per call)."""
    fastest = []
    faults = minor_faults()
    for i in range(n):
        best = float("inf")
        for _ in range(repeats):
            start = time.thread_time()
            fn(i)
            best = min(best, time.thread_time() - start)
        fastest.append(best * 1e3)
    faults = (minor_faults() - faults) / (n * repeats)
    passes = []
    for _ in range(3):
        start = time.perf_counter()
        for i in range(n):
            fn(i)
        passes.append(time.perf_counter() - start)
    return fastest, min(passes), faults


def pq(inst, cls, preds) -> float:
    binary = [(p > 0).astype(np.uint8) for p in preds]
    return score_maps(list(inst), list(cls), preds, binary, num_classes=4).summary["pq"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "consep")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--boundary-radius", type=int, default=TargetConfig().boundary_radius)
    parser.add_argument("--quality-only", action="store_true", help="only the PQ column, no timing")
    args = parser.parse_args()

    cv2.setNumThreads(1)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    with np.load(args.data / "test" / "labels.npz") as z:
        inst, cls = z["inst"], z["cls"]
    n = len(inst)

    rng = np.random.default_rng(0)
    config = TargetConfig(boundary_radius=args.boundary_radius)
    targets = [make_targets(inst[i], cls[i], config) for i in range(n)]
    semantic = [one_hot(t.semantic, 3) for t in targets]
    types = [one_hot(t.cls, 5) for t in targets]
    degraded = [degrade(s, t.distance, rng) for s, t in zip(semantic, targets, strict=True)]
    fg = [(i > 0).astype(np.float32) for i in inst]

    jobs = {
        "make_targets (semantic, 4 distance maps, classes, hv)": lambda i: make_targets(inst[i], cls[i], config),
        "instances_from_maps, oracle maps": lambda i: instances_from_maps(semantic[i], targets[i].distance),
        "instances_from_maps, degraded maps": lambda i: instances_from_maps(*degraded[i]),
        "assign_types (5 channels)": lambda i: assign_types(inst[i], types[i]),
        "instances_from_hv (HoVer-Net), oracle hv maps": lambda i: instances_from_hv(fg[i], targets[i].hv),
    }
    quality = {
        "instances_from_maps, oracle maps": lambda: [instances_from_maps(s, t.distance)
                                                     for s, t in zip(semantic, targets, strict=True)],
        "instances_from_maps, degraded maps": lambda: [instances_from_maps(*d) for d in degraded],
        "instances_from_hv (HoVer-Net), oracle hv maps": lambda: [instances_from_hv(f, t.hv)
                                                                  for f, t in zip(fg, targets, strict=True)],
    }
    print(f"{n} CoNSeP test patches, 256², one core (pinned), boundary radius {args.boundary_radius}, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    scores = {name: f"{pq(inst, cls, run()):.4f}" for name, run in quality.items()}
    if args.quality_only:
        for name, score in scores.items():
            print(f"| {name} | binary PQ {score} |")
        return
    print("| what | CPU ms per patch, mean (median) | wall, one pass of 224 | page faults per call | binary PQ |")
    print("| --- | --- | --- | --- | --- |")
    for name, fn in jobs.items():
        times, whole, faults = per_patch(fn, n, args.repeats)
        print(f"| {name} | {statistics.mean(times):.2f} ({statistics.median(times):.2f}) | {whole:.2f} s | "
              f"{faults:.0f} | {scores.get(name, '-')} |", flush=True)
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
