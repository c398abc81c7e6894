"""A synthetic benchmark folder with a known ranking, scored by the real metrics.

Truth: random disc-shaped nuclei of 3 classes. A model of quality q finds each nucleus with probability q,
gets its class right with probability q and adds about (1 - q) × 10 false positives per image, so better
models must score higher on every metric.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
from skimage.draw import disk

from cellprobe.bench import layout
from cellprobe.metrics import score_maps, score_pannuke

CLASSES = ("tumour", "immune", "stroma")


def _truth(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    image = np.full((size, size, 3), 235, np.uint8)
    inst = np.zeros((size, size), np.int32)
    cls = np.zeros((size, size), np.uint8)
    for k in range(1, rng.integers(8, 16)):
        r, c = rng.integers(6, size - 6, 2)
        rr, cc = disk((r, c), rng.integers(3, 6), shape=inst.shape)
        inst[rr, cc] = k
        cls[rr, cc] = rng.integers(1, 4)
        image[rr, cc] = (120 + 30 * cls[rr[0], cc[0]], 60, 160)
    return image, inst, cls


def _predict(rng, inst, cls, quality: float) -> tuple[np.ndarray, np.ndarray]:
    p_inst = np.zeros_like(inst)
    p_cls = np.zeros_like(cls)
    for k in np.unique(inst[inst > 0]):
        if rng.random() < quality:
            where = inst == k
            p_inst[where] = k
            true_c = cls[where][0]
            p_cls[where] = true_c if rng.random() < quality else rng.integers(1, 4)
    for j in range(rng.poisson((1 - quality) * 10)):
        rr, cc = disk(tuple(rng.integers(5, inst.shape[0] - 5, 2)), 3, shape=inst.shape)
        free = p_inst[rr, cc] == 0
        p_inst[rr[free], cc[free]] = 1000 + j
        p_cls[rr[free], cc[free]] = rng.integers(1, 4)
    return p_inst, p_cls


TISSUES = ("b", "a", "c", "d", "e")


def _pannuke_masks(inst: np.ndarray, cls: np.ndarray) -> np.ndarray:
    """(H, W, C + 1) PanNuke masks: the instance ids of class c in channel c − 1, background last."""
    masks = np.zeros((*inst.shape, len(CLASSES) + 1), np.int32)
    for c in range(1, len(CLASSES) + 1):
        masks[..., c - 1] = np.where(cls == c, inst, 0)
    masks[..., -1] = inst == 0
    return masks


def _score(fmt: str, truth, preds, names, tissue):
    if fmt == "pannuke":
        true = np.stack([_pannuke_masks(t[1], t[2]) for t in truth])
        pred = np.stack([_pannuke_masks(*p) for p in preds])
        res = score_pannuke(true, pred, tissue, class_names=CLASSES)
        res.per_image.index = names
        res.per_image.index.name = "image"
        return res, res.per_image
    res = score_maps([t[1] for t in truth], [t[2] for t in truth], [p[0] for p in preds],
                     [p[1] for p in preds], num_classes=3, class_names=CLASSES, image_names=names)
    return res, res.per_image.assign(tissue=tissue)


def make_bench(root: Path, models: dict[str, float], datasets=("alpha", "beta"), seeds=(0, 1), n_images=12,
               size=64, groups: dict[str, str] | None = None, n_sources: int | None = None, tissues: int = 2,
               fmt: str = "conic", test_only: tuple[str, ...] = ()) -> Path:
    """Write a benchmark folder: every model × dataset × seed, one fold, real metrics on synthetic maps.

    ``n_sources``: the images are patches of that many source images (consecutive blocks, a ``source`` column
    in the per-image tables; None: no such column). ``tissues``: how many tissues, assigned per source (per
    image without sources). ``fmt``: score as CoNIC (``conic``) or PanNuke (``pannuke``). ``test_only``: names
    of test-only datasets every cell is also scored on, class-agnostic, each model 0.2 worse there.
    """
    unit = (np.arange(n_images) if n_sources is None else np.arange(n_images) * n_sources // n_images)
    tissue = [TISSUES[u % tissues] for u in unit]
    for d_i, dataset in enumerate(datasets):
        rng = np.random.default_rng(100 + d_i)
        truth = [_truth(rng, size) for _ in range(n_images)]
        names = [f"{dataset}_{i:03d}" for i in range(n_images)]
        for model, quality in models.items():
            for seed in seeds:
                prng = np.random.default_rng(zlib.crc32(f"{dataset}|{model}|{seed}".encode()))
                preds = [_predict(prng, inst, cls, quality) for _, inst, cls in truth]
                res, per_image = _score(fmt, truth, preds, names, tissue)
                if n_sources is not None:
                    per_image = per_image.assign(source=[f"{dataset}_src{u:02d}" for u in unit])
                cell = layout.Cell(dataset, model, "pretrained", 0, seed)
                examples = {"names": np.array(names[:3]), "image": np.stack([t[0] for t in truth[:3]]),
                            "true_inst": np.stack([t[1] for t in truth[:3]]),
                            "true_cls": np.stack([t[2] for t in truth[:3]]),
                            "pred_inst": np.stack([p[0] for p in preds[:3]]),
                            "pred_cls": np.stack([p[1] for p in preds[:3]])}
                info = {"group": (groups or {}).get(model, "general"), "seconds": 1.0, **NO_RUN}
                other = {name: _agnostic_scores(name, model, seed, quality - 0.2, n_images, size, info)
                         for name in test_only}
                layout.save_cell(root, cell, res.summary, per_image, info, examples, other)
    return root


def _agnostic_scores(dataset: str, model: str, seed: int, quality: float, n_images: int, size: int,
                     info: dict) -> layout.Scores:
    """Class-agnostic scores of a model on a test-only dataset (every nucleus of one class)."""
    rng = np.random.default_rng(zlib.crc32(dataset.encode()))
    truth = [_truth(rng, size) for _ in range(n_images)]
    prng = np.random.default_rng(zlib.crc32(f"{dataset}|{model}|{seed}".encode()))
    preds = [_predict(prng, inst, cls, quality) for _, inst, cls in truth]
    res = score_maps([t[1] for t in truth], [(t[1] > 0).astype(np.uint8) for t in truth], [p[0] for p in preds],
                     [(p[0] > 0).astype(np.uint8) for p in preds], num_classes=1, class_names=("nucleus",),
                     image_names=[f"{dataset}_{i:03d}" for i in range(n_images)])
    return layout.Scores(res.summary, res.per_image, {**info, "scoring": "class-agnostic: other classes"})


#: what a synthetic cell's result records of its run: none was trained (the digests of absent files)
NO_RUN = {"run_dir": "run", "run_files": dict.fromkeys(layout.RUN_FILES)}


def fake_cell_output(dataset: str, model: str, seed: int, quality: float, n_images: int = 8, size: int = 48):
    """A CellOutput as the training API would give it, from synthetic maps of a model of ``quality``."""
    from cellprobe.bench.matrix import CellOutput

    rng = np.random.default_rng(zlib.crc32(dataset.encode()))
    truth = [_truth(rng, size) for _ in range(n_images)]
    prng = np.random.default_rng(zlib.crc32(f"{dataset}|{model}|{seed}".encode()))
    preds = [_predict(prng, inst, cls, quality) for _, inst, cls in truth]
    names = [f"{dataset}_{i:03d}" for i in range(n_images)]
    res = score_maps([t[1] for t in truth], [t[2] for t in truth], [p[0] for p in preds], [p[1] for p in preds],
                     num_classes=3, class_names=CLASSES, image_names=names)
    examples = {"names": np.array(names[:2]), "image": np.stack([t[0] for t in truth[:2]]),
                "true_inst": np.stack([t[1] for t in truth[:2]]), "true_cls": np.stack([t[2] for t in truth[:2]]),
                "pred_inst": np.stack([p[0] for p in preds[:2]]), "pred_cls": np.stack([p[1] for p in preds[:2]])}
    return CellOutput(res.summary, res.per_image, {"seconds_train": 0.0, **NO_RUN}, examples)
