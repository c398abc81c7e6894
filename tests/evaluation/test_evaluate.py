"""evaluate() and tune() on a tiny trained run: files written, numbers consistent with the metrics engine."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from tests.training.tiny import shared_data, shared_run

from cellprobe.data import open_dataset
from cellprobe.errors import InputError
from cellprobe.evaluation import evaluate, tune
from cellprobe.postprocess import PostprocessParams
from cellprobe.run import run_folder as R


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return shared_run(tmp_path_factory)


def test_tune_then_evaluate(run, tmp_path):
    import shutil

    run = shutil.copytree(run, tmp_path / "tuned")  # the shared run stays untuned for other modules' tests
    params = tune(run, grid={"fg_threshold": [0.3, 0.5], "min_size": [3, 10]}, search="grid", overwrite=True)
    assert isinstance(params, PostprocessParams)
    saved = PostprocessParams.model_validate_json((run / R.POSTPROCESS).read_text())
    assert saved == params
    table = pd.read_csv(run / "tune.csv")
    assert len(table) == 4 and "pq" in table.columns

    result = evaluate(run, shared_data(), "test", format="patches", out=tmp_path)
    metrics = json.loads((tmp_path / R.METRICS).read_text())
    per_image = pd.read_csv(tmp_path / R.PER_IMAGE)
    assert metrics["num_images"] == len(per_image) == 4
    assert metrics["evaluation"]["split"] == "test" and metrics["evaluation"]["postprocess"] == params.model_dump()
    assert metrics["pq"] == pytest.approx(result.summary["pq"], nan_ok=True)
    assert 0.0 <= result.summary["pq"] <= 1.0
    assert list(per_image["image"]) == ["p08", "p09", "p10", "p11"]
    # each patch's source image rides along: the benchmark statistics resample a source's patches together
    ds_test = open_dataset(shared_data(), format="patches", split="test")
    assert list(per_image["source"]) == [ds_test[i].meta.source for i in range(len(ds_test))]

    # a PatchDataset works as well as a path
    ds = open_dataset(shared_data(), format="patches", split="test")
    again = evaluate(run, ds, "test", out=tmp_path / "again")
    assert again.summary["pq"] == pytest.approx(result.summary["pq"], nan_ok=True)


def test_tuning_on_data_of_other_classes_is_refused_naming_it(run, tmp_path):
    """Thresholds are fitted on the run's own classes (evaluate scores such data class-agnostic instead)."""
    ds = open_dataset(shared_data(), format="patches", split="test", class_names=("a", "b"))
    with pytest.raises(InputError, match="classes") as err:
        tune(run, ds, "test", overwrite=True)
    assert str(shared_data()) in str(err.value)


def test_an_empty_split_is_refused(run, tmp_path):
    import numpy as np

    from cellprobe.data.fixtures import write_patches

    (tmp_path / "data" / "test").mkdir(parents=True)
    write_patches(tmp_path / "data" / "test", np.zeros((0, 64, 64, 3), np.uint8), np.zeros((0, 64, 64), np.int32),
                  np.zeros((0, 64, 64), np.uint8), [], [])
    ds = open_dataset(tmp_path / "data", format="patches", split="test", class_names=("class1", "class2"))
    assert len(ds) == 0
    with pytest.raises(InputError, match="no patches"):
        evaluate(run, ds, "test", out=tmp_path / "out")


def test_results_of_another_evaluation_are_not_replaced_silently(run, tmp_path):
    first = evaluate(run, shared_data(), "test", format="patches", out=tmp_path)
    again = evaluate(run, shared_data(), "test", format="patches", out=tmp_path)  # the same evaluation again
    assert again.summary["pq"] == pytest.approx(first.summary["pq"], nan_ok=True)
    before = (tmp_path / R.METRICS).read_text()
    with pytest.raises(InputError, match="--overwrite"):
        evaluate(run, shared_data(), "train", format="patches", out=tmp_path)
    assert (tmp_path / R.METRICS).read_text() == before
    with pytest.warns(UserWarning, match="overstate"):  # its training split: said (see below)
        evaluate(run, shared_data(), "train", format="patches", out=tmp_path, overwrite=True)
    assert json.loads((tmp_path / R.METRICS).read_text())["evaluation"]["split"] == "train"


