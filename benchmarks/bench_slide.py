"""Whole-slide engine against today's whole-image ``predict``: seconds per mm², nuclei per second, peak RSS and
the time of each stage, with a run's frozen EfficientNet-Lite0 on this machine's CPU.

    .venv/bin/python benchmarks/bench_slide.py --run RUN [--data ../shared/data/consep] [--work /tmp/bench-slide]
        [--sizes 4096 16384 32768] [--tissue 4096] [--workers 2 1] [--no-whole]

Slides (Aperio-style SVS, JPEG, levels 1/4/16, 0.25 µm/px) are built from real CoNSeP test patches: the
4096² slide is all tissue (1.05 mm²), processed whole (tissue method ``all``: the same pixels as the
whole-image comparison); larger slides hold the same ``--tissue``² block of tissue in their
centre on white glass (tissue found by Otsu), so their compute is the same and what grows is the slide (pyramid, grid, tissue
detection): the figure of merit is that peak RSS does not grow with it. Each measurement runs in a fresh
process (``cellprobe.inference.slide_engine.run_slide``, or for the comparison ``Segmenter.segment`` on the
4096² level-0 image read whole, which is what ``predict`` did before this engine), which reports its own peak
RSS (``ru_maxrss``) and its post-processing workers' (``RUSAGE_CHILDREN``). The run must be at 0.25 µm/px
(``run.json`` mpp). Prints one JSON line per measurement and a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MPP = 0.25
PATCH = 256
GLASS = 244  # white glass, a little below saturation as scanners give it
MOSAIC = 8  # rows and columns of CoNSeP patches the tissue repeats

CHILD = """
import json, resource, sys, time
from pathlib import Path


def main():
    mode, run, slide, out, workers = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5])
    tissue = sys.argv[6]
    from cellprobe.inference.segmenter import Segmenter
    segmenter = Segmenter(run, device="cpu")
    start = time.perf_counter()
    if mode == "whole":
        from cellprobe.data.slide_reader import open_slide
        with open_slide(slide) as reader:
            image = reader.read(0, 0, 0, reader.levels[0].width, reader.levels[0].height)
        read_s = time.perf_counter() - start
        maps = segmenter.maps(image)
        network_s = time.perf_counter() - start - read_s
        inst, _, _ = segmenter.instances(maps)
        result = {"nuclei": int(inst.max()), "tissue_mm2": image.shape[0] * image.shape[1] * 0.25 ** 2 / 1e6,
                  "seconds": {"read": read_s, "network": network_s,
                              "postprocess": time.perf_counter() - start - read_s - network_s}}
    else:
        from cellprobe.inference.slide_config import SlideSettings
        from cellprobe.inference.slide_engine import run_slide
        summary = run_slide(segmenter, slide, out, SlideSettings(workers=workers, tissue={"method": tissue}),
                            overwrite=True)
        d = summary.data
        result = {"nuclei": summary.nuclei, "tissue_mm2": d["tissue_mm2"], "seconds": d["seconds"],
                  "tiles": d["tiles"], "windows": d["windows"]}
    result["wall_s"] = time.perf_counter() - start
    result["rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    result["workers_rss_gib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":  # the post-processing workers (forkserver) import this file too
    main()
"""


def make_slide(path: Path, side: int, tissue: int, consep: Path) -> Path:
    """A ``side``² slide with a centred ``min(tissue, side)``² block of CoNSeP tissue on glass."""
    from cellprobe.data.slide_fixtures import consep_mosaic, write_aperio_tiff

    if path.exists():
        return path
    mosaic, _, _ = consep_mosaic(consep, MOSAIC, MOSAIC, split="test", seed=0)
    block = min(tissue, side)
    lo, hi = (side - block) // 2, (side + block) // 2

    def tile(row: int, col: int) -> np.ndarray:
        out = np.full((PATCH, PATCH, 3), GLASS, np.uint8)
        y, x = row * PATCH, col * PATCH
        if lo <= y < hi and lo <= x < hi:
            r, c = (row % MOSAIC) * PATCH, (col % MOSAIC) * PATCH
            out[:] = mosaic[r:r + PATCH, c:c + PATCH]
        return out

    start = time.perf_counter()
    write_aperio_tiff(path, tile, side, side, MPP, tile=PATCH, levels=(1, 4, 16), compression="jpeg")
    print(f"# wrote {path.name} ({side}², {path.stat().st_size / 2**20:.0f} MiB) in "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    return path


def measure(mode: str, run: Path, slide: Path, out: Path, workers: int, tissue: str = "otsu") -> dict:
    child = out.parent / "bench_child.py"
    child.write_text(CHILD)
    proc = subprocess.run([sys.executable, str(child), mode, str(run), str(slide), str(out), str(workers), tissue],
                          capture_output=True, text=True, cwd=ROOT)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(line[len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "consep")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-slide"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 16384, 32768])
    parser.add_argument("--tissue", type=int, default=4096)
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--no-whole", action="store_true", help="skip the whole-image comparison")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for side in args.sizes:
        slide = make_slide(args.work / f"slide{side}.svs", side, args.tissue, args.data)
        if side == min(args.sizes) and not args.no_whole:
            result = measure("whole", args.run, slide, args.work / "out", 0)
            rows.append({"what": f"whole-image predict {side}²", "workers": 0, **result})
            print(json.dumps(rows[-1]), flush=True)
        for workers in (args.workers if side == min(args.sizes) else args.workers[:1]):
            # the all-tissue slide is compared with whole-image prediction: the same pixels (no tissue detection)
            tissue = "all" if side <= args.tissue else "otsu"
            result = measure("slide", args.run, slide, args.work / f"out{side}w{workers}", workers, tissue)
            rows.append({"what": f"slide {side}²", "workers": workers, **result})
            print(json.dumps(rows[-1]), flush=True)
    print("\n| what | workers | tissue mm² | nuclei | wall s | s/mm² | nuclei/s | peak RSS GiB (main + workers) | "
          "read s | network s | post-process s (sum over workers) | network waited for post-processing s | "
          "finish s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        s = r["seconds"]
        print(f"| {r['what']} | {r['workers']} | {r['tissue_mm2']:.2f} | {r['nuclei']} | {r['wall_s']:.0f} | "
              f"{r['wall_s'] / r['tissue_mm2']:.1f} | {r['nuclei'] / r['wall_s']:.1f} | "
              f"{r['rss_gib']:.2f} + {r['workers_rss_gib']:.2f} | {s.get('read', 0):.1f} | {s.get('network', 0):.1f} | "
              f"{s.get('postprocess', 0):.1f} | {s.get('wait_for_postprocess', 0):.1f} | {s.get('finish', 0):.1f} |")


if __name__ == "__main__":
    main()
