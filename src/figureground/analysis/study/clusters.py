"""Cluster-based permutation tests over time across participants."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from figureground import logs
from figureground.analysis.study.columns import ALL_IMAGES, CLUSTER_COLUMNS, FIGURE, GROUND
from figureground.conditions import CONDITIONS
from figureground.config import AnalysesConfig

log = logs.get_logger(__name__)


# ----------------------------------------------------------------------------- clusters


def _curves(
    table: pd.DataFrame, keys: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Participants x times matrix of the rows matching ``keys`` (participants sorted)."""
    rows = table
    for column, value in keys.items():
        rows = rows[rows[column] == value]
    wide = rows.pivot_table(index="participant", columns="time", values="value", aggfunc="mean")
    wide = wide.sort_index().dropna(axis=1)
    return (
        wide.to_numpy(dtype=np.float64),
        wide.columns.to_numpy(dtype=np.float64),
        list(wide.index),
    )


class CurveTest(NamedTuple):
    """One cluster test: its descriptors, the table and the keys of the curve(s) it tests."""

    descriptors: dict[str, Any]
    table: pd.DataFrame
    curve: dict[str, Any]
    minus: dict[str, Any] | None = None  # keys of the curve subtracted (difference test)


def _groups(table: pd.DataFrame | None, keys: Sequence[str]) -> list[dict[str, Any]]:
    if table is None or table.empty:
        return []
    return table[list(keys)].drop_duplicates().to_dict(orient="records")


def cluster_plan(
    cfg: AnalysesConfig,
    rsa: pd.DataFrame | None,
    encoding: pd.DataFrame | None,
    partition: pd.DataFrame | None,
) -> list[CurveTest]:
    """Which curves are tested: each against 0, and figure minus ground."""
    plan = []
    model = ["model", "weights", "layer"]
    for group in _groups(rsa, [*model, "level", "view", "stratum"]):
        base = {"analysis": "rsa", **group}
        for condition, given in rsa[["condition", "given"]].drop_duplicates().to_numpy():
            name = f"{condition}|{given}" if given else condition
            plan.append(
                CurveTest(
                    {**base, "curve": name}, rsa, {**group, "condition": condition, "given": given}
                )
            )
        plan.append(
            CurveTest(
                {**base, "curve": f"{FIGURE}-{GROUND}"},
                rsa,
                {**group, "condition": FIGURE, "given": ""},
                {**group, "condition": GROUND, "given": ""},
            )
        )
        if cfg.rsa.partial:
            plan.append(
                CurveTest(
                    {**base, "curve": f"partial {FIGURE}-{GROUND}"},
                    rsa,
                    {**group, "condition": FIGURE, "given": GROUND},
                    {**group, "condition": GROUND, "given": FIGURE},
                )
            )
    whole = {"level": "image", "view": "flat", "stratum": ALL_IMAGES}
    for group in _groups(encoding, model):
        base = {"analysis": "encoding", **group, **whole}
        for condition in CONDITIONS:
            plan.append(
                CurveTest({**base, "curve": condition}, encoding, {**group, "condition": condition})
            )
        plan.append(
            CurveTest(
                {**base, "curve": f"{FIGURE}-{GROUND}"},
                encoding,
                {**group, "condition": FIGURE},
                {**group, "condition": GROUND},
            )
        )
    for group in _groups(partition, model):
        base = {"analysis": "variance_partition", **group, **whole}
        for component in ("unique_fg", "unique_bg", "shared"):
            plan.append(
                CurveTest(
                    {**base, "curve": component}, partition, {**group, "component": component}
                )
            )
        plan.append(
            CurveTest(
                {**base, "curve": "unique_fg-unique_bg"},
                partition,
                {**group, "component": "unique_fg"},
                {**group, "component": "unique_bg"},
            )
        )
    return plan


def min_attainable_p(n_participants: int, n_permutations: int) -> float:
    """Smallest p-value of the sign-flip test (MNE's exact test reports >= 2 / 2**P)."""
    if 2**n_participants <= n_permutations:
        return min(1.0, 2.0 / 2**n_participants)
    return 1.0 / (n_permutations + 1)


def _one_cluster_test(
    job: CurveTest, curves: np.ndarray, times: np.ndarray, options: Mapping[str, Any]
) -> pd.DataFrame | None:
    """Run one planned test; None when the subtracted curve's participants or times differ."""
    from figureground.analysis.stats import cluster_test, cluster_test_difference

    if job.minus is None:
        return cluster_test(curves, times, tail=1, **options, **job.descriptors)
    other, other_times, _ = _curves(job.table, job.minus)
    if other.shape != curves.shape or not np.array_equal(times, other_times):
        return None
    return cluster_test_difference(curves, other, times, tail=0, **options, **job.descriptors)


def cluster_tests(
    cfg: AnalysesConfig,
    rsa: pd.DataFrame | None,
    encoding: pd.DataFrame | None,
    partition: pd.DataFrame | None,
) -> pd.DataFrame:
    """Cluster-based permutation tests over time across participants (:data:`CLUSTER_COLUMNS`).

    Each RSA (plain and partial), encoding and variance-partition curve is tested against 0
    (one-sided, greater); figure minus ground (plain and partial RSA, encoding accuracy,
    unique variance) two-sided. Curves need at least 2 participants.
    """
    st = cfg.stats
    options = {
        "threshold": st.threshold,
        "n_permutations": st.n_permutations,
        "seed": st.random_state,
    }
    tables = []
    for job in cluster_plan(cfg, rsa, encoding, partition):
        curves, times, people = _curves(job.table, job.curve)
        if len(people) < 2 or times.size == 0:
            continue
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            # identical curves at some times give t = +-inf or NaN there; MNE copes
            warnings.simplefilter("ignore", RuntimeWarning)
            result = _one_cluster_test(job, curves, times, options)
        if result is None:
            continue
        result["min_p_attainable"] = min_attainable_p(len(people), st.n_permutations)
        result["significant"] = result["p_value"] < st.alpha
        tables.append(result.reindex(columns=CLUSTER_COLUMNS))
    if not tables:
        return pd.DataFrame(columns=CLUSTER_COLUMNS)
    return pd.concat(tables, ignore_index=True)[CLUSTER_COLUMNS]
