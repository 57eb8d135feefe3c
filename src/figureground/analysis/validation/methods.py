"""Decision rules: does a method say the simulated brain follows figure, ground, or neither?

Each method takes one simulated dataset (all participants' responses and the foreground /
background embeddings) and returns an effect whose sign says which variant it favours
(positive = foreground, i.e. the ``no_background`` embedding), a test statistic and a two-sided
p-value. :func:`decide` turns these into ``"fg"``, ``"bg"`` or ``"equal"`` at level ``alpha``.

- ``seed``: the study's method. Distances of every participant's per-image response to the
  no-background and no-foreground embeddings (:func:`figureground.analysis.seed.seed_analysis`),
  Wilcoxon signed-rank test over (participant, image) pairs; effect = mean of
  d(no_foreground) - d(no_background) (positive: closer to the foreground embedding).
- ``rsa``: per participant, Spearman correlation of the MEG RDM (correlation distance over
  sensors, every time point) with each embedding's RDM, averaged over the window; effect =
  mean over participants of r(fg) - r(bg); two-sided one-sample t-test over participants.
  With 4 participants the exact sign-flip (cluster) test cannot go below p = 0.125, so it
  could never reject; the t-test can (3 degrees of freedom).
- ``partial_rsa``: as ``rsa`` with partial Spearman correlations (fg given bg, bg given fg).
- ``variance_partitioning``: per participant, cross-validated unique R² of the foreground
  band minus that of the background band (banded ridge, folds by session), averaged over the
  window; t-test over participants as above. To keep a sweep fast the responses are binned
  (``vp_bin`` samples), every ``vp_channel_step``-th sensor is kept and each target is
  z-scored over images (MEG in tesla is ~1e-13, too small for float32 ridge penalties).
  Each embedding is reduced once to ``vp_components`` principal components over all images
  (unsupervised, the MEG is not involved) rather than in every fold: sklearn's ``auto`` PCA
  solver costs ~0.1 s per call on these tiny matrices, which dominated the sweep.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import xarray as xr
from scipy import stats

from figureground.errors import UsageError

FG, BG = "no_background", "no_foreground"
DECISIONS = ("fg", "bg", "equal")


@dataclass(frozen=True)
class MethodSettings:
    """Analysis settings shared by the decision rules.

    Parameters
    ----------
    alpha : significance level of every test.
    vp_bin : samples averaged per time bin before variance partitioning.
    vp_channel_step : keep every n-th sensor for variance partitioning.
    vp_splits : outer folds of variance partitioning (by session).
    vp_components : principal components kept per embedding (over all images, once per
        dataset; None keeps every unit).
    vp_inner_splits, vp_iter, vp_alphas : ridge settings (see
        :class:`figureground.analysis.encoding.RidgeSettings`).
    """

    alpha: float = 0.05
    vp_bin: int = 10
    vp_channel_step: int = 4
    vp_splits: int = 4
    vp_components: int | None = 8
    vp_inner_splits: int = 3
    vp_iter: int = 5
    vp_alphas: tuple[float, ...] = field(default=tuple(np.logspace(-2, 4, 7).tolist()))


@dataclass(frozen=True)
class Dataset:
    """One simulated dataset: responses per participant and the two embeddings."""

    meg: Mapping[str, xr.DataArray]  # participant -> (image, channel, time)
    foreground: xr.DataArray  # no_background embedding, (image, ...)
    background: xr.DataArray  # no_foreground embedding, (image, ...)


def decide(effect: float, p_value: float, alpha: float) -> str:
    """``"fg"`` / ``"bg"`` when significant at ``alpha`` in that direction, else ``"equal"``."""
    if not np.isfinite(p_value) or p_value >= alpha or effect == 0:
        return "equal"
    return "fg" if effect > 0 else "bg"


def _t_test(differences: np.ndarray) -> dict[str, float]:
    """Two-sided one-sample t-test of per-participant differences against 0."""
    diff = np.asarray(differences, dtype=np.float64)
    if diff.size < 2:
        raise UsageError(f"a test over participants needs >= 2 participants; got {diff.size}")
    if np.all(diff == diff[0]):
        return {"effect": float(diff.mean()), "statistic": float("nan"), "p_value": float("nan")}
    test = stats.ttest_1samp(diff, 0.0)
    return {
        "effect": float(diff.mean()),
        "statistic": float(test.statistic),
        "p_value": float(test.pvalue),
    }


def seed_method(data: Dataset, settings: MethodSettings) -> dict[str, float]:
    """The seed method's pooled Wilcoxon test (see the module docstring)."""
    from figureground.analysis.seed import seed_analysis

    table = seed_analysis(data.meg, {FG: data.foreground, BG: data.background}, layer="")
    wide = table.pivot_table(
        index=["participant", "image_id"], columns="condition", values="distance"
    )
    diff = (wide[BG] - wide[FG]).to_numpy(dtype=np.float64)
    if np.all(diff == 0):
        return {"effect": 0.0, "statistic": float("nan"), "p_value": float("nan")}
    test = stats.wilcoxon(diff)
    return {
        "effect": float(diff.mean()),
        "statistic": float(test.statistic),
        "p_value": float(test.pvalue),
    }


