"""The options shared by several commands: one definition (flag, help, limits), one KEY=VALUE reader."""

from __future__ import annotations

import importlib
import inspect
import typing

import pytest

from cellprobe.cli import options
from cellprobe.cli.app import COMMAND_MODULES, app
from cellprobe.errors import InputError


def test_key_values_are_read_as_yaml():
    assert options.parse_sets(["epochs=3", "seeds=[0, 1]", "trainer.progress=false", " name = x"]) == {
        "epochs": 3, "seeds": [0, 1], "trainer.progress": False, "name": "x"}
    assert options.with_sets(["epochs=3"], {"epochs": 1, "output": "o"}) == {"epochs": 3, "output": "o"}


@pytest.mark.parametrize("item", ["epochs", "=3", "x=[1,", "trainer={[a]: 1}"])
def test_bad_pairs_are_one_input_error_naming_the_flag(item):
    with pytest.raises(InputError, match="--option"):
        options.parse_key_values([item], "--option")


@pytest.mark.parametrize(("items", "problem"), [
    (["epochs=1", "epochs=2"], "--set epochs: given twice"),
    (["trainer.threads=1", "trainer={threads: 2}"], "--set trainer: overlaps --set trainer.threads"),
    (["trainer={threads: 2}", "trainer.threads=1"], "--set trainer.threads: overlaps --set trainer"),
])
def test_a_key_given_twice_on_the_command_line_is_refused(items, problem):
    """As a YAML file's key given twice: the last one silently won."""
    with pytest.raises(InputError, match=problem):
        options.parse_sets(items)


def test_a_set_given_twice_is_one_line_before_anything_is_made(cli, tmp_path):
    rc, _, err = cli("train", "--encoder", "efficientnet-lite0", "--data", tmp_path, "--out", tmp_path / "run",
                     "--set", "epochs=1", "--set", "epochs=2")
    assert rc == 2 and "--set epochs: given twice" in err and err.count("\n") == 1 and not (tmp_path / "run").exists()
    rc, _, err = cli("data", "check", tmp_path, "-o", "seed=1", "-o", "seed=2")
    assert rc == 2 and "--option seed: given twice" in err and err.count("\n") == 1, err


def _declared(flag: str) -> list[tuple[str, object]]:
    """(command, annotation) of every command parameter declaring ``flag``."""
    found = []
    for command in app.registered_commands:
        hints = typing.get_type_hints(command.callback, include_extras=True)
        for name, param in inspect.signature(command.callback).parameters.items():
            hint = hints[name]
            infos = [*getattr(hint, "__metadata__", ()), param.default]
            # in Annotated, typer.Option's first argument (its default otherwise) is the flag
            if any(flag in (*(getattr(i, "param_decls", None) or ()), getattr(i, "default", None)) for i in infos):
                found.append((command.name, hint))
    return found


@pytest.mark.parametrize("flag, alias, commands", [
    ("--set", options.Sets, {"bench", "demo", "train", "refit", "slide"}),
    ("--tta", options.TTA, {"tune", "evaluate", "predict", "slide"}),
    ("--device", options.Device, {"tune", "evaluate", "predict", "slide"}),
    ("--checkpoint", options.Checkpoint, {"tune", "evaluate", "predict", "slide"}),
    ("--cluster", options.Cluster, {"bench", "demo", "slide"}),
    ("--scheduler", options.Scheduler, {"bench", "demo", "slide"}),
])
def test_commands_use_the_shared_definition(flag, alias, commands):
    declared = _declared(flag)
    assert {name for name, _ in declared} == commands
    assert all(hint == alias for _, hint in declared)


def test_commands_do_not_import_each_other():
    for name in COMMAND_MODULES:
        source = inspect.getsource(importlib.import_module(f"cellprobe.cli.{name}_cmd"))
        assert "_cmd import" not in source, name


def test_tta_limits(cli):
    rc, _, err = cli("predict", ".", "x.png", "--out", "o", "--tta", "0")
    assert rc == 2 and "--tta" in err


