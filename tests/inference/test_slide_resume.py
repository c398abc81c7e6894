"""A slide killed (SIGKILL) half-way resumes where it stopped and ends with the same cells.parquet as an
uninterrupted run; a finished slide is skipped; results of another setup are refused without --overwrite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tests.inference.slide_helpers import write_coded_slide
from tests.inference.test_slide_engine import CLASSES, MPP, PARAMS, SETTINGS, WINDOW

from cellprobe.data.slide_fixtures import consep_mosaic
from cellprobe.errors import InputError
from cellprobe.inference.slide_engine import run_slide
from cellprobe.postprocess import PostprocessParams

ROOT = Path(__file__).resolve().parents[2]
#: seconds the killed run's network sleeps per batch, so that the kill lands half-way
SLOW_S = 0.4

SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from cellprobe.data.slide_fixtures import consep_mosaic
    from cellprobe.inference.slide_engine import run_slide
    from tests.inference.slide_helpers import batch_sensitive, oracle_segmenter
    from tests.inference.test_slide_engine import CLASSES, MPP, PARAMS, SETTINGS, WINDOW

    if __name__ == "__main__":
        consep, slide, out, slow = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4])
        _, inst, cls = consep_mosaic(consep, 3, 4, seed=1)
        seg = oracle_segmenter(inst, cls, CLASSES, MPP, PARAMS, out.parent / "run")
        seg.window = WINDOW
        fast = batch_sensitive(seg._forward)
        def slow_forward(batch):
            time.sleep(slow)
            return fast(batch)
        seg._forward = slow_forward
        run_slide(seg, slide, out, SETTINGS.model_copy(update={"workers": 1, "part_tiles": 1}))
""")


def _no_orphans(tmp_path: Path, wait_s: float = 15.0) -> None:
    """The killed run's post-processing processes end too (they watch the process that started them)."""
    deadline = time.monotonic() + wait_s
    while True:
        left = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and str(tmp_path).encode() in (entry / "cmdline").read_bytes():
                    left.append(entry.name)
            except OSError:
                continue
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left, f"processes of the killed run still alive: {left}"


def _segmenter(consep_root, tmp_path, params=PARAMS):
    """The oracle network, its results shifted by its passes' batch sizes as a real network's are in their last
    bits: a resumed slide computes windows in other passes than an uninterrupted one (the 27th probe found 1 ulp
    in a probability after a resume), so the same cells need every pass to hold the same number of windows."""
    from tests.inference.slide_helpers import batch_sensitive, oracle_segmenter

    _, inst, cls = consep_mosaic(consep_root, 3, 4, seed=1)
    seg = oracle_segmenter(inst, cls, CLASSES, MPP, params, tmp_path / "run")
    seg.window = WINDOW
    seg._forward = batch_sensitive(seg._forward)
    return seg


class _Counted:
    """A progress bar's view of the engine's calls."""

    def start(self, name: str, total: int, done: int) -> None:
        self.tiles, self.nuclei = done, 0

    def advance(self, tiles: int, nuclei: int) -> None:
        self.tiles += tiles
        self.nuclei += nuclei


