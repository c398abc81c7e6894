"""The report's figures (matplotlib, Agg backend), each returned as PNG bytes for embedding."""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cellprobe.bench import layout
from cellprobe.bench.stats import FriedmanResult
from cellprobe.errors import InputError

CLASS_COLOURS = np.array([[0, 0, 0], [230, 159, 0], [86, 180, 233], [0, 158, 115], [240, 228, 66],
                          [0, 114, 178], [213, 94, 0], [204, 121, 167]], dtype=float) / 255  # Okabe–Ito


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png(fig) -> bytes:
    """A figure as PNG bytes; the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def metric_bars(estimate: pd.DataFrame, lo: pd.DataFrame, hi: pd.DataFrame, keys: Sequence[str],
                labels: Mapping[str, str], title: str, unreliable: str | None = None) -> bytes:
    """Grouped bars: one group per metric, one bar per model, 95% CI whiskers. ``unreliable``: why the CIs are
    not to be trusted (too few independent units); the whiskers are then drawn faint and dashed and the reason
    is given under the title."""
    plt = _pyplot()
    models = list(estimate.index)
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(keys) * max(1, len(models) / 2)), 3.6))
    x = np.arange(len(keys))
    for i, model in enumerate(models):
        est = estimate.loc[model, list(keys)].to_numpy(float)
        err = np.vstack([est - lo.loc[model, list(keys)].to_numpy(float),
                         hi.loc[model, list(keys)].to_numpy(float) - est])
        err = np.where(np.isfinite(err), np.maximum(err, 0), 0)
        bars = ax.bar(x + (i - (len(models) - 1) / 2) * width, est, width, yerr=err, capsize=3, label=model,
                      error_kw={"ecolor": "0.6"} if unreliable else {})
        if unreliable and bars.errorbar is not None:
            for whiskers in bars.errorbar.lines[2]:
                whiskers.set_linestyle("--")
    ax.set_xticks(x, [labels.get(k, k) for k in keys], rotation=20, ha="right")
    ax.set_ylabel("score")
    low = np.nanmin(lo.loc[models, list(keys)].to_numpy(float), initial=0.0)
    clipped = low < -1  # R² can go far below 0: keep the other metrics readable
    ax.set_ylim(max(low, -1.0) - 0.05 if low < 0 else 0, 1.05)
    ax.set_title(f"{title}: metrics, 95% bootstrap CIs" + (" (axis clipped at −1)" if clipped else "")
                 + (f"\n† CIs unreliable: {unreliable}" if unreliable else ""), fontsize=10)
    ax.legend(fontsize=8, frameon=False, ncols=min(len(models), 3), loc="upper center",
              bbox_to_anchor=(0.5, -0.25))
    ax.grid(axis="y", alpha=0.3)
    return png(fig)


def class_heatmap(values: pd.DataFrame, title: str) -> bytes:
    """Models × classes heatmap of a per-class metric, annotated."""
    plt = _pyplot()
    classes = [c.split(".", 1)[1] for c in values.columns]
    data = values.to_numpy(float)
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(classes), 0.8 + 0.45 * len(values)))
    im = ax.imshow(data, cmap="viridis", vmin=0, vmax=max(1e-9, np.nanmax(data)) if np.isfinite(data).any() else 1,
                   aspect="auto")
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_yticks(range(len(values)), list(values.index))
    for (i, j), v in np.ndenumerate(data):
        ax.text(j, i, "–" if not np.isfinite(v) else f"{v:.2f}", ha="center", va="center",
                color="white" if np.isfinite(v) and v < 0.6 * np.nanmax(data) else "black", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.04)
    ax.set_title(f"{title}: {values.columns[0].split('.')[0].replace('_per_class', '')} per class")
    return png(fig)


def cd_diagram(result: FriedmanResult) -> bytes:
    """Critical-difference diagram (Demšar 2006): average ranks on an axis, the CD as a bar, and thick lines
    joining models whose ranks differ by less than the CD."""
    plt = _pyplot()
    ranks = result.ranks.sort_values()
    k = len(ranks)
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.3 * k))
    ax.set_xlim(0.5, k + 0.5)
    ax.set_ylim(-(k + 2), 2)
    ax.axhline(0, color="black", lw=1)
    for r in range(1, k + 1):
        ax.plot([r, r], [0, 0.2], color="black", lw=1)
        ax.text(r, 0.35, str(r), ha="center", fontsize=8)
    if np.isfinite(result.cd):
        ax.plot([1, 1 + result.cd], [1.3, 1.3], color="black", lw=2)
        ax.text(1 + result.cd / 2, 1.45, f"CD = {result.cd:.2f}", ha="center", fontsize=8)
    half = (k + 1) // 2
    for i, (model, rank) in enumerate(ranks.items()):
        left = i < half
        y = -(i + 1) if left else -(k - i)
        x_text = 0.6 if left else k + 0.4
        ax.plot([rank, rank, x_text], [0, y, y], color="tab:blue", lw=0.8)
        ax.text(x_text, y + 0.1, f"{model} ({rank:.2f})", ha="left" if left else "right", fontsize=8,
                va="bottom")
    values = ranks.to_numpy()
    cliques = []
    for i in range(k):
        j = int(np.searchsorted(values, values[i] + result.cd, side="right")) - 1 if np.isfinite(result.cd) else i
        if j > i and not any(a <= i and j <= b for a, b in cliques):
            cliques.append((i, j))
    for n, (i, j) in enumerate(cliques):
        y = -0.4 - 0.25 * n
        ax.plot([values[i] - 0.03, values[j] + 0.03], [y, y], color="black", lw=3)
    ax.axis("off")
    ax.set_title("Average rank (1 = best); a bar joins models closer than the critical difference", fontsize=9)
    return png(fig)


def overlay(image: np.ndarray, inst: np.ndarray, cls: np.ndarray) -> np.ndarray:
    """The image with each nucleus outlined in its class colour."""
    from skimage.segmentation import find_boundaries

    out = image.astype(float) / 255
    edge = find_boundaries(inst, mode="inner")
    out[edge] = CLASS_COLOURS[np.clip(cls[edge], 0, len(CLASS_COLOURS) - 1).astype(int)]
    out[edge & (cls == 0)] = (1.0, 1.0, 1.0)
    return out


#: the arrays of a cell's examples.npz (:func:`cellprobe.bench.cell.examples`)
EXAMPLE_KEYS = ("names", "image", "true_inst", "true_cls", "pred_inst", "pred_cls")


def _load_examples(path: Path) -> dict[str, np.ndarray]:
    """A cell's saved example patches; a damaged or incomplete file is bad input naming it."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, OverflowError, MemoryError, zlib.error) as exc:
        raise InputError(path, f"unreadable examples file ({exc})") from None
    missing = [k for k in EXAMPLE_KEYS if k not in data]
    if missing:
        raise InputError(path, f"damaged examples file: no {', '.join(missing)}")
    n = len(data["names"])
    if any(len(data[k]) != n for k in EXAMPLE_KEYS):
        raise InputError(path, "damaged examples file: its arrays hold different numbers of patches")
    image = data["image"]
    if image.ndim != 4 or image.shape[3] != 3 or image.dtype != np.uint8 or data["names"].ndim != 1:
        raise InputError(path, f"damaged examples file: image {image.shape} {image.dtype}, expected patches of "
                               "RGB uint8")
    for key in ("true_inst", "true_cls", "pred_inst", "pred_cls"):  # one label map per patch, its size
        if data[key].shape != image.shape[:3] or data[key].dtype.kind not in "iu":
            raise InputError(path, f"damaged examples file: {key} {data[key].shape} {data[key].dtype}, expected "
                                   f"integer maps of {image.shape[:3]}")
    return data


