"""Progress displays shared by several commands (on stderr, so stdout keeps only results)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any


def show(progress: Any) -> None:
    """Start ``progress`` on its first use, not before: a command refused by its checks prints its one line
    alone, with no bar (or blank line) before it."""
    if not progress.live.is_started:
        progress.start()


@contextlib.contextmanager
def shown_on_first_use(progress: Any) -> Iterator[Any]:
    """``progress``, started by :func:`show` where it is first used and stopped on leaving."""
    try:
        yield progress
    finally:
        if progress.live.is_started:
            progress.stop()


def report_progress() -> Callable[[str, int, int], None]:
    """A rich progress display for the report's resampling loops (one bar per label), as the ``progress``
    callback of :func:`cellprobe.bench.report.build_report`."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    if not console.is_terminal:  # a log file or pipe gets no bars (their redraws leave blank lines there)
        return lambda label, done, total: None
    progress = Progress(console=console, transient=True)
    bars: dict[str, int] = {}

    def update(label: str, done: int, total: int) -> None:
        show(progress)
        if label not in bars:
            bars[label] = progress.add_task(label, total=total)
        progress.update(bars[label], completed=done)
        if done >= total and all(progress.tasks[i].finished for i in bars.values()):
            progress.stop()

    return update


@contextlib.contextmanager
def cluster_cell_display(console: Any, total: int) -> Iterator[tuple[Callable[[Any, str], None],
                                                                      Callable[[str, int, int], None]]]:
    """The cells of a benchmark run on a cluster: one bar (done, running, failed, an ETA from this run's
    throughput) and one bar per running cell's inner progress (epochs). Yields the runner's ``on_cell`` and
    ``progress`` callbacks (called from the client's threads: rich's progress is thread-safe)."""
    import threading
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    counts = {"done": 0, "failed": 0, "skipped": 0}
    running: set[str] = set()
    lock = threading.Lock()
    started = time.monotonic()
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[state]}"), TimeElapsedColumn(), console=console)
    with shown_on_first_use(progress):
        bar = progress.add_task("cells", total=total, state="")
        inner: dict[str, Any] = {}

        def state() -> str:
            finished = counts["done"] + counts["failed"]
            left = total - finished - counts["skipped"]
            eta = "?" if not finished else _duration((time.monotonic() - started) / finished * left)
            return (f"done {counts['done']} · running {len(running)} · failed {counts['failed']} · "
                    f"ETA {eta if left else '0s'}")

        def on_cell(task: Any, status: str) -> None:
            cid = task.cell.cell_id
            with lock:
                show(progress)
                if status == "start":
                    running.add(cid)
                else:
                    running.discard(cid)
                    counts["skipped" if status == "skip" else status] += 1
                    progress.advance(bar)
                progress.update(bar, state=state())
            if status == "failed":
                console.print(f"[red]failed[/red] {cid} (see its error.txt)")

        def on_progress(label: str, done: int, total_steps: int) -> None:
            with lock:
                if label not in inner:
                    inner[label] = progress.add_task(label, total=total_steps, state="")
                progress.update(inner[label], completed=done, total=total_steps, visible=done < total_steps)

        yield on_cell, on_progress


def _duration(seconds: float) -> str:
    """``1h02m``, ``5m07s`` or ``42s``."""
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"
