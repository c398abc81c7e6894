"""The report on small samples: independent units stated, p-values withheld and CIs marked where the design
cannot support them, and a winner highlighted only where its tests do."""

from __future__ import annotations

import re

import pytest

from cellprobe.bench.report import ReportOptions, _design_caveats, build_report

FAST = ReportOptions(n_boot=40, n_perm=40)


def _section(md: str, heading: str, until: str) -> str:
    return md.split(heading, 1)[1].split(until, 1)[0]


def _board(md: str) -> list[str]:
    """The leaderboard rows of the first dataset (rows with a model and a mean ± CI)."""
    part = _section(md, "## alpha", "### Paired comparisons")
    return [line for line in part.splitlines() if line.startswith("| ") and re.search(r"\[-?\d\.\d{3}", line)]


def _test_rows(md: str) -> list[str]:
    part = _section(md, "### Paired comparisons", "## Across datasets")
    return [line for line in part.splitlines() if line.startswith("| ") and not line.startswith(("| metric", "| ---"))]


@pytest.fixture(scope="module")
def two_source_report(two_source_bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("two_source_report")
    html_path, md_path = build_report(two_source_bench, out, options=FAST)
    return html_path.read_text(), md_path.read_text()


@pytest.fixture(scope="module")
def many_source_report(many_source_bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("many_source_report")
    html_path, md_path = build_report(many_source_bench, out, options=ReportOptions(n_boot=40, n_perm=100))
    return html_path.read_text(), md_path.read_text()


def test_two_sources_say_the_test_cannot_reach_significance(two_source_report):
    page, md = two_source_report
    assert "Independent units of every CI and test: 2 source images" in md
    assert "smallest p-value a paired test over them can give is 0.5" in md
    rows = _test_rows(md)
    assert rows and all("| 2 | cannot reach p < 0.05 with 2 source images | – | – |" in row for row in rows)
    assert not any(re.search(r"\| (0\.\d{3}|<0\.001) \|", row) for row in rows)  # no p-value anywhere
    board = _board(md)
    assert [row.split("|")[1].strip() for row in board] == ["uni", "vit"]
    assert "p n/a‡" in board[1] and "p=" not in "".join(board) and "p<" not in "".join(board)
    assert "‡ No p-value: cannot reach p < 0.05 with 2 source images" in md
    assert "cannot reach p &lt; 0.05 with 2 source images" in page  # the HTML says it too


def test_two_sources_mark_every_ci_unreliable(two_source_report):
    page, md = two_source_report
    board = _board(md)
    cis = [ci for row in board for ci in re.findall(r"\[[^\]]*\]†?", row)]
    assert cis and all(ci.endswith("†") for ci in cis)
    assert all("]†" in row for row in _test_rows(md))  # the differences' CIs too
    assert "† CI unreliable: only 2 source images (fewer than 10 independent units)" in md
    assert "† CI unreliable: only 2 source images" in page
    gap = next(line for line in md.splitlines() if line.startswith("- Gap"))
    assert "over 2 source images" in gap and "no p-value" in gap and "p = " not in gap


def test_two_sources_shade_no_winner(two_source_report):
    page, md = two_source_report
    assert "**" not in md  # no bold value in any leaderboard
    assert "class=best" not in page and "class=top" not in page
    assert "No winner is highlighted: the paired tests cannot reach p < 0.05 with 2 source images" in md


def test_many_sources_show_p_values_and_highlight_the_winner(many_source_report):
    page, md = many_source_report
    assert "Independent units of every CI and test: 14 source images" in md
    board = _board(md)
    assert [row.split("|")[1].strip() for row in board] == ["uni", "vit"]
    assert re.search(r"p=0\.0\d\d|p<0\.001", board[1])  # the Holm p-value against the top model
    body = md.split("## alpha", 1)[1]  # below the method text, which explains the marks
    assert "†" not in body and "‡" not in body and "cannot reach" not in body and "no p-value" not in body
    rows = _test_rows(md)
    assert rows and all(re.search(r"\| 14 \| (0\.\d{3}|<0\.001) \|", row) for row in rows)
    # the winner of the ranking metric and of PQ is bold in Markdown, shaded in HTML
    cells = [c.strip() for c in board[0].split("|")[2:-1]]
    header = next(line for line in _section(md, "## alpha", "### Paired").splitlines() if line.startswith("| model"))
    labels = [c.strip() for c in header.split("|")[2:-1]]
    for label in ("mPQ+ (pooled)", "PQ (image-avg.)"):
        assert cells[labels.index(label)].startswith("**")
    assert not any(c.startswith("**") for c in board[1].split("|")[2:-1])
    assert "<td class=best>uni</td>" in page and page.count("class=best") >= 3
    assert "a metric's best model, where its paired tests against every other model reach Holm p < 0.05" in md


def test_fewer_units_than_min_units_withhold_p_values_and_the_winner(many_source_bench, tmp_path):
    _, md_path = build_report(many_source_bench, tmp_path, options=ReportOptions(n_boot=40, n_perm=100,
                                                                                 min_units=20))
    md = md_path.read_text()
    assert "† CI unreliable: only 14 source images (fewer than 20 independent units)" in md
    assert all("no p-value: only 14 source images, fewer than 20" in row for row in _test_rows(md))
    assert "**" not in md


@pytest.mark.parametrize(("n", "options", "ci", "p"), [
    (2, ReportOptions(), "only 2 source images (fewer than 10 independent units)",
     "cannot reach p < 0.05 with 2 source images"),
    (5, ReportOptions(), "only 5 source images (fewer than 10 independent units)",
     "cannot reach p < 0.05 with 5 source images"),  # 2/2^5 = 0.0625
    (6, ReportOptions(), "only 6 source images (fewer than 10 independent units)",
     "only 6 source images, fewer than 10"),  # 2/2^6 = 0.031 could, but too few units
    (2, ReportOptions(min_units=2), "only 2 source images (too few for any paired test over them to reach p < 0.05)",
     "cannot reach p < 0.05 with 2 source images"),  # no threshold makes 2 units enough
    (14, ReportOptions(), None, None),
    (14, ReportOptions(alpha=0.01, n_perm=50), None, "cannot reach p < 0.01 with 50 permutations"),
    (1, ReportOptions(), "only 1 source image (fewer than 10 independent units)",
     "cannot reach p < 0.05 with 1 source image"),
])
def test_design_caveats(n, options, ci, p):
    assert _design_caveats(n, "source image", options) == (ci, p)


def test_a_metric_undefined_in_every_run_is_one_short_note():
    import numpy as np
    import pandas as pd

    from cellprobe.bench.report import _missing_notes

    rows = pd.DataFrame({"model": ["a", "b"], "fold": [0, 0], "seed": [0, 0], "pq": [0.5, 0.6],
                         "f1_per_class.x": [np.nan, np.nan], "f1_per_class.y": [np.nan, np.nan],
                         "f1_per_class.z": [0.4, np.nan]})
    notes = _missing_notes(rows, [("pq", "PQ"), ("f1_per_class.x", "F1 x"), ("f1_per_class.y", "F1 y"),
                                  ("f1_per_class.z", "F1 z")])
    assert len(notes) == 2
    assert notes[0].startswith("F1 z: no value (NaN) in 1 run(s) (b fold 0 seed 0)")
    assert notes[1].startswith("No value (NaN) in any run: F1 x, F1 y")
