"""`cellprobe train`: a tiny run through the CLI, config file + --set overrides; bad input → exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from tests.training.tiny import make_tiny_data, tiny_config


def test_train_from_config_with_overrides(cli, tmp_path):
    data = make_tiny_data(tmp_path / "data")
    cfg = tiny_config(data, tmp_path / "ignored", epochs=5)
    for key in ("output", "encoder", "data"):
        cfg.pop(key)
    cfg_path = tmp_path / "train.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    rc, out, err = cli("train", "--encoder", "efficientnet-lite0", "--weights", "random", "--data", data,
                       "--format", "patches", "--out", run, "--config", cfg_path, "--set", "epochs=1",
                       "--set", "data.val_fraction=0.25", "--set", "cache_views=1")
    assert rc == 0, err
    assert f"run: {run}" in out
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["epochs"] == 1 and resolved["encoder"]["weights"] == "random"
    assert resolved["decoder"]["stem_channels"] == [4, 4]
    assert json.loads((run / "run.json").read_text())["status"] == "finished"
    # the same command again: nothing to do
    rc, out, _ = cli("train", "--encoder", "efficientnet-lite0", "--weights", "random", "--data", data,
                     "--format", "patches", "--out", run, "--config", cfg_path, "--set", "epochs=1",
                     "--set", "data.val_fraction=0.25", "--set", "cache_views=1")
    assert rc == 0


def test_a_relative_data_path_is_stored_absolute(cli, tmp_path, monkeypatch):
    """tune/evaluate/refit then read the run's data from any working directory, never another folder of that
    name; a run whose config.yaml still spells it relative (made before) is the same run."""
    data = make_tiny_data(tmp_path / "data")
    cfg = tiny_config(data, tmp_path / "ignored", epochs=1, cache_views=1)
    for key in ("output", "encoder", "data"):
        cfg.pop(key)
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.chdir(tmp_path)
    command = ("train", "-e", "efficientnet-lite0", "--weights", "random", "-d", "data", "--format", "patches",
               "-o", "run", "-c", "train.yaml", "--set", "data.val_fraction=0.25")
    rc, _, err = cli(*command)
    assert rc == 0, err
    stored = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert stored["data"]["path"] == str(data)
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump({**stored, "data": {**stored["data"],
                                                                                   "path": "data"}}))
    rc, _, err = cli(*command)
    assert rc == 0, err
    # the sixteenth probe: the same data through a link (or with '..') was 'a different config'
    (tmp_path / "datalink").symlink_to(data)
    for spelling in ("datalink", "data/../data"):
        rc, _, err = cli(*(spelling if part == "data" else part for part in command))
        assert rc == 0, err


def test_bad_input_is_one_line_and_exit_2(cli, tmp_path):
    rc, _, err = cli("train", "--encoder", "efficientnet-lite0", "--data", tmp_path / "nowhere", "--out",
                     tmp_path / "r", "--set", "epohcs=3")
    assert rc == 2 and "epohcs" in err and len(err.strip().splitlines()) == 1
    rc, _, err = cli("train", "--encoder", "no-such-encoder", "--data", tmp_path, "--out", tmp_path / "r2",
                     "--set", "trainer.progress=false")
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("cellprobe: error: --encoder: unknown encoder 'no-such-encoder'"), err
    for key in ("output=elsewhere", "encoder.name=resnet50", "data.path=other", "encoder={name: x}"):
        rc, _, err = cli("train", "--encoder", "efficientnet-lite0", "--data", tmp_path, "--out", tmp_path / "r3",
                         "--set", key)
        assert rc == 2 and "conflicts with the command's own option" in err and err.count("\n") == 1, err
    assert not (tmp_path / "r3").exists() and not (tmp_path / "elsewhere").exists()


def test_a_run_ended_by_its_time_budget_says_so(cli, tmp_path):
    """The sixteenth probe: a run stopped by trainer.max_minutes printed only 'run: X'; it is said."""
    data = make_tiny_data(tmp_path / "data")
    rc, out, err = cli("train", "--encoder", "efficientnet-lite0", "--weights", "random", "--data", data,
                       "--format", "patches", "--out", tmp_path / "run", "--set", "epochs=3",
                       "--set", "trainer.max_minutes=0.0001", "--set", "trainer.progress=false")
    assert rc == 0 and "warning: trainer.max_minutes ended training after" in err and "of 3 epochs" in err, err
    assert f"run: {tmp_path / 'run'}" in out


def test_refit_through_the_cli(cli, tmp_path):
    from cellprobe.training import train

    data = make_tiny_data(tmp_path / "data")
    ref = train(tiny_config(data, tmp_path / "ref", epochs=1, cache_views=1)).path
    run = tmp_path / "refit"
    # the fifteenth probe: an untuned reference was refitted with nothing to take over, unsaid
    rc, _, err = cli("refit", ref, "--out", run, "--set", "trainer.progress=false")
    assert rc == 2 and f"{ref / 'postprocess.json'}: no such file: the reference is untuned" in err, err
    assert len(err.strip().splitlines()) == 1 and not run.exists()
    from cellprobe.postprocess import PostprocessParams

    (ref / "postprocess.json").write_text(PostprocessParams().model_dump_json())
    rc, out, err = cli("refit", ref, "--out", run, "--set", "trainer.progress=false")
    assert rc == 0, err
    assert f"run: {run}" in out
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["val_fraction"] == 0.0
    rc, _, err = cli("refit", tmp_path / "nowhere", "--out", tmp_path / "r2")
    assert rc == 2 and "nowhere" in err and len(err.strip().splitlines()) == 1
    # a run folder holds one run: refit or train into a folder inside one is refused, nothing made
    for args in (("refit", ref, "--out", ref / "sub"),
                 ("train", "--encoder", "efficientnet-lite0", "--weights", "random", "--data", data,
                  "--out", run / "logs" / "inner", "--set", "epochs=1")):
        rc, _, err = cli(*args)
        assert rc == 2 and "is inside the run folder" in err and len(err.strip().splitlines()) == 1, err
        assert not Path(args[args.index("--out") + 1]).exists()
    rc, _, err = cli("tune", run)
    assert rc == 2 and "no validation patches" in err and len(err.strip().splitlines()) == 1


def test_config_problems_name_where_the_key_was_given(cli, tmp_path):
    """A bad --set value names --set, not the config file; a key only training can check (class weights
    against the data's classes, taps against the encoder) names the config file, or the command line."""
    data = make_tiny_data(tmp_path / "data")
    cfg = tiny_config(data, tmp_path / "ignored", epochs=1)
    for key in ("output", "encoder", "data"):
        cfg.pop(key)
    cfg_path = tmp_path / "train.yaml"
    cfg_path.write_text(yaml.safe_dump({**cfg, "loss": {"class_weights": [1.0, 1.0]}}))
    base = ("train", "--encoder", "efficientnet-lite0", "--weights", "random", "--data", data, "--format", "patches")
    rc, _, err = cli(*base, "--out", tmp_path / "r1", "--config", cfg_path, "--set", "epochs=x")
    assert rc == 2 and err.startswith("cellprobe: error: --set epochs: config key 'epochs'"), err
    rc, _, err = cli(*base, "--out", tmp_path / "r2", "--config", cfg_path)
    assert rc == 2 and str(cfg_path) in err and "config key 'loss.class_weights': 2 values; needs 3" in err, err
    rc, _, err = cli(*base, "--out", tmp_path / "r3", "--set", "encoder.taps=[3, 1]")
    assert rc == 2 and err.startswith("cellprobe: error: --set encoder.taps: config key 'encoder.taps'"), err
    assert err.count("\n") == 1


def test_fourth_probe_config_and_command_line_gaps(cli, tmp_path):
    """A finished run found under another spelling of its folder is the same run; list items and YAML 1.1
    booleans in --set are refused, not guessed; usage errors are one line."""
    data = make_tiny_data(tmp_path / "data")
    base = ("train", "--encoder", "efficientnet-lite0", "--weights", "random", "--data", data, "--format", "patches",
            "--set", "epochs=1", "--set", "cache_views=1", "--set", "data.val_fraction=0.25",
            "--set", "trainer.progress=false")
    rc, _, err = cli(*base, "--out", tmp_path / "run")
    assert rc == 0, err
    (tmp_path / "link").symlink_to(tmp_path / "run")
    for spelling in (f"{tmp_path / 'run'}/", tmp_path / "link", tmp_path / "data" / ".." / "run"):
        rc, out, err = cli(*base, "--out", spelling)
        assert rc == 0 and "run:" in out, err
    rc, _, err = cli(*base, "--out", tmp_path / "r2", "--set", "decoder.decoder_channels.0=8")
    assert rc == 2 and "list items cannot be set one by one" in err and err.count("\n") == 1, err
    rc, _, err = cli(*base, "--out", tmp_path / "r3", "--set", "cache_features=yes")
    assert rc == 2 and "--set cache_features" in err and "valid boolean" in err, err
    rc, _, err = cli("tune", tmp_path / "run", "--tta", "0")
    assert rc == 2 and err.count("\n") == 1 and err.startswith("cellprobe: error: cellprobe tune:"), err
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists()


def test_a_relative_split_file_is_stored_absolute(cli, tmp_path, monkeypatch):
    """Like --data: a split file given relative is the file of the directory train ran in, whatever directory
    tune or refit later run in (the config reaches train() with it absolute)."""
    from types import SimpleNamespace

    import cellprobe.training.fit as fit

    given = []
    monkeypatch.setattr(fit, "train", lambda cfg: given.append(cfg) or SimpleNamespace(
        finished=True, path="r", stamp=SimpleNamespace(info={})))
    monkeypatch.chdir(tmp_path)
    rc, _, err = cli("train", "-e", "efficientnet-lite0", "-d", "conic", "--format", "conic", "-o", "run",
                     "--set", "data.options.split_file=splits/folds.csv")
    assert rc == 0, err
    assert given[0].data.options["split_file"] == str(tmp_path / "splits" / "folds.csv")


def test_an_out_through_a_link_to_nothing_is_one_line(cli, tmp_path):
    """The tenth probe: 'cannot use this output folder (File exists)' named neither the link nor its target."""
    from tests.training.tiny import make_tiny_data

    data = make_tiny_data(tmp_path / "data")
    (tmp_path / "gone").symlink_to(tmp_path / "missing")
    rc, _, err = cli("train", "--encoder", "efficientnet-lite0", "--weights", "random", "--data", data, "--out",
                     tmp_path / "gone", "--set", "trainer.progress=false")
    assert rc == 2 and err.count("\n") == 1 and "gone: is a link to" in err and "missing" in err, err
    assert not (tmp_path / "missing").exists()


def test_drawn_validation_settings_beside_a_val_split_are_refused(cli, tmp_path):
    """The thirteenth probe's bench finding, for train: data.val_fraction / data.split_seed with a
    data.val_split would change nothing."""
    data = make_tiny_data(tmp_path / "data")
    for key, value in (("data.val_fraction", "0.3"), ("data.split_seed", "3")):
        rc, _, err = cli("train", "--encoder", "efficientnet-lite0", "--weights", "random", "--data", data,
                         "--format", "patches", "--out", tmp_path / "run", "--set", "data.val_split=test",
                         "--set", f"{key}={value}")
        assert rc == 2 and f"config key '{key}': applies only without data.val_split" in err, err
        assert err.count("\n") == 1 and not (tmp_path / "run").exists()


def test_schedule_and_stopping_settings_this_run_would_not_use_are_refused(cli, tmp_path):
    """The fourteenth probe: plateau.* beside lr_steps, and early_stopping / selection.monitor in a run without
    validation, were accepted and ignored."""
    data = make_tiny_data(tmp_path / "data")
    base = ("train", "--encoder", "efficientnet-lite0", "--weights", "random", "--data", data, "--format", "patches",
            "--out", tmp_path / "run")
    for sets, key in ((("lr_steps={0: 0.001}", "lr=0.001", "plateau.patience=5"), "plateau.patience"),
                      (("data.val_fraction=0", "lr_steps={0: 0.001}", "lr=0.001", "early_stopping.patience=3"),
                       "early_stopping.patience"),
                      (("data.val_fraction=0", "lr_steps={0: 0.001}", "lr=0.001", "selection.monitor=val_pq"),
                       "selection.monitor")):
        rc, _, err = cli(*base, *(x for s in sets for x in ("--set", s)))
        assert rc == 2 and f"config key '{key}': applies only" in err and err.count("\n") == 1, err
        assert not (tmp_path / "run").exists()
    # the fifteenth probe: a feature cache folder for online training, and refit's own key, changed nothing
    for sets, shown in ((("cache_features=false", f"cache_dir={tmp_path / 'fc'}"),
                         "config key 'cache_dir': applies only with cache_features: true"),
                        ((f"refit_of={tmp_path}",), "config key 'refit_of': is written by `cellprobe refit`")):
        rc, _, err = cli(*base, *(x for s in sets for x in ("--set", s)))
        assert rc == 2 and shown in err and err.count("\n") == 1, err
        assert not (tmp_path / "run").exists() and not (tmp_path / "fc").exists()


@pytest.mark.parametrize(("given", "where", "problem"), [
    (("--set", "refit_of=run"), "--set refit_of", "config key 'refit_of': is written by `cellprobe refit`"),
    ({"refit_of": "run"}, "train.yaml", "config key 'refit_of': is written by `cellprobe refit`"),
    ({"data": {"options": {"foo": 1}}}, "train.yaml", "config key 'data.options.foo': Extra inputs"),
    (("--set", "data.options.foo=1"), "--set data.options.foo", "config key 'data.options.foo': Extra inputs"),
    (("--set", "data.options.mpp=abc"), "--set data.options.mpp", "config key 'data.options.mpp': Input should"),
])
def test_a_refused_config_key_is_named_where_it_was_given(cli, tmp_path, given, where, problem):
    """Twenty-sixth probe: refit_of named no file nor --set, and an unknown or ill-typed reader option of the
    config was named at the dataset folder as 'config key foo', not where the config gave data.options.foo."""
    data = make_tiny_data(tmp_path / "data")
    args = ["train", "-e", "efficientnet-lite0", "--weights", "random", "-d", data, "-o", tmp_path / "run"]
    if isinstance(given, dict):
        (tmp_path / "train.yaml").write_text(yaml.safe_dump(given))
        args += ["-c", tmp_path / "train.yaml"]
        where = str(tmp_path / where)
    else:
        args += list(given)
    rc, _, err = cli(*args)
    assert rc == 2 and err.startswith(f"cellprobe: error: {where}: {problem}") and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


def test_a_reader_option_is_named_as_one_with_the_formats_options(cli, tmp_path):
    data = make_tiny_data(tmp_path / "data")
    rc, _, err = cli("data", "check", data, "--format", "patches", "-o", "foo=1")
    assert rc == 2 and f"{data}: reader option 'foo': Extra inputs are not permitted (this format's options: " in err