def test_results_of_other_thresholds_or_another_network_are_not_replaced_silently(run, tmp_path):
    """The 27th probe: an evaluation made before a retune, or by a network since retrained at the run's place,
    was replaced without --overwrite (predict refused both). Both are said; the same evaluation again is not."""
    import shutil

    run = shutil.copytree(run, tmp_path / "run")
    out = tmp_path / "ev"
    out.mkdir()
    evaluate(run, shared_data(), "test", format="patches", out=out)
    before = (out / R.METRICS).read_text()
    tuned = R.load_postprocess(run, R.Run.open(run).config.selection.postprocess)
    (run / R.POSTPROCESS).write_text(tuned.model_copy(update={"min_size": 400}).model_dump_json())
    with pytest.raises(InputError, match=r"other post-processing thresholds \(min_size: the run was tuned since") as err:
        evaluate(run, shared_data(), "test", format="patches", out=out)
    assert err.value.path == str(out / R.METRICS) and (out / R.METRICS).read_text() == before
    evaluate(run, shared_data(), "test", format="patches", out=out, overwrite=True)
    assert json.loads((out / R.METRICS).read_text())["evaluation"]["postprocess"]["min_size"] == 400
    evaluate(run, shared_data(), "test", format="patches", out=out)  # the same again: replaced, as before
    before = (out / R.METRICS).read_text()
    import torch

    from cellprobe.run.checkpoint import load_checkpoint, save_checkpoint

    best = R.Run.open(run).checkpoint("best")
    state = load_checkpoint(best)
    first = next(k for k, v in state["state_dict"].items() if torch.is_floating_point(v))
    state["state_dict"][first] = state["state_dict"][first] + 1.0  # retrained: other weights at the same path
    save_checkpoint(state, best)
    with pytest.raises(InputError, match=r"another network at .*checkpoint has changed since"):
        evaluate(run, shared_data(), "test", format="patches", out=out)
    assert (out / R.METRICS).read_text() == before


@pytest.mark.parametrize("damage", ["abc", None, 7, {"data": 3}, {"tta_views": "1"}, {"split": ["test"]},
                                    {"run": True}, {"checkpoint": None}, "NO_RUN"])
def test_a_damaged_evaluation_record_is_refused_naming_it(run, tmp_path, damage):
    """The fifteenth probe: metrics.json with ``"evaluation": "abc"`` stopped evaluate with an AttributeError
    traceback. The record already there is read strictly: anything evaluate would not have written is refused
    naming the file and the field, before work; --overwrite replaces it."""
    from cellprobe.evaluation.evaluate import check_not_replacing

    args = (tmp_path, run, "consep", "test", "best", 1)
    evaluate(run, shared_data(), "test", format="patches", out=tmp_path)
    data = json.loads((tmp_path / R.METRICS).read_text())
    if isinstance(damage, dict):
        data["evaluation"].update(damage)
    elif damage == "NO_RUN":  # which run made them, deleted: not a record from before the key, whose run was "."
        del data["evaluation"]["run"]
        damage = {}
    else:
        data["evaluation"] = damage
    (tmp_path / R.METRICS).write_text(json.dumps(data))
    with pytest.raises(InputError, match="--overwrite") as caught:
        check_not_replacing(*args)
    assert caught.value.path == str(tmp_path / R.METRICS)
    assert ("evaluation." if isinstance(damage, dict) else "no evaluation record") in caught.value.problem
    check_not_replacing(*args, overwrite=True)


def test_the_runs_own_dataset_is_read_with_the_runs_options(tmp_path):
    from tests.training.tiny import make_tiny_data, tiny_config

    from cellprobe.evaluation.eval_data import open_eval_data
    from cellprobe.run.train_config import train_config

    data = make_tiny_data(tmp_path / "data")
    cfg = tiny_config(data, tmp_path / "run")
    cfg["data"]["options"] = {"class_names": ["tumour", "stroma"], "mpp": 0.5}
    config = train_config(cfg)
    same = open_eval_data(data, "test", run_config=config)
    assert list(same.class_names) == ["tumour", "stroma"] and same.mpp == 0.5
    # other options given, or another folder: the run's options are not imposed
    assert list(open_eval_data(data, "test", run_config=config, class_names=("a", "b")).class_names) == ["a", "b"]
    other = make_tiny_data(tmp_path / "other")
    assert list(open_eval_data(other, "test", run_config=config).class_names) == ["class1", "class2"]


def test_data_of_other_classes_is_scored_class_agnostic(run, tmp_path):
    """Cross-dataset: one class (as MoNuSeg) or other classes → detection and segmentation, labelled."""
    ds = open_dataset(shared_data(), format="patches", split="test", class_names=("a", "b"))
    result = evaluate(run, ds, "test", out=tmp_path)
    record = json.loads((tmp_path / R.METRICS).read_text())
    assert record["evaluation"]["scoring"].startswith("class-agnostic") and record["class_names"] == ["nucleus"]
    same = evaluate(run, shared_data(), "test", format="patches", out=tmp_path / "same")
    assert result.summary["pq"] == pytest.approx(same.summary["pq"], nan_ok=True)  # binary PQ is class-free
    assert result.summary["aji"] == pytest.approx(same.summary["aji"], nan_ok=True)


