"""`cellprobe predict`: patches and a large tiled image → maps, overlay, GeoJSON; wrong inputs → exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from PIL import Image
from tests.training.tiny import shared_data, shared_run

from cellprobe.data import open_dataset


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return shared_run(tmp_path_factory)


def _patch_folder(folder, count: int, prefix: str = "patch"):
    """``count`` test patches of the tiny data as PNG files in ``folder``; returns the dataset."""
    ds = open_dataset(shared_data(), format="patches", split="test")
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(ds[i].image).save(folder / f"{prefix}{i}.png")
    return ds


def test_predict_patches_and_a_large_image(cli, run, tmp_path):
    ds = _patch_folder(tmp_path / "in", 2)
    inputs = tmp_path / "in"
    tiles = [ds[i].image for i in range(4)]
    large = np.concatenate([np.concatenate(tiles[:2], 1), np.concatenate(tiles[2:], 1)] * 2, 0)  # 256 × 128
    tifffile.imwrite(tmp_path / "large.tif", large)
    out = tmp_path / "out"
    rc, stdout, err = cli("predict", run, inputs, tmp_path / "large.tif", "--out", out, "--tile", "64",
                          "--overlap", "16", "--device", "cpu")
    assert rc == 0, err
    assert "3 image(s)" in stdout
    inst = tifffile.imread(out / "large_inst.tif")
    assert inst.shape == (256, 128) and inst.dtype == np.int32
    assert tifffile.imread(out / "large_class.tif").shape == (256, 128)
    assert Image.open(out / "patch0_overlay.png").size == (64, 64)
    gj = json.loads((out / "large.geojson").read_text())
    assert gj["type"] == "FeatureCollection"
    assert len(gj["features"]) == len(np.unique(inst)) - 1

    # the same command again finds its results done; results of another setup are not replaced silently;
    # --overwrite replaces them
    before = (out / "large_inst.tif").stat().st_mtime_ns
    rc, _, err = cli("predict", run, tmp_path / "large.tif", "--out", out, "--tile", "64", "--overlap", "16",
                     "--device", "cpu")
    assert rc == 0 and (out / "large_inst.tif").stat().st_mtime_ns == before, err
    rc, _, err = cli("predict", run, tmp_path / "large.tif", "--out", out, "--tile", "96", "--overlap", "16",
                     "--device", "cpu")
    assert rc == 2 and "made with another run or setup" in err and "--overwrite" in err
    assert len(err.strip().splitlines()) == 1
    rc, _, err = cli("predict", run, tmp_path / "large.tif", "--out", out, "--tile", "96", "--overlap", "16",
                     "--device", "cpu", "--overwrite")
    assert rc == 0, err


def test_a_run_stopped_by_a_damaged_image_resumes_once_it_is_fixed(cli, run, tmp_path):
    inputs = tmp_path / "in"
    _patch_folder(inputs, 3, "p")
    good = (inputs / "p2.png").read_bytes()
    (inputs / "p2.png").write_bytes(good[: len(good) // 2])  # the header reads, the pixels do not
    out = tmp_path / "out"
    rc, _, err = cli("predict", run, inputs, "--out", out, "--device", "cpu")
    assert rc == 2 and "p2.png" in err and len(err.strip().splitlines()) == 1
    assert (out / "p0_inst.tif").is_file() and not (out / "p2_inst.tif").exists()
    first = (out / "p0_inst.tif").stat().st_mtime_ns
    (inputs / "p2.png").write_bytes(good)
    rc, stdout, err = cli("predict", run, inputs, "--out", out, "--device", "cpu")
    assert rc == 0 and "3 image(s)" in stdout, err
    assert (out / "p0_inst.tif").stat().st_mtime_ns == first and (out / "p2_inst.tif").is_file()


def test_the_output_folder_cannot_be_an_input_folder(cli, run, tmp_path):
    _patch_folder(tmp_path, 1, "p")
    for given in (tmp_path, tmp_path / "p0.png"):
        rc, _, err = cli("predict", run, given, "--out", tmp_path, "--overwrite")
        assert rc == 2 and "is the folder of the input" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p0.png"]


def test_wrong_inputs(cli, run, tmp_path):
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., 3] = 10
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    rc, _, err = cli("predict", run, tmp_path / "alpha.png", "--out", tmp_path / "o")
    assert rc == 2 and "alpha.png" in err and len(err.strip().splitlines()) == 1
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "opaque.png")
    rc, _, err = cli("predict", run, tmp_path / "missing.png", "--out", tmp_path / "o")
    assert rc == 2 and "no such file" in err
    rc, _, err = cli("predict", run, tmp_path / "opaque.png", "--out", tmp_path / "o", "--tile", "100")
    assert rc == 2 and "multiple of 32" in err
    rc, _, err = cli("predict", run, tmp_path / "opaque.png", "--out", tmp_path / "o", "--overlap", "8")
    assert rc == 2 and err.strip() == ("cellprobe: error: --tile/--overlap: config key 'overlap': overlap 8 is below "
                                       "the 16 px over which windows cross-fade at their seams: give at least 16"), err
    assert "blend" not in err  # the 29th probe: it named 'blend', which predict has no option for
    (tmp_path / "a-file").write_text("")
    for out in (tmp_path / "a-file", tmp_path / "a-file" / "below"):
        rc, _, err = cli("predict", run, tmp_path / "opaque.png", "--out", out)
        assert rc == 2 and "must be a folder" in err and len(err.strip().splitlines()) == 1
    for device, problem in (("gpu7", "unknown device"), ("cuda:99", "CUDA device")):
        rc, _, err = cli("predict", run, tmp_path / "opaque.png", "--out", tmp_path / "o2", "--device", device)
        assert rc == 2 and problem in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "o2").exists()  # the eleventh probe: an empty --out folder was left behind


def test_results_of_retuned_thresholds_are_not_taken_for_done(cli, run, tmp_path):
    import shutil

    from cellprobe.run import run_folder as R

    own = tmp_path / "run"
    shutil.copytree(run, own)
    _patch_folder(tmp_path / "in", 1)
    out = tmp_path / "out"
    rc, _, err = cli("predict", own, tmp_path / "in", "--out", out, "--device", "cpu")
    assert rc == 0, err
    from cellprobe.postprocess import PostprocessParams

    # `cellprobe tune` changed the thresholds (to a value other than the shared run's, which another module's
    # tuning may have set to 0.3 already)
    before = R.load_postprocess(own).fg_threshold
    (own / R.POSTPROCESS).write_text(PostprocessParams(fg_threshold=0.3 if before != 0.3 else 0.4).model_dump_json())
    rc, _, err = cli("predict", own, tmp_path / "in", "--out", out, "--device", "cpu")
    assert rc == 2 and "made with another run or setup" in err, err


def test_a_folder_holds_one_setups_predictions_and_one_predict_at_a_time(cli, run, tmp_path):
    """The fifteenth probe: a predict with another run (or thresholds) into a folder holding an earlier run's
    results of other images replaced the folder's record, leaving two runs' results under one record (the
    first command's resume then refused its own results); two predicts into one folder at once did the same.
    Another setup's results are refused (--overwrite starts the record over); a predict holds the folder; a
    record that cannot be read is refused naming it."""
    import shutil

    from cellprobe.inference.predict import MANIFEST
    from cellprobe.locking import exclusive
    from cellprobe.postprocess import PostprocessParams
    from cellprobe.run import run_folder as R

    own = tmp_path / "run"
    shutil.copytree(run, own)
    _patch_folder(tmp_path / "a", 1, "a")
    _patch_folder(tmp_path / "b", 1, "b")
    out = tmp_path / "out"
    assert cli("predict", own, tmp_path / "a", "--out", out, "--device", "cpu")[0] == 0
    record = (out / MANIFEST).read_text()
    before = R.load_postprocess(own).fg_threshold
    (own / R.POSTPROCESS).write_text(PostprocessParams(fg_threshold=0.3 if before != 0.3 else 0.4).model_dump_json())
    rc, _, err = cli("predict", own, tmp_path / "b", "--out", out, "--device", "cpu")
    assert rc == 2 and f"{out}: holds predictions of 1 input(s) made with another run or setup" in err, err
    assert len(err.strip().splitlines()) == 1 and (out / MANIFEST).read_text() == record
    assert not (out / "b0_inst.tif").exists()
    with exclusive(out, "predicting"):  # another predict at work in the folder
        rc, _, err = cli("predict", own, tmp_path / "b", "--out", out, "--device", "cpu", "--overwrite")
    assert rc == 2 and "in use by another cellprobe process (predicting)" in err, err
    rc, _, err = cli("predict", own, tmp_path / "b", "--out", out, "--device", "cpu", "--overwrite")
    assert rc == 0 and (out / "b0_inst.tif").is_file(), err
    for damaged in ("{", "[]", "{}"):
        (out / MANIFEST).write_text(damaged)
        rc, _, err = cli("predict", own, tmp_path / "b", "--out", out, "--device", "cpu")
        assert rc == 2 and f"{out / MANIFEST}: " in err and "--overwrite" in err, err
        assert len(err.strip().splitlines()) == 1


def test_a_checkpoint_replaced_under_its_size_and_time_is_another_setup(cli, run, tmp_path):
    """The sixteenth probe: best.ckpt replaced by another network's of the same byte size, its time set back,
    passed for the same setup (earlier results kept as done beside new ones). Checkpoints are known by content."""
    import os
    import shutil

    own = tmp_path / "run"
    shutil.copytree(run, own)
    _patch_folder(tmp_path / "in", 1)
    out = tmp_path / "out"
    assert cli("predict", own, tmp_path / "in", "--out", out, "--device", "cpu")[0] == 0
    best = own / "best.ckpt"
    stat = best.stat()
    data = bytearray(best.read_bytes())
    data[-1] ^= 0xFF  # other bytes, the same size (a zip's last byte: still a readable checkpoint)
    best.write_bytes(bytes(data))
    os.utime(best, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    rc, _, err = cli("predict", own, tmp_path / "in", "--out", out, "--device", "cpu")
    assert rc == 2 and "made with another run or setup" in err, err


def test_an_input_name_too_long_for_its_results_is_refused_before_anything(cli, run, tmp_path):
    _patch_folder(tmp_path / "in", 1, "x" * 240)
    rc, _, err = cli("predict", run, tmp_path / "in", "--out", tmp_path / "out", "--device", "cpu")
    assert rc == 2 and "too long" in err and err.count("\n") == 1 and not (tmp_path / "out").exists(), err


def test_another_image_under_a_recorded_name_is_not_taken_for_done(cli, run, tmp_path):
    """The record keys each finished input on its contents too: another image named like a finished one is
    refused (its results would be the first image's), and redone with --overwrite."""
    first, second = tmp_path / "a", tmp_path / "b"
    _patch_folder(first, 1, "tr")
    ds = _patch_folder(second, 2, "x")
    Image.fromarray(ds[1].image).save(second / "tr0.png")  # other pixels, the same name
    out = tmp_path / "out"
    rc, _, err = cli("predict", run, first / "tr0.png", "--out", out, "--device", "cpu")
    assert rc == 0, err
    made = (out / "tr0_inst.tif").read_bytes()
    rc, _, err = cli("predict", run, second / "tr0.png", "--out", out, "--device", "cpu")
    assert rc == 2 and str(second / "tr0.png") in err and "another image named 'tr0'" in err, err
    assert (out / "tr0_inst.tif").read_bytes() == made
    rc, _, err = cli("predict", run, first / "tr0.png", "--out", out, "--device", "cpu")  # the same: done
    assert rc == 0 and (out / "tr0_inst.tif").read_bytes() == made, err
    rc, _, err = cli("predict", run, second / "tr0.png", "--out", out, "--device", "cpu", "--overwrite")
    assert rc == 0, err


def test_a_result_changed_by_hand_is_neither_taken_for_done_nor_overwritten(cli, run, tmp_path):
    """The record keeps each result's digest: a rerun skips an input only while its results are the bytes
    predict wrote. One edited or replaced by hand is refused by name (it is no longer this run's result, and
    redoing it would overwrite the user's file); a deleted one is made again; --overwrite replaces the edit."""
    _patch_folder(tmp_path / "in", 1, "tr")
    out = tmp_path / "out"
    args = ("predict", run, tmp_path / "in", "--out", out, "--device", "cpu")
    rc, _, err = cli(*args)
    assert rc == 0, err
    made = {n: (out / n).read_bytes() for n in ("tr0_inst.tif", "tr0.geojson", "tr0_overlay.png")}
    (out / "tr0.geojson").write_text('{"type": "FeatureCollection", "features": [], "edited": true}')
    rc, _, err = cli(*args)
    assert rc == 2 and f"{out / 'tr0.geojson'}: differs from the file cellprobe wrote" in err, err
    assert len(err.strip().splitlines()) == 1 and "--overwrite" in err
    assert (out / "tr0.geojson").read_text().endswith("true}")
    rc, _, err = cli(*args, "--overwrite")
    assert rc == 0 and (out / "tr0.geojson").read_bytes() == made["tr0.geojson"], err
    (out / "tr0_overlay.png").unlink()
    rc, _, err = cli(*args)
    assert rc == 0 and (out / "tr0_overlay.png").read_bytes() == made["tr0_overlay.png"], err
    # the seventeenth probe: with the record's digests deleted or damaged, an edited result was overwritten
    import json

    from cellprobe.inference.predict import MANIFEST

    record = json.loads((out / MANIFEST).read_text())
    (out / "tr0.geojson").write_text('{"edited": true}')
    for outputs in ("x", None):
        damaged = {**record, "outputs": outputs} if outputs is not None else {
            k: v for k, v in record.items() if k != "outputs"}
        (out / MANIFEST).write_text(json.dumps(damaged))
        rc, _, err = cli(*args)
        assert rc == 2 and f"{out / MANIFEST}: records no digests of tr0.png's results" in err, err
        assert (out / "tr0.geojson").read_text() == '{"edited": true}'


def test_an_input_named_like_an_earlier_commands_result_but_for_case_is_refused(cli, run, tmp_path):
    """Results already in --out from an earlier command count too: ``Tr0.png`` after ``tr0.png`` would write
    ``Tr0_inst.tif`` beside ``tr0_inst.tif``, one file on macOS and Windows; refused, --overwrite or not."""
    first, second = tmp_path / "a", tmp_path / "b"
    _patch_folder(first, 1, "tr")
    ds = _patch_folder(second, 1, "x")
    Image.fromarray(ds[0].image).save(second / "Tr0.png")
    out = tmp_path / "out"
    rc, _, err = cli("predict", run, first / "tr0.png", "--out", out, "--device", "cpu")
    assert rc == 0, err
    before = sorted(p.name for p in out.iterdir())
    for extra in ([], ["--overwrite"]):
        rc, _, err = cli("predict", run, second / "Tr0.png", "--out", out, "--device", "cpu", *extra)
        assert rc == 2 and str(second / "Tr0.png") in err and "differs only in case" in err, err
        assert len(err.strip().splitlines()) == 1 and sorted(p.name for p in out.iterdir()) == before


def test_a_postprocess_json_lacking_thresholds_is_refused(cli, run, tmp_path):
    """A cut or hand-edited postprocess.json took the built-in defaults for the thresholds it lacked, not the
    run's own: tune writes every one, so a file without them all is refused, naming what it lacks."""
    import shutil

    from cellprobe.run import run_folder as R

    own = tmp_path / "run"
    shutil.copytree(run, own)
    _patch_folder(tmp_path / "in", 1)
    (own / R.POSTPROCESS).write_text('{"fg_threshold": 0.6}')
    rc, _, err = cli("predict", own, tmp_path / "in", "--out", tmp_path / "out", "--device", "cpu")
    assert rc == 2 and str(own / R.POSTPROCESS) in err and "lacks" in err and "min_size" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_results_never_go_into_another_runs_folder(cli, run, tmp_path):
    """The eleventh probe: predict --out at or inside another run folder wrote there (exit 0), where the
    results would read as that run's; the run's own folder stays allowed."""
    import shutil

    _patch_folder(tmp_path / "in", 1)
    other = tmp_path / "other"
    shutil.copytree(run, other, ignore=shutil.ignore_patterns("*.png", "*.tif", "*.geojson", ".cellprobe-predict*"))
    for out, problem in ((other, "is the run folder"), (other / "preds", "is inside the run folder")):
        rc, _, err = cli("predict", run, tmp_path / "in", "--out", out, "--device", "cpu")
        assert rc == 2 and problem in err and err.count("\n") == 1, err
    assert not (other / "preds").exists() and not list(other.glob("*_inst.tif"))


def test_an_image_of_another_pixel_format_is_refused_before_anything_is_written(cli, run, tmp_path):
    """The twelfth probe: a 16-bit PNG or a CMYK JPEG after a good image was refused only when read, after
    the good image's results (and the --out folder) were written."""
    _patch_folder(tmp_path / "in", 1, "a")
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 65535, (64, 64)).astype(np.uint16)).save(tmp_path / "in" / "b16.png")
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).convert("CMYK").save(tmp_path / "c.jpg")
    seen_through = rng.integers(0, 255, (64, 64, 4), dtype=np.uint8)  # and one only its pixels show (the note)
    Image.fromarray(seen_through).save(tmp_path / "t.png")
    tifffile.imwrite(tmp_path / "t.tif", seen_through)
    for inputs, name in (((tmp_path / "in",), "b16.png"), ((tmp_path / "in" / "a0.png", tmp_path / "c.jpg"), "c.jpg"),
                         ((tmp_path / "in" / "a0.png", tmp_path / "t.png"), "t.png: image has a non-opaque alpha"),
                         ((tmp_path / "in" / "a0.png", tmp_path / "t.tif"), "t.tif: image has a non-opaque alpha")):
        rc, _, err = cli("predict", run, *inputs, "--out", tmp_path / "out", "--device", "cpu")
        assert rc == 2 and name in err and err.count("\n") == 1, err
        assert not (tmp_path / "out").exists()


