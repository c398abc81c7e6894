"""Downloads against a loopback HTTP server started here (127.0.0.1 only), serving archives built here."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import re
import socket
import tarfile
import threading
import warnings
import zipfile

import pytest
import yaml

from cellprobe.data.catalog import DatasetSource, RemoteFile, get_source
from cellprobe.data.download import DownloadConfig, download_dataset, fetch, unpack
from cellprobe.errors import InputError

pytestmark = pytest.mark.network


class Server:
    """Serves ``files`` with HTTP Range support; names in ``cut`` are cut off halfway on their first GET."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: set[str] = set()
        self.ranges: list[str | None] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                name = self.path.lstrip("/")
                if name not in server.files:
                    self.send_error(404)
                    return
                body = server.files[name]
                rng = self.headers.get("Range")
                server.ranges.append(rng)
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if name in server.cut:
                    server.cut.discard(name)
                    self.wfile.write(body[start:start + len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.wfile.write(body[start:])

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def add(self, name: str, data: bytes) -> RemoteFile:
        self.files[name] = data
        return RemoteFile(url=f"{self.url}/{name}", filename=name, sha256=hashlib.sha256(data).hexdigest())


@pytest.fixture
def server():
    s = Server()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tar_bytes(members: dict[str, bytes], link: tuple[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link[0])
            info.type = tarfile.SYMTYPE
            info.linkname = link[1]
            tf.addfile(info)
    return buf.getvalue()


def test_download_verify_unpack_zip_and_tar(server, tmp_path):
    source = DatasetSource(title="t", format="conic", files=[
        server.add("a.zip", zip_bytes({"Fold 1/images/x.txt": b"hello", "Fold 1/y.txt": b"y" * 5000})),
        server.add("b.tar.gz", tar_bytes({"inner/z.txt": b"zz"}))])
    target = download_dataset("toy", source, tmp_path, DownloadConfig(retries=0))
    assert (target / "Fold 1" / "images" / "x.txt").read_bytes() == b"hello"
    assert (target / "inner" / "z.txt").read_bytes() == b"zz"
    n = len(server.ranges)
    download_dataset("toy", source, tmp_path)  # complete and verified: nothing fetched again
    assert len(server.ranges) == n


@pytest.mark.parametrize("unpacked", [True, False])
def test_a_new_version_of_a_file_is_not_taken_for_the_one_already_there(server, tmp_path, unpacked):
    """The fifteenth probe: a catalog's new version of an archive (new sha256) was downloaded, but the dataset
    folder kept the old version's files: its unpack marker (or the copied file) was trusted unchecked. It is
    refused naming it until the folder is removed; the same version is still found done."""
    name = "d.zip" if unpacked else "a.csv"

    def version(text: bytes) -> DatasetSource:
        data = zip_bytes({"x.txt": text}) if unpacked else text
        return DatasetSource(title="t", format="conic", files=[
            server.add(name, data).model_copy(update={"unpack": unpacked})])

    target = download_dataset("mine", version(b"one"), tmp_path, DownloadConfig(retries=0))
    download_dataset("mine", version(b"one"), tmp_path)  # the same version: done
    with pytest.raises(InputError, match="sha256 mismatch"):  # the old download is replaced first
        download_dataset("mine", version(b"two"), tmp_path)
    with pytest.raises(InputError, match=f"holds {'data unpacked from' if unpacked else 'a copy of'} another version of {name}") as err:
        download_dataset("mine", version(b"two"), tmp_path)
    assert err.value.path == str(target / (f".unpacked-{name}" if unpacked else name))
    assert (target / ("x.txt" if unpacked else name)).read_bytes() == b"one"  # untouched
    import shutil

    shutil.rmtree(target)
    download_dataset("mine", version(b"two"), tmp_path)
    assert (target / ("x.txt" if unpacked else name)).read_bytes() == b"two"


def test_two_downloads_into_one_root_at_once_are_one_refusal(server, tmp_path):
    """The sixteenth probe: a second download into the same --root while the first ran wrote the same .part
    file (a FileNotFoundError traceback). A download holds the root's downloads folder."""
    from cellprobe.locking import exclusive

    source = DatasetSource(title="t", format="conic", files=[server.add("a.zip", zip_bytes({"x.txt": b"x"}))])
    with exclusive(tmp_path / "downloads", "downloading"), pytest.raises(InputError, match="in use by another"):
        download_dataset("toy", source, tmp_path, DownloadConfig(retries=0))
    assert not (tmp_path / "toy").exists()
    assert (download_dataset("toy", source, tmp_path) / "x.txt").read_bytes() == b"x"


def test_interrupted_download_resumes_with_range(server, tmp_path):
    data = bytes(range(256)) * 400
    remote = server.add("big.bin", data).model_copy(update={"unpack": False})
    server.cut.add("big.bin")
    with pytest.raises(InputError, match=r"interrupted.*run again to resume"):
        fetch(remote, tmp_path, DownloadConfig(retries=0, chunk_bytes=1024))
    part = tmp_path / "big.bin.part"
    assert 0 < part.stat().st_size < len(data)
    done = part.stat().st_size
    path = fetch(remote, tmp_path, DownloadConfig(retries=0))
    assert path.read_bytes() == data and not part.exists()
    assert server.ranges[-1] == f"bytes={done}-"


def test_retries_resume_within_one_call(server, tmp_path):
    data = b"x" * 50000
    remote = server.add("r.bin", data).model_copy(update={"unpack": False})
    server.cut.add("r.bin")
    assert fetch(remote, tmp_path, DownloadConfig(retries=1)).read_bytes() == data
    assert server.ranges[0] is None and server.ranges[1].startswith("bytes=")


def test_checksum_mismatch_deletes_file(server, tmp_path):
    remote = server.add("c.zip", zip_bytes({"a": b"1"})).model_copy(update={"sha256": "0" * 64})
    with pytest.raises(InputError, match="sha256 mismatch"):
        fetch(remote, tmp_path)
    assert not (tmp_path / "c.zip").exists() and not (tmp_path / "c.zip.part").exists()


def test_unknown_checksum_checks_archive_format(server, tmp_path):
    remote = server.add("d.zip", b"not an archive at all").model_copy(update={"sha256": None})
    with pytest.raises(InputError, match="not a readable zip or tar archive"):
        fetch(remote, tmp_path)


@pytest.mark.parametrize("members", [{"../evil.txt": b"x"}, {"/abs/evil.txt": b"x"}, {"ok/../../evil.txt": b"x"}])
def test_malicious_zip_refused_before_writing(tmp_path, members):
    archive = tmp_path / "m.zip"
    archive.write_bytes(zip_bytes({"good.txt": b"g", **members}))
    with pytest.raises(InputError, match="refused"):
        unpack(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "good.txt").exists() and not (tmp_path / "evil.txt").exists()


def test_tar_with_link_out_refused(tmp_path):
    archive = tmp_path / "m.tar.gz"
    archive.write_bytes(tar_bytes({"a.txt": b"a"}, link=("escape", "../../etc")))
    with pytest.raises(InputError, match="refused: member 'escape' is a link"):
        unpack(archive, tmp_path / "out")
    archive.write_bytes(tar_bytes({"../up.txt": b"a"}))
    with pytest.raises(InputError, match="refused"):
        unpack(archive, tmp_path / "out")
    assert not (tmp_path / "up.txt").exists()


def test_cli_download_with_catalog_and_malicious_archive(cli, server, tmp_path):
    good = server.add("good.zip", zip_bytes({"images.npy": b"0"}))
    bad = server.add("bad.zip", zip_bytes({"../../outside.txt": b"x"}))
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({
        "mine": {"title": "mine", "format": "conic", "files": [good.model_dump()]},
        "evil": {"title": "evil", "format": "conic", "files": [bad.model_dump()]}}))
    rc, out, err = cli("data", "download", "mine", "--root", tmp_path / "root", "--catalog", catalog)
    assert rc == 0, err
    assert "format 'conic'" in out and (tmp_path / "root" / "mine" / "images.npy").is_file()
    rc, _, err = cli("data", "download", "evil", "--root", tmp_path / "root", "--catalog", catalog)
    assert rc == 2 and "refused" in err and err.strip().count("\n") == 0
    assert not (tmp_path / "outside.txt").exists()


def test_offline_is_one_clear_line(cli, tmp_path):
    with socket.socket() as s:  # a port on 127.0.0.1 that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    catalog = tmp_path / "c.yaml"
    catalog.write_text(yaml.safe_dump({"x": {"title": "x", "files": [
        {"url": f"http://127.0.0.1:{port}/x.zip", "filename": "x.zip"}]}}))
    rc, _, err = cli("data", "download", "x", "--root", tmp_path, "--catalog", catalog, "--retries", "0")
    assert rc == 2 and "cannot reach 127.0.0.1" in err and "offline?" in err and err.count("\n") == 1


def test_builtin_catalog(cli):
    assert get_source("pannuke").files[0].sha256 is not None
    with pytest.raises(InputError, match="no direct download address"):
        download_dataset("conic", get_source("conic"), None)
    rc, out, _ = cli("data", "list")
    assert rc == 0 and "cytodark0" in out and "pannuke" in out
    with pytest.raises(InputError, match="no dataset 'nope'"):
        get_source("nope")


def test_cisca_splits_entry_downloads_the_pinned_files(cli, server, tmp_path, cisca_splits):
    """The built-in entry, fetched through --mirror from a loopback server holding the shared copies: sha256 and
    size pinned, copied as they are (no archive)."""
    source = get_source("cisca-splits")
    assert [f.filename for f in source.files] == ["pannuke_folds.csv", "conic_folds.csv"]
    for f in source.files:
        assert f.url.startswith("https://raw.githubusercontent.com/vadori/cytoark/8b9f75e") and not f.unpack
        data = (cisca_splits / f.filename).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f.sha256 and len(data) == f.size
        server.add(f.filename, data)
    rc, out, err = cli("data", "download", "cisca-splits", "--root", tmp_path, "--mirror", server.url)
    assert rc == 0, err
    assert f"cisca-splits: {tmp_path / 'cisca-splits'}" in out
    for f in source.files:
        assert (tmp_path / "cisca-splits" / f.filename).read_bytes() == (cisca_splits / f.filename).read_bytes()
    # a server with another file under the same name: refused with one line, nothing kept
    server.files["conic_folds.csv"] = server.files["conic_folds.csv"][:-100]
    rc, _, err = cli("data", "download", "cisca-splits", "--root", tmp_path / "other", "--mirror", server.url)
    assert rc == 2 and "conic_folds.csv" in err and "size 279219 bytes, expected 279319" in err
    assert err.strip().count("\n") == 0


def test_file_larger_than_declared_size_is_deleted_not_resumed(server, tmp_path):
    data = b"z" * 50000
    remote = server.add("big.bin", data).model_copy(update={"unpack": False, "size": 20000, "sha256": None})
    for _ in range(2):  # the rerun must not find a .part grown past the size and fail the same way on it
        with pytest.raises(InputError, match=r"more than the declared size 20000.*deleted") as err:
            fetch(remote, tmp_path, DownloadConfig(retries=0, chunk_bytes=1024))
        assert err.value.path == str(tmp_path / "big.bin.part")
        assert not (tmp_path / "big.bin.part").exists() and not (tmp_path / "big.bin").exists()
    (tmp_path / "big.bin.part").write_bytes(b"z" * 30000)  # left by an older version: refused, deleted
    with pytest.raises(InputError, match="more than the declared size"):
        fetch(remote, tmp_path, DownloadConfig(retries=0))
    assert not (tmp_path / "big.bin.part").exists()


def test_server_stating_more_than_declared_size_is_refused_at_once(server, tmp_path):
    from cellprobe.data.download import _transfer

    part = tmp_path / "x.part"
    server.add("x.bin", b"q" * 10000)
    with pytest.raises(InputError, match="more than the declared size 4000"):
        _transfer(f"{server.url}/x.bin", part, DownloadConfig(chunk_bytes=1024), None, "x.bin", 4000)
    assert not part.exists()


BAD_URLS = [("file:///etc/passwd", "is not an http(s) address"), ("ftp://host/x.zip", "is not an http(s) address"),
            ("http://[::1/x.zip", "is not a web address (Invalid IPv6 URL)"),
            ("http://[zz]/x.zip", "is not a web address"), ("https:///x.zip", "names no host"),
            ("http://host:abc/x.zip", "is not a web address (Port could not be cast")]


@pytest.mark.parametrize(("url", "says"), BAD_URLS)
def test_a_bad_address_is_refused_with_the_catalog_before_any_folder(cli, tmp_path, url, says):
    """The 27th probe: a bracketed host urlsplit refuses ('http://[::1') was a traceback; an address without a
    host, or with a port that is no number, was tried as one and reported as unreachable."""
    with pytest.raises(ValueError, match=re.escape(says)):
        RemoteFile(url=url, filename="x.zip")
    catalog = tmp_path / "c.yaml"
    catalog.write_text(yaml.safe_dump({"mine": {"title": "t", "files": [{"url": url, "filename": "x.zip"}]}}))
    rc, _, err = cli("data", "download", "mine", "--root", tmp_path / "new" / "root", "--catalog", catalog)
    assert rc == 2 and says in err and str(catalog) in err and err.count("\n") == 1, err
    mirror = url.removesuffix("/x.zip")
    rc, _, err = cli("data", "download", "cisca-splits", "--root", tmp_path / "new" / "root", "--mirror", mirror)
    assert rc == 2 and err.startswith("cellprobe: error: --mirror: ") and says in err and err.count("\n") == 1, err
    assert not (tmp_path / "new").exists()


def test_refused_archive_leaves_no_empty_dataset_folder(server, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "keep").mkdir()
    source = DatasetSource(title="t", files=[server.add("m.tar.gz", tar_bytes({"a.txt": b"a"},
                                                                               link=("escape", "../../etc")))])
    with pytest.raises(InputError, match="is a link"):
        download_dataset("toy", source, root, DownloadConfig(retries=0))
    assert not (root / "toy").exists() and (root / "keep").is_dir()  # only what this call made is removed
    assert (root / "downloads" / "m.tar.gz").is_file()  # verified download kept (not an empty folder)
    zipped = tmp_path / "z.zip"
    zipped.write_bytes(zip_bytes({"../evil": b"x"}))
    with pytest.raises(InputError, match="refused"):
        unpack(zipped, tmp_path / "a" / "b")
    assert not (tmp_path / "a").exists()


def test_interrupted_download_keeps_its_part_and_folders(server, tmp_path):
    remote = server.add("p.bin", b"p" * 40000).model_copy(update={"unpack": False})
    server.cut.add("p.bin")
    root = tmp_path / "root"
    with pytest.raises(InputError, match="interrupted"):
        download_dataset("toy", DatasetSource(title="t", files=[remote]), root,
                         DownloadConfig(retries=0, chunk_bytes=1024))
    assert (root / "downloads" / "p.bin.part").stat().st_size > 0 and not (root / "toy").exists()


def test_a_user_catalog_is_strict_about_names_and_verification(cli, server, tmp_path):
    """The thirteenth probe: YAML keys null / true / 123 became datasets 'None' / 'True' / '123', and a file with
    no sha256, no size and unpack: false downloaded with nothing verified and an empty 'note:' line."""
    catalog = tmp_path / "c.yaml"
    for key in ("null", "true", "123"):
        catalog.write_text(f"{key}: {{title: x, files: []}}\n")
        rc, _, err = cli("data", "list", "--catalog", catalog)
        assert rc == 2 and "is a YAML" in err and "not a name: quote it" in err and err.count("\n") == 1, err
    catalog.write_text('"123": {title: x, files: []}\n')
    assert cli("data", "list", "--catalog", catalog)[0] == 0
    plain = server.add("raw.bin", b"r" * 100).model_copy(update={"unpack": False, "sha256": None, "size": None})
    catalog.write_text(yaml.safe_dump({"raw": {"title": "raw", "files": [plain.model_dump()]}}))
    rc, _, err = cli("data", "download", "raw", "--root", tmp_path / "root", "--catalog", catalog)
    assert rc == 2 and "file 'raw.bin': nothing would verify it" in err and err.count("\n") == 1, err
    assert not (tmp_path / "root").exists()
    sized = plain.model_copy(update={"size": 100})
    catalog.write_text(yaml.safe_dump({"raw": {"title": "raw", "files": [sized.model_dump()]}}))
    rc, _, err = cli("data", "download", "raw", "--root", tmp_path / "root", "--catalog", catalog)
    assert rc == 0 and "note: no sha256 for raw.bin: verified by size (where known) and archive format only" in err, err


def _tar_list(path, members):
    """A tar of (name, bytes or None for a folder) in order, duplicates kept."""
    with tarfile.open(path, "w") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(("members", "problem"), [
    ([("ok/c.txt", b"first"), ("ok/c.txt", b"second")], "member 'ok/c.txt' is in the archive twice"),
    ([("ok/c.txt", b"first"), ("./ok/c.txt", b"second")], "member './ok/c.txt' is in the archive twice"),
    ([("ok/C.txt", b"first"), ("ok/c.txt", b"second")], "'ok/c.txt' and 'ok/C.txt' differ only in case"),
    ([("ok/d", b"a file"), ("ok/d/e.txt", b"below it")], "member 'ok/d/e.txt' lies below 'ok/d', a file"),
    ([("ok/d", None), ("ok/d", b"a file")], "member 'ok/d' is in the archive twice"),
])
@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_an_archive_that_would_not_unpack_as_listed_is_refused_before_writing(tmp_path, members, problem, kind):
    """The twenty-second probe: a member given twice silently replaced the first (exit 0); a member below a
    file member half-unpacked, then failed naming no member."""
    if kind == "tar":
        archive = _tar_list(tmp_path / "m.tar", members)
    else:
        archive = tmp_path / "m.zip"
        with zipfile.ZipFile(archive, "w") as zf, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # zipfile warns of a duplicate name
            for name, data in members:
                if data is None:
                    zf.writestr(name.rstrip("/") + "/", b"")
                else:
                    zf.writestr(name, data)
    with pytest.raises(InputError, match=re.escape(problem)):
        unpack(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("there", ["file", "folder"])
def test_a_member_meeting_a_file_already_there_is_refused_and_the_file_kept(tmp_path, there):
    """The twenty-third probe: a file already in the dataset folder (a user's, or another archive's) was
    silently replaced by a member of the same name."""
    (tmp_path / "out" / "ok").mkdir(parents=True)
    user = tmp_path / "out" / "ok" / ("d" if there == "file" else "c.txt")
    user.write_text("the user's")
    member = "ok/d/e.txt" if there == "file" else "ok/c.txt"
    archive = _tar_list(tmp_path / "m.tar", [(member, b"x")])
    with pytest.raises(InputError, match=rf"member '{member}' would replace .*, a file already there "
                                         r"\(not unpacked from this archive\)"):
        unpack(archive, tmp_path / "out")
    assert user.read_text() == "the user's"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ok"]


def test_two_archives_of_one_dataset_may_not_hold_one_file(server, tmp_path):
    """The twenty-third probe: the second archive's ok/c.txt silently replaced the first's."""
    first, second = tar_bytes({"ok/c.txt": b"first"}), tar_bytes({"ok/c.txt": b"second", "ok/d.txt": b"d"})
    files = [server.add("a1.tar.gz", first), server.add("a2.tar.gz", second)]
    with pytest.raises(InputError, match=r"member .ok/c\.txt. would replace"):
        download_dataset("two", DatasetSource(title="two", files=files), tmp_path)
    assert (tmp_path / "two" / "ok" / "c.txt").read_bytes() == b"first"
    assert not (tmp_path / "two" / "ok" / "d.txt").exists()


def _zip_damaged(path, how):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok/a.txt", b"a" * 1000)
        zf.writestr("ok/b.txt", b"b" * 1000)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        second = zf.infolist()[1]
    if how == "encrypted":  # the flag bit in the local header and the central directory
        data[second.header_offset + 6] |= 1
        central = data.rfind(b"PK\x01\x02")
        data[central + 8] |= 1
    else:  # a bad CRC: one byte of the stored data changed
        data[second.header_offset + 30 + len("ok/b.txt")] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("how", ["encrypted", "bad crc", "truncated tar"])
def test_a_damaged_archive_unpacks_nothing_and_is_one_line(tmp_path, how):
    """The twenty-third probe: an encrypted member, a bad CRC or a truncated tar were tracebacks after the
    members before them had been unpacked (a corrupt one among them)."""
    if how == "truncated tar":
        archive = tmp_path / "m.tar"
        _tar_list(archive, [("ok/a.txt", b"a" * 5000), ("ok/b.txt", b"b" * 5000)])
        archive.write_bytes(archive.read_bytes()[:8000])  # within the second member's data
    else:
        archive = _zip_damaged(tmp_path / "m.zip", how)
    with pytest.raises(InputError, match="cannot unpack: a damaged") as err:
        unpack(archive, tmp_path / "out")
    assert err.value.path == str(archive)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.txt"))


def test_a_killed_move_is_finished_by_the_next_unpack(tmp_path, monkeypatch):
    """Files move into place only once the whole archive is unpacked; a kill during the move is finished by the
    next call (what moved already is not refused as "already there")."""
    from cellprobe.data import download as D

    archive = _tar_list(tmp_path / "m.tar", [("ok/a.txt", b"a"), ("ok/b.txt", b"b")])
    moved = []
    real = os.replace

    def killed_after_one(src, dst):
        if moved:
            raise KeyboardInterrupt
        moved.append(dst)
        real(src, dst)

    monkeypatch.setattr(D.os, "replace", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        unpack(archive, tmp_path / "out")
    monkeypatch.setattr(D.os, "replace", real)
    assert unpack(archive, tmp_path / "out", tmp_path / "out" / ".unpacked-m.tar") == ["ok/a.txt", "ok/b.txt"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".unpacked-m.tar", "ok"]
    assert (tmp_path / "out" / "ok" / "b.txt").read_bytes() == b"b"


@pytest.mark.parametrize("where", ["part", "final"])
@pytest.mark.parametrize("kind", ["link to a file", "link to nothing", "folder"])
def test_a_link_or_folder_where_a_download_goes_is_refused(server, tmp_path, where, kind):
    """The twenty-third probe: a .part file that was a link had the user's file it pointed at replaced by the
    download (a link to nothing created a file there); a folder where the download goes was a traceback."""
    remote = server.add("d.zip", zip_bytes({"a.txt": b"a"}))
    folder, user = tmp_path / "downloads", tmp_path / "user.bin"
    folder.mkdir()
    path = folder / ("d.zip.part" if where == "part" else "d.zip")
    if kind == "folder":
        path.mkdir()
    else:
        if kind == "link to a file":
            user.write_bytes(b"the user's")
        path.symlink_to(user)
    with pytest.raises(InputError, match="is not a download cellprobe keeps") as err:
        fetch(remote, folder)
    assert err.value.path == str(path)
    assert (user.read_bytes() == b"the user's") if kind == "link to a file" else not user.exists()
