"""The report on a synthetic benchmark with a known ranking."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from cellprobe.bench import layout
from cellprobe.bench.report import ReportOptions, build_report
from cellprobe.errors import InputError

FAST = ReportOptions(n_boot=40, n_perm=40)


@pytest.fixture(scope="module")
def report(synthetic_bench):
    return build_report(synthetic_bench, options=FAST)


def test_markdown_leaderboard_ranks_the_known_order_with_cis_and_p(report):
    md = report[1].read_text()
    for label in ("PQ (image-avg.)", "mPQ+ (pooled)", "R²", "F1_d", "F1 tumour"):
        assert label in md
    alpha = md.split("## alpha")[1].split("## beta")[0]
    board = [line for line in alpha.splitlines() if line.startswith("| ") and "±" in line]
    assert [line.split("|")[1].strip() for line in board] == ["uni", "convnext", "vit"]
    assert re.search(r"\[\d\.\d{3}, \d\.\d{3}\]", board[0]) and "p=" in board[1] and "p=" not in board[0]
    assert "Friedman" in md and "Gap (histopathology − general) on all datasets" in md


def test_units_are_stated_and_an_unreachable_holm_level_shades_no_winner(report):
    md = report[1].read_text()
    alpha = md.split("## alpha")[1].split("## beta")[0]
    assert "Independent units of every CI and test: 12 images" in alpha
    assert "| n units |" in alpha and "| 12 |" in alpha
    # 12 images can reach raw p = 1/41 < 0.05, but Holm over 3 pairs cannot go below 3/41
    assert "the Holm-adjusted p cannot go below 0.0732" in alpha
    assert "**" not in md and "class=best" not in report[0].read_text()


def test_metrics_name_their_aggregation(report):
    md = report[1].read_text()
    header = next(line for line in md.splitlines() if line.startswith("| model"))
    assert [c.strip() for c in header.split("|")[2:6]] == ["PQ (image-avg.)", "mPQ+ (pooled)", "R² (class-avg.)",
                                                           "F1_d (pooled)"]
    assert "F1 tumour (pooled)" in header
    assert "pooled = matches (TP, FP, FN, IoU sums, detection pairs) summed over all test images" in md


def test_pannuke_reports_tissue_averages_with_their_sd_over_tissues(tmp_path):
    import json

    import pandas as pd

    from .conftest import synth

    bench = synth.make_bench(tmp_path / "b", {"uni": 0.95, "vit": 0.6}, datasets=("alpha",), n_images=12,
                             tissues=3, fmt="pannuke")
    _, md_path = build_report(bench, options=FAST)
    md = md_path.read_text()
    lines = [line for line in md.split("### Paired")[0].splitlines() if line.startswith("| ")]
    labels = [c.strip() for c in lines[0].split("|")[2:-1]]
    assert labels[:6] == ["bPQ (tissue-avg.)", "bPQ sd over tissues", "bPQ (image-avg.)", "mPQ (tissue-avg.)",
                          "mPQ sd over tissues", "mPQ (image-avg.)"]
    assert "PQ tumour (image-avg.)" in labels
    for row in lines[2:]:
        model = row.split("|")[1].strip()
        cells = dict(zip(labels, (c.strip() for c in row.split("|")[2:-1]), strict=True))
        for metric, label in (("bpq", "bPQ sd over tissues"), ("mpq", "mPQ sd over tissues")):
            sds = []
            for path in sorted((bench / "cells").glob(f"alpha__{model}__*/result.json")):
                per_tissue = json.loads(path.read_text())["summary"]["per_tissue"]
                assert len(per_tissue) == 3
                sds.append(pd.Series([v[metric] for v in per_tissue.values()]).std(ddof=1))
            expect = f"{np.mean(sds):.3f} ± {np.std(sds, ddof=1):.3f}"
            assert cells[label] == expect
            assert "[" not in cells[label] and "p=" not in cells[label]  # descriptive: no CI, no test


def test_html_is_self_contained(report):
    page = report[0].read_text()
    assert page.count("data:image/png;base64,") >= 5  # bars ×2, heatmaps ×2, CD diagram, examples
    assert not re.search(r"""(src|href)=["']?(https?:|//|/)""", page)
    assert "<table>" in page and "critical-difference" in page


def test_unpaired_models_get_no_tests_but_still_a_leaderboard(tmp_path, synthetic_bench):
    bench = tmp_path / "b"
    shutil.copytree(synthetic_bench, bench, ignore=shutil.ignore_patterns("beta__*"))
    import pandas as pd

    # one image missing for one run (its data changed between runs): the cell's table and result agree
    path = next((bench / "cells").glob("alpha__vit__*s1/per_image.parquet"))
    table = pd.read_parquet(path).iloc[1:]
    table.to_parquet(path)
    from cellprobe.metrics.aggregate import aggregate_conic

    result = json.loads((path.parent / "result.json").read_text())
    summary = aggregate_conic(table.drop(columns=["image", "source"], errors="ignore"),
                              class_names=result["class_names"])
    result["summary"] = json.loads(json.dumps(summary, default=float).replace("NaN", "null"))  # as written
    result["metrics"] = {k: (None if np.isnan(v) else v) for k, v in layout.flatten_summary(summary).items()}
    (path.parent / "result.json").write_text(json.dumps(result))
    _, md_path = build_report(bench, options=FAST)
    alpha = md_path.read_text().split("## alpha")[1]
    assert "not evaluated on the same runs and images" in alpha and "No paired tests" in alpha


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)")
def test_page_renders_in_headless_chromium(report, tmp_path):
    shot = tmp_path / "shot.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           "--window-size=1200,1600", f"--screenshot={shot}", report[0].as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120, cwd=tmp_path)
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (1600, 1200)
    assert pixels.std() > 20  # text, tables and plots, not a blank page
    assert (pixels < 100).mean() > 0.005  # dark ink present