@pytest.mark.parametrize(("args", "where"), [
    (("evaluate", "run", "--out"), "cellprobe evaluate"),  # an option missing its value: the parser's own error
    (("data", "download", "monuseg", "--root", "d", "--retries", "1.5"), "cellprobe data download"),
    (("data", "check", "d", "--bogus"), "cellprobe data check"),
    (("data", "bogus"), "cellprobe data"),
    (("bogus",), "cellprobe"),
])
def test_a_usage_error_names_the_command_it_is_about(cli, args, where):
    """Twenty-fifth probe siblings: usage errors named 'cellprobe download' (no such command) or the top command
    for an option of evaluate missing its value, and sent the user to the wrong --help."""
    rc, _, err = cli(*args)
    assert rc == 2 and err.count("\n") == 1, err
    assert err.startswith(f"cellprobe: error: {where}: ") and err.rstrip().endswith(f"(see {where} --help)"), err


def test_a_group_without_its_command_shows_its_help_and_no_empty_error(cli):
    rc, out, err = cli("data")
    assert rc == 2 and "download" in out and err == "", (out, err)


@pytest.mark.parametrize("error", [MemoryError(), MemoryError("Unable to allocate 2.3 TiB for an array"),
                                   "torch.OutOfMemoryError"])
def test_memory_a_setting_asks_for_is_one_line(monkeypatch, capsys, error):
    """The 28th probe's class: a batch or tile the machine cannot hold ended in a MemoryError traceback."""
    from cellprobe.cli import app as app_module

    if error == "torch.OutOfMemoryError":  # an accelerator's (a RuntimeError)
        import torch

        error = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB\nmore lines")

    def exhausted(*args, **kwargs):
        raise error

    monkeypatch.setattr("cellprobe.encoders.registry.list_encoders", exhausted)  # inside a command
    assert app_module.main(["encoders"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cellprobe: error: out of memory (") and "lower the batch size" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("args", [
    ("predict", "RUN", "x.png", "--out", "OUT", "--tile", "3_2"),  # Python's int() read 32
    ("predict", "RUN", "x.png", "--out", "OUT", "--tile=32.0"),
    ("predict", "RUN", "x.png", "--out", "OUT", "--tta", "\u0668"),  # an Arabic-Indic 8
    ("score", "--format", "conic", "--true", "T.npy", "--pred", "P.npy", "--r2-crop", "2_24"),
    ("score", "--format", "conic", "--true", "T.npy", "--pred", "P.npy", "--radius", "1_2"),
    ("score", "--format", "conic", "--true", "T.npy", "--pred", "P.npy", "--workers", "1.0"),
    ("slide", "RUN", "s.tif", "--out", "OUT", "--mpp", "0.2_5"),
    ("data", "download", "x", "--root", "OUT", "--retries", "1_0"),
])
def test_number_options_are_read_as_written_not_as_python_would(cli, tmp_path, args):
    """The 30th probe: Click reads option numbers with int() and float(), which take '3_2' as 32 and '1.0' as an
    integer; config values (YAML 1.2) refuse them, and so do the options now, naming the option."""
    args = [str(tmp_path / a) if a in ("RUN", "OUT") else a for a in args]
    flag = next(a.split("=")[0] for a in args if a.startswith("--") and a.split("=")[0] in (
        "--tile", "--tta", "--r2-crop", "--radius", "--workers", "--mpp", "--retries"))
    rc, _, err = cli(*args)
    where = "cellprobe data download" if args[0] == "data" else f"cellprobe {args[0]}"
    assert rc == 2 and err.startswith(f"cellprobe: error: {where}: {flag}: ") and " is not a" in err, err
    assert err.rstrip().endswith(f"(see {where} --help)") and err.count("\n") == 1
    assert not (tmp_path / "OUT").exists()


def test_plain_numbers_signs_and_exponents_still_read():
    from cellprobe.cli.app import _strict_numbers

    _strict_numbers(["predict", "r", "x.png", "--tile", "256", "--overlap", "+64"])
    _strict_numbers(["score", "--radius", "1.5e1", "--mpp", ".25", "--r2-crop", "224", "--workers", "0"])
    _strict_numbers(["score", "--radius", "nan"])  # refused by the option's own check, which says why
    _strict_numbers(["data", "download", "x", "--retries", "-1"])  # likewise
