"""Scale-out on Dask distributed, for any command that spreads independent pieces of work (benchmark cells,
slides) over workers: which cluster (``--cluster local:N``, ``--cluster slurm --cluster-config FILE.yaml``,
``--scheduler tcp://HOST:PORT``), a client on it, the check that the workers see the output folder, events from
tasks to the client, and objects a worker loads once and keeps.

Dask's scheduler does the dispatching (placement, ``GPU`` resources, rescheduling the tasks of a worker that
died); this module only configures it. It imports no cellprobe layer: the bench and slide commands use it.
Dask's own log lines go to a file in the output folder, never the terminal. Imports Dask: commands load this
module only when one of its options is given.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import socket
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

from distributed.diagnostics.plugin import WorkerPlugin
from pydantic import Field, model_validator

from cellprobe.config import StrictModel, load_config
from cellprobe.errors import InputError
from cellprobe.machine import usable_cores

if TYPE_CHECKING:
    from distributed import Client

#: how long a --scheduler address may take to accept a connection before it is refused as unreachable
SCHEDULER_CONNECT_TIMEOUT_S = 5.0
#: how long a local cluster's workers may take to start
LOCAL_START_TIMEOUT_S = 120.0
#: how long a running scheduler (--scheduler) may take to offer its first worker
SCHEDULER_WORKER_WAIT_S = 60.0
#: how many times the scheduler reruns a task whose worker died under it before it gives the task up
#: (``distributed.scheduler.allowed-failures``; Dask's default)
WORKER_DEATHS_PER_TASK = 3
#: the resource a GPU task asks for; each GPU worker offers one
GPU = "GPU"
#: where a local cluster serves its dashboard (Dask picks a free port when this one is taken)
DASHBOARD_ADDRESS = ":8787"
#: objects a worker keeps loaded (:func:`worker_cached`), least recently used dropped first
WORKER_CACHE_SIZE = 2
#: the Dask log of the client process (scheduler and nannies of a local cluster), in the command's log folder
DASK_LOG = "dask.log"
#: loggers whose records go to :data:`DASK_LOG` instead of the terminal
DASK_LOGGERS = ("distributed", "dask", "dask_jobqueue", "tornado", "bokeh")
#: the token file of :func:`check_shared_folder` (a random suffix follows)
SHARED_TOKEN_PREFIX = ".cellprobe-shared-"
#: Dask settings of every cluster cellprobe starts: worker processes may start their own processes (data
#: loader workers, DDP) — Dask makes them daemons by default, which may not
CLIENT_SETTINGS = {"distributed.worker.daemon": False,
                   "distributed.scheduler.allowed-failures": WORKER_DEATHS_PER_TASK}
#: the same, as the environment of a worker started elsewhere (a SLURM job); there the worker's process keeps
#: the job's thread settings (Dask would set OMP_NUM_THREADS=1: one core for a job's torch and numpy)
WORKER_ENVIRONMENT = {"DASK_DISTRIBUTED__WORKER__DAEMON": "False",
                      "DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON": "'{\"MALLOC_TRIM_THRESHOLD_\": 65536}'"}
#: the thread-count variables a local worker gets: this machine's cores shared between the workers
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


#: the most SLURM jobs one command asks for (a typo's 99999999 would flood the queue)
MAX_JOBS = 1000
#: the SLURM command dask-jobqueue submits jobs with
SBATCH = "sbatch"


#: what goes into one line of the SLURM job script: a newline in a directive would start a shell command
#: (the digits and spaces of numbers are ASCII: a regex's \d and \s also take '٨' and no-break spaces)
Line = Annotated[str, Field(pattern=r"^[^\x00-\x1f\x7f]*$")]
#: a name on an sbatch option (partition, account) or a network interface: one token
Word = Annotated[str, Field(pattern=r"^[^\x00-\x20\x7f]+$")]


class AdaptiveBounds(StrictModel):
    """Let the number of SLURM jobs follow the work: between ``minimum`` and ``maximum`` jobs (at least one:
    a worker checks the shared folder before any work is sent)."""

    minimum: int = Field(1, ge=1, le=MAX_JOBS)
    maximum: int = Field(ge=1, le=MAX_JOBS)

    @model_validator(mode="after")
    def _ordered(self) -> AdaptiveBounds:
        if self.minimum > self.maximum:
            raise ValueError(f"minimum ({self.minimum}) is above maximum ({self.maximum})")
        return self


class SlurmClusterConfig(StrictModel):
    """``--cluster-config`` of ``--cluster slurm``: each SLURM job runs one Dask worker, which runs one task at a
    time on its ``gpus_per_job`` GPU (0: a CPU worker). Either a fixed number of ``jobs`` or ``adaptive``
    bounds."""

    partition: Word | None = None  # sbatch -p
    account: Word | None = None  # sbatch -A
    gpus_per_job: int = Field(1, ge=0, le=1)  # one worker per GPU: scale with jobs (DDP: train one cell alone)
    cores: int = Field(4, ge=1, le=4096)  # CPU cores per job (data loading, post-processing)
    memory: str = Field("32GB", pattern=r"^[0-9]+(\.[0-9]+)? ?[KMGT]i?B$")  # per job, e.g. 64GB
    walltime: str = Field("04:00:00", pattern=r"^([0-9]+-)?[0-9]{1,3}:[0-5][0-9]:[0-5][0-9]$")  # [D-]HH:MM:SS
    jobs: int | None = Field(None, ge=1, le=MAX_JOBS)  # a fixed number of jobs (workers)
    adaptive: AdaptiveBounds | None = None
    job_extra_directives: list[Line] = Field(default_factory=list)  # more #SBATCH lines, e.g. "--qos=high"
    job_script_prologue: list[Line] = Field(default_factory=list)  # shell lines before the worker (module load)
    python: Line | None = None  # the Python of the nodes (default: this one, on the shared filesystem)
    local_directory: Line | None = None  # the worker's scratch folder on the node (e.g. $TMPDIR)
    log_directory: Line | None = None  # where SLURM writes each job's output
    interface: Word | None = None  # the network interface the workers listen on (e.g. ib0)
    # how long the queue may take to start the first job; at most a week (1e300 overflowed Dask's timer)
    worker_wait_minutes: float = Field(30.0, gt=0, le=10080)

    @model_validator(mode="after")
    def _one_scaling(self) -> SlurmClusterConfig:
        if (self.jobs is None) == (self.adaptive is None):
            raise ValueError("give either 'jobs' (a fixed number of SLURM jobs) or 'adaptive' (minimum, maximum)")
        return self


@dataclass(frozen=True)
class ClusterSpec:
    """Where the work goes: ``local`` (``workers`` processes here), ``slurm`` (jobs from ``slurm``) or
    ``scheduler`` (a running Dask cluster at ``address``)."""

    kind: Literal["local", "slurm", "scheduler"]
    workers: int = 0
    slurm: SlurmClusterConfig | None = None
    address: str | None = None

    def describe(self) -> str:
        if self.kind == "local":
            return f"a local Dask cluster of {self.workers} worker process(es)"
        if self.kind == "slurm":
            return "Dask workers in SLURM jobs"
        return f"the Dask scheduler at {self.address}"


def parse_cluster_spec(cluster: str | None, cluster_config: Path | None, scheduler: str | None) -> ClusterSpec | None:
    """The ``--cluster`` / ``--cluster-config`` / ``--scheduler`` options checked (a scheduler must accept a
    connection within :data:`SCHEDULER_CONNECT_TIMEOUT_S`); None when none is given (work runs in-process).
    Bad options are an :class:`InputError` naming the option."""
    if cluster is not None and scheduler is not None:
        raise InputError("--scheduler", "give either --cluster or --scheduler, not both")
    if cluster_config is not None and cluster != "slurm":
        raise InputError("--cluster-config", "only goes with --cluster slurm")
    if scheduler is not None:
        return ClusterSpec("scheduler", address=check_scheduler_address(scheduler))
    if cluster is None:
        return None
    if cluster == "slurm":
        if cluster_config is None:
            raise InputError("--cluster", "slurm needs --cluster-config FILE.yaml (see configs/cluster/slurm.yaml)")
        config = load_config(SlurmClusterConfig, cluster_config)
        if shutil.which(SBATCH) is None:  # dask-jobqueue would retry submitting for ever, printing tracebacks
            raise InputError("--cluster", f"slurm: no '{SBATCH}' on this machine's PATH; run the command on a "
                                          "node that submits SLURM jobs (a login node)")
        return ClusterSpec("slurm", slurm=config)
    match = re.fullmatch(r"local:(0|[1-9][0-9]*)", cluster)  # ASCII digits: \d also reads '٣' as 3
    if match is None:
        raise InputError("--cluster", f"unknown cluster '{cluster}' (local:N for N worker processes here, or slurm)")
    workers = int(match.group(1))
    if workers < 1:
        raise InputError("--cluster", f"local:{workers}: a local cluster needs at least 1 worker")
    most = max(usable_cores(), len(local_gpus()))
    if workers > most:  # more one-thread workers than cores (or GPUs) only adds processes that wait
        raise InputError("--cluster", f"local:{workers}: this machine has {usable_cores()} usable core(s) and "
                                      f"{len(local_gpus())} GPU(s); give at most local:{most}")
    return ClusterSpec("local", workers=workers)


def check_scheduler_address(address: str) -> str:
    """``tcp://HOST:PORT`` (or ``tls://``) of a scheduler that accepts a connection now."""
    try:  # a malformed bracketed host ("tcp://[::1") is refused by urlsplit itself
        parts = urlsplit(address)
        port = parts.port
    except ValueError:
        parts, port = urlsplit(""), None
    if parts.scheme not in ("tcp", "tls") or not parts.hostname or port is None:
        raise InputError("--scheduler", f"'{address}' is not a scheduler address (tcp://HOST:PORT)")
    try:
        with socket.create_connection((parts.hostname, port), timeout=SCHEDULER_CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise InputError("--scheduler", f"no Dask scheduler reachable at {address} ({reason})") from None
    return address


# ---------------------------------------------------------------------------------------------------- client
#: the folder, in a command's output folder, of Dask's log and the local workers' output
LOG_DIR = "logs"


def check_log_place(out_dir: Path) -> None:
    """Refuse a file, or a link, where the cluster's logs folder goes in ``out_dir``, before any work: logs are
    appended where they are, never through a link out of the output folder."""
    from cellprobe.atomic import own_folder_problem
    from cellprobe.errors import InputError

    log_dir = Path(out_dir) / LOG_DIR
    problem = own_folder_problem(log_dir)
    if problem is not None:
        raise InputError(log_dir, f"is {problem}, where cellprobe keeps the cluster's logs in its own folder; move it")


@contextlib.contextmanager
def open_client(spec: ClusterSpec, out_dir: Path) -> Iterator[Client]:
    """A Dask client on ``spec``'s cluster (started here for ``local`` and ``slurm``, closed on exit), with
    Dask's log lines in ``out_dir``/:data:`LOG_DIR`/dask.log and, for a local cluster, each worker's output in
    ``out_dir``/:data:`LOG_DIR`/worker-<name>.log."""
    import dask
    from distributed import Client

    check_log_place(out_dir)
    log_dir = Path(out_dir) / LOG_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    with _dask_log(log_dir / DASK_LOG), dask.config.set(CLIENT_SETTINGS):
        cluster, wait_s = None, SCHEDULER_WORKER_WAIT_S
        if spec.kind == "local":
            threads = max(1, usable_cores() // spec.workers)
            environ = {**dask.config.get("distributed.nanny.pre-spawn-environ"), **dict.fromkeys(THREAD_VARIABLES, threads)}
            with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
                cluster = _local_cluster(spec.workers)
            wait_s = LOCAL_START_TIMEOUT_S
        elif spec.kind == "slurm":
            cluster, wait_s = _slurm_cluster(spec.slurm), spec.slurm.worker_wait_minutes * 60
        try:
            client = Client(cluster if cluster is not None else spec.address, timeout=SCHEDULER_CONNECT_TIMEOUT_S)
            try:
                if spec.kind == "local":
                    _configure_local_workers(client, log_dir)
                try:
                    client.wait_for_workers(1, timeout=wait_s)
                except TimeoutError:
                    raise InputError("--cluster" if cluster is not None else "--scheduler",
                                     f"no Dask worker joined within {wait_s:.0f} s") from None
                yield client
            finally:
                client.close()
        finally:
            if cluster is not None:
                cluster.close()


def local_gpus() -> list[str]:
    """The GPUs this machine shows (their CUDA_VISIBLE_DEVICES ids), none without CUDA."""
    try:
        import torch
    except ImportError:
        return []
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [v.strip() for v in visible.split(",") if v.strip()] if visible else [str(i) for i in range(count)]
    return ids[:count]


def _local_cluster(workers: int) -> Any:
    """``workers`` processes of one thread each (a task at a time); each offers one GPU when there are GPUs
    (pinned by :class:`PinGPU`). No memory limit: a task uses what it would use run in-process."""
    from distributed import LocalCluster

    resources = {GPU: 1} if local_gpus() else None
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, resources=resources,
                        memory_limit=0, silence_logs=logging.ERROR, dashboard_address=DASHBOARD_ADDRESS,
                        host="127.0.0.1", timeout=LOCAL_START_TIMEOUT_S)


def _configure_local_workers(client: Client, log_dir: Path) -> None:
    """Worker output to files, and each worker on its own GPU (round-robin when there are fewer GPUs)."""
    client.register_plugin(OutputToFile(str(log_dir)), name="cellprobe-output")
    gpus = local_gpus()
    if gpus:
        client.register_plugin(PinGPU(gpus), name="cellprobe-gpu")


def slurm_cluster_kwargs(config: SlurmClusterConfig) -> dict[str, Any]:
    """dask-jobqueue's ``SLURMCluster`` arguments for ``config``: one worker process per job, one thread,
    the job's GPU as a ``GPU`` resource and an sbatch ``--gpus`` line, the worker environment
    (:data:`WORKER_ENVIRONMENT`) exported before it starts."""
    directives = list(config.job_extra_directives)
    worker_args: list[str] = ["--nthreads", "1"]
    if config.gpus_per_job:
        directives.insert(0, f"--gpus={config.gpus_per_job}")
        worker_args += ["--resources", f"{GPU}={config.gpus_per_job}"]
    prologue = [f"export {k}={v}" for k, v in WORKER_ENVIRONMENT.items()] + list(config.job_script_prologue)
    kwargs: dict[str, Any] = {
        "queue": config.partition, "account": config.account, "cores": config.cores, "processes": 1,
        "memory": config.memory, "walltime": config.walltime, "job_extra_directives": directives,
        "job_script_prologue": prologue, "worker_extra_args": worker_args,
        "python": config.python or sys.executable, "silence_logs": "error",
    }
    optional = {"local_directory": config.local_directory, "log_directory": config.log_directory,
                "interface": config.interface}
    return kwargs | {k: v for k, v in optional.items() if v is not None}


def _slurm_cluster(config: SlurmClusterConfig) -> Any:
    """A ``SLURMCluster`` scaled to ``jobs`` or adapting between the bounds."""
    from dask_jobqueue import SLURMCluster

    cluster = SLURMCluster(**slurm_cluster_kwargs(config))
    if config.adaptive is not None:
        cluster.adapt(minimum=config.adaptive.minimum, maximum=config.adaptive.maximum)
    else:
        cluster.scale(jobs=config.jobs)
    return cluster


@contextlib.contextmanager
def _dask_log(path: Path) -> Iterator[None]:
    """Dask's loggers (and its warnings) write to ``path`` while the client runs; restored on exit."""
    import warnings

    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved = []
    for name in DASK_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.handlers[:], logger.level, logger.propagate))
        logger.handlers, logger.propagate = [handler], False
        logger.setLevel(logging.INFO)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"(distributed|dask|dask_jobqueue|tornado)(\.|$)")
            yield
    finally:
        for logger, handlers, level, propagate in saved:
            logger.handlers, logger.propagate = handlers, propagate
            logger.setLevel(level)
        handler.close()


