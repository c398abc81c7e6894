"""Statistics of a benchmark: how sure are we that one frozen encoder beats another?

The unit of resampling is the *image* (a test patch), because that is what a new study would draw anew; folds
and seeds are runs over the same or disjoint images. Patches cut from one source image (CoNSeP's overlapping
256² tiles, CoNIC's crops of one slide region) are not independent: when the per-image rows carry a ``source``
column, all patches of a source are resampled (and sign-flipped) together, which widens the intervals to what
a new set of source images would give. These groups (sources, else images) are the independent units: their
number, not the number of patches, bounds what a test can show (:func:`min_attainable_p`). Every estimate is
the paper's number: a metric aggregated over a run's images (pooled metrics such as mPQ+ and R² are
re-aggregated from per-image sufficient statistics by the metrics module's ``aggregate_*`` callable), then
averaged over runs (folds × seeds).

- :func:`mean_sd`: mean ± sd of run summaries over folds and seeds.
- :func:`bootstrap`: a cluster bootstrap over images (stratified by tissue and by which runs hold the image),
  the same draws for every model, so one pass gives CIs for models, paired differences and group contrasts.
- :func:`paired_tests`: sign-flip permutation tests of model pairs on the same images (swapping the two
  models' rows of an image is the sign flip of a paired difference, and also works for pooled metrics), with
  Holm and single-step max-T (Westfall–Young, joint sign flips shared by all pairs) family-wise control;
  every sign pattern is enumerated when there are no more than ``n_perm`` of them.
- :func:`min_attainable_p`: the smallest p-value such a test can give at all, from the design (the number of
  independent units and permutations), not from the data: over 2 source images it is 0.5, however large the
  difference.
- :func:`friedman_nemenyi`: Friedman test over datasets and the Nemenyi critical difference (Demšar 2006).
- :func:`contrast`: a weighted contrast of models, e.g. the "gap" (histopathology minus general-purpose).

scipy.stats.bootstrap / permutation_test resample flat samples; they have no cluster, stratum or
re-aggregation hook, hence the hand-written resampling loops here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats as sps

Aggregate = Callable[[pd.DataFrame], Mapping[str, float]]


def mean_sd(runs: pd.DataFrame, by: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Mean, sample sd (ddof 1; NaN for one run) and run count of each metric per group of ``by``."""
    grouped = runs.groupby(list(by), sort=True, dropna=False)[list(metrics)]
    out = grouped.agg(["mean", "std", "count"])
    out.columns = [f"{m}_{s if s != 'std' else 'sd'}" for m, s in out.columns]
    return out.reset_index()


