"""Time cellprobe.metrics on the 224 CoNSeP test patches against a plain per-instance-mask implementation.

    .venv/bin/python benchmarks/bench_metrics.py [--data ../shared/data/consep] [--repeats 5]

Truth: the test patches stacked into the CoNIC layout; prediction: a seeded corruption of it (dropped, merged,
split, grown, shifted, relabelled, spurious nuclei). Timed, in one run:
- ``score_conic`` (every CoNIC/HoVer-Net metric, R² in the central 224) pinned to one core, and with workers=2;
- ``score_pannuke`` (bPQ + mPQ) on the same labels as PanNuke masks, pinned to one core;
- the tests' plain implementation (one full-image mask per instance, as the official scripts do): PanNuke's
  bPQ + mPQ, and all CoNIC metrics; their values must equal cellprobe's to 1e-9.
Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the plain reference implementation and the corruptions live in the tests

from tests.metrics import plain  # noqa: E402
from tests.metrics.corrupt import corrupted_stack  # noqa: E402

from cellprobe.metrics import score_conic, score_pannuke  # noqa: E402

NUM_CLASSES = 4
RADIUS = 12.0  # CoNSeP is 40×
CROP = 224


def _load(data: Path):
    import pandas as pd

    with np.load(data / "test" / "labels.npz") as z:
        true = np.stack([z["inst"], z["cls"].astype(np.int32)], axis=-1)
    tissues = pd.read_csv(data / "test" / "patch_info.csv")["source_image"].astype(str).tolist()
    return true, tissues


def _pannuke_masks(labels: np.ndarray) -> np.ndarray:
    masks = np.zeros((*labels.shape[:3], NUM_CLASSES + 1), np.float64)
    for c in range(1, NUM_CLASSES + 1):
        masks[..., c - 1] = labels[..., 0] * (labels[..., 1] == c)
    masks[..., NUM_CLASSES] = labels[..., 0] == 0
    return masks


def _time(fn, repeats: int) -> tuple[float, float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), out


def _max_diff(got: dict, ref: dict) -> float:
    worst = 0.0
    for key, value in ref.items():
        if key in ("per_tissue", "image_bpq", "image_class_pq"):
            continue
        a, b = np.asarray(got[key], float), np.asarray(value, float)
        both_nan = np.isnan(a) & np.isnan(b)
        worst = max(worst, float(np.max(np.where(both_nan, 0.0, np.abs(a - b)), initial=0.0)))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "consep")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--plain-images", type=int, default=224, help="images for the (slow) plain timing")
    args = parser.parse_args()

    true, tissues = _load(args.data)
    pred = corrupted_stack(true, seed=0, num_classes=NUM_CLASSES).astype(np.int32)
    true_masks, pred_masks = _pannuke_masks(true), _pannuke_masks(pred)
    n = true.shape[0]
    all_cores = os.sched_getaffinity(0)
    one_core = {min(all_cores)}

    os.sched_setaffinity(0, one_core)
    score_conic(true[:2], pred[:2], radius=RADIUS)  # warm imports and caches
    conic_1 = _time(lambda: score_conic(true, pred, radius=RADIUS, r2_crop=CROP), args.repeats)
    pannuke_1 = _time(lambda: score_pannuke(true_masks, pred_masks, tissues), args.repeats)
    k = min(args.plain_images, n)
    plain_pannuke = _time(lambda: plain.pannuke_summary(true_masks[:k], pred_masks[:k], tissues[:k],
                                                        NUM_CLASSES), 1)
    plain_conic = _time(lambda: plain.conic_summary(true[:k], pred[:k], NUM_CLASSES, RADIUS, CROP), 1)
    os.sched_setaffinity(0, all_cores)
    conic_2 = _time(lambda: score_conic(true, pred, radius=RADIUS, r2_crop=CROP, workers=2), args.repeats)

    fast_k_conic = score_conic(true[:k], pred[:k], radius=RADIUS, r2_crop=CROP).summary
    fast_k_pannuke = score_pannuke(true_masks[:k], pred_masks[:k], tissues[:k]).summary
    diff_conic = _max_diff(fast_k_conic, plain_conic[2])
    diff_pannuke = _max_diff(fast_k_pannuke, plain_pannuke[2])
    same_workers = conic_1[2].per_image.equals(conic_2[2].per_image)

    ms = lambda seconds, count: 1000 * seconds / count  # noqa: E731
    print(f"{n} CoNSeP test patches (256×256), prediction = seeded corruption; best of {args.repeats} (median)\n")
    print("| what | time | per patch | values |")
    print("| --- | --- | --- | --- |")
    print(f"| cellprobe, all CoNIC/HoVer-Net metrics, 1 core | {conic_1[0]:.3f} s ({conic_1[1]:.3f}) | "
          f"{ms(conic_1[0], n):.2f} ms | PQ {conic_1[2].summary['pq']:.4f}, mPQ+ "
          f"{conic_1[2].summary['mpq_plus']:.4f} |")
    print(f"| cellprobe, all CoNIC/HoVer-Net metrics, workers=2 | {conic_2[0]:.3f} s ({conic_2[1]:.3f}) | "
          f"{ms(conic_2[0], n):.2f} ms | identical per-image table: {same_workers} |")
    print(f"| cellprobe, PanNuke bPQ + mPQ, 1 core | {pannuke_1[0]:.3f} s ({pannuke_1[1]:.3f}) | "
          f"{ms(pannuke_1[0], n):.2f} ms | bPQ {pannuke_1[2].summary['bpq']:.4f} |")
    print(f"| plain per-instance masks, PanNuke bPQ + mPQ ({k} patches), 1 core | {plain_pannuke[0]:.2f} s | "
          f"{ms(plain_pannuke[0], k):.1f} ms | max abs diff {diff_pannuke:.1e} |")
    print(f"| plain per-instance masks, all CoNIC metrics ({k} patches), 1 core | {plain_conic[0]:.2f} s | "
          f"{ms(plain_conic[0], k):.1f} ms | max abs diff {diff_conic:.1e} |")
    print(f"\nratio plain / cellprobe per patch: PanNuke bPQ+mPQ {ms(plain_pannuke[0], k) / ms(pannuke_1[0], n):.0f}×, "
          f"all CoNIC metrics {ms(plain_conic[0], k) / ms(conic_1[0], n):.0f}×")


if __name__ == "__main__":
    main()
