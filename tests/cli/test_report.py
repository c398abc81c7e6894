"""`cellprobe report BENCH_DIR` on a synthetic benchmark folder."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location("cellprobe_test_synth", Path(__file__).parents[1] / "bench" / "synth.py")
synth = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(synth)


def test_report_writes_html_and_markdown(cli, tmp_path):
    bench = synth.make_bench(tmp_path / "bench", {"a": 0.9, "b": 0.7}, datasets=("ds",), seeds=(0,), n_images=8)
    rc, out, err = cli("report", bench, "--n-boot", "30", "--n-perm", "30", "--out", tmp_path / "rep")
    assert rc == 0, err
    assert f"report: {tmp_path / 'rep' / 'report.html'}" in out
    assert "| a |" in (tmp_path / "rep" / "report.md").read_text()


def test_report_on_a_folder_without_results_is_one_line_and_exit_2(cli, tmp_path):
    rc, _out, err = cli("report", tmp_path)
    assert rc == 2 and "no finished benchmark cells" in err and err.count("\n") == 1


def test_report_min_units_and_resample_sizes_from_the_command_line(cli, tmp_path):
    bench = synth.make_bench(tmp_path / "bench", {"a": 0.9, "b": 0.7}, datasets=("ds",), seeds=(0,), n_images=8)
    rc, _, err = cli("report", bench, "--n-boot", "30", "--n-perm", "30", "--min-units", "50", "--out", tmp_path / "r")
    assert rc == 0, err
    assert "fewer than 50" in (tmp_path / "r" / "report.md").read_text()
    assert err == ""  # no progress bars (nor their blank lines) where stderr is not a terminal
    for flag, value in (("--n-boot", "0"), ("--n-perm", "-5"), ("--min-units", "0"), ("--n-boot", "10**11")):
        rc, _, err = cli("report", bench, flag, value.replace("10**11", str(10**11)), "--out", tmp_path / "r2")
        assert rc == 2 and err.count("\n") == 1 and err.startswith(f"cellprobe: error: {flag}: config key"), err
    rc, _, err = cli("report", bench, "--out", "/proc/no-such/report")
    assert rc == 2 and err.count("\n") == 1 and "cannot create or write the --out folder" in err, err


def test_report_replaces_only_its_own_files_without_overwrite(cli, tmp_path):
    """A report.md that is a user's notes, an edited report or another benchmark's is replaced only with
    --overwrite (the seventh probe: it was replaced silently); a report of the same benchmark is redone."""
    bench = synth.make_bench(tmp_path / "bench", {"a": 0.9, "b": 0.7}, datasets=("ds",), seeds=(0,), n_images=8)
    other = synth.make_bench(tmp_path / "other", {"c": 0.9, "d": 0.7}, datasets=("ds",), seeds=(0,), n_images=8)
    rep, fast = tmp_path / "rep", ("--n-boot", "30", "--n-perm", "30")
    rep.mkdir()
    (rep / "report.md").write_text("my notes\n")
    rc, _, err = cli("report", bench, *fast, "--out", rep)
    assert rc == 2 and str(rep / "report.md") in err and "--overwrite" in err and err.count("\n") == 1, err
    assert (rep / "report.md").read_text() == "my notes\n" and not (rep / "report.html").exists()
    rc, _, err = cli("report", bench, *fast, "--out", rep, "--overwrite")
    assert rc == 0, err
    rc, _, err = cli("report", bench, *fast, "--out", rep, "--seed", "3")  # its own report: redone
    assert rc == 0, err
    rc, _, err = cli("report", other, *fast, "--out", rep)  # another benchmark's report is not its own
    assert rc == 2 and "another benchmark" in err, err
    (rep / "report.html").write_text((rep / "report.html").read_text() + "<!-- edited -->")
    rc, _, err = cli("report", bench, *fast, "--out", rep)
    assert rc == 2 and str(rep / "report.html") in err, err


def test_a_folder_where_a_report_file_goes_is_one_line_even_with_overwrite(cli, tmp_path):
    """It was an IsADirectoryError traceback after the statistics were computed."""
    bench = synth.make_bench(tmp_path / "bench", {"a": 0.9, "b": 0.7}, datasets=("ds",), seeds=(0,), n_images=8)
    (tmp_path / "rep" / "report.md").mkdir(parents=True)
    for extra in ((), ("--overwrite",)):
        rc, _, err = cli("report", bench, "--n-boot", "30", "--n-perm", "30", "--out", tmp_path / "rep", *extra)
        assert rc == 2 and "is in the way of the report" in err and err.count("\n") == 1, err


def test_reports_from_before_the_record_are_the_benchmarks_own_and_a_record_in_the_way_is_one_line(cli, tmp_path):
    """A bench folder reported before the record existed (or a first report killed before writing it) holds
    its own report, recognised by its heading: re-reporting is not refused. A folder named like the record is
    one line (was a traceback after the report was written)."""
    bench = synth.make_bench(tmp_path / "bench", {"a": 0.9, "b": 0.7}, datasets=("ds",), seeds=(0,), n_images=8)
    fast = ("--n-boot", "30", "--n-perm", "30")
    rc, _, err = cli("report", bench, *fast)
    assert rc == 0, err
    (bench / ".cellprobe-report.json").unlink()
    rc, _, err = cli("report", bench, *fast)
    assert rc == 0, err
    (bench / ".cellprobe-report.json").unlink()
    (bench / "report.md").write_text("# my notes\n")
    rc, _, err = cli("report", bench, *fast)
    assert rc == 2 and "is not a report of this benchmark" in err, err
    (bench / "report.md").unlink()
    (bench / ".cellprobe-report.json").mkdir()
    rc, _, err = cli("report", bench, *fast, "--overwrite")
    assert rc == 2 and ".cellprobe-report.json: is in the way" in err and err.count("\n") == 1, err


def test_an_unreadable_report_record_is_refused_not_taken_as_absent(cli, tmp_path):
    """The tenth probe: a corrupted record was read as no record, so another benchmark of the same folder
    name (recognised by its heading) replaced the report silently. Only --overwrite replaces it now."""
    bench = synth.make_bench(tmp_path / "bench", {"a": 0.9, "b": 0.7}, datasets=("ds",), seeds=(0,), n_images=8)
    other = synth.make_bench(tmp_path / "other" / "bench", {"c": 0.9, "d": 0.7}, datasets=("ds",), seeds=(0,),
                             n_images=8)
    fast = ("--n-boot", "30", "--n-perm", "30")
    rc, _, err = cli("report", bench, *fast)
    assert rc == 0, err
    record, before = bench / ".cellprobe-report.json", (bench / "report.md").read_text()
    for text in ("{not json", "[1, 2]"):
        record.write_text(text)
        rc, _, err = cli("report", other, *fast, "--out", bench)
        assert rc == 2 and err.count("\n") == 1 and str(record) in err and "--overwrite" in err, err
        assert (bench / "report.md").read_text() == before
    rc, _, err = cli("report", bench, *fast, "--overwrite")
    assert rc == 0, err


def test_a_report_never_goes_into_a_run_folder(cli, tmp_path):
    """The eleventh probe: report --out a run folder (a cell's, or any) wrote report.md/html there (exit 0)."""
    bench = synth.make_bench(tmp_path / "bench", {"a": 0.9, "b": 0.7}, datasets=("ds",), seeds=(0,), n_images=8)
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text('{"version": "1", "run_format": 2}')
    (run / "config.yaml").write_text("epochs: 1\n")
    for out, problem in ((run, "is the run folder"), (run / "sub", "is inside the run folder")):
        rc, _, err = cli("report", bench, "--n-boot", "30", "--n-perm", "30", "--out", out)
        assert rc == 2 and problem in err and err.count("\n") == 1, err
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "run.json"]
    for given, problem in ((run, "is the run folder"), (run / "sub", "is inside the run folder")):  # 25th probe
        rc, _, err = cli("report", given, "--n-boot", "30", "--n-perm", "30")
        assert rc == 2 and f"{problem} {run}, not a benchmark folder" in err and err.count("\n") == 1, err


