"""Progress displays shared by several commands (on stderr, so stdout keeps only results)."""

from __future__ import annotations

from collections.abc import Callable


def report_progress() -> Callable[[str, int, int], None]:
    """A rich progress display for the report's resampling loops (one bar per label), as the ``progress``
    callback of :func:`cellprobe.bench.report.build_report`."""
    from rich.console import Console
    from rich.progress import Progress

    progress = Progress(console=Console(stderr=True), transient=True)
    bars: dict[str, int] = {}

    def update(label: str, done: int, total: int) -> None:
        if not progress.live.is_started:
            progress.start()
        if label not in bars:
            bars[label] = progress.add_task(label, total=total)
        progress.update(bars[label], completed=done)
        if done >= total and all(progress.tasks[i].finished for i in bars.values()):
            progress.stop()

    return update
