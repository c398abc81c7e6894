"""Loading time per patch of every reader, and augmentation time per patch (figures for BENCHMARKS.md, "## Data").

Real data: the ../shared/data/consep patches (``patches`` layout) and the CoNIC layout built from them.
The other formats are written on the fly in their released layouts (cellprobe.data.fixtures, synthetic pixels),
at their released sizes: PanNuke 256² (float64 arrays, memory-mapped), CoNSeP 1000² (.mat), MoNuSeg 1000²
(TIFF + XML), CytoDArk0 20× 1024² PNG + TIFF (tiled 256²), user folder 256² PNG + TIFF.
Every loaded sample is fully validated (ids, classes, dtypes), as in training.

Usage: python benchmarks/bench_data.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from cellprobe.data import fixtures, open_dataset
from cellprobe.data.augment import AugmentConfig, Augmenter, perturb_stain

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "consep"


def time_per_sample(ds, repeat: int) -> float:
    """Median over ``repeat`` passes of the mean time per sample (ms), a fresh reader each pass."""
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for i in range(len(ds)):
            ds[i]
        runs.append((time.perf_counter() - t0) / len(ds) * 1e3)
    return float(np.median(runs))


def build(tmp: Path) -> dict[str, tuple[Path, dict]]:
    out: dict[str, tuple[Path, dict]] = {}
    out["pannuke (256², float64 mmap)"] = (fixtures.write_pannuke(tmp / "pannuke", {1: 64}), {"split": "fold1"})
    out["consep .mat (1000², whole)"] = (fixtures.write_consep(tmp / "consep", {"test": 4}), {"split": "test"})
    out["consep .mat (tiled 256²)"] = (tmp / "consep", {"split": "test", "crop": "tiled"})
    out["monuseg tif+xml (1000², whole)"] = (fixtures.write_monuseg(tmp / "monuseg", {"test": 4}), {"split": "test"})
    out["cytodark0 20× (tiled 256²)"] = (fixtures.write_cytodark0(tmp / "cyto", [0, 0, 0]), {"split": "fold0"})
    images, inst, cls = fixtures.synthetic_set(32, size=256)
    names = [f"p{i}" for i in range(32)]
    out["folder png+tif (256²)"] = (fixtures.write_folder(tmp / "folder", images, inst, cls, names,
                                                          class_names=["a", "b", "c", "d"]), {})
    if (SHARED / "train" / "labels.npz").is_file():
        out["patches: shared CoNSeP test (256² jpg)"] = (SHARED, {"split": "test"})
        ds = open_dataset(SHARED, split="train")
        imgs = np.stack([ds[i].image for i in range(len(ds))])
        conic = fixtures.write_conic(tmp / "conic", imgs, ds.inst, ds.cls,
                                     [f"{s}-{i}" for i, s in enumerate(ds.sources())])
        out["conic from shared CoNSeP train (256², mmap)"] = (conic, {})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print("| reader | samples | ms per sample |\n| --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for label, (root, opts) in build(Path(tmp)).items():
            split = opts.pop("split", None)
            ds = open_dataset(root, split=split, **opts)
            print(f"| {label} | {len(ds)} | {time_per_sample(ds, args.repeat):.1f} |")
        ds = open_dataset(SHARED, split="test") if SHARED.is_dir() else None
    samples = [ds[i] for i in range(64)] if ds is not None else [
        fixtures.synthetic_patch(np.random.default_rng(i)) for i in range(64)]
    print("\n| augmentation (256²) | ms per sample |\n| --- | --- |")
    zero = {"p": 0.0}
    configs = {
        "dihedral only": AugmentConfig(elastic=zero, stain=zero, color=zero, blur=zero, noise=zero),
        "default config": AugmentConfig(),
        "everything on (p = 1)": AugmentConfig(elastic={"p": 1.0}, stain={"p": 1.0}, color={"p": 1.0},
                                               blur={"p": 1.0}, noise={"p": 1.0}),
    }
    for label, cfg in configs.items():
        aug = Augmenter(cfg)
        t0 = time.perf_counter()
        for seed, s in enumerate(samples):
            aug(s, seed)
        print(f"| {label} | {(time.perf_counter() - t0) / len(samples) * 1e3:.1f} |")
    for space in ("hed", "nissl"):
        t0 = time.perf_counter()
        for s in samples:
            perturb_stain(s.image, np.array([1.05, 0.95, 1.0]), np.array([0.005, 0.0, 0.0]), space)
        print(f"| stain perturbation alone ({space}) | {(time.perf_counter() - t0) / len(samples) * 1e3:.1f} |")


if __name__ == "__main__":
    main()
