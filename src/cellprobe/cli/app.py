"""The ``cellprobe`` command.

Each command lives in its own module with a ``register(app)`` function; heavy imports (torch, timm) happen
inside the command bodies so that ``cellprobe --help`` and ``cellprobe score`` start fast.
Bad input (:class:`cellprobe.errors.InputError`) becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import errno
import importlib
import re
import sys
import unicodedata

import typer

from cellprobe import __version__
from cellprobe.errors import InputError

app = typer.Typer(
    name="cellprobe",
    help="Benchmark frozen image encoders for cell instance segmentation and classification.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# One entry per command (module cellprobe.cli.<name>_cmd); each module defines register(app).
COMMAND_MODULES: tuple[str, ...] = (
    "score",
    "bench",
    "report",
    "demo",
    "encoders",
    "data",
    "train",
    "refit",
    "ensemble",
    "tune",
    "evaluate",
    "predict",
    "slide",
    "upgrade",
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"cellprobe {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """cellprobe: frozen encoders, multi-level embeddings, one decoder, official metrics."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"cellprobe.cli.{_name}_cmd").register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, mapping bad input to exit status 2 with one line, no traceback; cellprobe's own
    warnings are one line each too."""
    from cellprobe.atomic import shown, undecodable
    from cellprobe.cli.warning_lines import data_warnings_as_lines

    bad = next((arg for arg in (sys.argv[1:] if argv is None else argv) if undecodable(str(arg))), None)
    if bad is not None:  # a file name with bytes that are not UTF-8: no record can hold it
        print(f"cellprobe: error: {_one_line(shown(str(bad)))}: not valid UTF-8 (a file name with undecodable bytes?); "
              "rename it", file=sys.stderr)
        return 2
    try:
        _strict_numbers(sys.argv[1:] if argv is None else argv)
        with data_warnings_as_lines():
            rv = app(args=argv, standalone_mode=False)
    except InputError as err:
        print(f"cellprobe: error: {_one_line(str(err))}", file=sys.stderr)
        return 2
    except MemoryError as exc:  # settings the machine cannot hold (a batch, a tile): theirs to change
        print(f"cellprobe: error: {_out_of_memory(exc)}", file=sys.stderr)
        return 2
    except (RuntimeError, OSError) as exc:
        if _is_device_out_of_memory(exc):
            print(f"cellprobe: error: {_out_of_memory(exc)}", file=sys.stderr)
            return 2
        loop = _symlink_loop(exc)
        if loop is None:
            raise
        print(f"cellprobe: error: {_one_line(loop)}: is a loop of symbolic links (it leads back to itself); fix or remove it",
              file=sys.stderr)
        return 2
    except typer.Exit as exc:  # --help, --version, explicit exits
        return exc.exit_code
    except typer.Abort:
        print("cellprobe: aborted", file=sys.stderr)
        return 130
    except typer.TyperException as exc:  # usage errors (typer bundles its own click): one line, exit 2
        if not hasattr(exc, "format_message"):
            raise
        where = " ".join(["cellprobe", *_command_path(sys.argv[1:] if argv is None else argv)])
        message = " ".join(exc.format_message().split())
        if not message:  # a group called without a command: its help was shown, which says it all
            return int(getattr(exc, "exit_code", 2))
        print(f"cellprobe: error: {where}: {message} (see {where} --help)", file=sys.stderr)
        return int(getattr(exc, "exit_code", 2))
    return rv if isinstance(rv, int) else 0


def _command_path(argv: list[str]) -> list[str]:
    """The (sub)command names ``argv`` starts with (``["data", "download"]``), as far as they name commands: a
    usage error names the command it is about, and the parser's own errors (an option missing its value) carry
    no context that would say."""
    command = typer.main.get_command(app)
    path: list[str] = []
    for arg in map(str, argv):
        sub = command.commands.get(arg) if hasattr(command, "commands") else None
        if sub is not None:
            path.append(arg)
            command = sub
        elif not arg.startswith("-") or not hasattr(command, "commands"):
            break
    return path


#: how a number option's value is written: Click reads it with Python's int() and float(), which also take
#: '1_000', '3.0' for an integer and Arabic-Indic digits; config values (YAML 1.2) refuse those, and so do these.
#: nan and inf pass, to be refused by the option's own check, which says why.
_INTEGER = re.compile(r"[+-]?[0-9]+")
_REAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?(nan|inf|infinity)", re.IGNORECASE)


def _strict_numbers(argv: list[str]) -> None:
    """Refuse a number option's value that is not plainly an integer or a decimal number, naming the option,
    before Click reads it leniently (``--tile 3_2`` was 32, ``--workers 1.0`` 1)."""
    command, path = typer.main.get_command(app), _command_path(argv)
    for name in path:
        command = command.commands[name]
    where = " ".join(["cellprobe", *path])
    kinds = {}
    for param in getattr(command, "params", []):
        kind = {"int": (_INTEGER, "an integer"), "float": (_REAL, "a number")}.get(param.bare_type())
        for flag in (*param.opts, *param.secondary_opts):
            if kind is not None and flag.startswith("-"):
                kinds[flag] = kind
    args = [str(a) for a in argv]
    for i, arg in enumerate(args):
        if arg == "--":
            break
        flag, given, value = arg.partition("=")
        if not given:
            value = args[i + 1] if i + 1 < len(args) else None
        if flag in kinds and value is not None and not kinds[flag][0].fullmatch(value):
            plain = "plain digits, such as 256" if kinds[flag][0] is _INTEGER else "a plain decimal, such as 0.25"
            raise InputError(None, f"{where}: {flag}: {value!r} is not {kinds[flag][1]} written as {plain} (see "
                                   f"{where} --help)")  # as the parser's own usage errors say


def _one_line(text: str) -> str:
    """``text`` with control characters written as escapes (``\\n``, ``\\x00``): a file name or a name read from
    a file may hold a line break, and the error must stay one line (and show what is really there)."""
    return "".join(ascii(c)[1:-1] if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in text)


def _is_device_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is torch's out-of-memory error of an accelerator (a RuntimeError)."""
    torch = sys.modules.get("torch")
    oom = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    return oom is not None and isinstance(exc, oom)


def _out_of_memory(exc: BaseException) -> str:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (f"out of memory ({_one_line(detail[:200])}): lower the batch size (--batch-size, batch_size) or the "
            "tile size; a killed slide, training or benchmark resumes where it stopped")


def _symlink_loop(exc: BaseException) -> str | None:
    """The path of a symbolic-link loop ``exc`` reports, else None. Any path a user gives, or a file below it,
    may be one, and every layer resolves paths (pathlib's ``resolve`` raises RuntimeError, ``open`` and ``stat``
    raise ELOOP): it is the user's file system either way, so it is bad input wherever it surfaces."""
    if isinstance(exc, RuntimeError) and str(exc).startswith("Symlink loop from "):
        return str(exc).removeprefix("Symlink loop from ").strip("'\"")
    if isinstance(exc, OSError) and exc.errno == errno.ELOOP:
        return str(exc.filename)
    return None


if __name__ == "__main__":
    sys.exit(main())
