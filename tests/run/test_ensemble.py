"""Ensembles: a shared validation split across seeds, averaged maps, tune/evaluate on the ensemble folder, and
the refusals (other patches, unfinished or changed members, nested ensembles, a taken output)."""

from __future__ import annotations

import json
import os
import shutil
import stat

import numpy as np
import pytest
from tests.training.tiny import tiny_config

from cellprobe.data import open_dataset
from cellprobe.errors import InputError
from cellprobe.evaluation.evaluate import evaluate
from cellprobe.evaluation.tune import tune
from cellprobe.inference.segmenter import Segmenter
from cellprobe.run import run_folder as R
from cellprobe.run.ensemble import make_ensemble, members
from cellprobe.run.train_config import train_config
from cellprobe.training import train
from cellprobe.training.build import open_training_data


def _config(data, out, seed, split_seed=None, **changes):
    cfg = tiny_config(data, out, epochs=1, cache_views=1, seed=seed, **changes)
    cfg["data"]["split_seed"] = split_seed
    return cfg


def _validation_sources(cfg):
    td = open_training_data(train_config(cfg))
    return sorted({td.val.sources()[int(p)] for p in td.val_positions})


def test_split_seed_fixes_the_validation_images_across_seeds(tiny_data, tmp_path):
    by_seed = {s: _validation_sources(_config(tiny_data, tmp_path / "r", s)) for s in range(4)}
    assert len({tuple(v) for v in by_seed.values()}) > 1  # the run seed alone moves the validation images
    shared = {s: _validation_sources(_config(tiny_data, tmp_path / "r", s, split_seed=0)) for s in range(4)}
    assert all(v == by_seed[0] for v in shared.values())


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Two tiny runs that differ only in their seed, on the same validation images (random encoder weights:
    the seed draws them too, so each has its own encoder)."""
    from tests.training.tiny import make_tiny_data

    root = tmp_path_factory.mktemp("ensemble")
    data = make_tiny_data(root / "data")
    cache = root / "cache"
    a = train(_config(data, root / "a", 0, split_seed=0, cache_dir=str(cache))).path
    b = train(_config(data, root / "b", 1, split_seed=0, cache_dir=str(cache / "b"))).path
    return data, a, b


def test_ensemble_maps_are_the_members_mean(pair, tmp_path):
    data, a, b = pair
    ens = make_ensemble([a, b], tmp_path / "ens")
    seg = Segmenter(ens, device="cpu")
    assert len(seg.networks) == 2 and seg.networks[0].encoder is not seg.networks[1].encoder
    image = open_dataset(data, format="patches", split="test")[0].image
    got = seg.maps(image)
    each = [Segmenter(r, device="cpu").maps(image) for r in (a, b)]
    for key in ("semantic", "types", "distance"):
        np.testing.assert_allclose(got[key], (each[0][key] + each[1][key]) / 2, atol=1e-5)
    assert not np.allclose(each[0]["semantic"], each[1]["semantic"], atol=1e-3)  # the members do differ
    # tune (on the shared validation patches) and evaluate work on the ensemble folder like on any run
    params = tune(ens, grid={"fg_threshold": [0.4, 0.5]})
    assert (ens / R.POSTPROCESS).is_file() and Segmenter(ens, device="cpu").params == params
    result = evaluate(ens, data, "test", format="patches")
    assert result.summary["num_images"] == 4 and (ens / R.METRICS).is_file()
    # copied next to its members, the copy still finds them (paths are stored relative to the folder)
    copy = tmp_path / "ens-copy"
    shutil.copytree(ens, copy)
    assert [m.run.path.resolve() for m in members(R.Run.open(copy))] == [a.resolve(), b.resolve()]


def test_members_with_one_encoder_share_it_and_its_taps(pair, tmp_path):
    data, a, _ = pair
    c = train(_config(data, tmp_path / "c", 0, split_seed=0, lr=0.02, cache_dir=str(a.parent / "cache"))).path
    seg = Segmenter(make_ensemble([a, c], tmp_path / "ens"), device="cpu")
    assert seg.networks[0].encoder is seg.networks[1].encoder
    calls = []
    seg.networks[0].encoder.register_forward_hook(lambda *_: calls.append(1))
    image = open_dataset(data, format="patches", split="test")[0].image
    got = seg.maps(image)
    assert len(calls) == 1  # the frozen encoder ran once for both decoders
    each = [Segmenter(r, device="cpu").maps(image) for r in (a, c)]
    np.testing.assert_allclose(got["distance"], (each[0]["distance"] + each[1]["distance"]) / 2, atol=1e-5)


def test_refusals(pair, tmp_path):
    data, a, b = pair
    base = _validation_sources(_config(data, tmp_path / "x", 0))
    seed = next(s for s in range(1, 20) if _validation_sources(_config(data, tmp_path / "x", s)) != base)
    other = train(_config(data, tmp_path / "other", seed, cache_dir=str(a.parent / "cache"))).path  # its own split
    with pytest.raises(InputError, match=r"other patches .*\(split_seed \d+ vs 0\)"):  # the key that differs is named
        make_ensemble([a, other], tmp_path / "e1")
    (tmp_path / "killed").mkdir()  # the fifteenth probe: a killed command's lock file alone made it 'not empty'
    (tmp_path / "killed" / ".cellprobe.lock").touch()
    assert sorted(p.name for p in make_ensemble([a, b], tmp_path / "killed").iterdir()) == ["config.yaml", "run.json"]
    with pytest.raises(InputError, match="at least two"):
        make_ensemble([a], tmp_path / "e2")
    with pytest.raises(InputError, match="is inside the run folder"):
        make_ensemble([a, b], b / "ens")
    with pytest.raises(InputError, match="is inside the dataset folder"):  # 25th probe: tune then wrote into it
        make_ensemble([a, b], data / "ens")
    assert not (data / "ens").exists()
    with pytest.raises(InputError, match="listed twice") as err:
        make_ensemble([a, a], tmp_path / "e3")
    assert str(a) in str(err.value)
    copied = tmp_path / "copied"
    shutil.copytree(a, copied)
    with pytest.raises(InputError, match="byte-identical to") as err:
        make_ensemble([a, copied], tmp_path / "e3b")
    assert str(copied) in str(err.value)
    (tmp_path / "e4").mkdir()  # an empty folder may be the output
    old_mask = os.umask(0o022)
    try:
        ens = make_ensemble([a, b], tmp_path / "e4")
    finally:
        os.umask(old_mask)
    assert stat.S_IMODE(ens.stat().st_mode) == 0o755  # the umask's mode, not mkdtemp's 0700
    assert not list(tmp_path.glob(".e4.*"))  # written beside it and renamed into place
    with pytest.raises(InputError, match="not an empty folder"):
        make_ensemble([a, b], ens)
    with pytest.raises(InputError, match="ensemble itself"):
        make_ensemble([ens, a], tmp_path / "e5")
    with pytest.raises(InputError, match="no checkpoint of its own"):
        R.Run.open(ens).checkpoint()

    unfinished = tmp_path / "unfinished"
    shutil.copytree(b, unfinished)
    stamp = json.loads((unfinished / R.STAMP).read_text())
    (unfinished / R.STAMP).write_text(json.dumps({**stamp, "status": "training"}))
    with pytest.raises(InputError, match="not finished"):
        make_ensemble([a, unfinished], tmp_path / "e6")

    # a member whose checkpoint cannot be loaded (empty, pickled code, another network) is refused now, not at
    # the ensemble's first use, and no ensemble folder is left
    import torch

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'PWNED'}",))

    for name, write in {"empty": lambda p: p.write_bytes(b""),
                        "pickle": lambda p: torch.save({"state_dict": {}, "x": Payload()}, p),
                        "foreign": lambda p: torch.save({**torch.load(b / R.BEST, weights_only=True),
                                                         "state_dict": {"w": torch.zeros(1)}}, p)}.items():
        broken = tmp_path / f"broken-{name}"
        shutil.copytree(b, broken)
        write(broken / R.LAST)
        with pytest.raises(InputError) as err:
            make_ensemble([a, broken], tmp_path / f"e-{name}")
        assert str(broken / R.LAST) in str(err.value) and not (tmp_path / f"e-{name}").exists(), name
    assert not (tmp_path / "PWNED").exists()

    changed = tmp_path / "changed"
    shutil.copytree(b, changed)
    ens2 = make_ensemble([a, changed], tmp_path / "e7")
    shutil.copy(a / R.BEST, changed / R.BEST)  # the member was overwritten after the ensemble was made
    with pytest.raises(InputError, match="changed since the ensemble was made"):
        Segmenter(ens2, device="cpu")
    shutil.rmtree(changed)
    with pytest.raises(InputError, match=r"member .* is missing"):
        Segmenter(ens2, device="cpu")


@pytest.mark.parametrize("damage", ["no checkpoints", "bad digest", "same member twice", "other classes"])
def test_an_ensembles_member_list_is_read_as_written(pair, tmp_path, damage):
    """The fourteenth probe: a member entry without checkpoint digests (so a swapped checkpoint was used
    silently), the same member twice, and a member of other classes than the ensemble were accepted on use."""
    _, a, b = pair
    ens = make_ensemble([a, b], tmp_path / "ens")
    stamp = json.loads((ens / R.STAMP).read_text())
    entries = stamp["info"][R.ENSEMBLE_KEY]
    if damage == "no checkpoints":
        del entries[1]["checkpoints"]
    elif damage == "bad digest":
        entries[1]["checkpoints"]["best"] = "0"
    elif damage == "same member twice":
        entries[1] = entries[0]
    else:
        stamp["class_names"] = [*stamp["class_names"][:-1], "other"]
    (ens / R.STAMP).write_text(json.dumps(stamp))
    problem = {"no checkpoints": "is not a path with its checkpoints' sha256", "bad digest": "is not a path with",
               "same member twice": "lists the network of", "other classes": "has class_names"}[damage]
    with pytest.raises(InputError, match=problem) as err:
        members(R.Run.open(ens))
    assert err.value.path == str(ens / R.STAMP)


@pytest.mark.parametrize("key, value", [("val_split", "train"), ("val_fraction", 0.5), ("split_seed", 99)])
def test_an_ensembles_data_section_must_be_its_members(pair, tmp_path, key, value):
    """The fifteenth probe: the ensemble's config.yaml with data.val_split edited to the training split was
    tuned on the members' training patches; make_ensemble checks the members agree, their use now checks the
    ensemble's own data section too."""
    import yaml

    _, a, b = pair
    ens = make_ensemble([a, b], tmp_path / "ens")
    config = yaml.safe_load((ens / R.CONFIG).read_text())
    if key == "val_split":  # another split name than the training one (one would be refused as such)
        config["data"].update(val_split="val", val_fraction=0.2)
    else:
        config["data"][key] = value
    (ens / R.CONFIG).write_text(yaml.safe_dump(config))
    with pytest.raises(InputError, match="data section differs from its member") as err:
        members(R.Run.open(ens))
    assert err.value.path == str(ens / R.CONFIG)