class MeanOf:
    """Aggregate = plain mean of per-image columns (image-averaged metrics); NaN rows are left out."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = list(columns)

    def __call__(self, rows: pd.DataFrame) -> dict[str, float]:
        return {c: float(np.nanmean(rows[c].to_numpy(float))) if rows[c].notna().any() else float("nan")
                for c in self.columns}


#: what an independent unit is called: images grouped by their source image, or images
UNIT_SOURCE = "source image"
UNIT_IMAGE = "image"


@dataclass(frozen=True)
class Aligned:
    """Per-image rows of ``k`` models over the same images, one block per run.

    ``frames[r]`` holds run r's rows model-major (model j's rows are ``j * n_r ... (j + 1) * n_r - 1``);
    ``local[r, c]`` is the position of image cluster c inside a model's block of run r, or -1 if the run
    does not hold it; ``strata[c]`` is the resampling stratum of cluster c; ``groups[c]`` (0..G-1) the group
    it is resampled with (its source image; each image its own group when sources are unknown). ``unit`` names
    what a group is (:data:`UNIT_SOURCE` when the rows had a source column, else :data:`UNIT_IMAGE`).
    """

    models: tuple[str, ...]
    runs: tuple[tuple, ...]
    frames: tuple[pd.DataFrame, ...]
    local: np.ndarray
    strata: np.ndarray
    images: tuple[str, ...]
    groups: np.ndarray
    cache: dict = field(default_factory=dict, compare=False, repr=False)  # numeric columns per run
    unit: str = UNIT_IMAGE

    def values(self, r: int, columns: Sequence[str]) -> np.ndarray:
        key = (r, tuple(columns))
        if key not in self.cache:
            self.cache[key] = self.frames[r][list(columns)].to_numpy(float)
        return self.cache[key]

    @property
    def n_models(self) -> int:
        return len(self.models)

    @property
    def n_images(self) -> int:
        return len(self.images)

    @property
    def n_groups(self) -> int:
        return int(self.groups.max()) + 1 if self.groups.size else 0

    @property
    def n_units(self) -> int:
        """The number of independent units: the groups, which every resampling draws and flips whole."""
        return self.n_groups

    def group_strata(self) -> np.ndarray:
        """The stratum of each group (``align`` keeps every group inside one stratum)."""
        out = np.empty(self.n_groups, dtype=np.int64)
        out[self.groups] = self.strata
        return out

    def images_of(self, picked: np.ndarray) -> np.ndarray:
        """The image clusters of the ``picked`` groups, in order (``picked`` itself when each image is its own
        group: groups are numbered in image order)."""
        if self.n_groups == self.n_images:
            return picked
        if "members" not in self.cache:
            order = np.argsort(self.groups, kind="stable")
            self.cache["members"] = np.split(order, np.cumsum(np.bincount(self.groups))[:-1])
        members = self.cache["members"]
        return np.concatenate([members[g] for g in picked])


def align(
    per_image: pd.DataFrame,
    *,
    model_col: str = "model",
    image_col: str = "image",
    run_cols: Sequence[str] = ("fold", "seed"),
    strata_col: str | None = "tissue",
    group_col: str | None = "source",
    models: Sequence[str] | None = None,
) -> Aligned:
    """Arrange per-image rows so that models can be resampled together, image by image.

    Every model must have exactly the same (run, image) rows: a comparison on different images is not paired.
    Images held by several runs (seeds) form one cluster, resampled together. Strata: the set of runs holding
    the image (so each fold keeps its size) × ``strata_col`` when it is present and known. Images with the
    same ``group_col`` value (their source image) form one resampling group; a group must lie in one stratum.
    """
    run_cols = [c for c in run_cols if c in per_image.columns]
    models = tuple(models) if models is not None else tuple(sorted(per_image[model_col].astype(str).unique()))
    if not models:
        raise ValueError("align: no models")
    df = per_image[per_image[model_col].astype(str).isin(models)].copy()
    df["_run"] = list(zip(*(df[c] for c in run_cols), strict=True)) if run_cols else [()] * len(df)
    df["_image"] = df[image_col].astype(str)
    if df.duplicated([model_col, "_run", "_image"]).any():
        dup = df[df.duplicated([model_col, "_run", "_image"])].iloc[0]
        raise ValueError(f"align: duplicate row for model {dup[model_col]}, run {dup['_run']}, image {dup['_image']}")
    keys = {m: set(zip(g["_run"], g["_image"], strict=True)) for m, g in df.groupby(model_col)}
    for m in models:
        if m not in keys:
            raise ValueError(f"align: model {m!r} has no rows")
        if keys[m] != keys[models[0]]:
            diff = sorted(keys[m] ^ keys[models[0]], key=str)[:3]
            raise ValueError(f"align: models {models[0]!r} and {m!r} are not on the same runs/images, e.g. {diff}")
    # numeric statistics as one float block (column access in aggregate functions is then ~3× faster)
    numeric = [c for c in df.select_dtypes("number").columns if c not in (*run_cols, model_col)]
    df[numeric] = df[numeric].astype(float)
    keep = numeric + ([strata_col] if strata_col and strata_col in df.columns else [])
    runs = tuple(sorted(df["_run"].unique(), key=str))
    images = tuple(sorted(df["_image"].unique()))
    img_index = {name: i for i, name in enumerate(images)}
    local = np.full((len(runs), len(images)), -1, dtype=np.int64)
    frames = []
    for r, run in enumerate(runs):
        in_run = df[df["_run"] == run]
        names = sorted(in_run["_image"].unique())
        for pos, name in enumerate(names):
            local[r, img_index[name]] = pos
        blocks = [in_run[in_run[model_col] == m].set_index("_image").loc[names, keep] for m in models]
        frames.append(pd.concat(blocks, ignore_index=True))
    first = df[df[model_col] == models[0]].drop_duplicates("_image").set_index("_image")
    tissue = (first[strata_col].reindex(list(images)).astype(object).where(lambda s: s.notna(), "?").astype(str)
              if strata_col and strata_col in df.columns else pd.Series("?", index=list(images)))
    pattern = ["".join("1" if x >= 0 else "0" for x in local[:, c]) for c in range(len(images))]
    labels = [f"{p}|{t}" for p, t in zip(pattern, tissue.to_numpy(), strict=True)]
    strata = pd.factorize(pd.Series(labels))[0].astype(np.int64)
    groups = np.arange(len(images), dtype=np.int64)
    unit = UNIT_IMAGE
    if group_col and group_col in df.columns:
        unit = UNIT_SOURCE
        source = first[group_col].reindex(list(images)).astype(object)
        # an unknown source keeps its image alone: the image name stands in for it
        source = source.where(source.notna(), pd.Series(list(images), index=list(images))).astype(str)
        groups = pd.factorize(source)[0].astype(np.int64)
        spans = pd.Series(strata).groupby(groups).nunique()
        if (spans > 1).any():
            name = source.iloc[int(np.flatnonzero(groups == spans.index[spans.to_numpy() > 1][0])[0])]
            raise ValueError(f"align: the images of {group_col} {name!r} lie in different strata (runs or "
                             "tissues); a source must stay in one fold")
    return Aligned(models, runs, tuple(frames), local, strata, images, groups, unit=unit)


def evaluate(
    al: Aligned,
    aggregate: Aggregate,
    metrics: Sequence[str],
    draws: np.ndarray | None = None,
    assign: np.ndarray | None = None,
) -> np.ndarray:
    """Run-averaged metrics of output slots, shape (slots, metrics).

    ``draws``: image clusters drawn (with repeats) or None for all images once. ``assign``: (n_images, slots)
    model index that each slot reads for each image (None: slot j reads model j), which is how a permutation
    swaps models image by image.
    """
    n = al.n_images
    if assign is None:
        assign = np.broadcast_to(np.arange(al.n_models), (n, al.n_models))
    picked = np.arange(n) if draws is None else np.asarray(draws)
    out = np.zeros((assign.shape[1], len(metrics)))
    for r, frame in enumerate(al.frames):
        loc = al.local[r]
        n_r = int((loc >= 0).sum())
        c = picked[loc[picked] >= 0]
        values = al.values(r, metrics) if isinstance(aggregate, MeanOf) else None
        for j in range(assign.shape[1]):
            pos = assign[c, j] * n_r + loc[c]
            if values is not None:  # fast path: an image-averaged metric is a mean of rows
                out[j] += np.nanmean(values[pos], axis=0)
            else:
                summary = aggregate(frame.iloc[pos])
                out[j] += [float(summary[m]) for m in metrics]
    return out / len(al.frames)


def draw_images(strata: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One stratified bootstrap draw: each stratum resampled with replacement to its own size."""
    parts = [rng.choice(members, size=members.size, replace=True)
             for s in np.unique(strata) for members in [np.flatnonzero(strata == s)]]
    return np.concatenate(parts)


