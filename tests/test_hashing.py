import hashlib

from cellprobe.hashing import file_sha256


def test_file_sha256_matches_hashlib_on_bytes(tmp_path):
    data = bytes(range(256)) * 5000
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


def test_is_sha256_takes_only_what_records_write():
    from cellprobe.hashing import is_sha256

    assert is_sha256("0" * 64) and is_sha256("ab" * 32)
    assert not any(is_sha256(v) for v in ("A" * 64, "0" * 63, "0" * 65, 123, None, ["0" * 64], "0" * 64 + "\n"))