def _format_2_ensemble(pair, root):
    """Copies of the pair and an ensemble of them, as run format 2 wrote them (members' checkpoints without
    µm/px, the ensemble recording those checkpoints' digests)."""
    from tests.run.earlier_formats import to_format_2

    from cellprobe.hashing import file_sha256

    _, a, b = pair
    for name, run in (("a", a), ("b", b)):
        shutil.copytree(run, root / name, ignore=shutil.ignore_patterns("feature_cache"))
    ens = make_ensemble([root / "a", root / "b"], root / "e")
    for name in ("a", "b"):
        to_format_2(root / name, kept=("data_sha256", "started"))
    stamp = json.loads((ens / R.STAMP).read_text())
    for entry in stamp["info"]["ensemble"]:
        entry["checkpoints"] = {w: file_sha256(ens / entry["path"] / f"{w}.ckpt") for w in ("best", "last")}
    (ens / R.STAMP).write_text(json.dumps({**{k: v for k, v in stamp.items() if k not in ("data_sha256", "started")},
                                           "run_format": 2}))
    return ens


@pytest.mark.parametrize("order", ["ensemble", "members first"])
def test_an_ensemble_and_its_members_upgrade_together(pair, tmp_path, cli, order):
    """The nineteenth probe: upgrading a format-2 ensemble and its members left the ensemble unusable (the
    members' upgrade rewrote their checkpoints, whose digests the ensemble records). The ensemble's upgrade
    upgrades its members and follows what their upgrade rewrote; a checkpoint changed otherwise is refused."""
    ens = _format_2_ensemble(pair, tmp_path / "ok")
    args = (tmp_path / "ok" / "a", tmp_path / "ok" / "b", ens) if order == "members first" else (ens,)
    rc, out, err = cli("upgrade", *args)
    assert rc == 0 and "as its upgrade rewrote it" in out, err
    assert len(members(R.Run.open(ens))) == 2 and Segmenter(ens, device="cpu").networks

    # the twentieth probe: a missing member was found after the other was upgraded; itself as a member recursed
    ens = _format_2_ensemble(pair, tmp_path / "missing")
    shutil.rmtree(tmp_path / "missing" / "b")
    kept_a = (tmp_path / "missing" / "a" / R.STAMP).read_text()
    rc, _, err = cli("upgrade", ens)
    assert rc == 2 and "ensemble member ../b is missing" in err and err.count("\n") == 1, err
    assert (tmp_path / "missing" / "a" / R.STAMP).read_text() == kept_a
    stamp = json.loads((ens / R.STAMP).read_text())
    stamp["info"]["ensemble"][0]["path"] = "."
    (ens / R.STAMP).write_text(json.dumps(stamp))
    rc, _, err = cli("upgrade", ens)
    assert rc == 2 and "is an ensemble (or this one)" in err and err.count("\n") == 1, err

    # the twenty-first probe: the ensemble's own bad stamp, or a member's checkpoint gone, was found after its
    # members were upgraded
    for damage in ("mpp", "gone"):
        ens = _format_2_ensemble(pair, tmp_path / damage)
        if damage == "mpp":
            (ens / R.STAMP).write_text(json.dumps({**json.loads((ens / R.STAMP).read_text()), "mpp": -1}))
        else:
            (tmp_path / damage / "b" / R.LAST).unlink()
        kept_a = (tmp_path / damage / "a" / R.BEST).read_bytes()
        rc, _, err = cli("upgrade", ens)
        assert rc == 2 and ("mpp -1" in err if damage == "mpp" else "last.ckpt: is gone" in err), err
        assert (tmp_path / damage / "a" / R.BEST).read_bytes() == kept_a

    # the twenty-second probe: a member's checkpoint replaced, or a member's own bad stamp, was found after the
    # members before it were upgraded
    for damage in ("changed", "replaced", "member mpp"):
        ens = _format_2_ensemble(pair, tmp_path / damage)
        root = tmp_path / damage
        kept = {p: p.read_bytes() for p in (ens / R.STAMP, *(root / m / f for m in "ab"
                                                             for f in (R.STAMP, R.BEST, R.LAST)))}
        last = root / "b" / R.LAST
        if damage == "changed":
            last.write_bytes(last.read_bytes() + b"\0")  # changed by hand before the upgrade
        elif damage == "replaced":
            last.write_bytes((root / "b" / R.BEST).read_bytes())
        else:
            (root / "b" / R.STAMP).write_text(json.dumps({**json.loads((root / "b" / R.STAMP).read_text()),
                                                         "mpp": -1}))
        kept.update({p: p.read_bytes() for p in (last, root / "b" / R.STAMP)})
        rc, _, err = cli("upgrade", ens)
        assert rc == 2 and err.count("\n") == 1, err
        assert (f"{R.LAST}: checkpoint changed since the ensemble was made" in err if damage != "member mpp"
                else f"b/{R.STAMP}: records mpp -1" in err), err
        assert {p: p.read_bytes() for p in kept} == kept  # no member was rewritten
        assert not (root / "a" / ".cellprobe-upgrade.json").exists()

    # a member listed twice (made by hand) is named, not reported as busy
    ens = _format_2_ensemble(pair, tmp_path / "twice")
    stamp = json.loads((ens / R.STAMP).read_text())
    stamp["info"]["ensemble"][1] = stamp["info"]["ensemble"][0]
    (ens / R.STAMP).write_text(json.dumps(stamp))
    rc, _, err = cli("upgrade", ens)
    assert rc == 2 and "ensemble member ../a is listed twice" in err, err