@dataclass(frozen=True)
class Bootstrap:
    """Point estimates (models, metrics) and bootstrap replicates (B, models, metrics) on shared draws, drawn
    from ``n_units`` independent units (None: not recorded)."""

    models: tuple[str, ...]
    metrics: tuple[str, ...]
    estimate: np.ndarray
    reps: np.ndarray
    n_units: int | None = None

    def ci(self, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
        """Percentile interval (lo, hi), each (models, metrics); replicates with NaN are left out."""
        return percentile_ci(self.reps, alpha)


def percentile_ci(reps: np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval along axis 0, ignoring NaN replicates."""
    with np.errstate(all="ignore"):
        lo = np.nanpercentile(reps, 100 * alpha / 2, axis=0)
        hi = np.nanpercentile(reps, 100 * (1 - alpha / 2), axis=0)
    return lo, hi


def bootstrap(
    al: Aligned,
    aggregate: Aggregate,
    metrics: Sequence[str],
    n_boot: int = 1000,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> Bootstrap:
    """Cluster bootstrap over images, the same draws for every model (so differences are paired)."""
    rng = np.random.default_rng(seed)
    estimate = evaluate(al, aggregate, metrics)
    reps = np.empty((n_boot, al.n_models, len(metrics)))
    group_strata = al.group_strata()  # the drawn units are the groups (source images)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # empty classes in a resample give NaN, left out
        for b in range(n_boot):
            draws = al.images_of(draw_images(group_strata, rng))
            reps[b] = evaluate(al, aggregate, metrics, draws=draws)
            if progress:
                progress(1)
    return Bootstrap(al.models, tuple(metrics), estimate, reps, n_units=al.n_units)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values (FWER). Written here: five lines, not worth statsmodels."""
    p = np.asarray(pvalues, float)
    order = np.argsort(p)
    m = p.size
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def permutation_p(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """Two-sided Monte-Carlo p-value (1 + #{|T*| ≥ |T|}) / (1 + P), along axis 0 of ``null``."""
    tol = 1e-12 * np.maximum(1.0, np.abs(observed))
    hits = np.sum(np.abs(null) >= np.abs(observed) - tol, axis=0)
    return (1 + hits) / (1 + null.shape[0])


def max_t(observed: np.ndarray, null: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """Single-step max-T adjusted p-values over a family (last axis) from joint null draws (P, family)."""
    scale = np.ones(observed.shape[-1]) if scale is None else np.where(scale > 0, scale, np.inf)
    t_obs = np.abs(observed) / scale
    t_max = np.nanmax(np.abs(null) / scale, axis=-1)
    tol = 1e-12 * np.maximum(1.0, t_obs)
    return (1 + np.sum(t_max[:, None] >= t_obs[None, :] - tol, axis=0)) / (1 + null.shape[0])


def min_attainable_p(n_units: int, n_perm: int) -> float:
    """The smallest two-sided p-value of a paired sign-flip test over ``n_units`` independent units.

    Of the 2^n sign patterns, the identity and the full flip give the observed |difference| whatever the data,
    so an exact test never goes below 2/2^n (= 1/2^(n−1)); a Monte-Carlo test with ``n_perm`` permutations never
    below 1/(n_perm + 1). The larger of the two is the design's floor (a Monte-Carlo p-value estimates the exact
    one, so it falls below 2/2^n only by chance); it depends on the design only, never on the observed data.
    """
    if n_units < 1:
        return 1.0
    return min(1.0, max(math.ldexp(1.0, 1 - int(n_units)), 1.0 / (int(n_perm) + 1)))


def enumerates(n_groups: int, n_perm: int) -> bool:
    """Whether a sign-flip test over ``n_groups`` units enumerates its patterns: 2^n − 1 ≤ ``n_perm``."""
    return n_groups < 31 and (1 << n_groups) - 1 <= n_perm


def sign_patterns(n_groups: int, n_perm: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """Swap patterns (P, n_groups) of a sign-flip test and whether they are exhaustive.

    When the 2^n − 1 patterns other than the identity number no more than ``n_perm``, all of them (the exact
    test: (1 + hits) / (1 + P) is then the exact p-value, the identity counting once); otherwise ``n_perm``
    random ones, each group flipped with probability 1/2.
    """
    if enumerates(n_groups, n_perm):
        codes = np.arange(1, 1 << n_groups, dtype=np.int64)
        return (codes[:, None] >> np.arange(n_groups)) & 1 == 1, True
    return rng.random((n_perm, n_groups)) < 0.5, False


def paired_tests(
    al: Aligned,
    aggregate: Aggregate,
    metrics: Sequence[str],
    pairs: Sequence[tuple[str, str]] | None = None,
    n_perm: int = 1000,
    seed: int = 0,
    boot: Bootstrap | None = None,
    alpha: float = 0.05,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Sign-flip permutation tests of model pairs on the same images, one family per metric.

    Each permutation swaps, for a random half of the image groups (sources), the two models' rows (all runs
    and patches of that group at once); the same swap pattern serves every pair, which makes the max-T null
    joint. With few groups (2^groups − 1 ≤ ``n_perm``) every pattern is enumerated instead (exact test).
    Returns one row per (metric, pair): a, b, diff = a − b, its paired bootstrap CI (when ``boot`` is given),
    raw p, Holm and max-T adjusted p (max-T on differences scaled by each pair's permutation-null sd), the
    number of independent units, the smallest p-value the design can give (:func:`min_attainable_p`), the
    number of sign patterns used and whether they were all of them.
    """
    index = {m: i for i, m in enumerate(al.models)}
    pairs = list(pairs) if pairs is not None else list(combinations(al.models, 2))
    if not pairs:
        return pd.DataFrame(columns=["metric", "a", "b", "diff", "ci_lo", "ci_hi", "p", "p_holm", "p_maxt",
                                     "n_units", "min_p", "n_perm", "exact"])
    rng = np.random.default_rng(seed)
    patterns, exact = sign_patterns(al.n_groups, n_perm, rng)
    swaps = patterns[:, al.groups]
    n_used = swaps.shape[0]
    estimate = evaluate(al, aggregate, metrics) if boot is None else boot.estimate
    observed = np.array([estimate[index[a]] - estimate[index[b]] for a, b in pairs])  # (pairs, metrics)
    null = np.empty((n_used, len(pairs), len(metrics)))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for p_i in range(n_used):
            z = swaps[p_i]
            for q, (a, b) in enumerate(pairs):
                ia, ib = index[a], index[b]
                assign = np.stack([np.where(z, ib, ia), np.where(z, ia, ib)], axis=1)
                res = evaluate(al, aggregate, metrics, assign=assign)
                null[p_i, q] = res[0] - res[1]
            if progress:
                progress(1)
    if progress and n_used < n_perm:
        progress(n_perm - n_used)  # the exact test needed fewer patterns than asked for
    floor = min_attainable_p(al.n_units, n_perm)
    rows = []
    for k, metric in enumerate(metrics):
        obs = observed[:, k]
        raw = permutation_p(obs, null[:, :, k])
        if boot is not None:
            diffs = np.stack([boot.reps[:, index[a], k] - boot.reps[:, index[b], k] for a, b in pairs], axis=1)
            lo, hi = percentile_ci(diffs, alpha)
        else:
            lo = hi = np.full(len(pairs), np.nan)
        adj_holm = holm(raw)
        # each pair's statistic in units of its own permutation-null sd, so that no pair dominates the max
        adj_maxt = max_t(obs, null[:, :, k], np.nanstd(null[:, :, k], axis=0))
        for q, (a, b) in enumerate(pairs):
            rows.append({"metric": metric, "a": a, "b": b, "diff": obs[q], "ci_lo": lo[q], "ci_hi": hi[q],
                         "p": raw[q], "p_holm": adj_holm[q], "p_maxt": adj_maxt[q], "n_units": al.n_units,
                         "min_p": floor, "n_perm": n_used, "exact": exact})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class ContrastResult:
    estimate: float
    ci_lo: float
    ci_hi: float
    p: float
    n_units: int | None = None  # independent units behind the interval (summed over pooled datasets)


def contrast(boot: Bootstrap, weights: Mapping[str, float], metric: str, alpha: float = 0.05) -> ContrastResult:
    """A weighted contrast of models (weights summing to 0), e.g. the gap, with bootstrap CI and p-value.

    The p-value inverts the percentile interval (p < alpha exactly when the CI excludes 0), so the two
    never disagree; it is (1 + #replicates on the far side of 0) / (1 + B), doubled.
    """
    w = np.array([weights.get(m, 0.0) for m in boot.models])
    k = boot.metrics.index(metric)
    return _contrast_from(float(w @ boot.estimate[:, k]), boot.reps[:, :, k] @ w, alpha, boot.n_units)


def _contrast_from(est: float, reps: np.ndarray, alpha: float, n_units: int | None = None) -> ContrastResult:
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        return ContrastResult(est, float("nan"), float("nan"), float("nan"), n_units)
    lo, hi = np.percentile(reps, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    tail = min(np.sum(reps <= 0), np.sum(reps >= 0))
    p = min(1.0, 2 * (1 + tail) / (1 + reps.size))
    return ContrastResult(est, float(lo), float(hi), p, n_units)


def group_weights(groups: Mapping[str, str], plus: str, minus: str) -> dict[str, float]:
    """Weights of the contrast mean(group ``plus``) − mean(group ``minus``) over models."""
    n_plus = sum(g == plus for g in groups.values())
    n_minus = sum(g == minus for g in groups.values())
    if not n_plus or not n_minus:
        raise ValueError(f"contrast needs models in both groups {plus!r} and {minus!r}")
    return {m: (1 / n_plus if g == plus else -1 / n_minus if g == minus else 0.0) for m, g in groups.items()}


def pooled_contrast(parts: Sequence[tuple[Bootstrap, Mapping[str, float]]], metric: str,
                    alpha: float = 0.05) -> ContrastResult:
    """The contrast averaged over datasets; datasets are independent, so replicates are averaged pairwise."""
    ests, reps = [], []
    for boot, weights in parts:
        w = np.array([weights.get(m, 0.0) for m in boot.models])
        k = boot.metrics.index(metric)
        ests.append(float(w @ boot.estimate[:, k]))
        reps.append(boot.reps[:, :, k] @ w)
    n = min(r.size for r in reps)
    units = [boot.n_units for boot, _ in parts]
    n_units = sum(units) if all(u is not None for u in units) else None
    return _contrast_from(float(np.mean(ests)), np.mean([r[:n] for r in reps], axis=0), alpha, n_units)


def nemenyi_cd(k: int, n: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference of average ranks for k models over n datasets (Demšar 2006, eq. 5)."""
    q = sps.studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2)
    return float(q * np.sqrt(k * (k + 1) / (6 * n)))


@dataclass(frozen=True)
class FriedmanResult:
    ranks: pd.Series  # average rank per model, 1 = best
    statistic: float
    pvalue: float
    cd: float
    n_datasets: int
    alpha: float


def friedman_nemenyi(table: pd.DataFrame, higher_is_better: bool = True, alpha: float = 0.05) -> FriedmanResult:
    """Friedman test of models (columns) over datasets (rows), average ranks and the Nemenyi CD.

    With fewer than 3 models scipy's Friedman test is undefined; the statistic and p-value are then NaN,
    but ranks and CD are still given.
    """
    table = table.dropna(axis=0, how="any")
    ranks = (-table if higher_is_better else table).rank(axis=1, method="average").mean(axis=0)
    k, n = table.shape[1], table.shape[0]
    if k >= 3 and n >= 2:
        res = sps.friedmanchisquare(*(table[c].to_numpy(float) for c in table.columns))
        stat, p = float(res.statistic), float(res.pvalue)
    else:
        stat = p = float("nan")
    cd = nemenyi_cd(k, n, alpha) if k >= 2 and n >= 1 else float("nan")
    return FriedmanResult(ranks.sort_values(), stat, p, cd, n, alpha)
