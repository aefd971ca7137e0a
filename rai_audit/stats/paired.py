"""Paired before/after statistics: did model B differ from model A on the *same* items?

Every item is answered by both models, so differences are paired: the item's own difficulty
cancels, and tests are far more sensitive than comparing two independent proportions.

Three families, chosen by what the per-item outcome is:

* **Binary outcomes** (correct, toxic, stereotyped choice): the exact McNemar test
  (McNemar 1947; exact binomial form, e.g. Fagerland, Lydersen & Laake 2013, "The McNemar test
  for binary matched-pairs data: mid-p and asymptotic are better than exact conditional", BMC
  Med Res Methodol 13:91) on the discordant pairs, and the paired difference of proportions
  with the Agresti & Min (2005) adjusted Wald interval ("Simple improved confidence intervals
  for comparing matched proportions", Stat Med 24:729-740: add 1/2 to every cell of the 2x2
  table, then use the Wald interval), which keeps near-nominal coverage at small n.
* **Continuous outcomes** (max toxicity, log-likelihood differences): percentile bootstrap CI of
  the mean paired difference (Efron & Tibshirani 1993, ch. 13) and a paired permutation
  (sign-flip) test (Good 2005, "Permutation, Parametric and Bootstrap Tests of Hypotheses",
  ch. 3): under the null that A and B are exchangeable within each pair, every sign of each
  paired difference is equally likely.
* **Any probe aggregate** (ratio metrics such as BBQ bias scores, CrowS % stereotypical, AUC):
  paired cluster bootstrap of ``aggregate(B) - aggregate(A)`` resampling the benchmark's
  clusters (the same draw applies to both models), and a paired permutation test that swaps
  the A and B records of whole clusters (or, for large probes where that costs too many
  ``aggregate`` calls, a Wald test with the bootstrap SE; the row's ``method`` names it).

Clusters (templates, prompts with their k samples) are resampled and permuted as units, because
items that share them are not independent (Field & Welsh 2007).

**Resolution of Monte Carlo p-values.** A Monte Carlo permutation p-value cannot fall below
1 / (n_perm + 1): with 1,000 draws and Holm over 12 subgroup rows even a huge effect could never
reach a corrected p < 0.01. Where fewer than :data:`TAIL_MIN_EXCEEDANCES` permuted statistics are
as extreme as the observed one, the count says little about the tail, so the p-value comes from a
fitted tail instead (Knijnenburg et al. 2009, "Fewer permutations, more accurate P-values",
Bioinformatics 25:i161): the normal approximation of the permutation distribution, which a mean
over many clusters follows (Hoeffding 1952, "The large-sample power of tests based on
permutations of observations", Ann. Math. Stat. 23:169). For the sign-flip test the null variance
is exact, sum of squared cluster sums; for an aggregate it is the variance of the permuted
statistics. The row's ``method`` then ends in ``+normal-tail``. Exact tests (McNemar, full
enumeration for few clusters) need no approximation.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np
from scipy import stats as _st

from rai_audit.stats.bootstrap import Aggregate, cluster_indices
from rai_audit.stats.evaluate import declared
from rai_audit.stats.paired_draws import DeclaredPair, GenericPair, pattern_blocks

# Largest number of clusters for which the permutation test enumerates every sign pattern.
_EXACT_MAX_CLUSTERS = 12
# Largest n_records * n_perm for which test="auto" runs the permutation test on aggregates
# (each permuted sample costs two ``aggregate`` calls over all records).
PERMUTATION_BUDGET = 2_000_000
# Fewer permuted statistics at least as extreme as the observed one than this: the Monte Carlo
# count is too coarse, and the p-value comes from the normal tail (module docstring).
TAIL_MIN_EXCEEDANCES = 10
# Bound on the elements of one (resample x cluster) matrix, to keep memory small.
_CHUNK_ELEMENTS = 2_000_000


@dataclass(frozen=True)
class PairedDiff:
    """The paired difference B - A of one quantity with its CI and a two-sided p-value.

    ``se`` is the standard error of the difference (bootstrap SD or analytic), used for the
    minimum detectable effect. ``p_value`` is None where no test was possible (e.g. n = 0).
    """

    n: int
    value_a: float
    value_b: float
    diff: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    method: str
    se: float | None = None
    n_b: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _nan_result(method: str, n: int = 0) -> PairedDiff:
    nan = float("nan")
    return PairedDiff(n, nan, nan, nan, None, None, None, method)


# ----------------------------------------------------------------------------- binary outcomes


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts.

    ``b`` = pairs with A=1, B=0 and ``c`` = pairs with A=0, B=1. Under H0 (marginal homogeneity)
    ``b ~ Binomial(b + c, 1/2)``; p = min(1, 2 * P(X <= min(b, c))). No discordant pairs -> 1.
    """
    if b < 0 or c < 0:
        raise ValueError("discordant counts must be non-negative")
    n = b + c
    if n == 0:
        return 1.0
    return float(min(1.0, 2.0 * _st.binom.cdf(min(b, c), n, 0.5)))