def _recorded_examples(cell_dir: Path, recorded: object) -> Path | None:
    """The cell's examples file when its result.json records one, checked against the recorded sha256 (one
    swapped with another cell's, or edited, would show another model's predictions under this one's name);
    None when the cell kept none."""
    from cellprobe.hashing import file_sha256, is_sha256

    path, result = Path(cell_dir) / layout.EXAMPLES, Path(cell_dir) / layout.RESULT
    if recorded is None or (isinstance(recorded, float) and np.isnan(recorded)):  # absent from the table
        if path.exists():
            raise InputError(result, f"records no examples_sha256 though {layout.EXAMPLES} is there (a result "
                                     "written before cellprobe recorded it, or edited): remove the cell's folder "
                                     "and run the benchmark again")
        return None
    if not is_sha256(recorded):
        raise InputError(result, f"examples_sha256 {recorded!r} is not the digest cellprobe writes (edited by hand?)")
    if not path.is_file():
        raise InputError(path, "is gone (its cell's result.json records it): remove the cell's folder and run the "
                               "benchmark again")
    if file_sha256(path) != recorded:
        raise InputError(path, "is not the examples file its cell wrote (its sha256 is not the one result.json "
                               "records): swapped or edited by hand; remove the cell's folder and run the benchmark "
                               "again")
    return path


def examples_figure(runs: pd.DataFrame, models: Sequence[str], max_examples: int) -> bytes | None:
    """Rows of test patches: image, truth, then each model's prediction (first run that saved examples)."""
    plt = _pyplot()
    chosen: dict[str, dict[str, np.ndarray]] = {}
    for model in models:
        rows = runs[runs["model"] == model].sort_values(["fold", "seed"])
        for cell_dir, digest in zip(rows["cell_dir"], rows.get("examples_sha256", [None] * len(rows)), strict=True):
            path = _recorded_examples(cell_dir, digest)
            if path is not None:
                chosen[model] = _load_examples(path)
                break
    if not chosen:
        return None
    ref = next(iter(chosen.values()))
    n = min(max_examples, len(ref["names"]))
    cols = ["image", "truth", *chosen]
    fig, axes = plt.subplots(n, len(cols), figsize=(2.2 * len(cols), 2.3 * n), squeeze=False)
    for i in range(n):
        name = ref["names"][i]
        panels = [ref["image"][i], overlay(ref["image"][i], ref["true_inst"][i], ref["true_cls"][i])]
        for model in chosen:
            ex = chosen[model]
            where = np.flatnonzero(ex["names"] == name)
            panels.append(overlay(ex["image"][where[0]], ex["pred_inst"][where[0]], ex["pred_cls"][where[0]])
                          if where.size else np.ones_like(ref["image"][i], dtype=float))
        for j, panel in enumerate(panels):
            axes[i, j].imshow(panel)
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            if i == 0:
                axes[i, j].set_title(cols[j], fontsize=8)
        axes[i, 0].set_ylabel(str(name), fontsize=7)
    fig.suptitle("Outlines coloured by class", fontsize=9)
    return png(fig)