def test_a_killed_slide_resumes_to_the_same_cells(consep_root, tmp_path):
    _, inst, _ = consep_mosaic(consep_root, 3, 4, seed=1)
    slide = write_coded_slide(tmp_path / "mosaic.ome.tif", *inst.shape, MPP)
    out = tmp_path / "out"
    script = tmp_path / "kill_me.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, str(script), str(consep_root), str(slide), str(out), str(SLOW_S)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    journal = out / ".mosaic.partial" / "journal.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and len(journal.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _no_orphans(tmp_path)
    assert not (out / "mosaic").exists()  # nothing under the final name
    done = len(journal.read_text().splitlines())
    assert 3 <= done < 15
    # a kill can also leave a line cut short and a part no line names
    with open(journal, "a") as handle:
        handle.write('{"part": "part-0000')
    (journal.parent / "parts" / "part-999999.parquet").write_bytes(b"orphan")

    other = _segmenter(consep_root, tmp_path, PostprocessParams(min_size=20, min_marker_size=1))
    with pytest.raises(InputError, match="unfinished run of this slide with another run"):  # its parts are kept
        run_slide(other, slide, out, SETTINGS)
    assert len(journal.read_text().splitlines()) == done + 1
    bar = _Counted()
    resumed = run_slide(_segmenter(consep_root, tmp_path), slide, out, SETTINGS, progress=bar)
    assert resumed.data["tiles"]["resumed"] >= 3 and not (out / ".mosaic.partial").exists()
    # the bar counts the slide's tiles and nuclei, the resumed ones too (the 27th probe: nuclei of this session)
    assert (bar.tiles, bar.nuclei) == (resumed.data["tiles"]["tissue"], resumed.nuclei)
    whole = run_slide(_segmenter(consep_root, tmp_path), slide, tmp_path / "uninterrupted", SETTINGS)
    a, b = (pq.read_table(s.folder / "cells.parquet") for s in (resumed, whole))
    assert a.num_rows > 100 and a.equals(b)
    assert (resumed.folder / "cells.geojson.gz").read_bytes() == (whole.folder / "cells.geojson.gz").read_bytes()

    # a finished slide is skipped; another setup's results are refused, or replaced with overwrite
    again = run_slide(_segmenter(consep_root, tmp_path), slide, out, SETTINGS)
    assert again.skipped and again.nuclei == resumed.nuclei
    with pytest.raises(InputError, match="--overwrite"):
        run_slide(other, slide, out, SETTINGS)
    replaced = run_slide(other, slide, out, SETTINGS, overwrite=True)
    assert not replaced.skipped and 0 < replaced.nuclei < resumed.nuclei
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".cellprobe")) == ["mosaic"]


@pytest.mark.parametrize("line", ['[1, 2]', '"x"', '{"part": "part-000001.parquet", "tiles": 2}',
                                  '{"part": "../x", "tiles": 9, "cells": 9}',
                                  '{"part": "part-000001.parquet", "tiles": 1, "cells": 50}',
                                  '{"part": "part-000001.parquet", "tiles": "9", "cells": 50}'])
def test_a_journal_line_that_is_no_entry_is_refused_naming_it(tmp_path, line):
    """The fourteenth probe: a JSON line that is not an object was a TypeError traceback on resume."""
    from cellprobe.inference.slide_resume import Journal

    folder = tmp_path / ".s.partial"
    journal = Journal.open(folder, {"run": "r"}, False)
    part = journal.part_path()
    part.write_bytes(b"part")
    journal.record(part, 3, 40)
    with open(folder / "journal.jsonl", "a") as handle:
        handle.write(line + "\n")
    with pytest.raises(InputError, match="not an entry of this slide's journal") as err:
        Journal.open(folder, {"run": "r"}, False)
    assert err.value.path == f"{folder / 'journal.jsonl'} line 2"
    assert Journal.open(folder, {"run": "r"}, True).progress.parts == 0  # --overwrite starts again


def _two_parts(folder):
    """A slide's partial folder with two journaled parts (3 tiles and 40 nuclei, then 5 and 70)."""
    from cellprobe.inference.slide_resume import Journal

    journal = Journal.open(folder, {"run": "r"}, False)
    for tiles, cells in ((3, 40), (5, 70)):
        part = journal.part_path()
        part.write_bytes(f"part of {cells}".encode())
        journal.record(part, tiles, cells)
    return folder


