"""Benchmark statistics on data with a known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from cellprobe.bench import stats


def _long(values: dict[str, np.ndarray], seeds=(0,), tissue=None) -> pd.DataFrame:
    """Per-image rows: values[model] has shape (seeds, images)."""
    rows = []
    for model, v in values.items():
        v = np.atleast_2d(v)
        for s, seed in enumerate(seeds):
            for i in range(v.shape[1]):
                rows.append({"model": model, "fold": 0, "seed": seed, "image": f"img{i:03d}",
                             "tissue": None if tissue is None else tissue[i], "pq": v[s, i]})
    return pd.DataFrame(rows)


def _ratio(rows: pd.DataFrame) -> dict[str, float]:
    """A pooled metric, like mPQ+: a ratio of sums over images (not a mean of per-image ratios)."""
    return {"prec": float(rows["tp"].sum() / (rows["tp"].sum() + rows["fp"].sum()))}


def test_mean_sd_over_folds_and_seeds():
    runs = pd.DataFrame({"model": ["a"] * 4 + ["b"], "fold": [0, 0, 1, 1, 0], "seed": [0, 1, 0, 1, 0],
                         "pq": [0.5, 0.6, 0.7, 0.8, 0.4]})
    out = stats.mean_sd(runs, ["model"], ["pq"]).set_index("model")
    assert out.loc["a", "pq_mean"] == pytest.approx(0.65)
    assert out.loc["a", "pq_sd"] == pytest.approx(np.std([0.5, 0.6, 0.7, 0.8], ddof=1))
    assert out.loc["a", "pq_count"] == 4
    assert np.isnan(out.loc["b", "pq_sd"])


def test_identical_encoders_show_no_difference():
    rng = np.random.default_rng(1)
    v = rng.uniform(0.3, 0.9, size=(2, 40))
    al = stats.align(_long({"a": v, "b": v.copy()}, seeds=(0, 1)))
    agg = stats.MeanOf(["pq"])
    boot = stats.bootstrap(al, agg, ["pq"], n_boot=100, seed=0)
    res = stats.paired_tests(al, agg, ["pq"], n_perm=100, seed=0, boot=boot).iloc[0]
    assert res["diff"] == 0 and res["ci_lo"] == 0 and res["ci_hi"] == 0
    assert res["p"] == 1 and res["p_holm"] == 1 and res["p_maxt"] == 1


def test_planted_difference_is_found_with_the_right_sign():
    rng = np.random.default_rng(2)
    base = rng.uniform(0.3, 0.8, size=60)
    vals = {"good": base + 0.05 + rng.normal(0, 0.02, 60), "bad": base + rng.normal(0, 0.02, 60)}
    al = stats.align(_long(vals))
    agg = stats.MeanOf(["pq"])
    boot = stats.bootstrap(al, agg, ["pq"], n_boot=200, seed=0)
    res = stats.paired_tests(al, agg, ["pq"], pairs=[("good", "bad")], n_perm=200, seed=0, boot=boot).iloc[0]
    assert res["diff"] == pytest.approx(np.mean(vals["good"] - vals["bad"]))
    assert 0 < res["ci_lo"] < res["diff"] < res["ci_hi"]
    assert res["p"] == pytest.approx(1 / 201)  # no sign flip reaches the observed difference


def test_no_difference_is_not_significant_under_exchangeable_noise():
    rng = np.random.default_rng(3)
    pvals = []
    for _ in range(20):
        base = rng.uniform(0.3, 0.8, size=30)
        vals = {"a": base + rng.normal(0, 0.05, 30), "b": base + rng.normal(0, 0.05, 30)}
        al = stats.align(_long(vals))
        pvals.append(stats.paired_tests(al, stats.MeanOf(["pq"]), ["pq"], n_perm=99, seed=0).iloc[0]["p"])
    assert np.mean(np.array(pvals) < 0.05) <= 0.2  # nominal 5 %; 20 tries


def test_pooled_metric_is_reaggregated_and_compared():
    # per image: tp, fp; model "good" has fewer false positives on every image
    n = 30
    rng = np.random.default_rng(4)
    tp = rng.integers(5, 40, n)
    rows = []
    for model, fp in {"good": rng.integers(0, 3, n), "bad": rng.integers(4, 10, n)}.items():
        rows += [{"model": model, "fold": 0, "seed": 0, "image": f"i{i}", "tp": tp[i], "fp": fp[i]}
                 for i in range(n)]
        if model == "good":
            expect_good = tp.sum() / (tp.sum() + fp.sum())
    al = stats.align(pd.DataFrame(rows))
    boot = stats.bootstrap(al, _ratio, ["prec"], n_boot=100, seed=0)
    assert boot.estimate[al.models.index("good"), 0] == pytest.approx(expect_good)  # ratio of sums
    res = stats.paired_tests(al, _ratio, ["prec"], n_perm=100, seed=0, boot=boot).iloc[0]
    assert res["a"] == "bad" and res["diff"] < 0 and res["ci_hi"] < 0 and res["p"] < 0.02


def test_bootstrap_ci_coverage_is_near_nominal():
    rng = np.random.default_rng(5)
    covered = 0
    trials = 60
    for t in range(trials):
        v = rng.normal(0.5, 0.1, size=40)
        al = stats.align(_long({"a": v}))
        boot = stats.bootstrap(al, stats.MeanOf(["pq"]), ["pq"], n_boot=150, seed=t)
        lo, hi = boot.ci(0.05)
        covered += lo[0, 0] <= 0.5 <= hi[0, 0]
    assert 0.82 <= covered / trials <= 1.0


def test_stratified_draw_keeps_stratum_sizes():
    strata = np.array([0] * 7 + [1] * 3 + [2] * 5)
    rng = np.random.default_rng(0)
    for _ in range(20):
        draw = stats.draw_images(strata, rng)
        assert np.bincount(strata[draw]).tolist() == [7, 3, 5]


def test_align_strata_from_tissue_and_rejects_unpaired_models():
    tissue = ["colon"] * 5 + ["breast"] * 5
    df = _long({"a": np.arange(10.0), "b": np.arange(10.0)}, tissue=tissue)
    al = stats.align(df)
    assert len(set(al.strata.tolist())) == 2
    with pytest.raises(ValueError, match="same runs/images"):
        stats.align(df[~((df["model"] == "b") & (df["image"] == "img003"))])


def test_holm_against_hand_computation():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005·4=0.02, 0.01·3=0.03, 0.03·2=0.06, max(0.04·1, 0.06)=0.06
    assert stats.holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_max_t_is_at_least_raw_and_equals_it_for_one_comparison():
    rng = np.random.default_rng(6)
    null = rng.normal(size=(500, 3))
    obs = np.array([2.5, 0.3, -1.0])
    raw = stats.permutation_p(obs, null)
    adj = stats.max_t(obs, null)
    assert np.all(adj >= raw)
    assert stats.max_t(obs[:1], null[:, :1]) == pytest.approx(raw[:1])


def test_nemenyi_cd_matches_demsar_table():
    # Demšar (2006), Table 5(a): q_0.05 for k = 2..10; worked example k = 4, N = 14 → CD ≈ 1.25
    table = {2: 1.960, 3: 2.343, 4: 2.569, 5: 2.728, 6: 2.850, 7: 2.949, 8: 3.031, 9: 3.102, 10: 3.164}
    for k, q in table.items():
        assert stats.nemenyi_cd(k, 6) == pytest.approx(q * np.sqrt(k * (k + 1) / 36), abs=2e-3)
    assert stats.nemenyi_cd(4, 14) == pytest.approx(1.25, abs=0.01)


def test_friedman_matches_the_textbook_formula():
    rng = np.random.default_rng(7)
    table = pd.DataFrame(rng.uniform(size=(8, 4)), columns=list("abcd"))
    table["a"] += 1.0  # always best
    res = stats.friedman_nemenyi(table)
    ranks = (-table).rank(axis=1).mean()
    n, k = table.shape
    chi2 = 12 * n / (k * (k + 1)) * (np.sum(ranks**2) - k * (k + 1) ** 2 / 4)
    assert res.statistic == pytest.approx(chi2)
    assert res.pvalue == pytest.approx(sps.chi2.sf(chi2, k - 1))
    assert res.ranks.index[0] == "a" and res.ranks["a"] == 1.0


def test_gap_contrast_finds_planted_group_difference():
    rng = np.random.default_rng(8)
    base = rng.uniform(0.3, 0.7, 50)
    vals = {f"h{i}": base + 0.04 + rng.normal(0, 0.02, 50) for i in range(2)}
    vals |= {f"g{i}": base + rng.normal(0, 0.02, 50) for i in range(3)}
    al = stats.align(_long(vals))
    boot = stats.bootstrap(al, stats.MeanOf(["pq"]), ["pq"], n_boot=200, seed=0)
    groups = {m: "histopathology" if m.startswith("h") else "general" for m in al.models}
    w = stats.group_weights(groups, "histopathology", "general")
    res = stats.contrast(boot, w, "pq")
    assert res.estimate == pytest.approx(0.04, abs=0.01) and res.ci_lo > 0 and res.p < 0.05
    pooled = stats.pooled_contrast([(boot, w), (boot, w)], "pq")
    assert pooled.estimate == pytest.approx(res.estimate)
    null = stats.contrast(boot, stats.group_weights({"g0": "x", "g1": "y"}, "x", "y"), "pq")
    assert null.ci_lo < 0 < null.ci_hi


def _sources(values: dict[str, np.ndarray], copies: int) -> pd.DataFrame:
    """Each image of ``values`` repeated ``copies`` times as patches of one source image."""
    rows = _long({m: np.repeat(v, copies) for m, v in values.items()})
    rows["source"] = rows["image"].map(lambda name: f"src{int(name[3:]) // copies:03d}")
    return rows


def test_patches_of_one_source_are_resampled_together():
    rng = np.random.default_rng(5)
    base = rng.uniform(0.3, 0.8, size=12)
    vals = {"a": base + 0.01 + rng.normal(0, 0.03, 12), "b": base}
    agg = stats.MeanOf(["pq"])
    alone = stats.align(_long(vals))
    copied = stats.align(_sources(vals, 4))  # 48 patches, 4 identical ones per source
    assert copied.n_images == 48 and copied.n_groups == 12
    # the same draws on sources as on the 12 independent images: identical replicates and p-values
    boot_alone = stats.bootstrap(alone, agg, ["pq"], n_boot=200, seed=0)
    boot_copied = stats.bootstrap(copied, agg, ["pq"], n_boot=200, seed=0)
    np.testing.assert_allclose(boot_copied.reps, boot_alone.reps)
    t_alone = stats.paired_tests(alone, agg, ["pq"], n_perm=200, seed=0, boot=boot_alone).iloc[0]
    t_copied = stats.paired_tests(copied, agg, ["pq"], n_perm=200, seed=0, boot=boot_copied).iloc[0]
    assert t_copied["p"] == t_alone["p"] and t_copied["ci_lo"] == pytest.approx(t_alone["ci_lo"])
    # treating the 48 copies as independent images would narrow the interval about twofold (sqrt 4)
    naive = stats.align(_sources(vals, 4).drop(columns="source"))
    lo_n, hi_n = stats.bootstrap(naive, agg, ["pq"], n_boot=200, seed=0).ci()
    lo_c, hi_c = boot_copied.ci()
    assert (hi_n - lo_n)[0, 0] < 0.7 * (hi_c - lo_c)[0, 0]


def test_a_source_split_across_strata_is_refused():
    rows = _sources({"a": np.linspace(0.2, 0.8, 4)}, 2)
    rows["tissue"] = ["t0", "t1"] * 4  # the two patches of each source in different tissues
    with pytest.raises(ValueError, match="different strata"):
        stats.align(rows)


def test_min_attainable_p_comes_from_the_design():
    assert stats.min_attainable_p(2, 1000) == 0.5  # 2 / 2^2: identity and full flip always tie
    assert stats.min_attainable_p(1, 1000) == 1.0
    assert stats.min_attainable_p(0, 1000) == 1.0
    assert stats.min_attainable_p(5, 1000) == pytest.approx(2 / 32)
    assert stats.min_attainable_p(14, 1000) == pytest.approx(1 / 1001)  # the permutations bind
    assert stats.min_attainable_p(14, 10**6) == pytest.approx(2 / 2**14)
    assert stats.min_attainable_p(5000, 99) == pytest.approx(1 / 100)  # no overflow for many units


def test_sign_patterns_enumerate_every_flip_when_few():
    rng = np.random.default_rng(0)
    patterns, exact = stats.sign_patterns(4, 100, rng)
    assert exact and patterns.shape == (15, 4)
    assert len({tuple(row) for row in patterns}) == 15 and not (~patterns).all(axis=1).any()  # no identity
    patterns, exact = stats.sign_patterns(8, 100, rng)  # 255 > 100: Monte Carlo
    assert not exact and patterns.shape == (100, 8)


def test_two_sources_cannot_reach_significance_however_large_the_difference():
    rng = np.random.default_rng(9)
    base = rng.uniform(0.3, 0.8, size=20)
    vals = {"good": base + 0.3 + rng.normal(0, 0.02, 20), "bad": base}  # better on every patch
    rows = _long(vals)
    rows["source"] = rows["image"].map(lambda name: f"src{int(name[3:]) // 10}")  # 20 patches, 2 sources
    al = stats.align(rows)
    assert al.n_units == 2 and al.unit == stats.UNIT_SOURCE
    agg = stats.MeanOf(["pq"])
    boot = stats.bootstrap(al, agg, ["pq"], n_boot=200, seed=0)
    res = stats.paired_tests(al, agg, ["pq"], pairs=[("good", "bad")], n_perm=1000, seed=0, boot=boot).iloc[0]
    assert res["exact"] and res["n_perm"] == 3 and res["n_units"] == 2
    assert res["p"] == pytest.approx(0.5) and res["min_p"] == pytest.approx(0.5)
    assert boot.n_units == 2 and stats.contrast(boot, {"good": 1, "bad": -1}, "pq").n_units == 2
    # and the percentile CI of the difference excludes 0 all the same: it looks precise, which is the point
    assert res["ci_lo"] > 0
    assert stats.align(_long(vals)).unit == stats.UNIT_IMAGE


def test_exact_sign_flip_p_matches_brute_force_enumeration():
    rng = np.random.default_rng(10)
    vals = {"a": rng.normal(0.6, 0.1, 6), "b": rng.normal(0.5, 0.1, 6)}
    al = stats.align(_long(vals))
    res = stats.paired_tests(al, stats.MeanOf(["pq"]), ["pq"], n_perm=100, seed=0).iloc[0]
    d = vals["a"] - vals["b"]
    signs = 1 - 2 * ((np.arange(64)[:, None] >> np.arange(6)) & 1)
    expect = np.mean(np.abs((signs * d).mean(axis=1)) >= abs(d.mean()) - 1e-12)
    assert res["exact"] and res["n_perm"] == 63
    assert res["p"] == pytest.approx(expect) and res["p"] >= res["min_p"] == pytest.approx(2 / 64)
