"""Paired comparison of evaluated runs (``cellprobe evaluate`` folders: metrics.json + per_image.csv) on the
same test images: each model's estimate with its bootstrap CI, and every difference to the first run with its
paired bootstrap CI and sign-flip permutation p (the statistics of the benchmark report, cellprobe.bench.stats).
Patches of one source image are resampled together when per_image.csv has a ``source`` column (written by
``cellprobe evaluate`` since 2026-12-02); older tables are resampled patch by patch, which is too narrow for
overlapping tiles.

    .venv/bin/python benchmarks/compare_runs.py runs/seg/a-pretrained runs/seg/a-random --n-boot 1000
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from cellprobe.bench import layout, stats

METRICS = ("pq", "mpq_plus", "r2", "f1_detection", "aji")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="evaluated run folders (or --out folders of evaluate)")
    p.add_argument("--metrics", nargs="+", default=list(METRICS))
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--n-perm", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    names, tables, class_names = [], [], None
    for run in args.runs:
        metrics = json.loads((run / "metrics.json").read_text())
        class_names = class_names or metrics.get("class_names")
        names.append(run.name)
        tables.append(pd.read_csv(run / "per_image.csv").assign(model=run.name))
    aggregate = layout.aggregator("conic", class_names)
    al = stats.align(pd.concat(tables, ignore_index=True), models=names)
    boot = stats.bootstrap(al, aggregate, args.metrics, n_boot=args.n_boot, seed=args.seed)
    lo, hi = boot.ci()
    rows = [{"model": m, **{k: f"{boot.estimate[i, j]:.4f} [{lo[i, j]:.4f}, {hi[i, j]:.4f}]"
                            for j, k in enumerate(args.metrics)}} for i, m in enumerate(al.models)]
    print(pd.DataFrame(rows).to_string(index=False))
    tests = stats.paired_tests(al, aggregate, args.metrics, [(names[0], n) for n in names[1:]],
                               n_perm=args.n_perm, seed=args.seed, boot=boot)
    print()
    print(tests.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"\n{al.n_images} images in {al.n_groups} resampled groups (source images); {args.n_boot} bootstrap "
          f"resamples, {args.n_perm} sign-flip permutations")


if __name__ == "__main__":
    main()