@pytest.mark.parametrize("damage", ["tiles raised", "cells raised", "part replaced"])
def test_a_journal_edited_or_a_part_replaced_by_hand_is_refused(tmp_path, damage):
    """The fifteenth probe: a journal line whose tile count was raised made a resumed slide skip tiles never
    segmented (exit 0, half the nuclei); a raised nuclei count shifted every later id; a journaled part
    replaced by garbage or another table stopped the merge with a traceback after every remaining tile. Each
    line carries its part's sha256 and a check of itself: all three are refused before any work."""
    from cellprobe.inference.slide_resume import Journal

    folder = _two_parts(tmp_path / ".s.partial")
    assert Journal.open(folder, {"run": "r"}, False).progress.tiles == 5  # as written: resumed
    path = folder / "journal.jsonl"
    lines = path.read_text().splitlines()
    if damage == "part replaced":
        (folder / "parts" / "part-000001.parquet").write_bytes(b"garbage")
        where, problem = str(folder / "parts" / "part-000001.parquet"), "differs from the part the journal recorded"
    else:
        key, value = ("tiles", 9) if damage == "tiles raised" else ("cells", 99999)
        lines[1] = json.dumps({**json.loads(lines[1]), key: value})
        path.write_text("\n".join(lines) + "\n")
        where, problem = f"{path} line 2", "not an entry of this slide's journal"
    with pytest.raises(InputError, match=problem) as err:
        Journal.open(folder, {"run": "r"}, False)
    assert err.value.path == where and "--overwrite" in err.value.problem
    assert Journal.open(folder, {"run": "r"}, True).progress.parts == 0  # --overwrite starts again


@pytest.mark.parametrize("damage", ["parts deleted", "journal a folder", "part a folder"])
def test_a_partial_folder_damaged_by_hand_is_one_line_or_resumed(tmp_path, damage):
    """The twenty-first probe: parts/ deleted, journal.jsonl a folder, or a part that is a folder stopped a
    resumed slide with a traceback. The first two are refused naming the path (--overwrite starts again); a
    journaled part that is a folder is not a part: the slide resumes from before it."""
    import shutil

    from cellprobe.inference.slide_resume import Journal

    folder = _two_parts(tmp_path / ".s.partial")
    if damage == "part a folder":
        (folder / "parts" / "part-000001.parquet").unlink()
        (folder / "parts" / "part-000001.parquet").mkdir()
        assert Journal.open(folder, {"run": "r"}, False).progress.tiles == 3
        return
    where = folder / ("parts" if damage == "parts deleted" else "journal.jsonl")
    if damage == "parts deleted":
        shutil.rmtree(where)
    else:
        where.unlink()
        where.mkdir()
    with pytest.raises(InputError, match="cannot be resumed from it") as err:
        Journal.open(folder, {"run": "r"}, False)
    assert err.value.path == str(where)
    assert Journal.open(folder, {"run": "r"}, True).progress.parts == 0


@pytest.mark.parametrize("link", ["parts", "result", "partial folder", "journal.jsonl", "stamp.json"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_a_link_in_a_partial_folder_is_refused_and_what_it_points_at_kept(tmp_path, link, overwrite):
    """The twenty-second probe: a killed slide's parts/ replaced by a link to a user's folder; the resume
    cleared what no journal line names there, deleting the user's file (exit 0). A link where cellprobe keeps
    a slide's work is refused (--overwrite too), and nothing it points at is touched."""
    import shutil

    from cellprobe.inference.slide_resume import Journal

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.txt").write_text("years of work")
    folder = _two_parts(tmp_path / "out" / ".s.partial")
    where = folder if link == "partial folder" else folder / link
    if link == "partial folder":
        shutil.move(folder, victim / "moved")
        folder.symlink_to(victim / "moved")
    elif link == "parts":
        for part in (folder / "parts").iterdir():
            shutil.move(part, victim / part.name)
        (folder / "parts").rmdir()
        where.symlink_to(victim)
    elif link in ("journal.jsonl", "stamp.json"):
        shutil.move(where, victim / link)
        where.symlink_to(victim / link)
    else:
        where.symlink_to(victim)
    kept = sorted((p.relative_to(victim), p.read_bytes()) for p in victim.rglob("*") if p.is_file())
    with pytest.raises(InputError, match="is a link, where cellprobe keeps an unfinished slide's work") as err:
        Journal.open(folder, {"run": "r"}, overwrite)
    assert err.value.path == str(where)
    assert sorted((p.relative_to(victim), p.read_bytes()) for p in victim.rglob("*") if p.is_file()) == kept
