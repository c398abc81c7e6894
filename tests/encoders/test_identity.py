"""The encoder identity: one typed value for the run stamp, the checkpoint check and the feature-cache key."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cellprobe.encoders.cache import CacheKey
from cellprobe.encoders.identity import EncoderIdentity
from cellprobe.errors import InputError

IDENTITY = EncoderIdentity(name="vit-b16", family="vit", weights_digest="d" * 64, taps=(2, 5, 8, 11), fit="resize",
                           input_scale=1.0, tap_channels=(768,) * 4, tap_strides=(16.0,) * 4)


def test_round_trip_and_differences():
    data = IDENTITY.to_json()
    assert data["taps"] == [2, 5, 8, 11] and EncoderIdentity.from_json(data) == IDENTITY
    other = replace(IDENTITY, taps=(3, 5, 8, 11), weights_digest="e" * 64)
    assert [d.split("=")[0] for d in IDENTITY.differences(other)] == ["weights_digest", "taps"]
    assert IDENTITY.differences(IDENTITY) == []


@pytest.mark.parametrize("data", [None, [], {"name": "x"}, {**IDENTITY.to_json(), "extra": 1},
                                  {**IDENTITY.to_json(), "taps": ["a"]}])
def test_malformed_identity_is_an_input_error_naming_the_file(data):
    with pytest.raises(InputError, match=r"run\.json"):
        EncoderIdentity.from_json(data, "run.json")


def test_the_cache_key_is_keyed_on_the_identity():
    key = CacheKey(IDENTITY, (256, 256), "f" * 64, 10, 0)
    assert key.to_json()["encoder"] == "vit-b16" and key.to_json()["taps"] == [2, 5, 8, 11]
    assert CacheKey(replace(IDENTITY, fit="native"), (256, 256), "f" * 64, 10, 0).digest() != key.digest()
    # channels and strides follow from the other fields: they do not enter the key
    assert CacheKey(replace(IDENTITY, tap_channels=(1,) * 4), (256, 256), "f" * 64, 10, 0).digest() == key.digest()


def test_a_built_encoder_reports_its_identity():
    from cellprobe.encoders import build_encoder

    encoder = build_encoder("efficientnet-lite0", "random", seed=3)
    identity = encoder.identity
    assert identity.name == "efficientnet-lite0" and identity.weights_digest == encoder.weights_digest
    assert identity.tap_channels == tuple(encoder.tap_channels) and identity.taps == tuple(encoder.taps)
    assert build_encoder("efficientnet-lite0", "random", seed=4).identity.differences(identity)[0].startswith(
        "weights_digest")