class OutputToFile(WorkerPlugin):
    """Worker plugin: the worker process's stdout and stderr (progress bars, warnings, framework banners) go
    to ``<log_dir>/worker-<name>.log``, not to the terminal of the command that started it."""

    name = "cellprobe-output"

    def __init__(self, log_dir: str) -> None:
        self.log_dir = log_dir

    def setup(self, worker: Any) -> None:
        path = Path(self.log_dir) / f"worker-{re.sub(r'[^A-Za-z0-9_.-]+', '-', str(worker.name))}.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)


class PinGPU(WorkerPlugin):
    """Worker plugin: a local worker sees only its own GPU (CUDA_VISIBLE_DEVICES, set before CUDA starts in
    that process); local workers are named 0, 1, …, so worker i gets GPU i (round-robin)."""

    name = "cellprobe-gpu"

    def __init__(self, gpus: list[str]) -> None:
        self.gpus = gpus

    def setup(self, worker: Any) -> None:
        os.environ["CUDA_VISIBLE_DEVICES"] = self.device_for(worker.name)

    def device_for(self, name: Any) -> str:
        index = int(name) if str(name).isdigit() else sum(map(ord, str(name)))
        return self.gpus[index % len(self.gpus)]


def workers_have_gpus(client: Client) -> bool:
    """Whether the cluster's workers offer the :data:`GPU` resource (then GPU tasks ask for one each)."""
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    return any(w.get("resources", {}).get(GPU, 0) > 0 for w in workers.values())


