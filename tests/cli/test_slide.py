"""`cellprobe slide`: a generated Aperio slide of real CoNSeP tissue → the four outputs, a rerun skips it;
every bad input → one line naming the file, exit status 2, nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from PIL import Image
from tests.training.tiny import shared_run

from cellprobe.data.slide_fixtures import consep_mosaic, write_aperio_tiff

MPP = 0.25
FAST = ("--tile", "256", "--overlap", "64", "--workers", "0", "--device", "cpu")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return shared_run(tmp_path_factory)


@pytest.fixture(scope="module")
def slide(consep_root, tmp_path_factory):
    image, _, _ = consep_mosaic(consep_root, 2, 2)
    path = tmp_path_factory.mktemp("slides") / "tissue.svs"
    return write_aperio_tiff(path, image, image.shape[1], image.shape[0], MPP, levels=(1, 4))


def test_slide_writes_its_outputs_and_a_rerun_skips_it(cli, run, slide, tmp_path):
    out = tmp_path / "out"
    args = ("slide", run, slide, "--out", out, "--target-mpp", "0.5", *FAST, "--set", "tissue.method=all")
    rc, stdout, err = cli(*args)
    assert rc == 0, err
    folder = out / "tissue"
    assert sorted(p.name for p in folder.iterdir()) == ["cells.geojson.gz", "cells.parquet", "overview.png",
                                                        "summary.json"]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["mpp"] == {"slide": MPP, "source": "openslide mpp-x/mpp-y", "target": 0.5, "run": None}
    assert summary["level"] == 0 and summary["reader"] == "openslide" and summary["tiles"]["tissue"] >= 1
    assert summary["tissue_mm2"] == pytest.approx(512 * 512 * MPP**2 / 1e6, rel=0.02)
    assert set(summary["seconds"]) >= {"read", "network", "postprocess", "write", "finish", "total"}
    assert summary["run"]["class_names"] and summary["cellprobe"]
    assert Image.open(folder / "overview.png").size[0] > 0
    rc, stdout, err = cli(*args)
    assert rc == 0 and "skipped" in err + stdout
    # the fifteenth probe: another overview_side was 'finished earlier, skipped', the overview left as it was
    rc, _, err = cli(*args, "--set", "overview_side=64")
    assert rc == 2 and "already holds results of another run, slide or settings" in err, err
    # a damaged or missing summary: refused naming it and its problem (it used to say "another run")
    record, kept = folder / "summary.json", (folder / "summary.json").read_bytes()
    for damaged, problem in ((b"{", "unreadable slide summary: not valid JSON"), (b"[]", "is not a slide summary"),
                             (None, "is missing")):
        record.unlink()
        if damaged is not None:
            record.write_bytes(damaged)
        rc, _, err = cli(*args)
        assert rc == 2 and f"{record}: {problem}" in err and "--overwrite" in err, err
        _one_line(err, "summary.json")
    record.write_bytes(kept)
    # the fourteenth probe: a results folder whose cells table was lost or damaged was skipped as finished;
    # a GeoJSON or overview replaced by hand (another slide's, garbage) was too: each is checked by its digest
    assert set(summary["files"]) == {"cells.parquet", "cells.geojson.gz", "overview.png"}
    for name in summary["files"]:
        kept_file = (folder / name).read_bytes()
        for damaged, problem in ((None, "no such file"), (b"garbage", "differs from the file cellprobe wrote")):
            (folder / name).unlink(missing_ok=True)
            if damaged is not None:
                (folder / name).write_bytes(damaged)
            rc, _, err = cli(*args)
            assert rc == 2 and f"{folder / name}: {problem}" in err and "the finished results" in err, err
            _one_line(err, name)
        (folder / name).write_bytes(kept_file)
    # a summary without the digests (hand-made, or an older cellprobe's) proves nothing about the files; one
    # with a count edited (the nineteenth probe: nuclei.total 0 → 999 was skipped as finished) is not the one written
    for edited in ({k: v for k, v in summary.items() if k != "files"},
                   {**summary, "nuclei": {**summary["nuclei"], "total": 999}}):
        record.write_text(json.dumps(edited))
        rc, _, err = cli(*args)
        assert rc == 2 and f"{record}: is not the summary cellprobe wrote" in err, err
        _one_line(err, "summary.json")
    record.write_bytes(kept)
    # the thirteenth probe: --overwrite deleted a user's files kept in the results folder, unsaid
    (folder / "my_notes.txt").write_text("counts checked by hand\n")
    rc, _, err = cli(*args, "--overwrite")
    assert rc == 2 and f"{folder}: holds my_notes.txt, which are not slide results" in err, err
    _one_line(err, "my_notes.txt")
    assert (folder / "my_notes.txt").is_file() and record.read_bytes() == kept
    assert cli(*args)[0] == 0  # skipped as before: nothing is replaced
    (folder / "my_notes.txt").unlink()
    # a later command's slide whose results folder is 'tissue' but for case (an earlier command's): refused
    upper = tmp_path / "Tissue.svs"
    upper.write_bytes(slide.read_bytes())
    before = sorted(p.name for p in out.iterdir())
    for extra in ((), ("--overwrite",)):
        rc, _, err = cli("slide", run, upper, *args[3:], *extra)
        assert rc == 2 and "differs only in case" in err and str(folder) in err, err
        _one_line(err, "Tissue.svs")
    assert sorted(p.name for p in out.iterdir()) == before

    # another slide of the same size copied over it, its time set back: not the slide the results are of
    import os

    kept_slide, stat = slide.read_bytes(), slide.stat()
    try:
        os.chmod(slide, 0o640)  # a chmod (a new ctime) costs a re-read, and the bytes are the same: skipped
        rc, out_text, err = cli(*args)
        assert rc == 0 and "skipped" in err + out_text, err
        # F11 of the seventeenth probe: a slide rewritten in place in its middle, its time set back
        for where, in_place in ((-1, True), (len(kept_slide) // 2, False), (len(kept_slide) // 2, True)):
            other = bytearray(kept_slide)
            other[where] ^= 0xFF  # other bytes, the same size, still a readable slide
            if in_place:
                with open(slide, "r+b") as handle:
                    handle.write(bytes(other))
            else:  # moved over it, as the seventeenth probe did
                (tmp_path / "rescan.svs").write_bytes(bytes(other))
                os.replace(tmp_path / "rescan.svs", slide)
            os.utime(slide, ns=(stat.st_atime_ns, stat.st_mtime_ns))
            rc, _, err = cli(*args)
            assert rc == 2 and "already holds results of another run, slide or settings" in err, err
    finally:
        slide.write_bytes(kept_slide)
        os.utime(slide, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_a_large_slide_rewritten_in_place_is_not_skipped(cli, run, slide, tmp_path):
    """The seventeenth probe (F11): a slide of gigabytes overwritten in place in its middle, its time set back
    with touch, was skipped as finished (only its size, time, inode and first and last MiB were compared). The
    stamp holds the whole file's sha256; a rewrite changes the file's ctime, so it is read again."""
    import os

    big = tmp_path / "big.svs"
    big.write_bytes(slide.read_bytes() + bytes(3 << 20))  # a reader ignores bytes past the pyramid's
    out = tmp_path / "out"
    args = ("slide", run, big, "--out", out, "--target-mpp", "0.5", *FAST, "--set", "tissue.method=all")
    assert cli(*args)[0] == 0
    # the eighteenth probe: the same bytes at another path (the slides folder moved) were 'another slide'
    moved = tmp_path / "moved" / "big.svs"
    moved.parent.mkdir()
    moved.write_bytes(big.read_bytes())
    rc, text, err = cli("slide", run, moved, *args[3:])
    assert rc == 0 and "skipped" in text + err, err
    stat = big.stat()
    with open(big, "r+b") as handle:
        handle.seek(stat.st_size - (3 << 19))  # 1.5 MiB before the end: neither end's MiB
        handle.write(b"\1")
    os.utime(big, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    rc, _, err = cli(*args)
    assert rc == 2 and "already holds results of another run, slide or settings (differs at slide.sha256)" in err
    # its digest record's place taken by a file of the user's: one line, before anything
    digests = out / ".cellprobe-slide-digests"
    import shutil

    shutil.rmtree(digests)
    digests.write_text("notes")
    rc, _, err = cli(*args, "--overwrite")
    assert rc == 2 and "is in the way of cellprobe's record of slide digests" in err, err
    _one_line(err, ".cellprobe-slide-digests")


def _one_line(err: str, name: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and name in lines[0], err


def test_bad_inputs_are_one_line_and_write_nothing(cli, run, slide, tmp_path):
    image, _, _ = np.full((300, 300, 3), 200, np.uint8), None, None
    plain = tmp_path / "no_mpp.tif"
    tifffile.imwrite(plain, image)
    truncated = tmp_path / "cut.svs"
    truncated.write_bytes(slide.read_bytes()[: slide.stat().st_size // 2])
    text = tmp_path / "notes.txt"
    text.write_text("not a slide")
    blank = write_aperio_tiff(tmp_path / "blank.svs", np.full((512, 512, 3), 245, np.uint8), 512, 512, MPP,
                              levels=(1,))
    empty_png = tmp_path / "empty.png"
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(empty_png)
    far = tmp_path / "far.geojson"
    far.write_text(json.dumps({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
        [[90000, 90000], [91000, 90000], [91000, 91000], [90000, 90000]]]}, "properties": {}}))
    target = ("--target-mpp", "0.25")
    dotted = tmp_path / ".hidden.svs"
    dotted.write_bytes(slide.read_bytes())
    folder_named_svs = tmp_path / "folder.svs"
    folder_named_svs.mkdir()
    import os

    fifo = tmp_path / "mask.png"
    os.mkfifo(fifo)
    cases = [
        ((truncated, *target), "cut.svs"),
        ((text, *target), "notes.txt"),
        ((plain, *target), "no_mpp.tif"),  # µm/px unknown: pass --mpp
        ((slide,), "run.json"),  # the run records no µm/px: pass --target-mpp
        ((slide, "--target-mpp", "0.5", "--no-resample"), "from --target-mpp 0.5 µm/px"),  # not "the run's"
        ((slide, *target, "--tissue-mask", empty_png), "empty.png"),
        ((slide, *target, "--tissue-mask", far), "far.geojson"),
        ((slide, *target, "--region", "400,400,300,300"), "tissue.svs"),
        ((slide, *target, "--region", "1,2,3"), "--region"),
        ((slide, *target, "--region", "0,0,100,80"), "give a region of at least"),  # 25th probe: say what to do
        ((slide, *target, "--region", "0,0,0,0"), "is empty"),  # not "not inside the slide"
        ((slide, *target, "--region", "\u0661,0,300,300"), "--region"),  # eleventh probe: read as 1
        ((slide, *target, "--region", " 1,0,300,300"), "--region"),
        ((blank, *target), "blank.svs"),  # no tissue found
        ((slide, *target, "--mpp", "1e308"), "tissue.svs"),  # a resampling factor no µm/px anyone meant
        ((slide, "--target-mpp", "1e-300"), "tissue.svs"),
        ((slide, "--target-mpp", "0"), "--target-mpp"),
        ((dotted, *target), ".hidden.svs"),  # cellprobe's own folders beside the results start with '.'
        ((folder_named_svs, *target), "folder.svs"),
        ((slide, *target, "--tissue-mask", fifo), "is not a regular file"),  # nineteenth probe: 'no such file'
    ]
    out = tmp_path / "out"
    for extra, name in cases:
        rc, _, err = cli("slide", run, *extra, "--out", out, *FAST)
        assert rc == 2, (extra, err)
        _one_line(err, name)
        assert not out.exists(), extra
    for option, value in (("--tile", "100"), ("--overlap", "33")):  # named as given, not as a config key
        rc, _, err = cli("slide", run, slide, "--out", out, *target, *FAST, option, value)
        assert rc == 2 and err.startswith(f"cellprobe: error: {option}:") and not out.exists(), err
    rc, _, err = cli("slide", run, slide, slide, "--out", out, *target, *FAST)
    assert rc == 2 and "is given twice" in err and not out.exists()
    bare = tmp_path / "bare" / "tissue"  # a slide file without an extension: its results folder is its own name
    bare.parent.mkdir()
    bare.write_bytes(slide.read_bytes())
    rc, _, err = cli("slide", run, bare, "--out", bare.parent, *target, *FAST, "--overwrite")
    assert rc == 2 and "would replace it" in err and bare.is_file(), err


def test_probe_gaps_are_one_line_and_write_nothing(cli, run, slide, consep_root, tmp_path):
    """What a hostile probe found accepted: a tiled 16-bit TIFF (OpenSlide rescaled it), a 5-channel TIFF
    (channels dropped under tissue.method=all, a misleading Otsu line without it), a grey one, more --workers
    than cores, a --tile no memory holds, and slide names that differ only in case."""
    from cellprobe.machine import usable_cores

    image = consep_mosaic(consep_root, 2, 2)[0]
    tags = {"resolution": (4e4, 4e4), "resolutionunit": "CENTIMETER"}
    deep = tmp_path / "deep.tif"
    tifffile.imwrite(deep, image.astype(np.uint16) * 257, tile=(256, 256), photometric="rgb", **tags)
    five = tmp_path / "five.tif"
    tifffile.imwrite(five, np.dstack([image, image[..., :2]]), photometric="minisblack", planarconfig="contig",
                     **tags)
    grey = tmp_path / "grey.tif"
    tifffile.imwrite(grey, image[..., 1], tile=(256, 256), photometric="minisblack", **tags)
    target = ("--target-mpp", "0.25")
    out = tmp_path / "out"
    cases = [
        ((deep, *target), "deep.tif", "samples are uint16 (16 bits), expected 8-bit RGB"),
        ((five, *target, "--set", "tissue.method=all"), "five.tif", "5 samples per pixel"),
        ((five, *target), "five.tif", "5 samples per pixel"),
        ((grey, *target), "grey.tif", "1 sample per pixel"),
    ]
    for extra, name, problem in cases:
        rc, _, err = cli("slide", run, *extra, "--out", out, *FAST)
        assert rc == 2 and problem in err and "tissue" not in err, (extra, err)
        _one_line(err, name)
        assert not out.exists(), extra
    too_many = str(usable_cores() + 1)
    no_workers = ("--tile", "256", "--overlap", "64", "--device", "cpu")
    for args, option in (((*no_workers, "--workers", too_many), "--workers"),
                         ((*no_workers, "--set", f"workers={too_many}"), "--set workers"),
                         ((*FAST, "--tile", "1048576"), "--tile"),
                         # local:N runs N slides at once, each with a pool: N × 2 processes for the cores
                         ((*no_workers, "--workers", "2", "--cluster", f"local:{usable_cores()}"), "--workers")):
        rc, _, err = cli("slide", run, slide, "--out", out, *target, *args)
        assert rc == 2 and err.startswith(f"cellprobe: error: {option}:") and not out.exists(), err
        _one_line(err, option)
    lower, upper = tmp_path / "x.svs", tmp_path / "X.svs"
    lower.write_bytes(slide.read_bytes())
    upper.write_bytes(slide.read_bytes())
    rc, _, err = cli("slide", run, lower, upper, "--out", out, *target, *FAST, "--set", "tissue.method=all")
    assert rc == 2 and "'X' and 'x'" in err and "differ only in case" in err and not out.exists(), err
    _one_line(err, "X.svs")
    nfd = tmp_path / "cafe\u0301.svs"  # é as e + combining accent beside é as one code point
    nfd.write_bytes(slide.read_bytes())
    (tmp_path / "caf\u00e9.svs").write_bytes(slide.read_bytes())
    partial = tmp_path / "with-partial"
    (partial / ".x.partial").mkdir(parents=True)  # a killed x.svs's work folder
    rc, _, err = cli("slide", run, upper, "--out", partial, *target, *FAST, "--set", "tissue.method=all")
    assert rc == 2 and ".X.partial differs only in case" in err and str(partial / ".x.partial") in err, err
    assert sorted(p.name for p in partial.iterdir()) == [".x.partial"]
    rc, _, err = cli("slide", run, tmp_path / "caf\u00e9.svs", nfd, "--out", out, *target, *FAST)
    assert rc == 2 and "Unicode spelling" in err and not out.exists(), err
    _one_line(err, "cafe\u0301.svs")


def test_slide_results_never_go_into_another_runs_folder(cli, run, slide, tmp_path):
    """The eleventh probe: slide --out a run folder wrote the slide's results there (exit 0)."""
    import shutil

    other = tmp_path / "other"
    shutil.copytree(run, other)
    rc, _, err = cli("slide", run, slide, "--out", other, "--target-mpp", "0.5", *FAST)
    assert rc == 2 and "is the run folder" in err and err.count("\n") == 1, err
    assert sorted(p.name for p in other.iterdir()) == sorted(p.name for p in run.iterdir())


