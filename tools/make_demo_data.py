"""Build the embedded demo data set (src/cellprobe/resources/demo/) from real CoNSeP patches.

CoNSeP (Graham et al., "HoVer-Net", Medical Image Analysis 2019; Apache-2.0) holds 41 colorectal
adenocarcinoma images at 40× with hand-drawn nucleus outlines and types. The development copy beside the
project (../shared/data/consep: 256² patches, 16 overlapping ones per image, train 27 images / test 14)
is cut down to a few patches per source image, keeping every source image, so that the demo's statistics
rest on many independent images (14 in the test split) rather than many patches of few images:

* test: patches ``TEST_PATCHES`` of each of the 14 test images (no two overlap);
* train and validation: patches ``TRAIN_PATCHES`` of each of the 27 training images; the ``VAL_IMAGES``
  training images listed below form the validation split (whole images: never patches of one image on
  both sides).

The JPEG files are copied unchanged and the label rows taken as they are. Each split is written in the
"patches" layout (images/*.jpg, labels.npz with ``inst`` and ``cls``, patch_info.csv).

Usage: python tools/make_demo_data.py [--consep DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import shutil
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONSEP = ROOT.parent / "shared" / "data" / "consep"
OUT = ROOT / "src" / "cellprobe" / "resources" / "demo"
CLASS_NAMES = ("other", "inflammatory", "epithelial", "spindle-shaped")  # HoVer-Net's merged CoNSeP classes
MPP = 0.25
#: patches of the 4×4 grid each source image was cut into (row-major); 5 and 15 do not overlap
TEST_PATCHES = (5, 15)
TRAIN_PATCHES = (5, 15)
#: training images held out as the validation split (post-processing thresholds, checkpoint selection)
VAL_IMAGES = ("train_1", "train_13", "train_19", "train_24", "train_26", "train_6")

README = """# cellprobe demo data

A small subset of real CoNSeP patches shipped inside cellprobe for `cellprobe demo`.

- **Source**: CoNSeP (Graham et al., "HoVer-Net: Simultaneous segmentation and classification of nuclei in
  multi-tissue histology images", Medical Image Analysis 2019), colorectal adenocarcinoma H&E at 40×
  (0.25 µm/px), nucleus outlines and types drawn by pathologists. Licence: Apache-2.0 (see LICENSE).
- **Classes** (0 = background): 1 other, 2 inflammatory, 3 epithelial, 4 spindle-shaped (HoVer-Net's merged
  classes).
- **Patches**: 256×256, {per_image} non-overlapping patches of every CoNSeP image: train {n_train} patches of
  {i_train} images, val {n_val} patches of {i_val} images, test {n_test} patches of {i_test} images (CoNSeP's own
  test images). Splits never share an image, so the {i_test} test images are independent units for the
  statistics.
- **Layout** (per split): `images/<patch>.jpg` (the source JPEG files, unchanged), `labels.npz` with `inst`
  (N,256,256) int32 instance ids (0 = background) and `cls` (N,256,256) uint8 class ids, `patch_info.csv`
  (index, patch, source_image).
- Regenerate with `python tools/make_demo_data.py` (reads ../shared/data/consep beside the checkout).
"""

LICENSE = """The demo data are a subset of CoNSeP (Graham, S., Vu, Q. D., Raza, S. E. A., Azam, A., Tsang, Y. W.,
Kwak, J. T., Rajpoot, N.: "HoVer-Net: Simultaneous segmentation and classification of nuclei in
multi-tissue histology images", Medical Image Analysis 58, 2019), redistributed under the Apache License,
Version 2.0 (SPDX: Apache-2.0, https://www.apache.org/licenses/LICENSE-2.0). The images are unchanged; the
labels are the released instance and type maps cut to the patches, with the types merged into four classes
as in the HoVer-Net paper.
"""


def read_rows(split_dir: Path) -> list[dict[str, str]]:
    with (split_dir / "patch_info.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def write_split(out: Path, name: str, source: Path, rows: list[dict[str, str]], inst, cls) -> tuple[int, int]:
    """Copy ``rows`` (their JPEG files and label rows) of ``source`` into ``out/name``; (patches, images)."""
    split_dir = out / name
    (split_dir / "images").mkdir(parents=True, exist_ok=True)
    for row in rows:
        shutil.copyfile(source / "images" / f"{row['patch']}.jpg", split_dir / "images" / f"{row['patch']}.jpg")
    index = [int(r["index"]) for r in rows]
    np.savez_compressed(split_dir / "labels.npz", inst=inst[index].astype(np.int32), cls=cls[index].astype(np.uint8))
    lines = [f"{i},{r['patch']},{r['source_image']}" for i, r in enumerate(rows)]
    (split_dir / "patch_info.csv").write_text("index,patch,source_image\n" + "\n".join(lines) + "\n")
    return len(rows), len({r["source_image"] for r in rows})


def pick(rows: list[dict[str, str]], patches: tuple[int, ...]) -> list[dict[str, str]]:
    """The rows of the given grid positions of every source image (position = order within its image)."""
    seen: dict[str, int] = {}
    chosen = []
    for row in rows:
        position = seen.get(row["source_image"], 0)
        seen[row["source_image"]] = position + 1
        if position in patches:
            chosen.append(row)
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--consep", type=Path, default=CONSEP)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    for old in ("train", "val", "test"):
        shutil.rmtree(args.out / old, ignore_errors=True)
    counts = {}
    for split, patches in (("train", TRAIN_PATCHES), ("test", TEST_PATCHES)):
        source = args.consep / split
        with np.load(source / "labels.npz") as z:
            inst, cls = z["inst"], z["cls"]
        rows = pick(read_rows(source), patches)
        if split == "train":
            missing = set(VAL_IMAGES) - {r["source_image"] for r in rows}
            if missing:
                raise SystemExit(f"validation images not in the training split: {sorted(missing)}")
            counts["val"] = write_split(args.out, "val", source, [r for r in rows if r["source_image"] in VAL_IMAGES],
                                        inst, cls)
            rows = [r for r in rows if r["source_image"] not in VAL_IMAGES]
        counts[split] = write_split(args.out, split, source, rows, inst, cls)
    (args.out / "LICENSE").write_text(LICENSE)
    (args.out / "dataset.yaml").write_text(
        "# read by cellprobe's patches reader (cellprobe.data.info)\n"
        "name: consep-demo\n"
        f"class_names: [{', '.join(CLASS_NAMES)}]\n"
        f"mpp: {MPP}\n"
        "tissue: colon (colorectal adenocarcinoma)\n")
    (args.out / "README.md").write_text(README.format(
        per_image=len(TEST_PATCHES), n_train=counts["train"][0], i_train=counts["train"][1], n_val=counts["val"][0],
        i_val=counts["val"][1], n_test=counts["test"][0], i_test=counts["test"][1]))
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {counts} (patches, images) to {args.out} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
