"""A slide's digest is read once and kept beside its results; a later run reuses it only while the file's
device, inode, size and both times are unchanged (a rewrite in place with its time set back changes ctime)."""

from __future__ import annotations

import json
import os

import pytest

from cellprobe.hashing import file_sha256
from cellprobe.inference import slide_digest as D


@pytest.fixture
def hashed(monkeypatch):
    """Count the files read whole; forget this process's digests (as a new command would)."""
    calls: list[str] = []

    def counting(path):
        calls.append(str(path))
        return file_sha256(path)

    monkeypatch.setattr(D, "file_sha256", counting)
    monkeypatch.setattr(D, "_known", {})
    return calls


def test_a_kept_digest_is_reused_until_the_file_changes(tmp_path, hashed, monkeypatch):
    slide, out = tmp_path / "s.svs", tmp_path / "out"
    slide.write_bytes(b"pyramid" * 1000)
    out.mkdir()
    digest = D.slide_sha256(slide, "s", out)
    assert digest == file_sha256(slide) and len(hashed) == 1
    assert D.slide_sha256(slide, "s", out) == digest and len(hashed) == 1  # this process remembers it
    D.remember(slide, "s", out, digest)
    monkeypatch.setattr(D, "_known", {})  # a later command
    assert D.slide_sha256(slide, "s", out) == digest and len(hashed) == 1  # the record spares the read
    os.chmod(slide, 0o600)  # ctime changes: read again, the same bytes
    monkeypatch.setattr(D, "_known", {})
    assert D.slide_sha256(slide, "s", out) == digest and len(hashed) == 2
    D.remember(slide, "s", out, digest)
    stat = slide.stat()
    with open(slide, "r+b") as handle:  # rewritten in place in its middle, its time set back
        handle.seek(3000)
        handle.write(b"X")
    os.utime(slide, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    monkeypatch.setattr(D, "_known", {})
    assert D.slide_sha256(slide, "s", out) != digest and len(hashed) == 3


@pytest.mark.parametrize("record", ["{", "[]", '{"seen": 1, "sha256": "x"}', "SEEN_GARBAGE"])
def test_a_damaged_record_only_costs_a_read(tmp_path, hashed, record):
    slide, out = tmp_path / "s.svs", tmp_path / "out"
    slide.write_bytes(b"pyramid")
    (out / D.DIGESTS).mkdir(parents=True)
    if record == "SEEN_GARBAGE":  # the eighteenth probe: a hand-edited digest of the right file was used as is
        record = json.dumps({"seen": D._seen(D.slide_files(slide)), "sha256": "garbage"})
    (out / D.DIGESTS / "s.json").write_text(record)
    assert D.slide_sha256(slide, "s", out) == file_sha256(slide) and len(hashed) == 1
    D.remember(slide, "s", out, file_sha256(slide))
    assert (out / D.DIGESTS / "s.json").read_text() != record


def test_no_output_folder_yet_keeps_nothing(tmp_path, hashed):
    slide = tmp_path / "s.svs"
    slide.write_bytes(b"pyramid")
    assert D.slide_sha256(slide, "s", None) == file_sha256(slide)
    assert D.slide_sha256(slide, "s", tmp_path / "missing") == file_sha256(slide) and len(hashed) == 1
    assert not (tmp_path / "missing").exists()


def test_something_in_the_way_of_the_record_is_refused_naming_it(tmp_path):
    from cellprobe.errors import InputError

    (tmp_path / D.DIGESTS).write_text("mine")
    with pytest.raises(InputError, match="not a folder") as err:
        D.check_record_place(tmp_path, "s")
    assert err.value.path == str(tmp_path / D.DIGESTS)
    (tmp_path / D.DIGESTS).unlink()
    (tmp_path / D.DIGESTS / "s.json").mkdir(parents=True)
    with pytest.raises(InputError, match="not a plain file"):
        D.check_record_place(tmp_path, "s")
    D.check_record_place(tmp_path, "other")
    D.check_record_place(tmp_path / "missing", "s")
    # the twenty-third probe: a link there led the records outside the output folder (or to a traceback)
    import shutil

    shutil.rmtree(tmp_path / D.DIGESTS)
    for target in (tmp_path / "elsewhere", tmp_path / "nowhere"):
        (tmp_path / "elsewhere").mkdir(exist_ok=True)
        (tmp_path / D.DIGESTS).symlink_to(target)
        with pytest.raises(InputError, match="is a link, where cellprobe keeps its own folder") as err:
            D.check_record_place(tmp_path, "s")
        assert err.value.path == str(tmp_path / D.DIGESTS)
        (tmp_path / D.DIGESTS).unlink()


def test_a_slide_written_while_it_is_read_is_refused(tmp_path, monkeypatch):
    from cellprobe.errors import InputError

    slide = tmp_path / "s.svs"
    slide.write_bytes(b"pyramid")
    monkeypatch.setattr(D, "_known", {})

    def growing(path):
        with open(path, "ab") as handle:
            handle.write(b"more")
        return "0" * 64

    monkeypatch.setattr(D, "file_sha256", growing)
    with pytest.raises(InputError, match="changed while it was read"):
        D.slide_sha256(slide, "s", None)


def test_a_slide_of_several_files_is_all_of_them(tmp_path, hashed, monkeypatch):
    """The nineteenth probe: a Hamamatsu .vms slide whose image file was rescanned beside an unchanged index
    was skipped as finished (only the index was hashed). MIRAX and VMS/VMU slides are hashed with the files
    OpenSlide reads their pixels from."""
    vms = tmp_path / "s.vms"
    vms.write_text("[Virtual Microscope Specimen]\nNoLayers=1\nImageFile=s.jpg\nMapFile=s_map.jpg\n"
                   "OptimisationFile=s.opt\nMacroImage=\n")
    for name in ("s.jpg", "s_map.jpg", "s.opt", "other.jpg"):
        (tmp_path / name).write_bytes(name.encode())
    assert [p.name for _, p in D.slide_files(vms)] == ["s.vms", "s.jpg", "s.opt", "s_map.jpg"]
    mrxs = tmp_path / "m.mrxs"
    mrxs.write_bytes(b"index")
    (tmp_path / "m").mkdir()
    for name in ("Slidedat.ini", "Data0000.dat"):
        (tmp_path / "m" / name).write_bytes(name.encode())
    assert [p.name for _, p in D.slide_files(mrxs)] == ["m.mrxs", "Data0000.dat", "Slidedat.ini"]
    before = {p: D.slide_sha256(p, p.stem, None) for p in (vms, mrxs)}
    (tmp_path / "s.jpg").write_bytes(b"rescanned")
    (tmp_path / "m" / "Data0000.dat").write_bytes(b"rescanned")
    assert all(D.slide_sha256(p, p.stem, None) != before[p] for p in (vms, mrxs))
    (tmp_path / "other.jpg").write_bytes(b"not part of the slide")
    assert D.slide_sha256(vms, "s", None) == D.slide_sha256(vms, "s", None)
    assert D.slide_sha256(tmp_path / "other.jpg", "other", None) == file_sha256(tmp_path / "other.jpg")


def test_a_vms_image_named_by_absolute_path_is_read_where_openslide_reads_it(tmp_path, hashed):
    """The twentieth probe: ImageFile=/abs/path.jpg (OpenSlide joins it to the index's folder) was hashed at
    the absolute path (a ValueError traceback when that existed) or left out (a rescan skipped as finished)."""
    outside = tmp_path / "elsewhere.jpg"
    outside.write_bytes(b"not read by OpenSlide")
    slide_dir = tmp_path / "slide"
    (slide_dir / str(outside).lstrip("/")).parent.mkdir(parents=True)
    (slide_dir / str(outside).lstrip("/")).write_bytes(b"pixels")
    vms = slide_dir / "s.vms"
    vms.write_text(f"[Virtual Microscope Specimen]\nImageFile={outside}\n")
    assert [p for _, p in D.slide_files(vms)] == [vms, slide_dir / str(outside).lstrip("/")]
    before = D.slide_sha256(vms, "s", None)
    (slide_dir / str(outside).lstrip("/")).write_bytes(b"rescanned")
    assert D.slide_sha256(vms, "s", None) != before
