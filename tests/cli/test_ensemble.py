"""`cellprobe ensemble`: an ensemble folder through the CLI, tuned and evaluated; bad input → exit 2."""

from __future__ import annotations

import json

from tests.training.tiny import make_tiny_data, tiny_config


def test_ensemble_through_the_cli(cli, tmp_path):
    from cellprobe.training import train

    data = make_tiny_data(tmp_path / "data")
    runs = []
    for seed in (0, 1):
        cfg = tiny_config(data, tmp_path / f"s{seed}", epochs=1, cache_views=1, seed=seed,
                          cache_dir=str(tmp_path / f"cache{seed}"))
        cfg["data"]["split_seed"] = 0
        runs.append(train(cfg).path)
    ens = tmp_path / "ens"
    rc, out, err = cli("ensemble", *runs, "--out", ens)
    assert rc == 0, err
    assert "ensemble of 2 runs" in out
    assert [e["path"] for e in json.loads((ens / "run.json").read_text())["info"]["ensemble"]] == ["../s0", "../s1"]
    rc, _, err = cli("tune", ens)
    assert rc == 0, err
    rc, out, err = cli("evaluate", ens, "--data", data, "--format", "patches")
    assert rc == 0, err
    assert "PQ" in out and (ens / "metrics.json").is_file()
    rc, _, err = cli("ensemble", runs[0], "--out", tmp_path / "e2")
    assert rc == 2 and "at least two" in err and len(err.strip().splitlines()) == 1
    rc, _, err = cli("ensemble", runs[0], tmp_path / "nowhere", "--out", tmp_path / "e3")
    assert rc == 2 and "nowhere" in err and len(err.strip().splitlines()) == 1
    # the tenth probe: a link as --out was a NotADirectoryError traceback after every member was checked
    (tmp_path / "empty").mkdir()
    for link, target in (("elink", tmp_path / "empty"), ("gone", tmp_path / "missing")):
        (tmp_path / link).symlink_to(target)
        rc, _, err = cli("ensemble", *runs, "--out", tmp_path / link)
        assert rc == 2 and f"{link}: is a link" in err and len(err.strip().splitlines()) == 1, err
    rc, _, err = cli("ensemble", *runs, "--out", tmp_path / "gone" / "ens")
    assert rc == 2 and "which does not exist" in err and len(err.strip().splitlines()) == 1, err