@pytest.mark.parametrize(("extra", "problem"), [
    (("--set", "predict_large_pixels=100"), "--set predict_large_pixels: predict_large_pixels applies to "
                                            "`cellprobe predict` only"),
    (("--set", "mpp_tolerance=0.3"), "mpp_tolerance applies only without resampling"),
    (("--no-resample", "--set", "max_resample=4"), "--no-resample: config keys 'max_resample', 'resample': "
                                                   "max_resample applies only when resampling"),  # not --resample
    (("--set", "tissue.method=threshold", "--set", "tissue.threshold=1"),  # twenty-sixth probe: 'no tissue found'
     "--set tissue.threshold: config keys 'tissue.threshold', 'tissue.channel': threshold 1 is not below the "
     "saturation's largest value (1): no pixel could be tissue"),
    (("--set", "tissue.method=threshold", "--set", "tissue.channel=od", "--set", "tissue.threshold=2.5"),
     "threshold 2.5 is not below the od's largest value (2.41)"),
    (("--set", "tissue.method=all", "--set", "tissue.otsu_floor=0.2"), "otsu_floor is not used by method 'all'"),
    (("--set", "tissue.method=threshold", "--set", "tissue.threshold=0.1", "--set", "tissue.otsu_floor=0.2"),
     "otsu_floor is not used by method 'threshold'"),
    (("--set", "tissue.method=all", "--set", "tissue.channel=od", "--set", "tissue.smoothing_um=2"),
     "channel, smoothing_um are not used by method 'all'"),
    (("--set", "tissue.method=all", "--set", "tissue.thumbnail_side=64"),  # the sixteenth probe
     "thumbnail_side is not used by method 'all'"),
    (("--tissue-mask", "MASK", "--set", "tissue.method=all"), "tissue.method is not used with --tissue-mask"),
    (("--tissue-mask", "MASK", "--set", "tissue.min_tissue_mm2=1"), "tissue.min_tissue_mm2 is not used with"),
])
def test_slide_settings_that_would_change_nothing_are_refused(cli, run, slide, tmp_path, extra, problem):
    """The thirteenth probe: these were accepted and ignored."""
    mask = tmp_path / "mask.png"
    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(mask)
    extra = tuple(str(mask) if e == "MASK" else e for e in extra)
    rc, _, err = cli("slide", run, slide, "--out", tmp_path / "out", *FAST, *extra)
    assert rc == 2 and problem in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_the_scale_of_a_tissue_mask_is_still_a_setting(cli, run, slide, tmp_path):
    mask = tmp_path / "mask.png"
    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(mask)
    rc, _, err = cli("slide", run, slide, "--out", tmp_path / "ok", "--target-mpp", "0.5", *FAST, "--tissue-mask",
                     mask, "--set", "tissue.thumbnail_side=512")
    assert rc == 0, err