def test_data_at_another_resolution_is_brought_to_the_runs_and_scored_at_its_own(tmp_path):
    """The run was trained at 0.5 µm/px; the data at 0.25 is halved for the network, its instances doubled back."""

    from tests.training.tiny import make_tiny_data, tiny_config

    from cellprobe.data.fixtures import synthetic_set, write_patches
    from cellprobe.evaluation.eval_data import run_scale
    from cellprobe.training import train

    data = make_tiny_data(tmp_path / "data")
    (data / "dataset.yaml").write_text("class_names: [class1, class2]\nmpp: 0.5\n")
    run_dir = train(tiny_config(data, tmp_path / "run", epochs=1, cache_views=1)).path
    fine = tmp_path / "fine"
    (fine / "test").mkdir(parents=True)
    images, inst, cls = synthetic_set(2, seed=5, size=128, num_classes=2, n_nuclei=8)
    write_patches(fine / "test", images, inst, cls, ["f0", "f1"], ["s0", "s1"])
    (fine / "dataset.yaml").write_text("class_names: [class1, class2]\nmpp: 0.25\n")
    ds = open_dataset(fine, format="patches", split="test")
    assert run_scale(ds, 0.5, fine) == 0.5 and run_scale(ds, 0.26, fine) == 1.0 and run_scale(ds, None, fine) == 1.0
    assert run_scale(ds, 0.25 * 16, fine) == 1 / 16 and run_scale(ds, 0.25 / 16, fine) == 16
    for run_mpp in (0.25 * 16.1, 0.25 / 16.1, 1e300, 1e-300):  # the thirteenth probe: a traceback, or all zeros
        with pytest.raises(InputError, match="beyond the 16× an image is resampled by") as err:
            run_scale(ds, run_mpp, fine)
        assert err.value.path == str(fine)
    with pytest.raises(InputError, match=r"is 16\.04× the run's"):  # the 30th probe: '16×' read as within 16×
        run_scale(ds, 0.25 / 16.04, fine)
    evaluate(run_dir, fine, "test", format="patches", out=tmp_path / "out")
    record = json.loads((tmp_path / "out" / R.METRICS).read_text())
    assert record["evaluation"]["resized_by"] == 0.5 and record["num_images"] == 2
    (fine / "dataset.yaml").write_text("class_names: [class1, class2]\n")  # µm/px unknown: refused
    with pytest.raises(InputError, match="µm/px of the data unknown"):
        evaluate(run_dir, fine, "test", format="patches", out=tmp_path / "out2")