def test_a_photo_turned_by_its_exif_orientation_is_said(cli, run, tmp_path):
    """The twelfth probe's note: a JPEG whose EXIF orientation turns it in viewers was read as stored without a
    word, so its results did not line up with the picture the user sees."""
    rng = np.random.default_rng(2)
    photo = Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    photo.save(tmp_path / "turned.jpg", exif=exif)
    photo.save(tmp_path / "upright.jpg")
    rc, _, err = cli("predict", run, tmp_path / "turned.jpg", tmp_path / "upright.jpg", "--out", tmp_path / "out",
                     "--device", "cpu")
    assert rc == 0, err
    said = [line for line in err.splitlines() if line.startswith("warning:")]
    assert said == [f"warning: {tmp_path / 'turned.jpg'}: its orientation tag (6) is not applied: pixels are read "
                    "as stored, and the results (masks, overlay, GeoJSON) follow the stored order"], err
    assert tifffile.imread(tmp_path / "out" / "turned_inst.tif").shape == (64, 96)


def test_predictions_made_before_an_upgrade_are_still_the_runs(cli, run, tmp_path):
    """The nineteenth probe: a predict folder made with a format-2 run was refused as 'another run or setup'
    once `cellprobe upgrade` had rewritten the run's checkpoint: the same network, as run.json records."""
    import shutil

    from tests.run.earlier_formats import to_format_2

    from cellprobe.hashing import file_sha256

    own = tmp_path / "run"
    shutil.copytree(run, own, ignore=shutil.ignore_patterns("feature_cache"))
    _patch_folder(tmp_path / "in", 1)
    out = tmp_path / "out"
    assert cli("predict", own, tmp_path / "in", "--out", out, "--device", "cpu")[0] == 0
    to_format_2(own, kept=("data_sha256", "started"))  # as the folder was made, with the run of format 2
    record = json.loads((out / ".cellprobe-predict.json").read_text())
    record["setup"]["checkpoint_files"][0][1] = file_sha256(own / "best.ckpt")
    (out / ".cellprobe-predict.json").write_text(json.dumps(record))
    assert cli("upgrade", own)[0] == 0
    result = next(out.glob("*.geojson"))
    before = result.stat().st_mtime_ns
    rc, _, err = cli("predict", own, tmp_path / "in", "--out", out, "--device", "cpu")
    assert rc == 0 and result.stat().st_mtime_ns == before, err


