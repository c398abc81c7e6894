"""Options shared by several commands, defined once: their flags, help text and limits, and the helpers that
read them (``KEY=VALUE`` pairs, a config file with ``--set`` overrides).

A command declares one as ``tta: TTA = 1``; typer reads the flag from the ``Annotated`` metadata. Only typer
and the standard library load here: ``cellprobe --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from pydantic import BaseModel

    M = TypeVar("M", bound=BaseModel)
else:
    M = TypeVar("M")

# --set: dotted config keys, values read as YAML (epochs=5, seeds=[0,1], trainer.progress=false)
Sets = Annotated[list[str], typer.Option(
    "--set", metavar="KEY=VALUE",
    help="Override a config key (dotted path, value read as YAML; repeatable): train/refit take the training "
         "config's keys (--set epochs=5 --set trainer.threads=2), bench/demo the benchmark's "
         "(--set seeds=[0,1] --set training.epochs=5).")]
# the dihedral test-time augmentation of tune, evaluate and predict
TTA = Annotated[int, typer.Option("--tta", min=1, max=8,
                                  help="Dihedral views averaged per patch (1: none, 8: all).")]
Device = Annotated[str | None, typer.Option("--device",
                                            help="cpu, cuda, ... (default: a GPU when there is one).")]
# which checkpoint of a run folder is loaded (checked by the run folder: one message for every caller)
Checkpoint = Annotated[str, typer.Option("--checkpoint", help="best or last.")]
DatasetFormat = Annotated[str | None, typer.Option("--format", help="Dataset format (default: detected).")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace results already in the output folder "
                                                             "(refused otherwise).")]
# scale-out on Dask (bench; slide): where the independent pieces of work run (cellprobe.cluster)
Cluster = Annotated[str | None, typer.Option(
    "--cluster", metavar="local:N|slurm",
    help="Run the work as Dask tasks: local:N starts N worker processes here (one per GPU when there are GPUs), "
         "slurm starts workers as SLURM jobs (--cluster-config). Default: in this process, one after another.")]
ClusterConfig = Annotated[Path | None, typer.Option(
    "--cluster-config", metavar="FILE.yaml",
    help="The SLURM jobs of --cluster slurm: partition, account, GPUs, cores, memory, walltime, jobs or adaptive "
         "bounds, extra sbatch lines (see configs/cluster/slurm.yaml).")]
Scheduler = Annotated[str | None, typer.Option(
    "--scheduler", metavar="tcp://HOST:PORT", help="Run the work on the running Dask cluster of this scheduler.")]


def parse_key_values(items: Sequence[str], flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` pairs → a mapping, each value read as YAML (``3`` → 3, ``[0,1]`` → a list, ``tiled``
    → a string). A pair without ``=``, without a key, with a broken YAML value, or with a key given twice (or
    inside another given one: ``a.b=1`` and ``a={b: 2}``) is an InputError naming ``flag``."""
    import yaml

    from cellprobe.config import yaml_value
    from cellprobe.errors import InputError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(None, f"{flag} expects KEY=VALUE, got {item!r}")
        earlier = next((k for k in out if k == key or k.startswith(key + ".") or key.startswith(k + ".")), None)
        if earlier is not None:  # as a YAML file's key given twice: which one was meant?
            raise InputError(None, f"{flag} {key}: " + ("given twice" if earlier == key else
                                                         f"overlaps {flag} {earlier}") + "; give each key once")
        try:
            out[key] = yaml_value(value)
        except yaml.YAMLError as exc:
            problem = str(exc).splitlines()[0]
            raise InputError(None, f"{flag} {key}: value is not valid YAML ({problem})") from None
    return out


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """``--set key.path=value`` pairs → dotted-key overrides (for :func:`cellprobe.config.load_config`,
    :func:`cellprobe.run.train_config.train_config`, ...)."""
    return parse_key_values(items, "--set")


