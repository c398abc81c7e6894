"""``cellprobe data check``: what a dataset holds and what is wrong with it, sample by sample.

Counts (patches, sizes, nuclei per class) and anomalies (unreadable samples, wrong dtypes, negative or float
ids, instance ids not matching the class map, empty patches, duplicated patches by pixel hash, also across
splits, which would leak; warnings, not refusals: instances made of several separate parts). Unlike the loaders
it does not stop at the first problem. A split file is read by the reader, which refuses a source image in two
folds (:func:`cellprobe.data.splits.read_split_file`).
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from cellprobe.data.base import Reader
from cellprobe.data.formats import detect_format, open_dataset, released_splits
from cellprobe.data.splits import split_file_folds
from cellprobe.data.validate import Anomaly, disjoint_instances, to_sample
from cellprobe.errors import InputError


def nuclei_per_class(inst: np.ndarray, cls: np.ndarray, num_classes: int) -> np.ndarray:
    """Number of instances of each class 0..C in one validated sample (one class per instance)."""
    fg = inst > 0
    pairs = np.unique(inst[fg].astype(np.int64) * 256 + cls[fg])
    return np.bincount(pairs % 256, minlength=num_classes + 1)


def check_dataset(ds: Reader, progress: Callable[[], None] | None = None) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """(report, image hash → sample names) of one opened dataset or split."""
    sizes: Counter[str] = Counter()
    dtypes: dict[str, Counter[str]] = defaultdict(Counter)
    counts = np.zeros(ds.num_classes + 1, dtype=np.int64)
    anomalies: list[Anomaly] = []
    hashes: dict[str, list[str]] = defaultdict(list)
    for i in range(len(ds)):
        try:
            raw, problems = ds.inspect(i)
        except InputError as exc:
            anomalies.append(Anomaly(exc.path or f"sample {i}", "unreadable", exc.problem))
            if progress:
                progress()
            continue
        image = np.asarray(raw.image)
        sizes[f"{image.shape[0]}x{image.shape[1]}"] += 1
        dtypes["image"][str(image.dtype)] += 1
        dtypes["inst"][str(raw.inst.dtype)] += 1
        if raw.cls is not None:
            dtypes["cls"][str(raw.cls.dtype)] += 1
        anomalies += problems
        hashes[hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).hexdigest()].append(raw.meta.name)
        if not any(p.fatal for p in problems):
            sample = to_sample(raw, ds.num_classes, ds.allow_float_image, ds.allow_float_labels)
            counts += nuclei_per_class(sample.inst, sample.cls, ds.num_classes)
            for index, parts in disjoint_instances(sample.inst):
                anomalies.append(Anomaly(raw.where, "disjoint_instance", f"patch '{raw.meta.name}': instance {index} "
                                         f"is {len(parts)} separate parts ({' + '.join(map(str, parts))} px): one "
                                         "nucleus, or several sharing an id?", fatal=False))
        if progress:
            progress()
    duplicates = [names for names in hashes.values() if len(names) > 1]
    anomalies += [Anomaly(names[0], "duplicate", f"same pixels as {', '.join(names[1:])}", fatal=False)
                  for names in duplicates]
    report = {
        "patches": len(ds),
        "sizes": dict(sizes),
        "classes": list(ds.class_names),
        "nuclei": int(counts[1:].sum()),
        "nuclei_per_class": {name: int(counts[c]) for c, name in enumerate(ds.class_names, start=1)},
        "empty_patches": sum(a.kind == "empty" for a in anomalies),
        "duplicated_patches": sum(len(n) for n in duplicates),
        "disjoint_instances": sum(a.kind == "disjoint_instance" for a in anomalies),
        "dtypes": {k: dict(v) for k, v in dtypes.items()},
        "fatal": sum(a.fatal for a in anomalies),
        "anomalies": [asdict(a) for a in anomalies],
    }
    return report, dict(hashes)


def check_path(path: str | Path, format: str | None = None, split: str | None = None,
               progress: Callable[[int, str], Callable[[], None]] | None = None, **options) -> dict[str, Any]:
    """Check every released split at ``path`` (or only ``split``; with a ``split_file`` option, every fold of
    that file); ``progress(total, split)`` may return a per-sample callback. Duplicates across splits are
    reported as leaks."""
    fmt = format or detect_format(path)
    if split is not None:
        splits: list[str | None] = [split]
    elif options.get("split_file") is not None:
        splits = list(split_file_folds(Path(options["split_file"])))
    else:
        splits = list(released_splits(path, fmt)) or [None]
    out: dict[str, Any] = {"path": str(path), "format": fmt, "splits": {}}
    seen: dict[str, tuple[str, str]] = {}
    leaks = []
    for s in splits:
        ds = open_dataset(path, fmt, s, **options)
        tick = progress(len(ds), s or "all") if progress else None
        report, hashes = check_dataset(ds, tick)
        out["splits"][s or "all"] = report
        for digest, names in hashes.items():
            if digest in seen and seen[digest][0] != (s or "all"):
                leaks.append({"first": f"{seen[digest][0]}/{seen[digest][1]}", "second": f"{s or 'all'}/{names[0]}"})
            seen.setdefault(digest, (s or "all", names[0]))
    out["cross_split_duplicates"] = leaks
    return out