def test_a_predict_killed_between_an_images_results_and_its_record_resumes(cli, run, tmp_path):
    """The 28th probe: killed after an image's four result files were written and before the folder's record
    named it, the same command was refused ('records no digests of ...') instead of making them again."""
    import signal
    import subprocess
    import sys

    inputs = tmp_path / "in"
    _patch_folder(inputs, 3, "p")
    rc, _, err = cli("predict", run, inputs, "--out", tmp_path / "ref", "--device", "cpu")
    assert rc == 0, err
    killed = subprocess.run([sys.executable, "-c", (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from cellprobe import atomic\n"
        "from cellprobe.inference.predict import MANIFEST\n"
        "write, calls = atomic.write_json, []\n"
        "def kill_at_second_record(path, *args, **kwargs):\n"
        "    calls.extend([1] if Path(path).name == MANIFEST else [])\n"
        "    if len(calls) == 2:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return write(path, *args, **kwargs)\n"
        "atomic.write_json = kill_at_second_record\n"
        "from cellprobe.cli.app import main\n"
        "sys.exit(main(sys.argv[1:]))\n"), "predict", str(run), str(inputs), "--out", str(tmp_path / "out"),
        "--device", "cpu"], timeout=300, capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (tmp_path / "out" / "p1_inst.tif").is_file() and not (tmp_path / "out" / "p2_inst.tif").exists()
    rc, stdout, err = cli("predict", run, inputs, "--out", tmp_path / "out", "--device", "cpu")
    assert rc == 0 and "3 image(s)" in stdout, err
    for made in sorted((tmp_path / "ref").glob("p*")):
        assert (tmp_path / "out" / made.name).read_bytes() == made.read_bytes(), made.name