def test_a_report_never_goes_into_the_benchmarks_data_nor_its_cells(cli, tmp_path):
    """Twenty-fifth probe: report --out the benchmark's own dataset wrote report.md/html into the data (and the
    next bench then found the dataset changed); --out a cell's folder or the feature cache was taken too."""
    bench = synth.make_bench(tmp_path / "bench", {"a": 0.9, "b": 0.7}, datasets=("ds",), seeds=(0,), n_images=8)
    data, test_only = tmp_path / "data", tmp_path / "other"
    for folder in (data / "test", test_only):
        folder.mkdir(parents=True)
    (bench / "bench.yaml").write_text(
        f"name: t\ndatasets:\n  - {{name: ds, path: {data}, format: patches}}\n"
        f"test_datasets:\n  - {{name: ext, path: {test_only}, format: patches, split: test}}\n"
        "encoders: [{name: efficientnet-lite0}]\nseeds: [0]\n")
    cell = next((bench / "cells").iterdir())
    for out, problem in ((data / "test", "is inside the dataset folder"), (test_only, "is the dataset folder"),
                         (cell, "is inside the benchmark folder"), (bench / "feature_cache", "inside the benchmark")):
        rc, _, err = cli("report", bench, "--n-boot", "30", "--n-perm", "30", "--out", out)
        assert rc == 2 and problem in err and err.count("\n") == 1, err
    assert not any(p.name.startswith("report") for p in (*data.rglob("*"), *test_only.iterdir(), *cell.iterdir()))
    rc, _, err = cli("report", bench, "--n-boot", "30", "--n-perm", "30")  # the benchmark folder itself
    assert rc == 0, err


def test_a_report_killed_between_its_files_is_redone_by_the_same_command(cli, tmp_path, monkeypatch):
    """The sixteenth probe: a report killed after report.md was replaced (report.html still the old one) was
    refused on the rerun as 'not a report of this benchmark … your own file'. The record lists the old and the
    new digest while the files are written."""
    from cellprobe import atomic
    from cellprobe.bench import report as R

    bench = synth.make_bench(tmp_path / "bench", {"a": 0.9, "b": 0.7}, datasets=("ds",), seeds=(0,), n_images=8)
    fast = ("--n-boot", "30", "--n-perm", "30")
    assert cli("report", bench, *fast)[0] == 0
    real = atomic.write_bytes

    def killed_at_html(path, data):
        if Path(path).name == "report.html":
            raise KeyboardInterrupt("killed")
        real(path, data)

    monkeypatch.setattr(R.atomic, "write_bytes", killed_at_html)
    rc, _, _ = cli("report", bench, *fast, "--seed", "5")
    assert rc != 0
    monkeypatch.setattr(R.atomic, "write_bytes", real)
    rc, _, err = cli("report", bench, *fast, "--seed", "5")
    assert rc == 0, err
    rc, _, err = cli("report", bench, *fast)
    assert rc == 0, err