def _rsa_window_means(data: Dataset) -> dict[str, np.ndarray]:
    """Per-participant window means of plain and partial RSA curves, keyed by curve name."""
    from figureground.analysis.rsa import rsa_timecourse

    curves: dict[str, list[float]] = {"fg": [], "bg": [], "fg_partial": [], "bg_partial": []}
    for participant, meg in data.meg.items():
        table = rsa_timecourse(
            meg, {FG: data.foreground, BG: data.background}, participant=participant
        )
        means = table.groupby(["condition", "given"])["value"].mean()
        curves["fg"].append(means[(FG, "")])
        curves["bg"].append(means[(BG, "")])
        curves["fg_partial"].append(means[(FG, BG)])
        curves["bg_partial"].append(means[(BG, FG)])
    return {name: np.asarray(values) for name, values in curves.items()}


def rsa_method(data: Dataset, settings: MethodSettings) -> dict[str, float]:
    """RSA: t-test over participants of window-mean r(fg) - r(bg)."""
    curves = _rsa_window_means(data)
    return _t_test(curves["fg"] - curves["bg"])


def partial_rsa_method(data: Dataset, settings: MethodSettings) -> dict[str, float]:
    """Partial RSA: t-test over participants of r(fg | bg) - r(bg | fg)."""
    curves = _rsa_window_means(data)
    return _t_test(curves["fg_partial"] - curves["bg_partial"])


def _vp_targets(meg: xr.DataArray, settings: MethodSettings) -> xr.DataArray:
    """Binned, sensor-subsampled responses, each target z-scored over images."""
    binned = meg.coarsen(time=settings.vp_bin, boundary="trim").mean()
    if binned.sizes["time"] == 0:
        binned = meg.mean("time", keepdims=True)
    picked = binned.isel(channel=slice(None, None, settings.vp_channel_step)).astype(np.float64)
    std = picked.std("image")
    return ((picked - picked.mean("image")) / std.where(std > 0, 1.0)).astype(np.float32)


def _principal_components(features: xr.DataArray, n_components: int | None) -> xr.DataArray:
    """Scores (image, component) of the top principal components over images (exact SVD)."""
    flat = np.asarray(features.values, dtype=np.float64).reshape(features.sizes["image"], -1)
    centred = flat - flat.mean(axis=0)
    if n_components is None:
        scores = centred
    else:
        u, s, _ = np.linalg.svd(centred, full_matrices=False)
        k = min(n_components, len(s))
        scores = u[:, :k] * s[:k]
    return xr.DataArray(
        scores.astype(np.float32),
        dims=("image", "component"),
        coords={"image": [str(i) for i in features["image"].values]},
    )


def variance_partitioning_method(data: Dataset, settings: MethodSettings) -> dict[str, float]:
    """Variance partitioning: t-test over participants of unique R²(fg) - unique R²(bg)."""
    from figureground.analysis.encoding import RidgeSettings, variance_partition

    ridge = RidgeSettings(
        n_components=None,
        alphas=tuple(settings.vp_alphas),
        inner_splits=settings.vp_inner_splits,
        n_iter=settings.vp_iter,
    )
    foreground = _principal_components(data.foreground, settings.vp_components)
    background = _principal_components(data.background, settings.vp_components)
    differences = []
    for meg in data.meg.values():
        table = variance_partition(
            _vp_targets(meg, settings),
            foreground,
            background,
            n_splits=settings.vp_splits,
            settings=ridge,
        )
        means = table.groupby("component")["value"].mean()
        differences.append(means["unique_fg"] - means["unique_bg"])
    return _t_test(np.asarray(differences))


# name -> rule; the sweep runs every rule on every dataset
METHODS: dict[str, Callable[[Dataset, MethodSettings], dict[str, float]]] = {
    "seed": seed_method,
    "rsa": rsa_method,
    "partial_rsa": partial_rsa_method,
    "variance_partitioning": variance_partitioning_method,
}
