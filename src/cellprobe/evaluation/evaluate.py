"""``evaluate(run_dir, data, split) -> ScoreResult``: predict every patch, post-process with the run's
thresholds, score with the metrics engine, write metrics.json and per_image.csv."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from cellprobe import atomic
from cellprobe.config import differing_keys, read_json
from cellprobe.data.io import refuse_output_inside
from cellprobe.data.sample import PatchDataset
from cellprobe.errors import InputError
from cellprobe.evaluation.eval_data import (
    check_eval_data,
    data_label,
    data_where,
    iter_predictions,
    open_eval_data,
    resize,
    run_scale,
    training_patches_named,
)
from cellprobe.run import run_folder as R

#: the one class of a class-agnostic evaluation
AGNOSTIC_CLASS = "nucleus"


def evaluate(run_dir: str | Path, data: PatchDataset | str | Path, split: str | None = "test", *,
             checkpoint: str = "best", out: str | Path | None = None, device: str | None = None,
             format: str | None = None, workers: int = 1, tta: int = 1, overwrite: bool = False, **options: Any):
    """Score the run on ``data`` (a PatchDataset, or a dataset path opened with ``format``/``options`` at
    ``split``), averaging ``tta`` dihedral views per patch. Writes ``metrics.json`` and ``per_image.csv``
    into ``out`` (default: the run folder); results of an evaluation of other data or another split there are
    replaced only with ``overwrite``.

    Cross-dataset: data whose classes differ from the run's (or that has one class, as MoNuSeg) is scored
    class-agnostic (every nucleus one class: PQ/DQ/SQ, AJI, Dice, F1_d; labelled so in metrics.json); data at
    another µm/px than the run's is resized to the run's for the network and its instances resized back, so
    it is scored at its own resolution."""
    from cellprobe.locking import exclusive

    out_dir = atomic.output_folder(out if out is not None else run_dir, create=False)
    R.Run.open(run_dir)  # a folder that is no run is said first, as that (it could be the data too)
    if not isinstance(data, PatchDataset):
        refuse_output_inside(out_dir, data)
    R.refuse_results_place(out_dir, run_dir, into_run=True)  # another run's folder, the run's training data
    # the results folder held: a second evaluation into it (or a tune of the run, when it is the run's) would
    # race with this one; a folder made for the lock goes again if the evaluation stops before writing
    with exclusive(out_dir, "evaluating"):
        return _evaluate(run_dir, data, split, checkpoint, out_dir, device, format, workers, tta, overwrite,
                         options)


def _evaluate(run_dir: str | Path, data: PatchDataset | str | Path, split: str | None, checkpoint: str,
              out_dir: Path, device: str | None, format: str | None, workers: int, tta: int, overwrite: bool,
              options: dict[str, Any]):
    """:func:`evaluate` in its held results folder."""
    from cellprobe.inference.segmenter import Segmenter
    from cellprobe.metrics import ConicAccumulator
    from cellprobe.metrics.score import say_empty_classes

    network = network_made_of(run_dir, checkpoint)
    check_not_replacing(out_dir, run_dir, data_label(data), split, checkpoint, tta, overwrite, network)
    seg = Segmenter(run_dir, checkpoint=checkpoint, device=device, tta=tta)
    dataset = open_eval_data(data, split, format, seg.run.config, **options)
    check_eval_data(dataset, seg.class_names, data, split, same_classes=False)
    agnostic = list(dataset.class_names) != seg.class_names
    scale = run_scale(dataset, seg.run.stamp.mpp, data_where(dataset, data))
    named = training_patches_named(seg.run.config, dataset)  # an ensemble's: its members'

    if named is not None:  # a diagnostic, not a test score: said, and recorded with the metrics
        import warnings

        from cellprobe.data.validate import DataWarning

        warnings.warn(f"{named}: these scores are on patches the run trained on and overstate it", DataWarning,
                      stacklevel=3)
    names = [AGNOSTIC_CLASS] if agnostic else seg.class_names
    acc = ConicAccumulator(len(names), mpp=dataset.mpp, class_names=names)
    sources = []
    for sample, maps in iter_predictions(seg, dataset, range(len(dataset)), scale=scale):
        inst, cls_map, _ = seg.instances(maps)
        if scale != 1.0:  # back to the data's own resolution
            inst = resize(inst, 1 / scale, labels=True, shape=sample.inst.shape)
            cls_map = resize(cls_map, 1 / scale, labels=True, shape=sample.inst.shape)
        if agnostic:
            true_cls, cls_map = (sample.inst > 0).astype(np.uint8), (inst > 0).astype(np.uint8)
        else:
            true_cls = sample.cls
        acc.add(sample.inst, true_cls, inst, cls_map, name=sample.meta.name)
        sources.append(sample.meta.source)
    result = acc.result()
    say_empty_classes(result)
    # the source image of each patch: overlapping patches of one source are resampled together (bench.stats)
    result.per_image["source"] = sources
    scoring = (f"class-agnostic: the data's classes {list(dataset.class_names)} are not the run's "
               f"{seg.class_names}" if agnostic else "per class")
    record = {**result.to_dict(), "evaluation": {
        "run": _run_seen_from(out_dir, run_dir), "data": data_label(data), "split": split,
        "checkpoint": checkpoint, "tta_views": tta, "run_finished": seg.run.finished, "scoring": scoring, "data_mpp": dataset.mpp, "run_mpp": seg.run.stamp.mpp, "resized_by": scale,
        "on_training_patches": named is not None, **network}}
    atomic.write_json(out_dir / R.METRICS, record)
    result.write(csv_path=out_dir / R.PER_IMAGE)
    result.params["scoring"] = scoring
    return result


def network_made_of(run_dir: str | Path, checkpoint: str) -> dict[str, Any]:
    """What the scores depend on in the run besides its place: the sha256 of each network's checkpoint file (a
    retrained or replaced one is another network, whatever its path) and the post-processing thresholds (a
    retune changes the instances). Read before the network is loaded, for :func:`check_not_replacing`."""
    from cellprobe.hashing import file_sha256
    from cellprobe.run.ensemble import checkpoints

    run = R.Run.open(run_dir)
    return {"checkpoint_sha256": [file_sha256(path) for _, path in checkpoints(run, checkpoint)],
            "postprocess": R.load_postprocess(run.path, run.config.selection.postprocess).model_dump(mode="json")}


def _same_network(run_dir: str | Path, checkpoint: str, recorded: Any, now: list[str]) -> bool:
    """Whether recorded checkpoint digests are ``now``'s: equal, or what ``cellprobe upgrade`` rewrote them into
    (see :func:`~cellprobe.run.run_folder.same_checkpoint`)."""
    from cellprobe.run.ensemble import checkpoints

    if recorded == now:
        return True
    paths = [path for _, path in checkpoints(R.Run.open(run_dir), checkpoint)]
    return (isinstance(recorded, list) and len(recorded) == len(now)
            and all(isinstance(old, str) and R.same_checkpoint(path.parent, path.name, old, digest)
                    for old, digest, path in zip(recorded, now, paths, strict=True)))


def _run_seen_from(out_dir: Path, run_dir: str | Path) -> str:
    """The evaluated run relative to the results' folder (``.`` in the run's own folder): a run moved or copied
    with its results still owns them."""
    return os.path.relpath(Path(run_dir).resolve(), out_dir.resolve())


#: what an evaluation's record says it was made of, with the types evaluate writes
_RECORD_TYPES: dict[str, tuple[type, ...]] = {"run": (str,), "data": (str,), "split": (str, type(None)),
                                              "checkpoint": (str,), "tta_views": (int,)}


def _earlier_evaluation(metrics: Path) -> dict[str, Any]:
    """The ``evaluation`` record of a metrics.json already in the results folder, read strictly: one that is
    not what evaluate writes (unreadable, no record, a field of another type) cannot be told apart from other
    results, so it is refused naming the field (``--overwrite`` replaces it)."""
    def refuse(problem: str) -> InputError:
        return InputError(metrics, f"{problem}: what these results were made of is unknown; pass --overwrite to "
                                   "replace them, or --out for another folder")

    try:
        data = read_json(metrics, "metrics")
    except InputError as exc:
        raise refuse(exc.problem) from None
    record = data.get("evaluation") if isinstance(data, dict) else None
    if not isinstance(record, dict):
        raise refuse("holds no evaluation record (an 'evaluation' object)")
    for key, types in _RECORD_TYPES.items():
        value = record.get(key)
        if key not in record or isinstance(value, bool) or not isinstance(value, types):
            raise refuse(f"evaluation.{key} is {value!r}, not what evaluate records")
    return record


def check_not_replacing(out_dir: Path, run_dir: str | Path, data: str, split: str | None, checkpoint: str,
                        tta: int, overwrite: bool = False, network: dict[str, Any] | None = None) -> None:
    """Before any work, in the held results folder (its place is checked before it is held:
    :func:`~cellprobe.run.run_folder.refuse_results_place`): refuse a folder in the way of a result file (even
    with ``overwrite``), and, without ``overwrite``, replacing results of another run, of other data, another
    split, another checkpoint or other test-time views, of another network at the run's place or other
    post-processing thresholds (``network``: :func:`network_made_of`; a retune makes other results, as for
    ``predict``), or a per_image.csv with no evaluation beside it (scoring the same again replaces them)."""
    metrics = out_dir / R.METRICS
    for path in (metrics, out_dir / R.PER_IMAGE):
        if atomic.in_the_way(path):
            raise InputError(path, "is in the way of the evaluation's results (not a file); move it, or give "
                                   "--out another folder")
    if overwrite:
        return
    if not metrics.is_file():
        if (out_dir / R.PER_IMAGE).is_file():
            raise InputError(out_dir / R.PER_IMAGE, "exists with no metrics.json beside it (not an evaluation "
                                                    "cellprobe wrote); pass --overwrite to replace it, or --out "
                                                    "for another folder")
        return
    earlier = _earlier_evaluation(metrics)
    own = earlier["run"]
    if own != _run_seen_from(out_dir, run_dir):
        # the record names the run relative to the results: a results folder moved without its run names another
        raise InputError(metrics, f"holds the evaluation of the run at {own} relative to it "
                                  f"({os.path.normpath(out_dir.resolve() / own)}), not {run_dir}; pass --overwrite "
                                  "to replace it, or --out for another folder")
    if (earlier.get("data"), earlier.get("split")) != (data, split):
        raise InputError(metrics, f"holds the evaluation of {earlier.get('data', 'unknown data')} "
                                  f"[{earlier.get('split')}]; pass --overwrite to replace it, or --out for "
                                  "another folder")
    before = (earlier.get("checkpoint", checkpoint), earlier.get("tta_views", tta))
    if before != (checkpoint, tta):
        raise InputError(metrics, f"holds this evaluation with checkpoint {before[0]} and {before[1]} view(s), not "
                                  f"{checkpoint} and {tta}; pass --overwrite to replace it, or --out for another "
                                  "folder")
    if network is None:
        return
    if "checkpoint_sha256" in earlier and not _same_network(run_dir, checkpoint, earlier["checkpoint_sha256"],
                                                             network["checkpoint_sha256"]):
        raise InputError(metrics, f"holds the evaluation of another network at {run_dir} (its {checkpoint} "
                                  "checkpoint has changed since: retrained?); pass --overwrite to replace it, or "
                                  "--out for another folder")
    if "postprocess" in earlier and earlier["postprocess"] != network["postprocess"]:
        differ = ", ".join(differing_keys(earlier.get("postprocess"), network["postprocess"])[:4])
        raise InputError(metrics, f"holds this evaluation with other post-processing thresholds ({differ}: the "
                                  "run was tuned since?); pass --overwrite to replace it, or --out for another "
                                  "folder")