@pytest.mark.parametrize("encoder", [None, {"name": "vit-fake"}])
def test_an_ensembles_encoder_identity_must_be_its_first_members(pair, tmp_path, encoder):
    """The nineteenth probe: an ensemble's run.json encoder edited to another name and digest passed, and a
    slide of it recorded the false identity."""
    _, a, b = pair
    ens = make_ensemble([a, b], tmp_path / "e")
    stamp = json.loads((ens / R.STAMP).read_text())
    stamp["encoder"] = None if encoder is None else {**stamp["encoder"], **encoder}
    (ens / R.STAMP).write_text(json.dumps(stamp))
    with pytest.raises(InputError, match="encoder identity is not its first member's") as err:
        members(R.Run.open(ens))
    assert err.value.path == str(ens / R.STAMP)


def test_an_ensemble_scored_on_its_members_training_patches_is_said(pair, tmp_path):
    """The twenty-first probe: evaluate of an ensemble on the split its members trained on said nothing."""
    from cellprobe.data.validate import DataWarning

    data, a, b = pair
    ens = make_ensemble([a, b], tmp_path / "e")
    with pytest.warns(DataWarning, match="overstate it"):
        evaluate(ens, data, "train", format="patches", out=tmp_path / "ev")
    assert json.loads((tmp_path / "ev" / R.METRICS).read_text())["evaluation"]["on_training_patches"] is True


def test_training_into_an_ensemble_folder_is_refused(pair, tmp_path):
    """The 31st probe: train --out ENS with its first member's config found the ensemble 'trained' (its config is
    that member's) and exited 0 without training; the user then tuned and scored the ensemble as the new run."""
    data, a, b = pair
    ens = make_ensemble([a, b], tmp_path / "ens")
    before = {p.name: p.read_bytes() for p in ens.iterdir() if p.is_file()}
    cfg = train_config(_config(data, ens, 0, split_seed=0, cache_dir=str(tmp_path / "cache")))
    with pytest.raises(InputError, match="holds an ensemble of other runs, not a run to train") as err:
        train(cfg)
    assert err.value.path == str(ens)
    assert {p.name: p.read_bytes() for p in ens.iterdir() if p.is_file()} == before
