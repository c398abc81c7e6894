import pytest

from cellprobe.errors import InputError
from cellprobe.inference.predict import collect_inputs


def test_collect_inputs(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"")
    (tmp_path / "a" / "notes.txt").write_text("")
    (tmp_path / "y.tif").write_bytes(b"")
    assert collect_inputs([tmp_path / "a", tmp_path / "y.tif"]) == [tmp_path / "a" / "x.png", tmp_path / "y.tif"]
    (tmp_path / "b").mkdir()
    with pytest.raises(InputError, match="no image"):
        collect_inputs([tmp_path / "b"])
    (tmp_path / "b" / "x.jpg").write_bytes(b"")
    with pytest.raises(InputError, match="share the name 'x'"):
        collect_inputs([tmp_path / "a", tmp_path / "b"])
