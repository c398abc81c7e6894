"""Small datasets written in each released layout, from synthetic or given arrays.

Tests and benchmarks build these on the fly (nothing large is shipped), and they double as executable
documentation of each layout: what a reader expects is exactly what these functions write.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cellprobe.data.consep import CLASSES_7
from cellprobe.data.cytodark0 import MAGNIFICATIONS
from cellprobe.data.monuseg import TEST_DIR, TRAIN_DIR
from cellprobe.data.pannuke import fold_paths


def synthetic_patch(rng: np.random.Generator, size: int = 256, n_nuclei: int = 12, num_classes: int = 4,
                    radius: tuple[int, int] = (5, 12)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image uint8 RGB, inst int32, cls uint8): disks of random class on a pink background, ids 1..n (a disk
    drawn over another takes its pixels; ids that end up with no pixel are dropped, the rest keep their ids)."""
    yy, xx = np.mgrid[:size, :size]
    inst = np.zeros((size, size), np.int32)
    classes = rng.integers(1, num_classes + 1, size=n_nuclei + 1)
    for k in range(1, n_nuclei + 1):
        cy, cx = rng.integers(0, size, 2)
        r = rng.integers(radius[0], radius[1] + 1)
        inst[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = k
    cls = np.where(inst > 0, classes[inst], 0).astype(np.uint8)
    image = np.empty((size, size, 3), np.uint8)
    image[:] = (235, 200, 220)
    image[inst > 0] = (110, 60, 150)
    noise = rng.integers(-12, 13, size=image.shape)
    image = np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return image, inst, cls


def synthetic_set(n: int, seed: int = 0, size: int = 256, num_classes: int = 4, n_nuclei: int = 12):
    """Stacked (images, inst, cls) of ``n`` synthetic patches (``n`` may be 0: arrays with no rows)."""
    if n == 0:
        return (np.zeros((0, size, size, 3), np.uint8), np.zeros((0, size, size), np.int32),
                np.zeros((0, size, size), np.uint8))
    rng = np.random.default_rng(seed)
    parts = [synthetic_patch(rng, size, n_nuclei, num_classes) for _ in range(n)]
    return tuple(np.stack(a) for a in zip(*parts, strict=True))


def _save_png(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _save_tiff(path: Path, arr: np.ndarray) -> None:
    import tifffile

    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, arr)


def write_pannuke(root: Path, counts: dict[int, int], size: int = 256, seed: int = 0) -> Path:
    """PanNuke folds as released: float64 images and (N,H,W,6) float64 masks, types.npy of tissue names."""
    tissues = np.array(["Breast", "Colon", "Kidney", "Liver"])
    for k, n in counts.items():
        images, inst, cls = synthetic_set(n, seed + k, size, num_classes=5)
        masks = np.zeros((n, size, size, 6), np.float64)
        for c in range(5):
            masks[..., c] = np.where(cls == c + 1, inst, 0)
        masks[..., 5] = (inst == 0).astype(np.float64)
        img_path, types_path, mask_path = fold_paths(Path(root), k)
        img_path.parent.mkdir(parents=True, exist_ok=True)
        mask_path.parent.mkdir(parents=True, exist_ok=True)
        np.save(img_path, images.astype(np.float64))
        np.save(types_path, tissues[np.arange(n) % len(tissues)])
        np.save(mask_path, masks)
    return Path(root)


def write_conic(root: Path, images: np.ndarray, inst: np.ndarray, cls: np.ndarray, names: Sequence[str],
                label_dtype: type = np.uint16) -> Path:
    """The CoNIC release layout: images.npy, labels.npy (N,H,W,2), patch_info.csv (``patch_info`` column,
    ``<source>-<patch>`` values)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "images.npy", np.asarray(images, np.uint8))
    np.save(root / "labels.npy", np.stack([inst, cls], axis=-1).astype(label_dtype))
    (root / "patch_info.csv").write_text("patch_info\n" + "\n".join(names) + "\n")
    return root


def write_patches(folder: Path, images: np.ndarray, inst: np.ndarray, cls: np.ndarray, names: Sequence[str],
                  sources: Sequence[str]) -> Path:
    """One split folder of the ``patches`` layout (images/*.png, labels.npz, patch_info.csv); with no patches,
    an empty split (labels of no rows, a patch list of its header only)."""
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for name, image in zip(names, images, strict=True):
        _save_png(folder / "images" / f"{name}.png", image)
    np.savez_compressed(folder / "labels.npz", inst=np.asarray(inst, np.int32), cls=np.asarray(cls, np.uint8))
    rows = [f"{i},{n},{s}\n" for i, (n, s) in enumerate(zip(names, sources, strict=True))]
    (folder / "patch_info.csv").write_text("index,patch,source_image\n" + "".join(rows))
    return folder


def write_consep(root: Path, counts: dict[str, int], size: int = 1000, seed: int = 0) -> Path:
    """CoNSeP as released: {Train,Test}/Images/*.png (RGBA, opaque) and Labels/*.mat (double inst_map, 7 classes)."""
    import scipy.io

    for split, n in counts.items():
        images, inst, cls = synthetic_set(n, seed + len(split), size, num_classes=len(CLASSES_7), n_nuclei=40)
        folder = Path(root) / "CoNSeP" / split.capitalize()
        (folder / "Labels").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            name = f"{split}_{i + 1}"
            rgba = np.concatenate([images[i], np.full((size, size, 1), 255, np.uint8)], axis=-1)
            _save_png(folder / "Images" / f"{name}.png", rgba)
            ids = np.unique(inst[i])[1:]
            types = np.array([cls[i][inst[i] == k][0] for k in ids], np.float64).reshape(-1, 1)
            scipy.io.savemat(folder / "Labels" / f"{name}.mat", {
                "inst_map": inst[i].astype(np.float64), "type_map": cls[i].astype(np.float64),
                "inst_type": types, "inst_centroid": np.zeros((len(ids), 2))})
    return Path(root)


def _disk_outline(cy: float, cx: float, r: float, n: int = 24) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)


def aperio_xml(polygons: Sequence[np.ndarray], mpp: float = 0.252) -> str:
    """An Aperio ImageScope annotation file with one Region per polygon ((K, 2) x, y)."""
    regions = []
    for k, pts in enumerate(polygons, start=1):
        verts = "".join(f'<Vertex X="{x:.3f}" Y="{y:.3f}" Z="0"/>' for x, y in pts)
        regions.append(f'<Region Id="{k}" Type="0"><Attributes/><Vertices>{verts}</Vertices></Region>')
    return (f'<?xml version="1.0"?><Annotations MicronsPerPixel="{mpp}"><Annotation Id="1"><Attributes/>'
            f'<Regions><RegionAttributeHeaders/>{"".join(regions)}</Regions></Annotation></Annotations>')


def write_monuseg(root: Path, counts: dict[str, int], size: int = 1000, n_nuclei: int = 30, seed: int = 0) -> Path:
    """MoNuSeg as released: training TIFFs and XMLs in separate folders, test ones side by side.
    Returns root; the disks' centres and radii are written into the XML as 24-gons."""
    rng = np.random.default_rng(seed)
    for split, n in counts.items():
        base = Path(root) / (TRAIN_DIR if split == "train" else TEST_DIR)
        img_dir, xml_dir = (base / "Tissue Images", base / "Annotations") if split == "train" else (base, base)
        xml_dir.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            name = f"TCGA-{split}-{i:02d}-01Z-00-DX1"
            image = np.full((size, size, 3), (230, 190, 215), np.uint8)
            polygons = []
            for _ in range(n_nuclei):
                cy, cx = rng.uniform(20, size - 20, 2)
                r = rng.uniform(5, 12)
                polygons.append(_disk_outline(cy, cx, r))
            _save_tiff(img_dir / f"{name}.tif", image)
            (xml_dir / f"{name}.xml").write_text(aperio_xml(polygons))
    return Path(root)


def write_cytodark0(root: Path, folds: Sequence[int], magnification: str = "20x", seed: int = 0,
                    size: int | None = None) -> Path:
    """CytoDArk0 as in cytoDArk0.zip: cytoDArk0/<mag>/<size>/{image/*.png, label/*.tiff, graymask4/*.png,
    folds.csv}; one image per entry of ``folds`` (its fold)."""
    sub, _ = MAGNIFICATIONS[magnification]
    size = size or int(sub.split("x")[0])
    base = Path(root) / "cytoDArk0" / magnification / sub
    rng = np.random.default_rng(seed)
    rows = []
    for i, fold in enumerate(folds):
        img_id = f"species{i % 3}_region{i}"
        image, inst, _ = synthetic_patch(rng, size, n_nuclei=size // 8, num_classes=1)
        _save_png(base / "image" / f"{img_id}.png", image)
        _save_tiff(base / "label" / f"{img_id}.tiff", inst.astype(np.uint16))
        _save_png(base / "graymask4" / f"{img_id}.png", ((inst > 0) * 255).astype(np.uint8))
        rows.append(f"{img_id},{fold}")
    (base / "folds.csv").write_text("img_id,fold\n" + "\n".join(rows) + "\n")
    return Path(root)


def write_folder(root: Path, images: np.ndarray, inst: np.ndarray, cls: np.ndarray | None, names: Sequence[str],
                 class_names: Sequence[str] | None = None, sources: Sequence[str] | None = None) -> Path:
    """One split of the generic ``folder`` format (PNG images, TIFF instance and class maps)."""
    root = Path(root)
    for i, name in enumerate(names):
        _save_png(root / "images" / f"{name}.png", images[i])
        _save_tiff(root / "inst" / f"{name}.tif", np.asarray(inst[i], np.int32))
        if cls is not None:
            _save_tiff(root / "cls" / f"{name}.tif", np.asarray(cls[i], np.uint8))
    if class_names is not None:
        import yaml

        (root / "dataset.yaml").write_text(yaml.safe_dump({"class_names": list(class_names)}))
    if sources is not None:
        (root / "sources.csv").write_text("name,source\n" + "\n".join(f"{n},{s}" for n, s in zip(names, sources, strict=True)) + "\n")
    return root
