"""Feature cache: bit-exact round trip, refusal of mismatched manifests, resume, corruption, extraction."""

from __future__ import annotations

import json
import pickle
import re

import numpy as np
import pytest
import torch

from cellprobe.encoders import build_encoder
from cellprobe.encoders.cache import CacheKey, FeatureCache, cache_dir, dataset_fingerprint, extract_features
from cellprobe.encoders.identity import EncoderIdentity
from cellprobe.errors import InputError

SHAPES = [(4, 8, 8), (6, 4, 4)]


ENCODER = dict(name="tiny", family="cnn", weights_digest="d" * 64, taps=(0, 1), fit="native", input_scale=1.0,
               tap_channels=(4, 6), tap_strides=(4.0, 8.0))


def _key(**changes) -> CacheKey:
    encoder = EncoderIdentity(**{**ENCODER, **{k: v for k, v in changes.items() if k in ENCODER}})
    base = dict(encoder=encoder, input_size=(32, 32), dataset_fingerprint="f" * 64, num_items=5, view=0)
    return CacheKey(**{**base, **{k: v for k, v in changes.items() if k not in ENCODER}})


def _chunk(cache: FeatureCache, chunk: int, rng) -> list[np.ndarray]:
    n = len(cache.chunk_items(chunk))
    return [(rng.standard_normal((n, *s)) * 100).astype(np.float16) for s in cache.tap_shapes]