@pytest.mark.parametrize("place", ["tissue", ".tissue.partial", ".tissue.old", ".cellprobe-slides"])
def test_a_link_where_a_slides_folders_go_is_refused_before_any_work(cli, run, slide, tmp_path, place):
    """The twenty-second probe: links where cellprobe makes a slide's folders led its work (and its clearing of
    unjournaled parts) into the folder they point at. Both are refused, naming the link, before any work."""
    out, victim = tmp_path / "out", tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    out.mkdir()
    (out / place).symlink_to(victim)
    rc, _, err = cli("slide", run, slide, "--out", out, "--target-mpp", "0.5", *FAST, "--overwrite")
    assert rc == 2 and str(out / place) in err and err.count("\n") == 1, err
    assert "is a link, where cellprobe keeps" in err, err
    assert sorted(p.name for p in victim.iterdir()) == ["keep.txt"]


def test_a_file_where_the_clusters_logs_go_is_refused_before_any_work(cli, run, slide, tmp_path):
    """The twenty-third probe: with --cluster, a file named logs in the output folder was a FileExistsError
    traceback once the cluster started."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "logs").write_text("mine")
    rc, _, err = cli("slide", run, slide, "--out", out, "--target-mpp", "0.5", *FAST, "--cluster", "local:1")
    assert rc == 2 and f"{out / 'logs'}: is not a folder, where cellprobe keeps the cluster's logs" in err, err
    assert sorted(p.name for p in out.iterdir()) == ["logs"]