def with_sets(sets: Sequence[str], base: dict[str, Any] | None = None, *, fixed: Sequence[str] = (),
              owner: str = "the command's own option", reserved: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The overrides of a command: its own (``base``) then ``--set``; a ``--set`` of a key that one of the
    command's own options gives (``fixed``, e.g. ``output`` for ``--out``; ``owner`` names the option when it
    is one for all of them, e.g. ``--quick``; ``reserved``: more such keys, each with its option) is refused
    rather than silently winning over, or losing to, that option."""
    from cellprobe.errors import InputError

    extra = parse_sets(sets)
    given = {**dict.fromkeys(fixed, owner), **(reserved or {})}
    for key in extra:
        for own, option in given.items():
            if key == own or own.startswith(key + ".") or key.startswith(own + "."):
                raise InputError(None, f"--set {key} conflicts with {option} for '{own}'; use that option, or "
                                       "leave it out")
    return {**(base or {}), **extra}


def load_with_sets(model: type[M], path: Path, sets: Sequence[str], base: dict[str, Any] | None = None,
                   owner: str | None = None, reserved: Mapping[str, str] | None = None) -> M:
    """Load the YAML config ``path`` into ``model`` with the command's overrides (see :func:`with_sets`); with
    an ``owner`` (the option that gives ``base``), a ``--set`` of one of its keys is refused, as is one of the
    ``reserved`` keys (key → the option that gives it)."""
    from cellprobe.config import load_config

    fixed = list(base or {}) if owner else []
    return load_config(model, path, with_sets(sets, base, fixed=fixed, owner=owner or "the command's own option",
                                              reserved=reserved))


def cluster_spec(cluster: str | None, cluster_config: Path | None, scheduler: str | None) -> Any:
    """The checked ``--cluster`` / ``--cluster-config`` / ``--scheduler`` options
    (:class:`cellprobe.cluster.ClusterSpec`), None when none is given; Dask loads only then."""
    if cluster is None and cluster_config is None and scheduler is None:
        return None
    from cellprobe.cluster import parse_cluster_spec

    return parse_cluster_spec(cluster, cluster_config, scheduler)


def check_output_files(outputs: list[Path | None], inputs: list[Path], overwrite: bool,
                       read_folders: tuple[Path, ...] = ()) -> None:
    """Result files a command is about to write, checked before any work: not one of its inputs nor inside a
    dataset folder it reads (``read_folders``), not the same file twice, not a folder nor a device, pipe or
    socket, and not an existing file unless ``overwrite``."""
    from cellprobe.atomic import output_folder
    from cellprobe.data.io import refuse_output_inside
    from cellprobe.errors import InputError

    given = [p for p in outputs if p is not None]
    resolved = [p.resolve() for p in given]
    sources = {p.resolve() for p in inputs}
    for path, real in zip(given, resolved, strict=True):
        if real in sources:
            raise InputError(path, "is one of the command's inputs: results would replace it")
        for folder in read_folders:
            refuse_output_inside(path, folder)
        if resolved.count(real) > 1:
            raise InputError(path, "is given for two outputs")
        if path.is_dir():
            raise InputError(path, "is a folder; give a file name")
        if path.exists() and not path.is_file():  # results go to a new file renamed into place, which would put
            # a regular file where the device, pipe or socket was (as root: /dev/null itself), --overwrite or not
            raise InputError(path, "is not a regular file (a device, pipe or socket, or a link to one): results "
                                   "are written as a new file that would take its place; give a file name")
        if (path.exists() or path.is_symlink()) and not overwrite:  # a dangling link is still something there
            raise InputError(path, "exists already; pass --overwrite to replace it")
        output_folder(path.parent, "output", create=False)  # a folder that cannot be made fails now, not after


@contextmanager
def config_named(source: Path | None) -> Iterator[None]:
    """A problem with a config key that only training finds out (``config key '...'`` with no file: class
    weights against the data's classes, taps against the encoder's depth) is reported against the config file,
    or the command line where the keys came from options."""
    from cellprobe.errors import InputError

    try:
        yield
    except InputError as exc:
        if exc.path is None and exc.problem.startswith("config key"):
            raise InputError(source or "command line (--set)", exc.problem) from None
        raise