def test_an_output_that_is_a_file_is_refused(run, tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(InputError, match="must be a folder"):
        evaluate(run, shared_data(), "test", format="patches", out=tmp_path / "a-file")


def test_results_never_pass_for_another_runs(run, tmp_path):
    """The tenth probe: `evaluate A --out B` replaced run B's own metrics.json with A's (nothing in it said
    so), and one folder took two runs' evaluations in turn without --overwrite."""
    import shutil

    other = tmp_path / "other"
    shutil.copytree(run, other, ignore=shutil.ignore_patterns(R.METRICS, R.PER_IMAGE))
    for out, problem in ((other, "is the run folder"), (other / "sub", "is inside the run folder")):
        with pytest.raises(InputError, match=problem):
            evaluate(run, shared_data(), "test", format="patches", out=out, overwrite=True)
    assert not (other / R.METRICS).exists() and not (other / "sub").exists()
    out = tmp_path / "out"
    out.mkdir()
    evaluate(run, shared_data(), "test", format="patches", out=out)
    before = (out / R.METRICS).read_text()
    assert (out / json.loads(before)["evaluation"]["run"]).resolve() == run.resolve()
    with pytest.raises(InputError, match=r"holds the evaluation of .*--overwrite") as err:
        evaluate(other, shared_data(), "test", format="patches", out=out)
    assert str(run.resolve()) in err.value.problem  # where the run it holds is (the eighteenth probe: a bare '../x')
    assert (out / R.METRICS).read_text() == before
    evaluate(other, shared_data(), "test", format="patches", out=out, overwrite=True)


def test_files_in_the_way_of_the_results_are_refused_before_work(run, tmp_path):
    (tmp_path / R.PER_IMAGE).write_text("my table\n")
    with pytest.raises(InputError, match=r"no metrics.json beside it"):
        evaluate(run, shared_data(), "test", format="patches", out=tmp_path)
    assert (tmp_path / R.PER_IMAGE).read_text() == "my table\n"
    (tmp_path / R.METRICS).mkdir()
    with pytest.raises(InputError, match="is in the way of the evaluation's results"):
        evaluate(run, shared_data(), "test", format="patches", out=tmp_path, overwrite=True)


def test_folders_in_the_way_of_tunes_results_are_refused_before_work(run, tmp_path):
    """The eleventh probe: tune.csv as a folder was a traceback after the search; postprocess.json as one was
    said to hold the run's thresholds."""
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    for name in ("tune.csv", R.POSTPROCESS):
        (copy / name).unlink(missing_ok=True)
        (copy / name).mkdir()
        with pytest.raises(InputError, match=r"is in the way of tune.s results|is a folder, not a file") as err:
            tune(copy, grid={"fg_threshold": [0.5]}, overwrite=True)
        assert err.value.path == str(copy / name)
        (copy / name).rmdir()


def test_a_folder_where_the_thresholds_go_is_refused_not_read_as_untuned(run, tmp_path):
    """The eleventh probe: evaluate scored with the default thresholds (exit 0) when postprocess.json was a
    folder."""
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / R.POSTPROCESS).unlink(missing_ok=True)
    (copy / R.POSTPROCESS).mkdir()
    with pytest.raises(InputError, match="is a folder, not a file") as err:
        evaluate(copy, shared_data(), "test", format="patches", out=tmp_path / "out")
    assert err.value.path == str(copy / R.POSTPROCESS)


def test_tuning_on_the_runs_training_patches_is_refused(run, tmp_path):
    """The fifteenth probe: ``tune RUN --data <its data> --split <its train_split>`` (what a refit's refusal
    suggested) tuned the thresholds on the very patches the network trained on."""
    import shutil

    copy = shutil.copytree(run, tmp_path / "run")
    own = R.Run.open(copy).config.data
    before = (copy / R.POSTPROCESS).read_bytes() if (copy / R.POSTPROCESS).exists() else None
    with pytest.raises(InputError, match=f"holds the split '{own.train_split}' the run trained on") as err:
        tune(copy, own.path, own.train_split, format=own.format, overwrite=True)
    assert err.value.path == "--split"
    assert ((copy / R.POSTPROCESS).read_bytes() if (copy / R.POSTPROCESS).exists() else None) == before


def test_tune_never_writes_into_data_it_reads(run, tmp_path):
    """Twenty-fifth probe (siblings): an ensemble made inside its members' data was tuned there, tune.csv and
    postprocess.json written into the dataset; a run inside the folder given as --data likewise."""
    import shutil

    data = shutil.copytree(shared_data(), tmp_path / "data")
    inside = shutil.copytree(run, data / "test" / "run")
    before = sorted(p.name for p in inside.iterdir())
    with pytest.raises(InputError, match="is inside the dataset folder") as err:
        tune(inside, data, "test", format="patches", overwrite=True)
    assert err.value.path == str(inside) and sorted(p.name for p in inside.iterdir()) == before


def test_an_unfinished_run_is_not_tuned_and_its_evaluation_says_so(run, tmp_path, held_elsewhere):
    """The sixteenth probe: a killed run was tuned (the thresholds then kept for the network its resume
    finished with) and evaluated without a word. Tuning waits for the run to finish; evaluating (and
    predicting) it is said, and recorded."""
    import shutil
    import warnings

    from cellprobe.data.validate import DataWarning

    copy = shutil.copytree(run, tmp_path / "run")
    stamp = json.loads((copy / R.STAMP).read_text())
    (copy / R.STAMP).write_text(json.dumps({**stamp, "status": "training"}))
    with pytest.raises(InputError, match="has not finished training") as err:
        tune(copy, overwrite=True)
    assert err.value.path == str(copy / R.STAMP)
    with held_elsewhere(copy, "training"), pytest.raises(InputError, match=r"in use .* \(training\)"):
        tune(copy, overwrite=True)  # not "resume it": it is training now (twenty-fifth probe, siblings)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        evaluate(copy, shared_data(), "test", format="patches", out=tmp_path / "ev")
    assert any(issubclass(w.category, DataWarning) and "has not finished training" in str(w.message) for w in seen)
    assert json.loads((tmp_path / "ev" / R.METRICS).read_text())["evaluation"]["run_finished"] is False