def gpu_resources(gpu: bool) -> dict[str, float] | None:
    """The ``resources`` of a task that needs one GPU (None: a CPU task)."""
    return {GPU: 1} if gpu else None


def dashboard_link(client: Client) -> str | None:
    """The scheduler's dashboard address, None when it serves none (bokeh not installed)."""
    services = client.scheduler_info(n_workers=0).get("services", {})
    return client.dashboard_link if "dashboard" in services else None


# ---------------------------------------------------------------------------------------------------- shared folder
def read_shared_token(path: str) -> str | None:
    """On a worker: the token file's text when the worker can read it and write in its folder, else None."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return None
    return text if os.access(Path(path).parent, os.W_OK) else None


def check_shared_folder(client: Client, folder: Path) -> None:
    """Every worker reads a token the client wrote in ``folder`` (and may write there); otherwise an
    InputError naming the folder: results written by a worker that does not share it would be lost."""
    folder = Path(folder).resolve()
    token = secrets.token_hex(16)
    path = folder / f"{SHARED_TOKEN_PREFIX}{token}"
    path.write_text(token, encoding="utf-8")
    try:
        seen = client.run(read_shared_token, str(path))
    finally:
        path.unlink(missing_ok=True)
    blind = sorted(w for w, text in seen.items() if text != token)
    if blind:
        raise InputError(folder, f"{len(blind)} of {len(seen)} Dask worker(s) cannot read and write this folder "
                                 f"(e.g. {blind[0]}): put it on a filesystem the workers share")


# ---------------------------------------------------------------------------------------------------- events
def publish(topic: str, message: Any) -> None:
    """From a task: send ``message`` to the clients subscribed to ``topic`` (nothing outside a worker)."""
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:
        return
    worker.log_event(topic, message)


def subscribe(client: Client, topic: str, handler: Callable[[Any], None]) -> None:
    """Call ``handler(message)`` in the client for each message a task publishes on ``topic``."""
    client.subscribe_topic(topic, lambda event: handler(event[1]))


# ---------------------------------------------------------------------------------------------------- worker cache
_WORKER_OBJECTS: OrderedDict[Any, Any] = OrderedDict()
_WORKER_LOCK = threading.Lock()


def worker_cached(key: Any, load: Callable[[], Any]) -> Any:
    """The object ``load()`` returns, loaded once per worker process and kept for its later tasks (e.g. a
    trained run keyed by its path); at most :data:`WORKER_CACHE_SIZE` are kept, least recently used dropped."""
    with _WORKER_LOCK:
        if key in _WORKER_OBJECTS:
            _WORKER_OBJECTS.move_to_end(key)
            return _WORKER_OBJECTS[key]
        value = load()
        _WORKER_OBJECTS[key] = value
        while len(_WORKER_OBJECTS) > WORKER_CACHE_SIZE:
            _WORKER_OBJECTS.popitem(last=False)
        return value
