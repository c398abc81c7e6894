"""``cellprobe data check`` and ``cellprobe data download``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from cellprobe.cli.options import Overwrite, check_output_files

MAX_LISTED = 20  # anomalies printed on the terminal (all of them go to --json)


def register(app: typer.Typer) -> None:
    data_app = typer.Typer(help="Inspect and download datasets.", no_args_is_help=True)
    app.add_typer(data_app, name="data")

    @data_app.command("check")
    def check(
        path: Path = typer.Argument(..., help="Dataset folder in one of the released layouts."),
        format: str | None = typer.Option(None, "--format", "-f", help="Reader (detected when not given)."),
        split: str | None = typer.Option(None, "--split", help="Check only this split (default: all released)."),
        option: list[str] = typer.Option([], "--option", "-o", help="Reader option KEY=VALUE (repeatable)."),
        json_out: Path | None = typer.Option(None, "--json", help="Write the full report (every anomaly) here."),
        overwrite: Overwrite = False,
    ) -> None:
        """Patches, sizes, classes, nuclei per class and anomalies (ids not matching the class map, empty and
        duplicated patches, wrong dtypes). Exit status 1 when a sample would be refused by the loaders."""
        check_output_files([json_out], [path], overwrite, read_folders=(path,))
        from rich.console import Console
        from rich.progress import Progress

        from cellprobe.atomic import write_json
        from cellprobe.cli.options import parse_key_values
        from cellprobe.cli.progress_bars import show, shown_on_first_use
        from cellprobe.cli.warning_lines import data_warnings_as_lines
        from cellprobe.data.check import check_path

        console = report_console()
        bar = Progress(console=Console(stderr=True), transient=True)

        def progress(total: int, name: str):
            if bar.console.is_terminal:  # a log file or pipe gets no bar (its redraws leave blank lines there)
                show(bar)  # only once a split is open: an early error stays one line
            task = bar.add_task(f"checking {name}", total=total)
            return lambda: bar.advance(task)

        with shown_on_first_use(bar), data_warnings_as_lines(
                lambda text: bar.console.print(text, markup=False, highlight=False, soft_wrap=True)):
            report = check_path(path, format, split, progress=progress, **parse_key_values(option, "--option"))
        print_report(console, report)
        if json_out is not None:
            write_json(json_out, report)
            console.print(f"report: {json_out}")
        if any(s["fatal"] for s in report["splits"].values()):
            raise typer.Exit(1)

    @data_app.command("download")
    def download(
        name: str = typer.Argument(..., help="Dataset name (see --list)."),
        root: Path = typer.Option(..., "--root", help="Folder for the archives and the unpacked dataset."),
        catalog: Path | None = typer.Option(None, "--catalog", help="YAML catalog adding or replacing entries."),
        mirror: str | None = typer.Option(None, "--mirror", help="Base address serving the same file names."),
        retries: int = typer.Option(2, help="Resumed attempts after an interrupted transfer."),
        timeout: float = typer.Option(30.0, help="Seconds to wait for the server."),
    ) -> None:
        """Download, verify (sha256, else size and format) and unpack a public dataset; resumes a partial
        download; refuses archives with members escaping ROOT or links."""
        from rich.console import Console
        from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

        from cellprobe.cli.progress_bars import show, shown_on_first_use
        from cellprobe.config import parse_config
        from cellprobe.data.catalog import get_source
        from cellprobe.data.download import DownloadConfig, download_dataset

        source = get_source(name, catalog)
        cfg = parse_config(DownloadConfig, {"retries": retries, "timeout_s": timeout},
                           overridden={"retries": "--retries", "timeout_s": "--timeout"})
        console = Console(stderr=True)
        bar = Progress(*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(), console=console,
                       transient=True)
        tasks: dict[str, Any] = {}

        def progress(file: str, done: int, total: int | None) -> None:
            show(bar)  # started on the first byte: an offline error stays one line
            if file not in tasks:
                tasks[file] = bar.add_task(file, total=total)
            bar.update(tasks[file], completed=done, total=total)

        with shown_on_first_use(bar):
            target = download_dataset(name, source, root, cfg, progress, mirror)
        unchecked = [f.filename for f in source.files if not f.sha256]
        if unchecked:  # said: these were verified by size and archive format only
            console.print(f"note: no sha256 for {', '.join(unchecked)}: verified by size (where known) and archive format only"
                          + (f" ({source.note})" if source.note else ""), highlight=False, soft_wrap=True)
        how = f"format '{source.format}'" if source.format else "not read directly by cellprobe"
        typer.echo(f"{name}: {target} ({how})")

    @data_app.command("list")
    def list_sources(catalog: Path | None = typer.Option(None, "--catalog", help="YAML catalog to add.")) -> None:
        """The datasets `cellprobe data download` knows."""
        from rich.console import Console
        from rich.table import Table

        from cellprobe.data.catalog import load_catalog

        table = Table("name", "dataset", "format", "files", "checksums", "license")
        for key, src in sorted(load_catalog(catalog).items()):
            sums = "n/a" if not src.files else f"{sum(f.sha256 is not None for f in src.files)}/{len(src.files)}"
            table.add_row(key, src.title, src.format or "-", str(len(src.files)) or "manual", sums, src.license)
        Console().print(table)


def report_console() -> Any:
    """The console of the ``data check`` report: on a terminal, rich's own; redirected to a file or pipe, one
    whose lines never wrap (rich would cut each at 80 columns, splitting a warning over two lines)."""
    from rich.console import Console

    console = Console()
    if console.is_terminal:
        return console
    return Console(soft_wrap=True, width=100_000)


def print_report(console, report: dict[str, Any]) -> None:
    from rich.table import Table

    splits = report["splits"]
    names = next(iter(splits.values()))["classes"] if splits else []
    table = Table(title=f"{report['path']} ({report['format']})")
    table.add_column("")
    for split in splits:
        table.add_column(split, justify="right")

    def row(label: str, key) -> None:
        table.add_row(label, *(key(r) for r in splits.values()))

    row("patches", lambda r: f"{r['patches']:,}")
    row("size", lambda r: ", ".join(f"{k} ×{v}" if len(r["sizes"]) > 1 else k for k, v in r["sizes"].items()))
    row("nuclei", lambda r: f"{r['nuclei']:,}")
    for n in names:
        row(f"  {n}", lambda r, n=n: f"{r['nuclei_per_class'].get(n, 0):,}")
    row("empty patches", lambda r: str(r["empty_patches"]))
    row("duplicated patches", lambda r: str(r["duplicated_patches"]))
    row("disjoint instances", lambda r: str(r.get("disjoint_instances", 0)))
    row("refused samples", lambda r: str(r["fatal"]))
    console.print(table)
    listed = left = 0
    for split, r in splits.items():
        for a in r["anomalies"]:
            if a["kind"] == "empty":
                continue
            if listed >= MAX_LISTED:
                left += 1
                continue
            listed += 1
            console.print(f"{split}: {a['where']}: {a['message']}", style="red" if a["fatal"] else "yellow",
                          markup=False, highlight=False)
    if left:
        console.print(f"… and {left} more (every anomaly is in the --json report)", highlight=False)
    for leak in report.get("cross_split_duplicates", []):
        console.print(f"[red]same pixels in two splits: {leak['first']} and {leak['second']}[/]")