def _binary_array(x: Sequence[float], name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.size and not np.all((arr == 0.0) | (arr == 1.0)):
        raise ValueError(f"{name} must contain only 0/1 values for a binary paired test")
    return arr


def paired_binary(a: Sequence[float], b: Sequence[float], *, alpha: float = 0.05) -> PairedDiff:
    """Exact McNemar test and the Agresti-Min CI of p_B - p_A for paired 0/1 outcomes.

    With n10 = #(A=1, B=0), n01 = #(A=0, B=1), the point estimate is (n01 - n10) / n. The CI adds
    1/2 to each of the four cells (n* = n + 2) and uses
    ``d* +- z * sqrt((p10* + p01* - d*^2) / n*)`` with ``d* = p01* - p10*``, clipped to [-1, 1].
    """
    xa, xb = _binary_array(a, "outcomes of run A"), _binary_array(b, "outcomes of run B")
    if xa.shape != xb.shape:
        raise ValueError("paired outcomes must have the same length")
    n = int(xa.size)
    if n == 0:
        return _nan_result("mcnemar_exact", 0)
    n10 = int(np.sum((xa == 1) & (xb == 0)))
    n01 = int(np.sum((xa == 0) & (xb == 1)))
    diff = (n01 - n10) / n
    ns = n + 2.0
    p10, p01 = (n10 + 0.5) / ns, (n01 + 0.5) / ns
    d_adj = p01 - p10
    se_adj = math.sqrt(max(p10 + p01 - d_adj**2, 0.0) / ns)
    z = _st.norm.ppf(1 - alpha / 2)
    lo, hi = max(-1.0, d_adj - z * se_adj), min(1.0, d_adj + z * se_adj)
    se = math.sqrt(max((n10 + n01) / n - diff**2, 0.0) / n)
    return PairedDiff(
        n=n,
        value_a=float(xa.mean()),
        value_b=float(xb.mean()),
        diff=float(diff),
        ci_low=float(lo),
        ci_high=float(hi),
        p_value=mcnemar_exact(n10, n01),
        method="mcnemar_exact",
        se=float(se),
        extra={"n10": n10, "n01": n01, "discordant": (n10 + n01) / n},
    )


# ------------------------------------------------------------------------- continuous outcomes


def _cluster_sums(d: np.ndarray, clusters: Sequence[Any] | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster sums of the differences and per-cluster item counts."""
    if clusters is None:
        return d.copy(), np.ones_like(d)
    keys: dict[Any, int] = {}
    ids = np.fromiter((keys.setdefault(c, len(keys)) for c in clusters), dtype=np.int64, count=len(d))
    sums = np.bincount(ids, weights=d, minlength=len(keys))
    counts = np.bincount(ids, minlength=len(keys)).astype(float)
    return sums, counts


def _rows_per_chunk(n_cols: int) -> int:
    return max(1, _CHUNK_ELEMENTS // max(1, n_cols))


def sign_flip_pvalue(sums: np.ndarray, total: float, *, n_perm: int, rng: np.random.Generator) -> float:
    """Two-sided paired permutation p-value of the mean difference ``sums.sum() / total``.

    Each cluster's summed difference keeps or flips its sign. With at most
    ``_EXACT_MAX_CLUSTERS`` clusters every pattern is enumerated (exact p = share of patterns at
    least as extreme, the observed one included); otherwise ``n_perm`` random patterns give the
    Monte Carlo p-value ``(1 + #extreme) / (1 + n_perm)`` (Phipson & Smyth 2010), unless fewer
    than :data:`TAIL_MIN_EXCEEDANCES` draws are as extreme: then the normal tail of the sign-flip
    distribution, whose null variance is exactly ``sum(sums**2)``, gives
    ``2 * Phi(-|sum(sums)| / sqrt(sum(sums**2)))``.
    """
    k = len(sums)
    observed = abs(float(sums.sum()) / total)
    tol = 1e-12 * max(1.0, observed)
    if k <= _EXACT_MAX_CLUSTERS:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=k))) if k else np.ones((1, 0))
        stats_ = np.abs(signs @ sums) / total
        return float(np.mean(stats_ >= observed - tol))
    extreme = 0
    step = _rows_per_chunk(k)
    for start in range(0, n_perm, step):
        rows = min(step, n_perm - start)
        signs = rng.integers(0, 2, size=(rows, k)) * 2.0 - 1.0
        extreme += int(np.sum(np.abs(signs @ sums) / total >= observed - tol))
    if extreme < TAIL_MIN_EXCEEDANCES:
        sd = math.sqrt(float(np.sum(sums**2)))
        if sd > 0:
            return float(2 * _st.norm.sf(abs(float(sums.sum())) / sd))
    return (1 + extreme) / (1 + n_perm)


def paired_continuous(
    a: Sequence[float],
    b: Sequence[float],
    *,
    clusters: Sequence[Any] | None = None,
    n_boot: int = 1000,
    n_perm: int | None = None,
    seed: int = 0,
    alpha: float = 0.05,
) -> PairedDiff:
    """Mean paired difference mean(b - a), its percentile bootstrap CI and a sign-flip p-value.

    ``clusters`` (one label per pair) makes both the bootstrap and the permutation work on whole
    clusters; the statistic is then the ratio estimator sum(d) / n of the resampled clusters.
    """
    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if xa.shape != xb.shape:
        raise ValueError("paired outcomes must have the same length")
    n = int(xa.size)
    method = "paired_bootstrap+permutation" + ("(clustered)" if clusters is not None else "")
    if n == 0:
        return _nan_result(method, 0)
    d = xb - xa
    sums, counts = _cluster_sums(d, clusters)
    sums_a, _ = _cluster_sums(xa, clusters)
    sums_b, _ = _cluster_sums(xb, clusters)
    k = len(sums)
    rng = np.random.default_rng(seed)
    diff = float(d.mean())
    boot: list[np.ndarray] = []
    boot_a: list[np.ndarray] = []
    boot_b: list[np.ndarray] = []
    step = _rows_per_chunk(k)
    for start in range(0, max(0, n_boot), step):
        rows = min(step, n_boot - start)
        picks = rng.integers(0, k, size=(rows, k))
        m = counts[picks].sum(axis=1)
        boot.append(sums[picks].sum(axis=1) / m)
        boot_a.append(sums_a[picks].sum(axis=1) / m)
        boot_b.append(sums_b[picks].sum(axis=1) / m)
    extra: dict[str, Any] = {"sd_diff": float(d.std(ddof=1)) if n > 1 else 0.0, "clusters": k}
    if boot and n_boot > 1:
        draws = np.concatenate(boot)
        lo, hi = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
        ci_low, ci_high, se = float(lo), float(hi), float(draws.std(ddof=1))
        extra["se_a"] = float(np.concatenate(boot_a).std(ddof=1))
        extra["se_b"] = float(np.concatenate(boot_b).std(ddof=1))
    else:
        ci_low = ci_high = se = None
    n_perm = n_perm or max(n_boot, 1000)
    p = sign_flip_pvalue(sums, float(n), n_perm=n_perm, rng=rng)
    if k > _EXACT_MAX_CLUSTERS and p < TAIL_MIN_EXCEEDANCES / (1 + n_perm):
        method += "+normal-tail"
    return PairedDiff(
        n=n,
        value_a=float(xa.mean()),
        value_b=float(xb.mean()),
        diff=diff,
        ci_low=ci_low,
        ci_high=ci_high,
        p_value=p,
        method=method,
        se=se,
        extra=extra,
    )


# ------------------------------------------------------------------------------ any aggregate


def permutations_for_family(n_boot: int, family_size: int, alpha: float = 0.05) -> int:
    """Random permutations needed so that a Holm/BH-corrected p-value can reach ``alpha``.

    A Monte Carlo permutation p-value is at least 1 / (n_perm + 1); after multiplying by a family
    of m tests it must still be able to fall below alpha/2, so n_perm >= 2m / alpha (40 m at
    alpha = 0.05). Never fewer than ``n_boot`` or 1000.
    """
    return max(n_boot, 1000, math.ceil(2 * max(1, family_size) / alpha))


def _largest_family(keys: Any) -> int:
    sizes: dict[str, int] = {}
    for metric, _subgroup in keys:
        sizes[metric] = sizes.get(metric, 0) + 1
    return max(sizes.values(), default=1)


def _finite(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def paired_bootstrap_aggregate(
    records_a: Sequence[dict[str, Any]],
    records_b: Sequence[dict[str, Any]],
    aggregate: Aggregate,
    *,
    n_boot: int = 1000,
    n_perm: int | None = None,
    seed: int = 0,
    alpha: float = 0.05,
    test: Literal["auto", "permutation", "wald"] = "auto",
    permutation_budget: int = PERMUTATION_BUDGET,
) -> dict[tuple[str, str], PairedDiff]:
    """Paired difference ``aggregate(B) - aggregate(A)`` for every (metric, subgroup) key.

    ``records_a[i]`` and ``records_b[i]`` must be the two models' records of the same item.
    CI: one cluster resample (clusters as :func:`cluster_indices` defines them, from A's records)
    is applied to both models, and the percentile interval of the resampled differences is taken;
    resamples where the metric is undefined are dropped and fewer than half valid gives no CI.

    p-value (``test``): "permutation" swaps the A and B records of whole clusters (exact
    enumeration for few clusters, otherwise ``n_perm`` random swaps,
    p = (1 + #extreme) / (1 + #valid)); it costs 2 x ``n_perm`` more ``aggregate`` evaluations.
    ``n_perm`` defaults to :func:`permutations_for_family` of the largest metric family, so
    corrected p-values can reach significance.
    "wald" uses the bootstrap SE already computed: z = diff / SE, p = 2 (1 - Phi(|z|))
    (Efron & Tibshirani 1993, ch. 16 discuss bootstrap tests; the Wald form is the cheap
    normal approximation). "auto" runs the permutation test while ``n_records * n_perm`` stays
    within ``permutation_budget`` and the Wald test beyond it; each row's ``method`` says which.

    A declared probe's ``aggregate`` is evaluated vectorised, any other callable on every
    resample's records (:mod:`rai_audit.stats.paired_draws`); both draw the same resamples.
    """
    if len(records_a) != len(records_b):
        raise ValueError("paired records must have the same length")
    clusters = cluster_indices(records_a)
    owner = declared(aggregate)
    side: DeclaredPair | GenericPair = (GenericPair(aggregate, records_a, records_b, clusters) if owner is None
                                        else DeclaredPair(owner, records_a, records_b, clusters))
    point_a = side.point_a()
    if n_perm is None:
        n_perm = permutations_for_family(n_boot, _largest_family(point_a))
    if test == "auto":
        test = "permutation" if len(records_a) * n_perm <= permutation_budget else "wald"
    method = f"paired_cluster_bootstrap+{test}"
    point_b = side.point_b()
    keys = list(dict.fromkeys(list(point_a) + list(point_b)))
    if not keys:
        return {}
    observed = {}
    for key in keys:
        va, vb = point_a.get(key, (float("nan"), 0))[0], point_b.get(key, (float("nan"), 0))[0]
        observed[key] = vb - va if _finite(va) and _finite(vb) else float("nan")
    k = len(clusters)
    rng = np.random.default_rng(seed)
    boot_va, boot_vb = side.bootstrap(rng, max(0, n_boot) if k else 0, keys)

    exact = test == "permutation" and k <= _EXACT_MAX_CLUSTERS and 2**k <= max(n_perm, 1)
    patterns = pattern_blocks(rng, n_perm, k, exact, side.rows) if test == "permutation" else iter(())
    perm_va, perm_vb = side.permuted(patterns, keys)

    out: dict[tuple[str, str], PairedDiff] = {}
    for j, key in enumerate(keys):
        va, na = point_a.get(key, (float("nan"), 0))
        vb, nb = point_b.get(key, (float("nan"), 0))
        ok = ~np.isnan(boot_va[:, j]) & ~np.isnan(boot_vb[:, j])
        draws = (boot_vb[:, j] - boot_va[:, j])[ok]
        ci_low = ci_high = se = None
        extra: dict[str, Any] = {"clusters": k, "exact_permutation": exact}
        if _finite(observed[key]) and len(draws) >= max(1, n_boot) / 2:
            lo, hi = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
            ci_low, ci_high = float(lo), float(hi)
            if len(draws) > 1:
                se = float(draws.std(ddof=1))
                extra["se_a"] = float(np.std(boot_va[ok, j], ddof=1))
                extra["se_b"] = float(np.std(boot_vb[ok, j], ddof=1))
        p = None
        if test == "wald":
            if se is not None and _finite(observed[key]):
                if se > 0:
                    p = float(2 * _st.norm.sf(abs(observed[key]) / se))
                else:
                    p = 1.0 if observed[key] == 0 else 0.0
        elif _finite(observed[key]):
            valid_rows = ~np.isnan(perm_va[:, j]) & ~np.isnan(perm_vb[:, j])
            null = (perm_vb[:, j] - perm_va[:, j])[valid_rows]
            t_obs = abs(observed[key])
            n_valid, extreme = len(null), int(np.sum(np.abs(null) >= t_obs - 1e-12 * max(1.0, t_obs)))
            if n_valid:
                p = extreme / n_valid if exact else (1 + extreme) / (1 + n_valid)
                if not exact and extreme < TAIL_MIN_EXCEEDANCES and n_valid > 1:
                    sd = float(null.std(ddof=1))
                    if sd > 0:
                        p = float(2 * _st.norm.sf(abs(observed[key] - float(null.mean())) / sd))
                        extra["normal_tail"] = True
        out[key] = PairedDiff(
            n=int(na),
            value_a=float(va) if va is not None else float("nan"),
            value_b=float(vb) if vb is not None else float("nan"),
            diff=float(observed[key]),
            ci_low=ci_low,
            ci_high=ci_high,
            p_value=p,
            method=method + ("+normal-tail" if extra.get("normal_tail") else ""),
            se=se,
            n_b=int(nb),
            extra=extra,
        )
    return out
