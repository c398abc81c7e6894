"""The partial folder of a slide in progress, and its journal: what makes a killed slide resume exactly.

``DIR/.<slide>.partial/`` holds ``stamp.json`` (what the results depend on: slide file, run, settings, the
list of tiles to do), ``parts/part-NNNNNN.parquet`` and ``journal.jsonl``. Tiles are written in their fixed
order, so progress is one number: a journal line, appended (and fsynced) after its part file is in place,
says how many tiles of the list are done and how many nuclei so far, with the part's sha256 and a check of
the line itself (a part or line changed by hand is refused, not resumed from). On resume, lines that do not parse (a kill
mid-line) and parts no line names are dropped, and work restarts after the last recorded tile: the nuclei
written are exactly those of an uninterrupted run. A stamp that differs (another run, other settings, a changed
slide) makes the partial results useless: they are cleared and the slide starts over.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cellprobe import atomic
from cellprobe.config import read_json
from cellprobe.errors import InputError

STAMP = "stamp.json"
JOURNAL = "journal.jsonl"
PARTS = "parts"
RESULT = "result"


def partial_dir(out_dir: Path, name: str) -> Path:
    return out_dir / f".{name}.partial"


def check_partial_place(folder: Path) -> None:
    """Refuse a partial folder, or its ``parts``/``result`` folder, that is a link or not a folder, and a
    journal or stamp that is a link: a resume clears what no journal line names, redoes an interrupted finish
    and appends to its journal, which must happen in cellprobe's own folder, never where a link points (a
    user's files there would be deleted or written)."""
    for path in (folder, folder / PARTS, folder / RESULT):
        problem = atomic.own_folder_problem(path)
        if problem is not None:
            raise InputError(path, f"is {problem}, where cellprobe keeps an unfinished slide's work in its own "
                                   "folder: remove it (nothing a link points at is touched), then run again")
        if not folder.is_dir():
            return
    for path in (folder / JOURNAL, folder / STAMP):
        if path.is_symlink():
            raise InputError(path, "is a link, where cellprobe keeps an unfinished slide's work in its own file: "
                                   "remove it (nothing it points at is touched), then run again")


@dataclass
class Done:
    """Tiles of the to-do list done, nuclei written, part files written."""

    tiles: int = 0
    cells: int = 0
    parts: int = 0


#: what a journal line holds: the part, the progress it brings, the part's sha256 and the line's own check
ENTRY_KEYS = {"part", "tiles", "cells", "sha256", "check"}


def _line_check(entry: dict[str, Any]) -> str:
    """The sha256 of a journal line's other fields: a line edited by hand (its tile count raised, so that tiles
    never segmented pass as done) no longer matches it."""
    from cellprobe.hashing import record_check

    return record_check({k: entry[k] for k in sorted(ENTRY_KEYS - {"check"})})


def _check_entry(entry: Any, before: Done, where: str) -> None:
    """A journal line that parses is one :meth:`Journal.record` wrote: the next part's name, progress that
    does not go back, and its own check (a kill cuts a line, making it unparsable; anything else was edited or
    damaged)."""
    def count(x: Any) -> bool:
        return isinstance(x, int) and not isinstance(x, bool) and x >= 0

    if not (isinstance(entry, dict) and set(entry) == ENTRY_KEYS
            and entry["part"] == f"part-{before.parts:06d}.parquet" and count(entry["tiles"])
            and count(entry["cells"]) and entry["tiles"] >= before.tiles and entry["cells"] >= before.cells
            and isinstance(entry["sha256"], str) and entry["check"] == _line_check(entry)):
        raise InputError(where, f"not an entry of this slide's journal ({str(entry)[:80]}): the unfinished run "
                                "cannot be resumed from it; pass --overwrite to start the slide again")


def _check_part(part: Path, entry: dict[str, Any]) -> None:
    """A journaled part is resumed only as written: one replaced or damaged since would be merged into the
    slide's cells (or stop the merge, after every remaining tile)."""
    from cellprobe.hashing import file_sha256

    if file_sha256(part) != entry["sha256"]:
        raise InputError(part, "differs from the part the journal recorded (damaged or replaced): the unfinished "
                               "run cannot be resumed from it; pass --overwrite to start the slide again")


