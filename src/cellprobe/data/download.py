"""Downloading the public datasets: resumable (HTTP Range), verified (sha256, else size and archive format),
unpacked safely (no member may land outside the target folder; links out are refused).

Written on the standard library (urllib, zipfile, tarfile): resumption and pre-extraction checks are the job
here, and no well-kept library adds both without pulling in a download manager.
"""

from __future__ import annotations

import http.client
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from pydantic import Field

from cellprobe import atomic
from cellprobe.config import StrictModel, read_text_file
from cellprobe.data.catalog import DatasetSource, RemoteFile, check_name, url_problem
from cellprobe.errors import InputError
from cellprobe.hashing import file_sha256 as sha256_of
from cellprobe.locking import exclusive

Progress = Callable[[str, int, int | None], None]  # (file name, bytes done, total or None)


class DownloadConfig(StrictModel):
    timeout_s: float = Field(30.0, gt=0, le=86400.0)  # a day: past ~1e9 s the socket's timer overflows
    retries: int = Field(2, ge=0)  # extra attempts after an interrupted transfer, each resuming
    chunk_bytes: int = Field(1 << 20, ge=1024)


class _Interrupted(Exception):
    pass


def _missing_folders(path: Path) -> list[Path]:
    """``path`` and those of its parents that do not exist yet, deepest first (what a mkdir would create)."""
    out = []
    for folder in (Path(path), *Path(path).parents):
        if folder.exists() or folder.is_symlink():
            break
        out.append(folder)
    return out


def _remove_empty(folders: list[Path]) -> None:
    """Remove those of ``folders`` (deepest first) that exist and are empty: what a refused call created and
    left with nothing in it. A folder that holds anything (a partial download to resume) is kept."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            pass


def _too_long(part: Path, size: int, declared: int) -> InputError:
    """A download grown past the catalog's declared size: corrupt (another file is served), deleted."""
    part.unlink(missing_ok=True)
    return InputError(part, f"download has {size} bytes, more than the declared size {declared}: the server sends "
                            "another file; deleted, run again or check the catalog entry")


def _total_from(resp, offset: int) -> int | None:
    content_range = resp.headers.get("Content-Range")
    if content_range and "/" in content_range and not content_range.endswith("/*"):
        return int(content_range.rsplit("/", 1)[1])
    length = resp.headers.get("Content-Length")
    return int(length) + offset if length is not None else None