def test_scores_on_the_runs_own_training_patches_are_said_and_recorded(run, tmp_path):
    """The twentieth probe: evaluate on the run's training split exited 0 with nothing said (tune refuses it)."""
    from cellprobe.data.validate import DataWarning

    config = R.Run.open(run).config
    with pytest.warns(DataWarning, match="patches the run trained on and overstate it"):
        evaluate(run, config.data.path, config.data.train_split, format="patches", out=tmp_path)
    assert json.loads((tmp_path / R.METRICS).read_text())["evaluation"]["on_training_patches"] is True


def test_training_patches_are_recognised_however_they_are_named(run, tmp_path):
    """The twenty-first probe: --format patches (what the run's data, of no format given, was detected as) hid
    its training split from evaluate's check. The twenty-second: so did the split given as a folder of its own
    (``-d data/train``), for evaluate and tune."""
    from cellprobe.data.validate import DataWarning
    from cellprobe.evaluation.eval_data import training_patches_named

    config = R.Run.open(run).config
    root, split = Path(config.data.path), config.data.train_split
    detected = config.model_copy(update={"data": config.data.model_copy(update={"format": None})})
    (tmp_path / "link").symlink_to(root)
    for cfg in (config, detected):
        for given in (None, "patches"):
            for path, at in ((root, split), (root / split, None), (root / split, split), (tmp_path / "link", split)):
                named = training_patches_named(cfg, open_dataset(path, format=given, split=at))
                assert named is not None and f"holds the split '{split}' the run trained on" in named, (path, at)
        assert training_patches_named(cfg, open_dataset(root, split="test")) is None
        assert training_patches_named(cfg, open_dataset(root / "test")) is None

    import shutil

    copy = shutil.copytree(run, tmp_path / "run")
    before = (copy / R.POSTPROCESS).read_bytes() if (copy / R.POSTPROCESS).exists() else None
    with pytest.raises(InputError, match=f"holds the split '{split}' the run trained on") as err:
        tune(copy, root / split, overwrite=True)
    assert err.value.path == "--data"
    assert ((copy / R.POSTPROCESS).read_bytes() if (copy / R.POSTPROCESS).exists() else None) == before
    with pytest.warns(DataWarning, match="patches the run trained on and overstate it"):
        evaluate(copy, root / split, None, out=tmp_path / "ev")
    assert json.loads((tmp_path / "ev" / R.METRICS).read_text())["evaluation"]["on_training_patches"] is True


def test_training_patches_among_others_are_recognised(tmp_path):
    """A dataset read whole that holds the run's training split (a CoNIC layout, whose splits are selections of
    one array file)."""
    from types import SimpleNamespace

    from cellprobe.data import fixtures, open_dataset
    from cellprobe.evaluation.eval_data import training_patches_named

    images, inst, cls = fixtures.synthetic_set(6, seed=1, size=64)
    conic_root = fixtures.write_conic(tmp_path / "conic", images, inst, cls, [f"src{i // 2}-{i:04d}" for i in range(6)])
    own = SimpleNamespace(path=str(conic_root), format="conic", train_split="train", options={"val_fraction": 0.5})
    config = SimpleNamespace(data=own)
    whole = open_dataset(conic_root, val_fraction=0.5)
    train = open_dataset(conic_root, split="train", val_fraction=0.5)
    assert f"holds {len(train)} of its 6 patches among those the run trained on" in training_patches_named(config, whole)
    assert "the split 'train'" in training_patches_named(config, train)
    assert training_patches_named(config, open_dataset(conic_root, split="val", val_fraction=0.5)) is None


def test_test_images_linked_to_training_images_are_recognised(run, tmp_path):
    """The twenty-third probe: a test split whose images were links to the training images (labels copied) was
    scored as held out, without a word."""
    import shutil

    from cellprobe.data import open_dataset
    from cellprobe.evaluation.eval_data import training_patches_named

    config = R.Run.open(run).config
    root = Path(config.data.path)
    data = shutil.copytree(root, tmp_path / "data")
    test = data / "test"
    train_images = sorted((data / "train" / "images").iterdir())
    test_images = sorted((test / "images").iterdir())
    for image, linked in zip(test_images[:2], train_images, strict=False):
        image.unlink()
        image.symlink_to(linked)
    own = config.data.model_copy(update={"path": data})
    cfg = config.model_copy(update={"data": own})
    named = training_patches_named(cfg, open_dataset(data, split="test"))
    assert named is not None and f"holds 2 of its {len(test_images)} patches among those the run trained on" in named