@pytest.mark.parametrize("options", [{"n_boot": 0}, {"n_perm": 0}, {"n_boot": -5}, {"alpha": 1.5}])
def test_resampling_sizes_that_say_nothing_are_refused(options):
    from cellprobe.bench.report import ReportOptions
    from cellprobe.config import parse_config
    from cellprobe.errors import InputError

    with pytest.raises(InputError, match=next(iter(options))):
        parse_config(ReportOptions, options)


@pytest.mark.parametrize(("damage", "problem"), [
    (lambda t: pd.concat([t, t.iloc[:1]]), "lists image"),
    (lambda t: t.iloc[:0], "has no rows"),
    (lambda t: t.drop(columns=["fp"]), "lacks the column fp"),
    (lambda t: t.assign(fn=t["fn"].astype(float) - 100), "fn = "),
    (lambda t: t.assign(tp=t["tp"].astype(float) + 0.5), "tp = "),
    (lambda t: t.assign(iou_sum=np.nan), "iou_sum = nan"),
    (lambda t: t.assign(tp=t["tp"] + 1, n_pred=t["n_pred"] + 1), "tp + fn"),
    (lambda t: t.assign(iou_sum=t["iou_sum"] * 0.9), "does not give the result.json's"),
])
def test_a_damaged_per_image_table_is_refused_naming_it(tmp_path, synthetic_bench, damage, problem):
    """The thirteenth probe: duplicated rows, negative or fractional counts, NaN, a missing column, no rows and
    tp > n_true were all reported with exit 0 (a CI of '– [–, –]' beside p < 0.001)."""
    import pandas as pd

    bench = tmp_path / "b"
    shutil.copytree(synthetic_bench, bench)
    path = sorted((bench / "cells").glob("*/per_image.parquet"))[0]
    damage(pd.read_parquet(path)).to_parquet(path)
    with pytest.raises(InputError, match=re.escape(problem)) as err:
        build_report(bench, tmp_path / "out", options=FAST)
    assert err.value.path == str(path) and "damaged per-image table" in err.value.problem


def test_damaged_examples_are_refused_naming_the_file(tmp_path, synthetic_bench):
    """The fourteenth probe: pred_inst of another shape was an IndexError traceback."""
    bench = tmp_path / "b"
    shutil.copytree(synthetic_bench, bench)
    path = sorted((bench / "cells").glob("*/examples.npz"))[0]
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    kept = path.read_bytes()
    np.savez_compressed(path, **{**data, "pred_inst": data["pred_inst"][:, :8, :8]})
    with pytest.raises(InputError, match="is not the examples file its cell wrote") as err:
        build_report(bench, tmp_path / "out", options=FAST)
    assert err.value.path == str(path)
    from cellprobe.hashing import file_sha256

    result = path.parent / "result.json"  # as if the cell had written it so: the loader's own checks
    result.write_text(json.dumps({**json.loads(result.read_text()), "examples_sha256": file_sha256(path)}))
    with pytest.raises(InputError, match="damaged examples file: pred_inst") as err:
        build_report(bench, tmp_path / "out", options=FAST)
    assert err.value.path == str(path)
    path.write_bytes(kept)


def test_examples_swapped_between_cells_are_refused(tmp_path, synthetic_bench):
    """The eighteenth probe: examples.npz swapped between two cells of a finished bench made the report show
    one model's predictions under the other's name (exit 0). result.json records the file's sha256."""
    bench = tmp_path / "b"
    shutil.copytree(synthetic_bench, bench)
    first, second = sorted((bench / "cells").glob("*/examples.npz"))[:2]
    a, b = first.read_bytes(), second.read_bytes()
    assert a != b
    first.write_bytes(b)
    second.write_bytes(a)
    with pytest.raises(InputError, match="is not the examples file its cell wrote") as err:
        build_report(bench, tmp_path / "out", options=FAST)
    assert err.value.path in (str(first), str(second))
    first.write_bytes(a)
    second.write_bytes(b)
    # the nineteenth probe: a deleted file left the figure out unsaid; a deleted or damaged record blamed the file
    result = first.parent / "result.json"
    kept = result.read_text()
    for damage, where, problem in (
            (first.unlink, first, "is gone"),
            (lambda: result.write_text(json.dumps({k: v for k, v in json.loads(kept).items()
                                                   if k != "examples_sha256"})), result, "records no examples_sha256"),
            (lambda: result.write_text(json.dumps({**json.loads(kept), "examples_sha256": 123})), result,
             "examples_sha256 123 is not the digest")):
        damage()
        with pytest.raises(InputError, match=problem) as err:
            build_report(bench, tmp_path / "out", options=FAST)
        assert err.value.path == str(where)
        first.write_bytes(a)
        result.write_text(kept)
