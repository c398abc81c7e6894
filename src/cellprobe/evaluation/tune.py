"""``tune(run_dir)``: fit the post-processing thresholds on the run's validation patches, save postprocess.json.

The network runs once per patch; the grid search re-runs only post-processing and scoring
(:func:`cellprobe.postprocess.tune_params`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cellprobe import atomic
from cellprobe.data.io import refuse_output_inside
from cellprobe.data.sample import PatchDataset
from cellprobe.run import run_folder as R

#: every setting tune tried and its scores, beside the run's postprocess.json
TUNE_TABLE = "tune.csv"


def load_grid(path: str | Path) -> dict[str, list]:
    """A search grid from YAML (parameter → list of values), checked against the post-processing parameters
    before any network runs; problems name the file."""
    from cellprobe.config import load_yaml
    from cellprobe.errors import InputError
    from cellprobe.postprocess.param_search import check_grid
    from cellprobe.postprocess.params import PostprocessParams

    grid = load_yaml(path)
    try:
        check_grid(grid, PostprocessParams())
    except InputError as exc:
        raise InputError(path, exc.problem) from None
    return grid


def tune(run_dir: str | Path, data: PatchDataset | str | Path | None = None, split: str | None = None, *,
         metric: str = "pq", grid: Mapping[str, Sequence] | None = None, search: str = "coordinate",
         checkpoint: str = "best", device: str | None = None, format: str | None = None, tta: int = 1,
         overwrite: bool = False, given: Mapping[str, Any] | None = None, **options: Any):
    """Tune on ``data`` at ``split`` (default: the run's own validation patches, split by source image as in
    training) for the summary ``metric``, on maps averaged over ``tta`` dihedral views (tune with the ``tta``
    you evaluate with: averaged maps are smoother); writes ``tune.csv`` then ``postprocess.json``; returns the
    params.

    The search starts from the run's untuned thresholds (its config's ``selection.postprocess``), never from a
    ``postprocess.json`` already there, so tuning again gives what a first tuning gives; thresholds already
    there (an earlier tuning, or a refit's taken over from its reference) are replaced only with
    ``overwrite``. ``given``: how the user gave ``metric``, ``search`` and ``grid`` (options, a file), named when
    one is refused."""
    from cellprobe.errors import InputError
    from cellprobe.evaluation.eval_data import (
        check_eval_data,
        iter_predictions,
        open_eval_data,
        training_patches_named,
    )
    from cellprobe.inference.segmenter import Segmenter
    from cellprobe.locking import exclusive, refuse_if_in_use
    from cellprobe.postprocess import MapPrediction, tune_params
    from cellprobe.postprocess.param_search import CLASS_METRICS, check_search
    from cellprobe.training.build import check_data_unchanged, open_training_data

    run_path = Path(run_dir)
    target = run_path / R.POSTPROCESS
    if data is None and (split is not None or format is not None or options):
        raise InputError(None, "--split, --format and reader options choose patches of --data; without --data "
                               "the run's own validation patches are used")
    refuse_if_in_use(run_path)  # a run training or tuned now is not what it will be
    run = R.Run.open(run_path)
    if not run.finished:  # its checkpoints would still change: thresholds tuned now would be for another network
        raise InputError(run_path / R.STAMP, "the run has not finished training: its best.ckpt may still change; "
                                             "resume it (the same training command) before tuning")
    for read in (run.config.data.path, *([] if data is None or isinstance(data, PatchDataset) else [data])):
        refuse_output_inside(run_path, read)  # tune writes into the run: never into data it reads
    seg = Segmenter(run, checkpoint=checkpoint, device=device, tta=tta)
    untuned = seg.run.config.selection.postprocess
    check_search(grid, metric, search, untuned, given)
    if data is None:
        if not seg.run.config.data.has_validation:
            raise InputError(run_dir, "run has no validation patches (a refit: its thresholds come from "
                                      f"{seg.run.config.refit_of or 'its reference run'}); tune it with --data "
                                      "and --split")
        td = open_training_data(seg.run.config)
        from cellprobe.run.ensemble import members

        for run in [m.run for m in members(seg.run)] if seg.run.is_ensemble else [seg.run]:
            check_data_unchanged(run, td, "tuning would not be on the validation patches the run held out")
        dataset, positions = td.val, td.val_positions
    else:
        dataset = open_eval_data(data, split, format, seg.run.config, **options)
        named = training_patches_named(seg.run.config, dataset)
        if named is not None:
            raise InputError("--split" if split is not None else "--data",
                             f"{named}: thresholds tuned there would look better than they are; give held-out "
                             "patches (another split, or another dataset)")
        check_eval_data(dataset, seg.class_names, data, split)
        positions = np.arange(len(dataset))

    with exclusive(run_path, "tuning"):  # a second tune, or a training, of this run would race for its files
        for path in (run_path / TUNE_TABLE, target):  # before the network runs, --overwrite or not
            if atomic.in_the_way(path):
                raise InputError(path, "is in the way of tune's results (not a file); move it")
        if (target.exists() or target.is_symlink()) and not overwrite:
            raise InputError(target, "holds the run's thresholds already; pass --overwrite to replace them (tuning "
                                     "starts from the run's untuned thresholds either way)")
        with_types = metric in CLASS_METRICS
        predictions, truths, names = [], [], []
        root = getattr(dataset, "root", None)
        for sample, maps in iter_predictions(seg, dataset, positions):
            predictions.append(MapPrediction(maps["semantic"], maps["distance"], maps["types"] if with_types else None))
            truths.append((sample.inst, sample.cls))
            names.append(f"{root}: {sample.meta.name}" if root is not None else sample.meta.name)
        result = tune_params(predictions, truths, grid, metric, search=search,
                             base=untuned,
                             num_classes=seg.num_classes, mpp=dataset.mpp, names=names)
        atomic.write_text(run_path / TUNE_TABLE, result.table.to_csv(index=False))
        atomic.write_text(target, result.best.model_dump_json(indent=2) + "\n")  # last: its presence means tuned
    return result.best