def _transfer(url: str, part: Path, cfg: DownloadConfig, progress: Progress | None, name: str,
              declared: int | None = None) -> int | None:
    """One request appending to ``part`` from its current size; returns the total size if the server said it.
    Past the ``declared`` size (the catalog's) the download is corrupt: ``part`` is deleted, one InputError."""
    offset = part.stat().st_size if part.exists() else 0
    if declared is not None and offset > declared:
        raise _too_long(part, offset, declared)
    headers = {"User-Agent": "cellprobe"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = urlopen(Request(url, headers=headers), timeout=cfg.timeout_s)
    except HTTPError as exc:
        if exc.code == 416 and offset:  # nothing left to send: the partial file is already whole
            return offset
        raise InputError(url, f"HTTP {exc.code} {exc.reason}") from None
    with resp:
        if offset and resp.status != 206:  # the server ignored the range: start over
            offset = 0
        if offset == 0 and "text/html" in (resp.headers.get("Content-Type") or ""):
            raise InputError(url, "the server sent a web page instead of the file (a login or confirmation page?)")
        total = _total_from(resp, offset)
        if declared is not None and total is not None and total > declared:
            raise _too_long(part, total, declared)
        done = offset
        try:
            out = open(part, "ab" if offset else "wb")
        except OSError as exc:
            raise InputError(part, f"cannot write the download ({exc.strerror or exc})") from None
        with out:
            while True:
                try:
                    block = resp.read(cfg.chunk_bytes)
                except (http.client.IncompleteRead, ConnectionError, TimeoutError, OSError) as exc:
                    raise _Interrupted(f"{done} bytes so far ({type(exc).__name__})") from None
                if not block:
                    break
                try:
                    out.write(block)
                except OSError as exc:  # disk full, quota: not an interruption that a retry would mend
                    raise InputError(part, f"cannot write the download ({exc.strerror or exc})") from None
                done += len(block)
                if declared is not None and done > declared:
                    out.close()
                    raise _too_long(part, done, declared)
                if progress:
                    progress(name, done, total)
    if total is not None and done < total:
        raise _Interrupted(f"{done} of {total} bytes")
    return total


def _verify(path: Path, remote: RemoteFile, total: int | None) -> None:
    size = path.stat().st_size
    expected = remote.size or total
    if remote.size is not None and size > remote.size:
        raise _too_long(path, size, remote.size)
    if expected is not None and size != expected:
        raise InputError(path, f"size {size} bytes, expected {expected}")
    if remote.sha256 is not None:
        got = sha256_of(path)
        if got != remote.sha256:
            path.unlink()
            raise InputError(path, f"sha256 mismatch (expected {remote.sha256}, got {got}); deleted, run again")
    elif remote.unpack and archive_kind(path) is None:  # no checksum known: at least the format must hold
        raise InputError(path, "not a readable zip or tar archive (no checksum is known to verify it)")


def fetch(remote: RemoteFile, folder: Path, cfg: DownloadConfig | None = None, progress: Progress | None = None,
          url: str | None = None) -> Path:
    """Download ``remote`` into ``folder`` (resuming a ``.part`` file left by an interrupted run) and verify it.
    An already complete, verified file is not downloaded again."""
    cfg = cfg or DownloadConfig()
    url = url or remote.url
    problem = url_problem(url)
    if problem:
        raise InputError(None, problem)
    atomic.output_folder(folder, "download")
    final, part = folder / remote.filename, folder / f"{remote.filename}.part"
    for path in (final, part):  # written, or appended to, where it is: never through a link
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise InputError(path, "is not a download cellprobe keeps (a link, folder or device); remove it, then "
                                   "run again")
    if final.exists():
        _verify(final, remote, None)
        return final
    total = None
    for attempt in range(cfg.retries + 1):
        try:
            total = _transfer(url, part, cfg, progress, remote.filename, remote.size)
            break
        except (_Interrupted, ConnectionError, http.client.HTTPException) as exc:
            if attempt == cfg.retries:
                raise InputError(url, f"download interrupted ({exc}); run again to resume") from None
        except URLError as exc:
            host = urlsplit(url).hostname
            raise InputError(url, f"cannot reach {host} ({exc.reason}); offline? a partial download resumes "
                                  "when run again") from None
        except TimeoutError:
            raise InputError(url, f"no answer within {cfg.timeout_s:g} s; offline? run again to resume") from None
    _verify(part, remote, total)
    os.replace(part, final)
    return final


def archive_kind(path: Path) -> str | None:
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except OSError:
        return None
    return None


def _safe_target(dest: Path, name: str, archive: Path) -> Path:
    """The extraction path of member ``name``, refusing absolute paths and any escape from ``dest``."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or (posix.parts and ":" in posix.parts[0]) or ".." in posix.parts:
        raise InputError(archive, f"refused: member '{name}' would be written outside the target folder")
    target = (dest / posix).resolve()
    if not target.is_relative_to(dest.resolve()):
        raise InputError(archive, f"refused: member '{name}' resolves outside the target folder")
    return target


def _check_layout(members: list[tuple[str, bool]], archive: Path, dest: Path) -> None:
    """Refuse members (name, is a folder) that would not unpack as listed: one file given twice (the later
    silently replaces the earlier), two names that differ only in case or Unicode spelling (one file on macOS
    and Windows), a member below one that is a file, or one meeting a file or folder of the other kind already
    in ``dest``; each found before anything is written, naming the member."""
    kinds: dict[str, tuple[str, bool]] = {}
    spelt: dict[str, str] = {}  # portable key → the path as the archive spells it, '.' parts dropped
    for name, is_dir in members:
        parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p != "."]
        key = "/".join(atomic.portable_name(p) for p in parts)
        earlier = kinds.get(key)
        if earlier is not None and not (is_dir and earlier[1]):
            raise InputError(archive, f"refused: member '{name}' " + (
                "is in the archive twice (the later would replace the earlier)" if spelt[key] == "/".join(parts)
                else f"and '{earlier[0]}' differ only in case or Unicode spelling (one file on macOS and Windows)"))
        kinds[key], spelt[key] = (name, is_dir), "/".join(parts)
    for key, (name, is_dir) in kinds.items():
        parts = key.split("/")
        for depth in range(1, len(parts)):
            above = kinds.get("/".join(parts[:depth]))
            if above is not None and not above[1]:
                raise InputError(archive, f"refused: member '{name}' lies below '{above[0]}', a file of the archive")
        target = dest / PurePosixPath(name.replace("\\", "/"))
        there = [target, *[p for p in target.parents if p.is_relative_to(dest) and p != dest]]
        for path in there:  # unpacked into a folder of its own first: a file here now is not this archive's
            wants_dir = path != target or is_dir
            if (path.exists() or path.is_symlink()) and (not wants_dir or not path.is_dir() or path.is_symlink()):
                raise InputError(archive, f"refused: member '{name}' would replace {path}, "
                                          f"{'a link' if path.is_symlink() else 'a folder' if path.is_dir() else 'a file'}"
                                          " already there (not unpacked from this archive); move it, or give "
                                          "another --root")


#: the folder, inside the target, an archive is unpacked into before its files move into place (``<name>``:
#: the archive's file name), and the file in it saying the unpacking ended (only the move is left)
WORK_PREFIX, UNPACKED = ".unpacking-", ".complete"
#: what a damaged or unsupported archive raises while it is read (encrypted or unknown-method zip members, a bad
#: CRC, a truncated tar or stream)
_DAMAGED = (RuntimeError, NotImplementedError, zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error)


def unpack(archive: Path, dest: Path, marker: Path | None = None) -> list[str]:
    """Extract a zip or tar archive into ``dest`` after checking *every* member first (nothing is written when
    any member would escape ``dest``, is a link, or would replace a file already there); returns the member
    names. The archive is unpacked into a folder of its own inside ``dest`` and its files then moved into place,
    so that a damaged archive leaves nothing half-unpacked, and a kill during the move is finished by the next
    call. ``marker``, when given, is written (the archive's sha256) before that folder is removed."""
    created = _missing_folders(dest)
    try:
        atomic.output_folder(dest, "dataset")
        work = dest / f"{WORK_PREFIX}{archive.name}"
        try:
            names = _member_list(archive, dest, check=not (work / UNPACKED).is_file())
            if not (work / UNPACKED).is_file():  # else unpacked whole by a killed call: only the move is left
                _clear(work)
                try:
                    _extract(archive, work)
                except _DAMAGED as exc:
                    _clear(work)
                    raise InputError(archive, f"cannot unpack: a damaged or unsupported archive ({_first_line(exc)}); "
                                              "delete it and download again") from None
                (work / UNPACKED).write_text("")
            _move_into(work, dest)
            if marker is not None:
                atomic.write_text(marker, f"{sha256_of(archive)}\n")
            _clear(work)
            return names
        except OSError as exc:  # disk full, a member's folder taken by a file: one line, not a traceback
            raise InputError(dest, f"cannot unpack {archive.name} here ({exc.strerror or exc})") from None
    except BaseException:
        _remove_empty(created)  # a refused archive leaves no empty folder behind
        raise


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _clear(work: Path) -> None:
    """Remove an unpacking folder (a link there is removed, never followed)."""
    if work.is_symlink() or work.is_file():
        work.unlink()
    elif work.exists():
        shutil.rmtree(work)


def _move_into(work: Path, dest: Path) -> None:
    """Move every file unpacked in ``work`` to the same place under ``dest`` (folders made as needed)."""
    for folder, _, files in os.walk(work):
        rel = Path(folder).relative_to(work)
        (dest / rel).mkdir(exist_ok=True)
        for name in files:
            if Path(folder) != work or name != UNPACKED:
                os.replace(Path(folder) / name, dest / rel / name)


def _member_list(archive: Path, dest: Path, check: bool) -> list[str]:
    """The archive's member names, each checked (``check``) as :func:`unpack` promises."""
    kind = archive_kind(archive)
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
            if check:
                for info in infos:
                    if stat.S_ISLNK(info.external_attr >> 16):
                        raise InputError(archive, f"refused: member '{info.filename}' is a symbolic link")
                    _safe_target(dest, info.filename, archive)
                _check_layout([(i.filename, i.is_dir()) for i in infos], archive, dest)
            return [i.filename for i in infos]
        if kind == "tar":
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
            if check:
                for member in members:
                    if member.issym() or member.islnk():
                        raise InputError(archive, f"refused: member '{member.name}' is a link")
                    if not (member.isfile() or member.isdir()):
                        raise InputError(archive, f"refused: member '{member.name}' is not a file or folder")
                    _safe_target(dest, member.name, archive)
                    try:
                        tarfile.data_filter(member, str(dest))
                    except tarfile.FilterError as exc:
                        raise InputError(archive, f"refused: {exc}") from None
                _check_layout([(m.name, m.isdir()) for m in members], archive, dest)
            return [m.name for m in members]
    except _DAMAGED as exc:
        raise InputError(archive, f"cannot unpack: a damaged archive ({_first_line(exc)}); delete it and download "
                                  "again") from None
    raise InputError(archive, "not a zip or tar archive")


def _extract(archive: Path, work: Path) -> None:
    work.mkdir(parents=True)
    if archive_kind(archive) == "zip":
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(work)
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(work, filter="data")


def download_dataset(name: str, source: DatasetSource, root: Path, cfg: DownloadConfig | None = None,
                     progress: Progress | None = None, mirror: str | None = None) -> Path:
    """Fetch every file of ``source`` into ``root/downloads`` and unpack archives into ``root/name``
    (once: a marker file records each archive unpacked). ``mirror`` replaces the address up to the file name."""
    check_name(name)
    problem = None if mirror is None else url_problem(mirror)
    if problem:
        raise InputError("--mirror", problem)
    if not source.files:
        raise InputError(None, f"{name}: {source.note or 'no public download address'}")
    created = _missing_folders(Path(root))
    try:
        root = atomic.output_folder(Path(root), "--root")  # before any transfer: a bad --root is one line, at once
        created = [f for f in (root / "downloads", root / name) if not f.exists()] + created
        with exclusive(root / "downloads", f"downloading into {root}"):  # two would write one .part file
            return _download_into(name, source, root, cfg, progress, mirror)
    except BaseException:
        _remove_empty(created)  # a refused download leaves no empty folder it made (a partial file is kept)
        raise


def _check_same_version(made_from: Path, download: Path, target: Path, remote: RemoteFile) -> None:
    """A dataset folder already made from ``remote`` (its unpack marker, or the copied file) is kept only when
    it was made from the same bytes as the verified download: a catalog's new version of a file would
    otherwise leave the old one's data in place under the new name, unsaid."""
    wanted = sha256_of(download)
    if remote.unpack:
        try:
            had = read_text_file(made_from, "unpack marker").strip()
        except InputError:
            had = "unreadable"
    else:
        had = sha256_of(made_from)
    if had != wanted:
        kind = "data unpacked from" if remote.unpack else "a copy of"
        raise InputError(made_from, f"{target} holds {kind} another version of {remote.filename} (sha256 "
                                    f"{had[:12]}…, the download's {wanted[:12]}…); remove {target}, or give another "
                                    "--root, to get this version")


def _download_into(name: str, source: DatasetSource, root: Path, cfg: DownloadConfig | None,
                   progress: Progress | None, mirror: str | None) -> Path:
    target = root / name
    for remote in source.files:
        url = f"{mirror.rstrip('/')}/{remote.filename}" if mirror else None
        path = fetch(remote, root / "downloads", cfg, progress, url)
        marker = target / f".unpacked-{remote.filename}"
        made_from = marker if remote.unpack else target / remote.filename
        if made_from.exists():
            _check_same_version(made_from, path, target, remote)
            _clear(target / f"{WORK_PREFIX}{path.name}")  # left by a kill after the marker was written
            continue
        try:
            if remote.unpack:
                unpack(path, target, marker)
            else:
                atomic.output_folder(target, "dataset")
                with open(path, "rb") as source_file, atomic.atomic_open(target / remote.filename) as copy:
                    shutil.copyfileobj(source_file, copy)  # a killed copy leaves no partial file to pass as done
        except OSError as exc:
            raise InputError(target, f"cannot write the dataset ({exc.strerror or exc})") from None
    return target
