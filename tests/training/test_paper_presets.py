"""configs/bench/paper_*.yaml: the paper's encoders, CISCA's splits and CISCA's settings, and the training data
they give over releases of the released sizes (the published counts, oversampled training rows as draws)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.data.cisca_release import shared_split_files, write_conic_release, write_pannuke_release

from cellprobe.bench.bench_config import BenchConfig, cell_train_data
from cellprobe.config import load_config
from cellprobe.data import open_dataset
from cellprobe.run.train_config import train_config
from cellprobe.training.build import open_training_data

BENCH = Path(__file__).resolve().parents[2] / "configs" / "bench"
MIN_SIZE = {"pannuke": 50, "conic": 26, "cytodark0": 20}


def preset(name: str) -> BenchConfig:
    path = BENCH / f"paper_{name}.yaml"
    return load_config(BenchConfig, path).resolve_paths(path.parent)


@pytest.mark.parametrize("name", ["pannuke", "conic", "cytodark0"])
def test_presets_hold_the_papers_encoders_and_ciscas_settings(name):
    cfg = preset(name)
    same = load_config(BenchConfig, BENCH / f"{name}.yaml")
    assert cfg.encoders == same.encoders and cfg.name == f"paper_{name}"
    (dataset,) = cfg.datasets
    assert dataset.format == name and dataset.path == (BENCH / "../../data" / name).resolve()
    t = cfg.training
    assert (t.epochs, t.batch_size, t.lr, t.weight_decay) == (100, 8, 5e-4, 0.0)
    assert (t.plateau.factor, t.plateau.patience, t.early_stopping.patience) == (0.5, 10, 20)
    assert t.selection.monitor == "val_loss" and t.selection.postprocess.min_size == MIN_SIZE[name]
    assert cfg.tune is False  # CISCA's fixed post-processing, not refitted per cell
    loss = t.loss
    assert (loss.semantic_ce, loss.semantic_dice, loss.distance_grad, loss.class_weights) == (2, 4.5, 2, None)
    if name == "cytodark0":  # one class: no cell-type head in CISCA; its code gives L1 the weight 5
        assert (loss.types_ce, loss.types_tversky, loss.distance_l1) == (0, 0, 5)
        assert dataset.options == {"magnification": "20x"}
        assert [(f.train_split, f.val_split, f.test_split) for f in dataset.folds] == [("train", "val", "test")]
    else:
        assert (loss.types_ce, loss.types_tversky, loss.distance_l1) == (5, 5, 2)
        # the split file, relative to the preset like the data set, where `data download cisca-splits` puts it
        assert dataset.options == {"split_file": str((BENCH / f"../../data/cisca-splits/{name}_folds.csv").resolve())}
        assert [(f.train_split, f.val_split, f.test_split) for f in dataset.folds] == [("0", "1", "2")]


@pytest.mark.parametrize(("name", "write", "counts"), [
    ("pannuke", write_pannuke_release, (5688, 16035, 632, 1581)),
    ("conic", write_conic_release, (3589, 16690, 464, 928)),
])
def test_preset_cells_train_on_the_published_split(name, write, counts, tmp_path):
    splits = shared_split_files()
    cfg = preset(name)
    (dataset,) = cfg.datasets
    (fold,) = dataset.folds
    release = write(tmp_path / name, splits / f"{name}_folds.csv")
    dataset = dataset.model_copy(update={"path": release, "options": {"split_file": str(splits / f"{name}_folds.csv")}})
    cell = cell_train_data(cfg.training, dataset, fold, cfg.encoders[0].name, "random", 0, tmp_path / "run")
    data = open_training_data(train_config(cell))
    unique, draws, val, test = counts
    assert len(data.train_positions) == unique and data.draws_per_epoch == draws and len(data.val_positions) == val
    assert data.describe().startswith(f"training data: {unique:,} unique images, {draws:,} weighted draws per epoch")
    assert len(open_dataset(release, dataset.format, fold.test_split, **dataset.options)) == test
