"""Descriptive summaries and paired comparisons of tidy per-item results.

Generic over the value column: used for seed distances per image, and for any other table
with one value per (group, condition, item). Bootstrap intervals come from
``scipy.stats.bootstrap`` with a seeded generator, so they are reproducible; paired tests
are Wilcoxon signed-rank tests (``scipy.stats.wilcoxon``) with the matched-pairs
rank-biserial correlation and the mean difference (with its bootstrap interval) as effect
sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from figureground.errors import UsageError

_BOOT_METHODS = ("BCa", "percentile", "basic")


def _check_columns(table: pd.DataFrame, columns: Sequence[str]) -> None:
    """Raise a one-line UsageError naming missing columns."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise UsageError(f"table lacks column(s) {missing}; it has {list(table.columns)}")


def bootstrap_mean_ci(
    values: np.ndarray,
    *,
    n_boot: int = 9999,
    confidence: float = 0.95,
    seed: int = 0,
    method: str = "BCa",
) -> tuple[float, float]:
    """Bootstrap interval of the mean of ``values`` (scipy.stats.bootstrap, seeded).

    Returns (nan, nan) for fewer than two values or constant values.
    """
    if method not in _BOOT_METHODS:
        raise UsageError(f"bootstrap method must be one of {_BOOT_METHODS}; got {method!r}")
    data = np.asarray(values, dtype=np.float64)
    if data.size < 2 or np.all(data == data[0]):
        return (float("nan"), float("nan")) if data.size < 2 else (float(data[0]), float(data[0]))
    result = stats.bootstrap(
        (data,),
        np.mean,
        n_resamples=n_boot,
        confidence_level=confidence,
        method=method,
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def describe(
    table: pd.DataFrame,
    *,
    value: str = "distance",
    by: Sequence[str] = ("participant", "condition"),
    n_boot: int = 9999,
    confidence: float = 0.95,
    seed: int = 0,
    method: str = "BCa",
) -> pd.DataFrame:
    """Mean, SEM and bootstrap interval of ``value`` over items, per group.

    Parameters
    ----------
    table : DataFrame
        Tidy results, one row per item (e.g. image) and group.
    value : str
        Column to summarise.
    by : sequence of str
        Grouping columns (default participant and condition).
    n_boot, confidence, seed, method
        Bootstrap settings (``scipy.stats.bootstrap``).

    Returns
    -------
    DataFrame with the ``by`` columns and ``n, mean, sd, sem, ci_low, ci_high, confidence``.
    """
    _check_columns(table, [*by, value])
    rows = []
    for key, group in table.groupby(list(by), sort=True, dropna=False):
        data = group[value].to_numpy(dtype=np.float64)
        low, high = bootstrap_mean_ci(
            data, n_boot=n_boot, confidence=confidence, seed=seed, method=method
        )
        rows.append(
            {
                **dict(zip(by, key, strict=True)),
                "n": data.size,
                "mean": float(data.mean()),
                "sd": float(data.std(ddof=1)) if data.size > 1 else float("nan"),
                "sem": float(stats.sem(data)) if data.size > 1 else float("nan"),
                "ci_low": low,
                "ci_high": high,
                "confidence": confidence,
            }
        )
    return pd.DataFrame(rows)


def rank_biserial(differences: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation (R+ - R-) / (R+ + R-).

    Zero differences are dropped (as in the Wilcoxon test's default); ranks of the absolute
    differences average ties. Returns nan when every difference is zero.
    """
    diff = np.asarray(differences, dtype=np.float64)
    diff = diff[diff != 0]
    if diff.size == 0:
        return float("nan")
    ranks = stats.rankdata(np.abs(diff))
    positive = ranks[diff > 0].sum()
    negative = ranks[diff < 0].sum()
    return float((positive - negative) / (positive + negative))


def paired_test(
    a: np.ndarray,
    b: np.ndarray,
    *,
    n_boot: int = 9999,
    confidence: float = 0.95,
    seed: int = 0,
    method: str = "BCa",
) -> dict[str, float]:
    """Wilcoxon signed-rank test of ``a - b`` with effect sizes.

    Returns
    -------
    dict with ``n, statistic, p_value, rank_biserial, mean_difference, diff_ci_low,
    diff_ci_high``.
    """
    first = np.asarray(a, dtype=np.float64)
    second = np.asarray(b, dtype=np.float64)
    if first.shape != second.shape or first.ndim != 1:
        raise UsageError(
            f"paired samples must be 1-D and of equal length; got {first.shape} and {second.shape}"
        )
    diff = first - second
    if np.any(diff != 0):
        test = stats.wilcoxon(first, second)
        statistic, p_value = float(test.statistic), float(test.pvalue)
    else:
        statistic, p_value = float("nan"), float("nan")
    low, high = bootstrap_mean_ci(
        diff, n_boot=n_boot, confidence=confidence, seed=seed, method=method
    )
    return {
        "n": int(diff.size),
        "statistic": statistic,
        "p_value": p_value,
        "rank_biserial": rank_biserial(diff),
        "mean_difference": float(diff.mean()),
        "diff_ci_low": low,
        "diff_ci_high": high,
    }


def paired_tests(
    table: pd.DataFrame,
    *,
    value: str = "distance",
    item: str = "image_id",
    between: str = "condition",
    within: Sequence[str] = ("participant",),
    pairs: Sequence[tuple[str, str]] | None = None,
    n_boot: int = 9999,
    confidence: float = 0.95,
    seed: int = 0,
    method: str = "BCa",
) -> pd.DataFrame:
    """Paired tests between levels of ``between``, items matched by ``item``, per group.

    Parameters
    ----------
    table : DataFrame
        Tidy results with one row per (within..., between, item).
    value, item, between, within
        Column names: the value, the pairing key, the compared factor, the grouping.
    pairs : sequence of (level_a, level_b), optional
        Which levels to compare (a - b); default all pairs, in order of first appearance.

    Returns
    -------
    DataFrame with the ``within`` columns, ``condition_a, condition_b`` and the fields of
    :func:`paired_test`. Items missing in either level are left out of that pair.
    """
    _check_columns(table, [*within, between, item, value])
    levels = list(dict.fromkeys(table[between].tolist()))
    chosen = list(pairs) if pairs is not None else list(combinations(levels, 2))
    for level_a, level_b in chosen:
        for level in (level_a, level_b):
            if level not in levels:
                raise UsageError(f"{between} {level!r} is not in the table; it has {levels}")
    rows = []
    groups = table.groupby(list(within), sort=True) if within else [((), table)]
    for key, group in groups:
        wide = group.pivot_table(index=item, columns=between, values=value, aggfunc="mean")
        for level_a, level_b in chosen:
            if level_a not in wide.columns or level_b not in wide.columns:
                continue
            both = wide[[level_a, level_b]].dropna()
            result = paired_test(
                both[level_a].to_numpy(),
                both[level_b].to_numpy(),
                n_boot=n_boot,
                confidence=confidence,
                seed=seed,
                method=method,
            )
            key_tuple = key if isinstance(key, tuple) else (key,)
            rows.append(
                {
                    **dict(zip(within, key_tuple, strict=True)),
                    "condition_a": level_a,
                    "condition_b": level_b,
                    **result,
                }
            )
    return pd.DataFrame(rows)
