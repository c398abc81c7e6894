"""Predict on image files of any size: instance and class maps, overlay PNG and GeoJSON per image."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cellprobe import atomic
from cellprobe.config import read_json
from cellprobe.errors import InputError, not_a_file
from cellprobe.inference.export import prediction_paths, write_prediction
from cellprobe.inference.segmenter import Segmenter

if TYPE_CHECKING:
    from cellprobe.inference.slide_config import SlideSettings


def collect_inputs(inputs: Iterable[str | Path], notice: Callable[[str], None] | None = None) -> list[Path]:
    """Image files named directly or found (not recursively) in named folders; in a stable order. Other files
    in those folders, and hidden ones named as images, are left out, and ``notice`` is told which (never
    silently)."""
    from cellprobe.data.io import IMAGE_SUFFIXES

    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            entries = sorted(p for p in item.iterdir() if not p.name.startswith("."))
            found = [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
            if not found:
                raise InputError(item, f"folder holds no image ({', '.join(IMAGE_SUFFIXES)})")
            others = [p.name for p in entries if p not in found]
            # hidden files are not inputs (macOS ._x.jpg resource forks, editors' copies), but one named as an
            # image is said, as the other entries are: given by name, it is predicted
            hidden = sorted(p.name for p in item.iterdir() if p.name.startswith(".")
                            and p.suffix.lower() in IMAGE_SUFFIXES)
            for names, what in ((others, "non-image entr"), (hidden, "hidden image entr")):
                if names and notice is not None:
                    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
                    notice(f"{item}: left out {len(names)} {what}{'y' if len(names) == 1 else 'ies'} ({shown})")
            files += found
        elif item.is_file():
            files.append(item)
        elif item.exists():
            raise InputError(item, not_a_file(item) or "not a file")
        else:
            raise InputError(item, "no such file or folder")
    by_stem: dict[str, Path] = {}
    for path in files:
        if atomic.undecodable(str(path)):  # found in a folder: its results' names and records could not hold it
            raise InputError(atomic.shown(str(path)), "its name is not valid UTF-8 (undecodable bytes); rename the file")
        too_long = [n for n in output_names(path.stem) if len(n.encode()) > atomic.MAX_RESULT_NAME_BYTES]
        if too_long:
            raise InputError(path, f"its name is too long for its results' file names ({too_long[0][:40]}…: over "
                                   f"{atomic.MAX_RESULT_NAME_BYTES} bytes); rename the file")
        folded = atomic.portable_name(path.stem)
        earlier = by_stem.get(folded)
        if earlier is not None:
            if earlier.resolve() == path.resolve():
                raise InputError(path, f"is given twice (also as {earlier})")
            if earlier.stem != path.stem:
                raise InputError(path, f"its name differs only in case or Unicode spelling from {earlier}'s; their "
                                       "outputs would overwrite each other on macOS and Windows file systems")
            raise InputError(path, f"shares the name '{path.stem}' with {earlier}; their outputs would "
                                   "overwrite each other")
        by_stem[folded] = path
    return files


def output_names(stem: str) -> list[str]:
    """The files :func:`~cellprobe.inference.export.write_prediction` writes for an input named ``stem``."""
    return [p.name for p in prediction_paths(Path("."), stem).values()]


#: what a predict output folder records: the setup its results were made with and the inputs finished, so that
#: a killed or failed run resumes (same setup) and results of another setup are never mixed in silently
MANIFEST = ".cellprobe-predict.json"


def prediction_setup(run: Path, checkpoint: str, window: Any, tta: int) -> dict[str, Any]:
    """What a folder of predictions depends on: the run, its networks' checkpoint files (by content: a
    retrained or replaced checkpoint is another setup, whatever its size and time), its post-processing
    thresholds (re-tuning changes the instances), the window and the test-time views."""
    from cellprobe.hashing import file_sha256
    from cellprobe.run.ensemble import checkpoints
    from cellprobe.run.run_folder import Run, load_postprocess

    opened = Run.open(run)
    files = [path for _, path in checkpoints(opened, checkpoint)]
    return {"run": str(opened.path.resolve()), "checkpoint": checkpoint,
            "checkpoint_files": [[str(f.resolve()), file_sha256(f)] for f in files],
            "postprocess": load_postprocess(opened.path, opened.config.selection.postprocess).model_dump(mode="json"),
            "window": window.model_dump(mode="json"), "tta": tta}


def same_setup(recorded: Any, setup: dict[str, Any]) -> bool:
    """Whether a folder's recorded setup is ``setup``: equal, but for checkpoint files that ``cellprobe upgrade``
    rewrote since (the same network: their run's run.json records both digests)."""
    from cellprobe.run.run_folder import same_checkpoint

    if recorded == setup:
        return True
    if not isinstance(recorded, dict) or ({k: v for k, v in recorded.items() if k != "checkpoint_files"}
                                          != {k: v for k, v in setup.items() if k != "checkpoint_files"}):
        return False
    before, now = recorded.get("checkpoint_files"), setup["checkpoint_files"]
    if not isinstance(before, list) or len(before) != len(now):
        return False
    return all(isinstance(old, list) and len(old) == 2 and old[0] == path and isinstance(old[1], str)
               and same_checkpoint(Path(path).parent, Path(path).name, old[1], digest)
               for old, (path, digest) in zip(before, now, strict=True))


def check_inputs(files: Sequence[Path]) -> None:
    """Every input is a readable image (its header: size, depth, frames; an alpha channel opaque), checked
    before anything is written: a bad file late in a folder must not stop a run half-way."""
    from cellprobe.data.io import check_image

    for path in files:
        check_image(path)


def _say_orientation(files: Sequence[Path]) -> None:
    """A photo a viewer shows turned (its EXIF or TIFF orientation tag) is read as stored, as training data
    is: said."""
    from cellprobe.data.io import orientation_tag
    from cellprobe.data.validate import DataWarning

    for path in files:
        turned = orientation_tag(path)
        if turned > 1:
            warnings.warn(f"{path}: its orientation tag ({turned}) is not applied: pixels are read as stored, and "
                          "the results (masks, overlay, GeoJSON) follow the stored order", DataWarning, stacklevel=3)


def _say_resolution(files: Sequence[Path], run_mpp: float | None, tolerance: float) -> None:
    """An image whose file records another µm/px than the run's is read at the run's all the same (as patches
    are), so its nuclei are measured at a scale it does not have: said."""
    from cellprobe.data.slide_reader import recorded_mpp
    from cellprobe.data.validate import DataWarning

    if run_mpp is None:
        return
    for path in files:
        found = recorded_mpp(path)
        if found is None or all(abs(m / run_mpp - 1) <= tolerance for m in found):
            continue
        x, y = found
        recorded = f"{x:.4g} µm/px" if x == y else f"{x:.4g} × {y:.4g} µm/px (x × y: non-square pixels)"
        warnings.warn(f"{path}: the file records {recorded}, the run was trained at {run_mpp:.4g}: predict "
                          "reads every image at the run's µm/px (sizes in µm follow it); resample the image first, "
                          "or give a slide to cellprobe slide, which resamples", DataWarning, stacklevel=3)


def _manifest(out_dir: Path) -> dict[str, Any]:
    try:
        data = read_json(out_dir / MANIFEST, "predict record")
    except InputError:
        return {}
    return data if isinstance(data, dict) else {}


def recorded_inputs(out_dir: Path, setup: dict[str, Any] | None) -> dict[str, str] | None:
    """Stems the folder records as finished with ``setup`` (of any run into it), each with the sha256 of the
    file it was made from; None when the folder records another setup, or none. A record of names only
    (written before digests) proves nothing about which image a result came from, so it counts as none: its
    results are replaced only with --overwrite."""
    manifest = _manifest(out_dir)
    if setup is None or not same_setup(manifest.get("setup"), setup):
        return None
    done = manifest.get("done") or {}
    if not isinstance(done, dict) or not all(isinstance(v, str) for v in done.values()):
        return None
    return {str(k): v for k, v in done.items()}


def input_digests(files: Sequence[Path]) -> dict[str, str]:
    """The sha256 of each input by stem: a result is the input's only if it was made from the same bytes."""
    from cellprobe.hashing import file_sha256

    return {f.stem: file_sha256(f) for f in files}


def recorded_outputs(out_dir: Path) -> dict[str, dict[str, str]]:
    """The sha256 of each result file the folder's record says it wrote, by input stem (an entry that is not
    one predict writes counts as none: :func:`_hand_changed` refuses results it cannot vouch for)."""
    outputs = _manifest(out_dir).get("outputs")
    if not isinstance(outputs, dict):
        return {}
    return {str(stem): files for stem, files in outputs.items()
            if isinstance(files, dict) and all(isinstance(v, str) for v in files.values())
            and set(files) == set(output_names(str(stem)))}


def _hand_changed(out_dir: Path, files: Sequence[Path], recorded: dict[str, str], digests: dict[str, str],
                  outputs: dict[str, dict[str, str]]) -> None:
    """Refuse a recorded result that is still there but is not the bytes predict wrote (edited or replaced by
    hand): resuming would report it as this run's, redoing it would overwrite the user's file unasked."""
    from cellprobe.hashing import changed_result

    for f in files:
        if f.stem not in recorded or recorded[f.stem] != digests.get(f.stem):  # not finished: made again
            continue
        if f.stem not in outputs:  # results there, their digests lost (a damaged or older record)
            there = [out_dir / n for n in output_names(f.stem) if (out_dir / n).exists()]
            if there:
                raise InputError(out_dir / MANIFEST, f"records no digests of {f.name}'s results ({there[0].name}, "
                                                     "...): whether they are as predict wrote them is unknown; pass "
                                                     "--overwrite to make them again, or --out for another folder")
            continue
        present = {n: d for n, d in outputs[f.stem].items() if (out_dir / n).exists()}
        changed = changed_result(out_dir, present)
        if changed is not None:
            path, problem = changed
            raise InputError(path, f"{problem}: it is no longer the result predict made of {f.name}; pass "
                                   "--overwrite to make it again, or --out for another folder")


def finished_inputs(out_dir: Path, files: Sequence[Path], recorded: dict[str, str],
                    digests: dict[str, str]) -> set[str]:
    """Stems of ``files`` recorded as finished from the same file contents, whose results are all there as
    written (their recorded digests)."""
    from cellprobe.hashing import changed_result

    outputs = recorded_outputs(out_dir)
    return {f.stem for f in files if recorded.get(f.stem) == digests[f.stem] and f.stem in outputs
            and changed_result(out_dir, outputs[f.stem]) is None}


def _result_names(path: Path, slide: SlideSettings) -> tuple[list[str], list[str]]:
    """(files, folders) an input's results take in the output folder: the four files of an image, or for a
    large one the whole-slide engine's results folder and the ``.<name>.partial`` folder it works in."""
    from cellprobe.inference.slide_engine import partial_dir
    from cellprobe.inference.slide_plan import slide_name
    from cellprobe.inference.slide_predict import is_large

    if is_large(path, slide):
        name = slide_name(path)
        return [], [name, partial_dir(Path("."), name).name]
    return output_names(path.stem), []


def _refuse_clashes(out_dir: Path, files: Sequence[Path], slide: SlideSettings) -> None:
    """Refuse an input whose results would land on an entry ``out_dir`` already holds under another spelling
    (``A.png``'s results from an earlier command, then ``a.png``: distinct on Linux, one file once the folder
    is copied to macOS or Windows, whichever command made them), or where a folder holds a result file's name
    (or a file a results folder's): --overwrite could not replace it."""
    held = atomic.entries_by_portable_name(out_dir)
    record = out_dir / MANIFEST
    if atomic.in_the_way(record):
        raise InputError(record, "is in the way of predict's record of finished inputs (not a file): move it, or "
                                 "give another --out")
    produced: dict[str, Path] = {}  # this command's own results: a large x.ome.tif and x.tif share folder 'x'
    for f in files:
        names, folders = _result_names(f, slide)
        for name in (*names, *folders):
            earlier = produced.setdefault(atomic.portable_name(name), f)
            if earlier != f:
                raise InputError(f, f"its result {name} is also {earlier}'s: their results would overwrite each "
                                    "other; rename one")
            other = held.get(atomic.portable_name(name))
            if other is None:
                continue
            if other.name != name:
                raise InputError(f, f"its result {name} differs only in case or Unicode spelling from {other}, "
                                    "already in the output folder; they would be one on macOS and Windows file "
                                    "systems: rename the input, or give another --out")
            if (name in names and not other.is_file()) or (name in folders and not other.is_dir()):
                kind = "file" if name in names else "folder"
                raise InputError(other, f"is in the way of {f.name}'s result {kind} {name}: move it, or give "
                                        "another --out")


def _refuse_other_setups(out_dir: Path, setup: dict[str, Any] | None) -> None:
    """A folder's record names one setup: results of another run or setup there (of any inputs) would be left
    unrecorded beside these, the folder then mixing two runs' results with one record. A record that cannot be
    read is refused too (what made the results is unknown)."""
    record = out_dir / MANIFEST
    if setup is None or not record.is_file():
        return
    try:
        data = read_json(record, "predict record")
    except InputError as exc:
        raise InputError(record, f"{exc.problem}: what made the results in {out_dir} is unknown; pass "
                                 "--overwrite to start the record over, or --out for another folder") from None
    if not isinstance(data, dict) or "setup" not in data:
        raise InputError(record, f"is not a predict record (a JSON object with a 'setup'): what made the results in "
                                 f"{out_dir} is unknown; pass --overwrite to start the record over, or --out for "
                                 "another folder")
    done = data.get("done")
    if not same_setup(data["setup"], setup) and done:
        count = len(done) if isinstance(done, dict | list) else "some"
        raise InputError(out_dir, f"holds predictions of {count} input(s) made with another run or setup (its record "
                                  f"{MANIFEST}); give another --out, or pass --overwrite to start the record over "
                                  "with this run's")


def prepare_output(out_dir: Path, files: Sequence[Path], overwrite: bool = False,
                   setup: dict[str, Any] | None = None, digests: dict[str, str] | None = None,
                   slide: SlideSettings | None = None) -> None:
    """Check ``out_dir`` before any image is segmented: it must be (or become) a folder other than an input's,
    outside run folders and the run's training data (``setup``'s run:
    :func:`~cellprobe.run.run_folder.refuse_results_place`), and it
    must not hold results for these inputs made otherwise (another run or setup, or no record) unless
    ``overwrite``; results of the same ``setup`` are resumed. Temporary files a killed run left there are
    removed. ``digests``: the inputs' :func:`input_digests` where the caller has them (else computed for the
    recorded names only); ``slide``: the whole-slide engine's settings, which decide what is a large image."""
    from cellprobe.inference.slide_config import SlideSettings
    from cellprobe.run.run_folder import refuse_results_place

    if setup is not None:
        refuse_results_place(out_dir, setup["run"])
    folders = {f.parent.resolve(): f for f in files}
    if out_dir.resolve() in folders:
        raise InputError(out_dir, f"--out is the folder of the input {folders[out_dir.resolve()]}: its results "
                                  "would be read as inputs by the next run; give another folder")
    atomic.output_folder(out_dir, create=False)  # made by predict_files once every check has passed
    _refuse_clashes(out_dir, files, slide or SlideSettings())
    # resumed inputs are not written again, yet their killed writes may have left temporaries (earlier versions'
    # too, which name no writer: those of these inputs' files)
    atomic.sweep_interrupted_writes(out_dir, {MANIFEST, *(n for f in files for n in output_names(f.stem))})
    if overwrite:
        return
    _refuse_other_setups(out_dir, setup)
    recorded = recorded_inputs(out_dir, setup)
    if recorded is not None:  # resumed (the same setup), unless a recorded name now holds another image
        digests = digests or input_digests([f for f in files if recorded.get(f.stem)])
        other = next((f for f in files if recorded.get(f.stem) not in (None, digests.get(f.stem))), None)
        if other is not None:
            raise InputError(other, f"{out_dir} holds results of another image named '{other.stem}' (another "
                                    "file's contents); pass --overwrite to replace them, or --out for another folder")
        _hand_changed(out_dir, files, recorded, digests, recorded_outputs(out_dir))
        return
    existing = [out_dir / n for f in files for n in output_names(f.stem) if (out_dir / n).exists()]
    if existing:
        raise InputError(existing[0], f"already holds results ({len(existing)} file(s) of these inputs in "
                                      f"{out_dir}) made otherwise; pass --overwrite to replace them")


def predict_files(segmenter: Segmenter, files: Sequence[Path], out_dir: Path,
                  progress: Callable[[Path], None] | None = None, overwrite: bool = False,
                  setup: dict[str, Any] | None = None, slide: SlideSettings | None = None) -> list[dict[str, Path]]:
    """Segment each file and write its outputs to ``out_dir``; returns the paths written per file. With a
    ``setup`` (what the results depend on), the folder records it and each finished input, so a rerun of a
    killed or failed run skips what is done. An image larger than ``slide.predict_large_pixels`` (``slide``:
    the whole-slide engine's settings, default ones if None) goes through that engine, whose memory does not
    grow with the image (:mod:`cellprobe.inference.slide_predict`)."""
    from cellprobe.inference.slide_config import SlideSettings
    from cellprobe.locking import exclusive

    slide = slide or SlideSettings()

    check_inputs(files)
    _say_orientation(files)
    _say_resolution(files, segmenter.run.stamp.mpp, slide.mpp_tolerance)
    digests = input_digests(files)  # each input read once for its digest
    with exclusive(out_dir, "predicting"):  # a second predict here would replace this one's record
        prepare_output(out_dir, files, overwrite, setup, digests, slide)  # what another may have left too
        return _predict_each(segmenter, files, out_dir, progress, overwrite, setup, slide, digests)


def _predict_each(segmenter: Segmenter, files: Sequence[Path], out_dir: Path,
                  progress: Callable[[Path], None] | None, overwrite: bool, setup: dict[str, Any] | None,
                  slide: SlideSettings, digests: dict[str, str]) -> list[dict[str, Path]]:
    from cellprobe.data.io import read_image
    from cellprobe.hashing import folder_digests
    from cellprobe.inference.slide_predict import is_large, predict_large

    recorded = recorded_inputs(out_dir, setup) or {}  # other inputs' too, kept in the record
    if overwrite:  # these inputs are made again whatever the record says
        recorded = {stem: d for stem, d in recorded.items() if stem not in {f.stem for f in files}}
    outputs = {k: v for k, v in recorded_outputs(out_dir).items() if k in recorded}
    done = finished_inputs(out_dir, files, recorded, digests)
    written = []
    for path in files:
        if path.stem in done:
            written.append(prediction_paths(out_dir, path.stem))
        elif is_large(path, slide):
            written.append(predict_large(segmenter, path, out_dir, slide, overwrite))
        else:
            image = read_image(path)
            inst, cls_map, types = segmenter.segment(image)
            written.append(write_prediction(out_dir, path.stem, image, inst, cls_map, types,
                                            segmenter.class_names))
            done.add(path.stem)
            recorded[path.stem] = digests[path.stem]
            outputs[path.stem] = folder_digests(out_dir, output_names(path.stem))
            if setup is not None:
                atomic.write_json(out_dir / MANIFEST, {"setup": setup, "done": dict(sorted(recorded.items())),
                                                       "outputs": dict(sorted(outputs.items()))})
        if progress is not None:
            progress(path)
    return written
