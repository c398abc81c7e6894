import json

import numpy as np
import pytest
from tests.training.tiny import shared_run

from cellprobe.errors import InputError
from cellprobe.inference.predict import collect_inputs


def test_collect_inputs(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"")
    (tmp_path / "a" / "notes.txt").write_text("")
    (tmp_path / "y.tif").write_bytes(b"")
    said = []
    assert collect_inputs([tmp_path / "a", tmp_path / "y.tif"], notice=said.append) == [tmp_path / "a" / "x.png",
                                                                                       tmp_path / "y.tif"]
    assert said == [f"{tmp_path / 'a'}: left out 1 non-image entry (notes.txt)"]
    (tmp_path / "a" / "._x.png").write_bytes(b"")  # twenty-sixth probe: left out without a word
    (tmp_path / "a" / ".DS_Store").write_bytes(b"")
    said.clear()
    assert collect_inputs([tmp_path / "a"], notice=said.append) == [tmp_path / "a" / "x.png"]
    assert said == [f"{tmp_path / 'a'}: left out 1 non-image entry (notes.txt)",
                    f"{tmp_path / 'a'}: left out 1 hidden image entry (._x.png)"]
    assert collect_inputs([tmp_path / "a" / "._x.png"]) == [tmp_path / "a" / "._x.png"]  # named: predicted
    (tmp_path / "b").mkdir()
    with pytest.raises(InputError, match="no image"):
        collect_inputs([tmp_path / "b"])
    (tmp_path / "b" / "x.jpg").write_bytes(b"")
    with pytest.raises(InputError, match="shares the name 'x' with"):
        collect_inputs([tmp_path / "a", tmp_path / "b"])
    x = tmp_path / "a" / "x.png"
    spelt_again = tmp_path / "a" / ".." / "a" / "x.png"
    with pytest.raises(InputError, match=r"is given twice \(also as") as err:
        collect_inputs([x, spelt_again])
    assert err.value.path == str(spelt_again)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "X.png").write_bytes(b"")
    with pytest.raises(InputError, match="differs only in case"):
        collect_inputs([x, tmp_path / "c" / "X.png"])
    (tmp_path / "c" / "caf\u00e9.png").write_bytes(b"")  # é as one code point (NFC) ...
    (tmp_path / "b" / "cafe\u0301.png").write_bytes(b"")  # ... and as e + combining accent (NFD)
    with pytest.raises(InputError, match="Unicode spelling"):
        collect_inputs([tmp_path / "c" / "caf\u00e9.png", tmp_path / "b" / "cafe\u0301.png"])


def test_the_output_folder_is_checked_before_any_work(tmp_path):
    from cellprobe.inference.predict import prepare_output

    inputs = [_png(tmp_path / "x.png")]
    (tmp_path / "file").write_text("")
    for out in (tmp_path / "file", tmp_path / "file" / "below"):
        with pytest.raises(InputError, match="must be a folder"):
            prepare_output(out, inputs)
    out = tmp_path / "out"
    prepare_output(out, inputs)
    assert not out.exists()  # checked only: predict_files makes it (a refusal after the check leaves nothing)
    out.mkdir()
    (out / "x_inst.tif").write_bytes(b"earlier result")
    (out / ".x.geojson.abc12345.tmp").write_bytes(b"half written by a killed run")
    (out / "other.txt").write_text("not ours")
    with pytest.raises(InputError, match="--overwrite"):
        prepare_output(out, inputs)
    assert not (out / ".x.geojson.abc12345.tmp").exists()  # a killed run's temporaries are cleared
    prepare_output(out, inputs, overwrite=True)
    assert (out / "x_inst.tif").read_bytes() == b"earlier result" and (out / "other.txt").exists()
    prepare_output(out, [_png(tmp_path / "y.png")])  # other inputs: nothing of theirs there
    (out / ".x.geojson.abc12345.tmp").mkdir()  # not a temporary cellprobe writes: left alone
    prepare_output(out, inputs, overwrite=True)
    assert (out / ".x.geojson.abc12345.tmp").is_dir()


def test_a_record_with_a_key_given_twice_is_no_record(tmp_path, tmp_path_factory):
    """The folder's record is read strictly: with 'done' given twice it proves nothing, so results there are
    'made otherwise' (refused without --overwrite), not resumed."""
    from cellprobe.inference.predict import MANIFEST, prepare_output

    out = tmp_path / "out"
    out.mkdir()
    (out / "x_inst.tif").write_bytes(b"earlier result")
    run = json.dumps(str(shared_run(tmp_path_factory)))
    (out / MANIFEST).write_text('{"setup": {"run": ' + run + '}, "done": {}, "done": {"x": "abc"}}')
    with pytest.raises(InputError, match="--overwrite"):
        prepare_output(out, [_png(tmp_path / "x.png")], setup={"run": json.loads(run)})


@pytest.mark.parametrize("done", ['["x"]', '{"x": null}', '{"x": 7}'])
def test_a_record_of_names_without_digests_is_no_record(tmp_path, tmp_path_factory, done):
    """A record of names only (written before inputs were hashed) cannot tell which image a result came from:
    another image named x.png replaced x's results without --overwrite. It counts as no record."""
    from cellprobe.inference.predict import MANIFEST, prepare_output, recorded_inputs

    out = tmp_path / "out"
    out.mkdir()
    (out / "x_inst.tif").write_bytes(b"earlier result")
    run = str(shared_run(tmp_path_factory))  # a run of its own: prepare_output reads where it trained
    (out / MANIFEST).write_text(json.dumps({"setup": {"run": run}, "done": "DONE"}).replace('"DONE"', done))
    assert recorded_inputs(out, {"run": run}) is None
    (tmp_path / "x.png").write_bytes(b"another image")
    with pytest.raises(InputError, match="--overwrite"):
        prepare_output(out, [_png(tmp_path / "x.png")], setup={"run": run})


