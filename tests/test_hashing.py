import hashlib

from cellprobe.hashing import file_sha256


def test_file_sha256_matches_hashlib_on_bytes(tmp_path):
    data = bytes(range(256)) * 5000
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