class Journal:
    """The partial folder of one slide: opened (resumed or started over) by :meth:`open`."""

    def __init__(self, folder: Path, progress: Done, restarted: bool) -> None:
        self.folder = folder
        self.progress = progress
        #: whether a partial folder of another setup was cleared
        self.restarted = restarted

    @classmethod
    def open(cls, folder: Path, stamp: dict[str, Any], overwrite: bool = False) -> Journal:
        """Resume ``folder`` when it was started with ``stamp``; one of another setup (run, slide, settings)
        is refused unless ``overwrite``, which starts over (a kill must not cost a finished part silently)."""
        restarted = False
        check_partial_place(folder)
        if folder.exists():
            from cellprobe.inference.slide_plan import stamp_difference

            try:
                recorded = read_json(folder / STAMP, "slide journal stamp")
            except InputError:
                recorded = None
            same = recorded == stamp
            if not same and not overwrite:
                raise InputError(folder, "holds an unfinished run of this slide with another run, slide file or "
                                         f"settings (differs at {stamp_difference(recorded, stamp)}); rerun with "
                                         "those to resume it, or pass --overwrite to start over")
            if not same:
                shutil.rmtree(folder)
                restarted = True
        if not folder.exists():
            (folder / PARTS).mkdir(parents=True)
            atomic.write_json(folder / STAMP, stamp)
            return cls(folder, Done(), restarted)
        try:
            progress = cls._replay(folder)
        except InputError:  # a damaged journal: --overwrite starts over, as for another setup
            if not overwrite:
                raise
            shutil.rmtree(folder)
            return cls.open(folder, stamp, overwrite)
        journal = cls(folder, progress, restarted)
        shutil.rmtree(folder / RESULT, ignore_errors=True)  # a finish that a kill interrupted is redone
        return journal

    @staticmethod
    def _replay(folder: Path) -> Done:
        from cellprobe.errors import not_a_file

        for where, problem in ((folder / PARTS, None if (folder / PARTS).is_dir() else "is not a folder"),
                               (folder / JOURNAL, None if not (folder / JOURNAL).exists()
                                else not_a_file(folder / JOURNAL))):
            if problem is not None:  # the partial folder damaged by hand: not resumable as it stands
                raise InputError(where, f"{problem}: the unfinished run cannot be resumed from it; pass --overwrite "
                                        "to start the slide again")
        progress = Done()
        named: set[str] = set()
        path = folder / JOURNAL
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        good: list[str] = []
        for number, line in enumerate(lines, 1):
            try:
                entry = json.loads(line)
            except (ValueError, RecursionError):
                break  # a line cut by a kill is the last one
            _check_entry(entry, progress, f"{path} line {number}")
            if not (folder / PARTS / entry["part"]).is_file():
                break
            _check_part(folder / PARTS / entry["part"], entry)
            progress = Done(entry["tiles"], entry["cells"], progress.parts + 1)
            named.add(entry["part"])
            good.append(line)
        if len(good) != len(lines):
            atomic.write_text(path, "".join(g + "\n" for g in good))
        for part in (folder / PARTS).iterdir():
            if part.name not in named:  # written but never journaled, or a temporary of a killed write
                if part.is_dir() and not part.is_symlink():
                    shutil.rmtree(part)
                else:
                    part.unlink()
        return progress

    def part_path(self) -> Path:
        return self.folder / PARTS / f"part-{self.progress.parts:06d}.parquet"

    def record(self, part: Path, tiles: int, cells: int) -> None:
        """Note ``part`` (already in place) and the progress it brings, durably."""
        from cellprobe.hashing import file_sha256

        self.progress = Done(tiles, cells, self.progress.parts + 1)
        entry = {"part": part.name, "tiles": tiles, "cells": cells, "sha256": file_sha256(part)}
        line = json.dumps({**entry, "check": _line_check(entry)}) + "\n"
        with open(self.folder / JOURNAL, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def parts(self) -> list[Path]:
        return [self.folder / PARTS / f"part-{i:06d}.parquet" for i in range(self.progress.parts)]

    def result_dir(self) -> Path:
        path = self.folder / RESULT
        path.mkdir(exist_ok=True)
        return path


def aside_path(final: Path) -> Path:
    """Where :func:`publish` moves an earlier result while it puts the new one in place."""
    return final.with_name(f".{final.name}.old")


def publish(result: Path, final: Path, partial: Path) -> None:
    """Move a finished slide's result folder to its final name in one rename (an earlier result, when
    overwriting, is moved aside first and removed after), then drop the partial folder."""
    aside = aside_path(final)
    if aside.exists():
        shutil.rmtree(aside)
    if final.exists():
        os.rename(final, aside)
    os.rename(result, final)
    shutil.rmtree(aside, ignore_errors=True)
    shutil.rmtree(partial, ignore_errors=True)