def _png(path):
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(path)
    return path


@pytest.mark.parametrize("held", ["big", ".big.partial"])
def test_a_large_images_folders_are_checked_for_case_clashes(tmp_path, held):
    """A large image's results are the whole-slide engine's folder (and its .partial work folder): Big.png
    beside an earlier big/ was accepted (the eighth probe), though small images were refused."""
    from cellprobe.inference.predict import prepare_output
    from cellprobe.inference.slide_config import SlideSettings

    out = tmp_path / "out"
    (out / held).mkdir(parents=True)
    image = _png(tmp_path / "in" / "Big.png")
    large = SlideSettings(predict_large_pixels=64 * 64 - 1)
    for overwrite in (False, True):
        with pytest.raises(InputError, match="differs only in case") as err:
            prepare_output(out, [image], overwrite, slide=large)
        assert err.value.path == str(image)
    prepare_output(out, [image])  # as a small image its results are files, not a 'Big' folder: no clash


def test_a_folder_in_the_way_of_a_result_file_is_refused_before_any_work(tmp_path):
    """--overwrite could not replace a folder named like a result file: an IsADirectoryError traceback after the
    work, the other results already replaced."""
    from cellprobe.inference.predict import prepare_output

    out = tmp_path / "out"
    (out / "a_overlay.png").mkdir(parents=True)
    image = _png(tmp_path / "in" / "a.png")
    for overwrite in (False, True):
        with pytest.raises(InputError, match=r"is in the way of a\.png.s result file a_overlay\.png") as err:
            prepare_output(out, [image], overwrite)
        assert err.value.path == str(out / "a_overlay.png")


def test_two_large_inputs_sharing_a_results_folder_and_a_record_in_the_way_are_refused(tmp_path):
    """x.ome.tif and x.tif are both large: both results folders are 'x' (predict compared stems, 'x.ome' and
    'x', and overwrote one with the other). A folder named like predict's record was a traceback after the work."""
    import tifffile

    from cellprobe.inference.predict import MANIFEST, prepare_output
    from cellprobe.inference.slide_config import SlideSettings

    large = SlideSettings(predict_large_pixels=64 * 64 - 1)
    inputs = [tmp_path / "in" / "x.ome.tif", tmp_path / "in" / "x.tif"]
    inputs[0].parent.mkdir()
    for path in inputs:
        tifffile.imwrite(path, np.zeros((64, 64, 3), np.uint8))
    for overwrite in (False, True):
        with pytest.raises(InputError, match=r"its result x is also .*x\.ome\.tif's") as err:
            prepare_output(tmp_path / "out", inputs, overwrite, slide=large)
        assert err.value.path == str(inputs[1])
    prepare_output(tmp_path / "out2", inputs)  # as small images: x.ome_inst.tif and x_inst.tif, no clash
    (tmp_path / "out3" / MANIFEST).mkdir(parents=True)
    with pytest.raises(InputError, match="is in the way of predict's record"):
        prepare_output(tmp_path / "out3", inputs[1:])


def test_an_image_recording_another_resolution_than_the_runs_is_said(tmp_path):
    """The 28th probe: a 0.5 µm/px image was predicted at the run's 0.25 µm/px (as predict reads every image)
    without a word, its sizes in µm halved."""
    import warnings

    import tifffile
    from PIL import Image

    from cellprobe.data.slide_reader import recorded_mpp
    from cellprobe.data.validate import DataWarning
    from cellprobe.inference.predict import _say_resolution

    pixels = np.zeros((32, 32, 3), np.uint8)
    files = {"half.png": (0.5, 0.5), "close.png": (0.26, 0.26), "screen.png": None, "none.jpg": None,
             "half.tif": (0.5, 0.5), "ome.ome.tif": (0.5, 0.5), "oblong.tif": (0.25, 0.5)}
    Image.fromarray(pixels).save(tmp_path / "half.png", dpi=(25400 / 0.5, 25400 / 0.5))
    Image.fromarray(pixels).save(tmp_path / "close.png", dpi=(25400 / 0.26, 25400 / 0.26))
    Image.fromarray(pixels).save(tmp_path / "screen.png", dpi=(72, 72))  # a writer's default, not a measurement
    Image.fromarray(pixels).save(tmp_path / "none.jpg")
    tifffile.imwrite(tmp_path / "half.tif", pixels, photometric="rgb", resolution=(20000, 20000),
                     resolutionunit="CENTIMETER")
    tifffile.imwrite(tmp_path / "ome.ome.tif", pixels, photometric="rgb", ome=True,
                     metadata={"axes": "YXS", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5})
    tifffile.imwrite(tmp_path / "oblong.tif", pixels, photometric="rgb", resolution=(40000, 20000),
                     resolutionunit="CENTIMETER")
    for name, mpp in files.items():
        assert recorded_mpp(tmp_path / name) == (pytest.approx(mpp, rel=1e-3) if mpp else None), name
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        _say_resolution([tmp_path / n for n in files], 0.25, 0.1)
    assert sorted(str(w.message).split(":")[0] for w in said if w.category is DataWarning) == [
        str(tmp_path / n) for n in ("half.png", "half.tif", "oblong.tif", "ome.ome.tif")]
    assert "records 0.5 µm/px, the run was trained at 0.25: predict reads every image at the run's" in str(
        said[0].message)
    oblong = next(str(w.message) for w in said if "oblong" in str(w.message))
    assert "records 0.25 × 0.5 µm/px (x × y: non-square pixels), the run" in oblong  # not their mean
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        _say_resolution([tmp_path / "half.png"], None, 0.1)  # a run without a resolution: nothing to compare
    assert not said