def test_round_trip_is_bit_exact(tmp_path):
    rng = np.random.default_rng(0)
    cache = FeatureCache(tmp_path / "c", _key(), SHAPES, chunk_size=2)
    written = {c: _chunk(cache, c, rng) for c in range(cache.num_chunks)}
    for c, arrays in written.items():
        cache.write_chunk(c, arrays)
    assert cache.complete and cache.num_chunks == 3
    reopened = FeatureCache(tmp_path / "c", _key())
    reopened.verify()
    for i in range(5):
        got = reopened[i]
        want = [a[i % 2] for a in written[i // 2]]
        assert all(g.dtype == np.float16 and g.tobytes() == w.tobytes() for g, w in zip(got, want, strict=True))
    assert reopened.bytes_per_item == (4 * 64 + 6 * 16) * 2
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["key"]["encoder"] == "tiny" and set(manifest["chunks"]) == {"0", "1", "2"}


@pytest.mark.parametrize("field,value", [("weights_digest", "e" * 64), ("taps", (0, 2)), ("view", 3),
                                         ("input_size", (64, 64)), ("dataset_fingerprint", "0" * 64),
                                         ("input_scale", 2.0)])
def test_mismatched_manifest_is_refused_naming_the_field(tmp_path, field, value):
    FeatureCache(tmp_path / "c", _key(), SHAPES)
    with pytest.raises(InputError, match=f"refusing to reuse it.*{field}: cached"):
        FeatureCache(tmp_path / "c", _key(**{field: value}))


def test_default_input_scale_keeps_the_digest_of_older_caches():
    """Caches written before ``input_scale`` existed carry no such field; at 1 their digest is unchanged."""
    assert "input_scale" not in _key().to_json() and _key().digest() == _key(input_scale=1.0).digest()
    assert _key(input_scale=2.0).to_json()["input_scale"] == 2.0 and _key(input_scale=2.0).digest() != _key().digest()


def test_open_without_manifest_or_with_wrong_shapes(tmp_path):
    with pytest.raises(InputError, match="no feature cache here"):
        FeatureCache(tmp_path / "none", _key())
    FeatureCache(tmp_path / "c", _key(), SHAPES)
    with pytest.raises(InputError, match="cached tap shapes"):
        FeatureCache(tmp_path / "c", _key(), [(4, 8, 8), (6, 2, 2)])
    np.save(tmp_path / "c" / "tap1.npy", np.zeros((5, 6, 4, 4), np.float32))
    with pytest.raises(InputError, match=r"tap1\.npy: cached features have shape"):
        FeatureCache(tmp_path / "c", _key())


@pytest.mark.parametrize("damage", ["pipe", "folder", "nested manifest", "negative shape"])
def test_cache_files_that_would_hang_or_crash_a_resume_are_one_line(tmp_path, damage):
    """The twenty-third probe: a cached tap file that was a pipe hung a resumed training; a manifest nested
    100,000 levels deep was a RecursionError."""
    import os

    FeatureCache(tmp_path / "c", _key(), SHAPES)
    path = tmp_path / "c" / ("manifest.json" if damage == "nested manifest" else "tap1.npy")
    path.unlink()
    if damage == "pipe":
        os.mkfifo(path)
    elif damage == "folder":
        path.mkdir()
    elif damage == "negative shape":  # the twenty-fourth probe: an OverflowError traceback
        from tests.metrics.test_inputs import negative_shape_npy

        path.write_bytes(negative_shape_npy())
    else:
        path.write_text("[" * 100000 + "]" * 100000)
    problem = {"pipe": "unreadable cached features: is not a regular file", "folder": "is a folder, not a file",
               "nested manifest": "nested too deeply to read", "negative shape": "unreadable cached features"}[damage]
    with pytest.raises(InputError, match=re.escape(problem)) as err:
        FeatureCache(tmp_path / "c", _key())
    assert err.value.path == str(path)


def test_a_link_where_a_new_cache_writes_is_refused_and_its_target_kept(tmp_path):
    """Beside the twenty-third probe's lock link: a cache file is written in place, so a link there (in a cache
    folder without a manifest) would have the file it points at overwritten."""
    user = tmp_path / "user.bin"
    user.write_bytes(b"mine")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "tap0.npy").symlink_to(user)
    with pytest.raises(InputError, match="is a link, where the feature cache writes its own file"):
        FeatureCache(tmp_path / "c", _key(), SHAPES)
    assert user.read_bytes() == b"mine"


@pytest.mark.parametrize(("change", "problem"), [
    ({"files": None}, "files None are not tap0.npy"), ({"tap_shapes": [[4, 8, 8]]}, "files"),
    ({"chunk_size": 2.0}, "chunk_size 2.0 is not an integer"), ({"num_chunks": True}, "num_chunks True"),
    ({"chunks": {"9": "x"}}, "chunks is not a record"), ({"chunks": []}, "chunks is not a record"),
    ({"tap_shapes": [[4, 8]]}, "tap_shapes [[4, 8]] is not"), ({"key": []}, "key [] is not an object"),
])
def test_a_damaged_manifest_is_refused_naming_the_field(tmp_path, change, problem):
    """The fourteenth probe: a manifest without 'files' was a KeyError traceback on resume."""
    FeatureCache(tmp_path / "c", _key(), SHAPES, chunk_size=2)
    path = tmp_path / "c" / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(InputError, match=re.escape(problem)) as err:
        FeatureCache(tmp_path / "c", _key())
    assert err.value.path == str(path)


def test_partial_cache_resumes_and_refuses_unwritten_items(tmp_path):
    rng = np.random.default_rng(1)
    cache = FeatureCache(tmp_path / "c", _key(), SHAPES, chunk_size=2)
    cache.write_chunk(1, _chunk(cache, 1, rng))
    reopened = FeatureCache(tmp_path / "c", _key())
    assert reopened.missing_chunks() == [0, 2] and not reopened.complete
    assert reopened[3][0].shape == (4, 8, 8)
    with pytest.raises(InputError, match="never written"):
        reopened[0]


def test_corruption_is_detected_on_read(tmp_path):
    rng = np.random.default_rng(2)
    cache = FeatureCache(tmp_path / "c", _key(), SHAPES, chunk_size=5)
    cache.write_chunk(0, _chunk(cache, 0, rng))
    cache.close()
    mm = np.load(tmp_path / "c" / "tap0.npy", mmap_mode="r+")
    mm[2, 0, 0, 0] = np.float16(12345)
    mm.flush()
    del mm
    with pytest.raises(InputError, match="checksum"):
        FeatureCache(tmp_path / "c", _key())[0]


def test_bad_chunks_are_refused(tmp_path):
    cache = FeatureCache(tmp_path / "c", _key(), SHAPES, chunk_size=5)
    good = [np.zeros((5, *s), np.float16) for s in SHAPES]
    with pytest.raises(ValueError, match="float16"):
        cache.write_chunk(0, [good[0].astype(np.float32), good[1]])
    inf = [a.copy() for a in good]
    inf[1][0, 0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="not finite"):
        cache.write_chunk(0, inf)
    assert cache.missing_chunks() == [0]


def test_pickling_drops_memory_maps(tmp_path):
    cache = FeatureCache(tmp_path / "c", _key(), SHAPES, chunk_size=5)
    cache.write_chunk(0, [np.ones((5, *s), np.float16) for s in SHAPES])
    cache[0]
    clone = pickle.loads(pickle.dumps(cache))
    assert clone._readers is None and clone[4][1].sum() == 6 * 16
    assert len(pickle.dumps(cache)) < 10_000


def _images(n=5, h=64, w=96, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def test_extract_features_matches_the_encoder_and_is_reused(tmp_path):
    encoder = build_encoder("efficientnet-lite0")  # the real pretrained weights, offline
    images = _images(n=3)
    calls = []
    original = encoder.forward
    encoder.forward = lambda x: calls.append(len(x)) or original(x)
    caches = extract_features(encoder, images, tmp_path, views=(0, 5), batch_size=1, chunk_size=2)
    assert [c.key.view for c in caches] == [0, 5] and all(c.complete for c in caches)
    assert caches[1].key.input_size == (96, 64)  # odd dihedral views swap height and width
    assert caches[0].directory == cache_dir(tmp_path, caches[0].key)
    for view, cache in zip((0, 5), caches, strict=True):
        for i in (0, 2):
            x = torch.from_numpy(images[i]).permute(2, 0, 1)[None].float() / 255
            x = torch.rot90(x, view % 4, dims=(-2, -1))
            x = torch.flip(x, dims=(-1,)) if view >= 4 else x
            want = [t[0].numpy().astype(np.float16) for t in original(x.contiguous())]
            got = FeatureCache(cache.directory, cache.key)[i]
            assert all(g.tobytes() == w.tobytes() for g, w in zip(got, want, strict=True))
    assert sum(calls) == 6
    calls.clear()
    again = extract_features(encoder, images, tmp_path, views=(0,), batch_size=1, chunk_size=2)
    assert calls == [] and again[0].directory == caches[0].directory  # reused, nothing recomputed


def test_extraction_resumes_a_partial_cache(tmp_path, tiny):
    encoder = build_encoder(tiny["tiny-cnn"], weights="random")
    images = _images(n=6, h=64, w=64)
    first = extract_features(encoder, images, tmp_path, batch_size=2, chunk_size=2)[0]
    manifest = json.loads((first.directory / "manifest.json").read_text())
    del manifest["chunks"]["1"], manifest["chunks"]["2"]  # as if killed after chunk 0
    (first.directory / "manifest.json").write_text(json.dumps(manifest))
    seen = []
    original = encoder.forward
    encoder.forward = lambda x: seen.append(len(x)) or original(x)
    resumed = extract_features(encoder, images, tmp_path, batch_size=2, chunk_size=2)[0]
    assert seen == [2, 2] and resumed.complete
    resumed.verify()


def test_extraction_input_errors(tmp_path, tiny):
    encoder = build_encoder(tiny["tiny-cnn"], weights="random")
    mixed = _images(n=2, h=64, w=64) + _images(n=1, h=32, w=64)
    with pytest.raises(InputError, match=r"item\[2\].*every image must be"):
        extract_features(encoder, mixed, tmp_path)
    with pytest.raises(InputError, match="empty dataset"):
        extract_features(encoder, [], tmp_path)
    with pytest.raises(InputError, match="uint8"):
        extract_features(encoder, [np.zeros((64, 64, 3), np.float32)], tmp_path)


def test_features_float16_cannot_hold_name_their_image(tmp_path, tiny):
    """Weights that overflow float16 (or give NaN) are an input problem naming the first image, not a traceback."""
    encoder = build_encoder(tiny["tiny-cnn"], weights="random")

    class Overflowing:
        mean, identity, feature_shapes = encoder.mean, encoder.identity, encoder.feature_shapes

        def __call__(self, x):
            taps = [t.clone() for t in encoder(x)]
            taps[-1][1] *= 1e6  # the second image's deepest features beyond ±65504
            return taps

    with pytest.raises(InputError, match="not finite in float16") as err:
        extract_features(Overflowing(), _images(n=3), tmp_path)
    assert err.value.path == "item[1]" and "cache_features: false" in str(err.value)


def test_dataset_fingerprint_sees_every_pixel():
    images = _images(n=3)
    base = dataset_fingerprint(images)
    assert dataset_fingerprint([im.copy() for im in images]) == base
    images[2][10, 10, 1] ^= 1
    assert dataset_fingerprint(images) != base
    assert dataset_fingerprint(images[:2]) != dataset_fingerprint(images)


def test_an_image_of_another_size_is_named_by_its_file(tmp_path):
    from types import SimpleNamespace

    from cellprobe.encoders import build_encoder

    class Images:
        """Two images of different sizes, as a folder of whole images can hold."""

        def __init__(self):
            self.images = [np.zeros((64, 64, 3), np.uint8), np.zeros((96, 64, 3), np.uint8)]

        def __len__(self):
            return 2

        def __getitem__(self, i):
            return SimpleNamespace(image=self.images[i])

        def sample_file(self, i):
            return f"data/images/img{i}.png"

    encoder = build_encoder("efficientnet-lite0", "random")
    with pytest.raises(InputError, match="every image") as err:
        extract_features(encoder, Images(), tmp_path)
    assert err.value.path == "data/images/img1.png"
