"""Feature-extraction speed and memory of every registered encoder on CPU (random weights, 256×256 input).

Each encoder runs in its own subprocess so that its peak resident memory (``ru_maxrss``: weights + activations
+ the Python/torch baseline) is its own. Per encoder: build with random weights (seeded timm init), one warm-up
batch, then timed batches until ``--min-seconds`` have passed (at least ``--min-batches``). The machine is
shared, so images/s is taken from the fastest batch (the least disturbed one, as ``timeit`` advises); the
median is reported beside it. Also reports the
feature-cache size per 256×256 patch (float16 taps) and checks it against a real on-disk cache of a few patches.

    .venv/bin/python benchmarks/bench_encoders.py                 # all encoders, Markdown table on stdout
    .venv/bin/python benchmarks/bench_encoders.py --only uni vit-b16 --json out.json
    .venv/bin/python benchmarks/bench_encoders.py --cache-data ../shared/data/consep --cache-split train
        # real data: fill a feature cache (pretrained EfficientNet-Lite0), then reopen it: time and bytes
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def measure(name: str, batch: int, size: int, min_seconds: float, min_batches: int, threads: int) -> dict:
    """Run in the child process: build, warm up, time; returns one result row."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)

    from cellprobe.encoders import build_encoder
    from cellprobe.encoders.cache import extract_features

    start = time.perf_counter()
    encoder = build_encoder(name, weights="random", seed=0)
    build_s = time.perf_counter() - start
    images = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    encoder(images)  # warm-up
    times = []
    while len(times) < min_batches or sum(times) < min_seconds:
        t = time.perf_counter()
        encoder(images)
        times.append(time.perf_counter() - t)
    shapes = encoder.feature_shapes(size, size)
    cache_bytes = sum(int(np.prod(s)) for s in shapes) * 2
    on_disk = None
    if name == "efficientnet-lite0":  # a real cache: file bytes per patch vs the computed size
        rng = np.random.default_rng(0)
        patches = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(8)]
        with tempfile.TemporaryDirectory() as tmp:
            cache = extract_features(encoder, patches, tmp, batch_size=batch, chunk_size=4)[0]
            on_disk = sum(f.stat().st_size for f in cache.directory.glob("tap*.npy")) / len(patches)
    return {
        "encoder": name, "params_m": sum(p.numel() for p in encoder.parameters()) / 1e6, "batch": batch,
        "size": size, "build_s": build_s, "batches": len(times), "seconds_per_batch": float(np.median(times)),
        "images_per_s": batch / float(np.min(times)), "images_per_s_median": batch / float(np.median(times)),
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "tap_shapes": [list(s) for s in shapes], "cache_kib_per_patch": cache_bytes / 1024,
        "cache_on_disk_kib_per_patch": None if on_disk is None else on_disk / 1024,
        "threads": torch.get_num_threads(),
    }


def cache_on_real_data(path: Path, split: str | None, encoder_name: str, views: int) -> dict:
    """Fill a cache for a real data set, reopen it (reuse, full verification) and read every item once."""
    import numpy as np

    from cellprobe.data import open_dataset
    from cellprobe.encoders import build_encoder
    from cellprobe.encoders.cache import FeatureCache, extract_features

    dataset = open_dataset(path, split=split)
    encoder = build_encoder(encoder_name)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        caches = extract_features(encoder, dataset, tmp, views=tuple(range(views)), batch_size=8)
        fill_s = time.perf_counter() - t
        t = time.perf_counter()
        again = extract_features(encoder, dataset, tmp, views=tuple(range(views)), batch_size=8)
        reuse_s = time.perf_counter() - t
        t = time.perf_counter()
        reopened = [FeatureCache(c.directory, c.key) for c in again]
        for cache in reopened:
            for i in range(len(cache)):
                cache[i]  # first read of each chunk verifies its checksum
        read_s = time.perf_counter() - t
        disk = sum(f.stat().st_size for c in caches for f in c.directory.iterdir())
        n = len(dataset) * views
    return {"data": str(path), "split": split, "encoder": encoder_name, "patches": len(dataset), "views": views,
            "image_size": list(caches[0].key.input_size), "fill_s": fill_s, "fill_patches_per_s": n / fill_s,
            "reuse_s": reuse_s, "read_verify_s": read_s, "disk_mib": disk / 2**20,
            "kib_per_patch_view": disk / n / 1024, "computed_kib_per_patch_view": caches[0].bytes_per_item / 1024,
            "rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "dtype": str(np.float16)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="encoder names (default: all registered)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--min-seconds", type=float, default=6.0)
    parser.add_argument("--min-batches", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared 2-core machine two OpenMP threads stall on "
                             "each other whenever another process holds a core, 10-50x slower)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--cache-data", type=Path, help="real data set for the cache measurement (skips speed)")
    parser.add_argument("--cache-split", default=None)
    parser.add_argument("--cache-encoder", default="efficientnet-lite0")
    parser.add_argument("--cache-views", type=int, default=1)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cache_data:
        row = cache_on_real_data(args.cache_data, args.cache_split, args.cache_encoder, args.cache_views)
        print(json.dumps(row, indent=2))
        return 0
    if args.child:
        row = measure(args.child, args.batch, args.size, args.min_seconds, args.min_batches, args.threads)
        print("RESULT " + json.dumps(row))
        return 0

    from cellprobe.encoders.registry import list_encoders

    names = args.only or [s.name for s in list_encoders()]
    rows = []
    total = time.perf_counter()
    for name in names:
        cmd = [sys.executable, __file__, "--child", name, "--batch", str(args.batch), "--size", str(args.size),
               "--min-seconds", str(args.min_seconds), "--min-batches", str(args.min_batches),
               "--threads", str(args.threads)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode or not lines:
            print(f"{name}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
            continue
        row = json.loads(lines[-1][len("RESULT "):])
        rows.append(row)
        print(f"{name}: {row['images_per_s']:.2f} img/s, peak RSS {row['peak_rss_gib']:.2f} GiB", file=sys.stderr)
    print("| encoder | params (M) | images/s (best) | images/s (median) | peak RSS (GiB) | build (s) | "
          "cache / patch (KiB, fp16) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['encoder']} | {r['params_m']:.1f} | {r['images_per_s']:.2f} | {r['images_per_s_median']:.2f} | "
              f"{r['peak_rss_gib']:.2f} | {r['build_s']:.1f} | {r['cache_kib_per_patch']:.0f} |")
    elapsed = time.perf_counter() - total
    print(f"\n{len(rows)} encoders in {elapsed / 60:.1f} min; torch threads {rows[0]['threads'] if rows else '?'}; "
          f"{platform.processor() or platform.machine()}", file=sys.stderr)
    if args.json:
        from cellprobe import atomic

        atomic.write_json(args.json, {"rows": rows, "elapsed_s": elapsed})
    return 0


if __name__ == "__main__":
    sys.exit(main())
