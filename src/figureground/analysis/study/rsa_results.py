"""Time-resolved RSA over a study.

Image and concept level, partial RSA, bootstrap and permutation inference.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from figureground import logs
from figureground.analysis.study.columns import (
    ALL_IMAGES,
    BOOT_MEMORY_BYTES,
    PERMUTATION_METHOD,
    RSA_COLUMNS,
)
from figureground.analysis.study.inputs import condition_features, held_first
from figureground.analysis.verdict import Curves
from figureground.config import AnalysesConfig, RsaConfig
from figureground.errors import DataError, UsageError
from figureground.features.store import FeatureStore
from figureground.parallel import SERIAL

log = logs.get_logger(__name__)


# ----------------------------------------------------------------------------- RSA


def level_patterns(
    meg: Any, features: Mapping[str, Any], level: str, image_ids: Sequence[str] | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray], list[str]]:
    """MEG patterns (n, channel, time) and flattened model patterns (n, features) of a level.

    Images are those in the MEG data, every condition and ``image_ids`` (when given), in MEG
    order; the concept level averages them per concept (concepts in sorted order), as
    :func:`figureground.analysis.rsa.rsa_timecourse` does.
    """
    meg_ids = [str(i) for i in meg["image"].values]
    keep = set(meg_ids) if image_ids is None else {str(i) for i in image_ids}
    for array in features.values():
        keep &= {str(i) for i in array["image"].values}
    ids = [i for i in meg_ids if i in keep]
    if len(ids) < 3:
        raise DataError(f"{len(ids)} images have both responses and features; RSA needs 3")
    same = ids == meg_ids  # then no copy of (possibly 7 GB of) responses
    meg_values = (meg if same else meg.sel(image=ids)).transpose("image", "channel", "time").values
    models = {
        name: np.asarray(array.sel(image=ids).values).reshape(len(ids), -1)
        for name, array in features.items()
    }
    if level == "image":
        return meg_values, models, ids
    concepts = np.asarray(meg["concept"].sel(image=ids).values).astype(str)
    labels, index = np.unique(concepts, return_inverse=True)
    if labels.size < 3:
        raise DataError(f"{labels.size} concepts; concept-level RSA needs 3")

    def group_mean(values: np.ndarray) -> np.ndarray:
        sums = np.zeros((labels.size, *values.shape[1:]), dtype=np.float64)
        np.add.at(sums, index, values)
        counts = np.bincount(index).reshape(-1, *([1] * (values.ndim - 1)))
        return sums / counts

    return (
        group_mean(meg_values).astype(meg_values.dtype),
        {name: group_mean(values) for name, values in models.items()},
        [str(label) for label in labels],
    )


def _square(rdms: np.ndarray, n: int) -> np.ndarray:
    """Condensed RDMs (..., pairs) as square matrices (..., n, n), zero diagonal."""
    rows, cols = np.triu_indices(n, 1)
    out = np.zeros((*rdms.shape[:-1], n, n), dtype=rdms.dtype)
    out[..., rows, cols] = rdms
    out[..., cols, rows] = rdms
    return out


def partial_method_of(method: str) -> str:
    """The partial comparison matching ``method``, as :func:`rsa.rsa_timecourse` picks it."""
    return "partial_spearman" if method == "spearman" else "partial_pearson"


def _rsa_statistic(
    meg_square: np.ndarray,
    model_square: np.ndarray,
    method: str,
    partial_pairs: Sequence[tuple[int, int]],
    device: str | None = None,
) -> Callable[[np.ndarray], np.ndarray]:
    """Bootstrap callback: RSA (times, models + partial pairs) on resampled images.

    Pairs of an image with its own copy are dropped, as the bootstrap needs for RDMs. For
    Spearman, the ranks are taken once per sample (vectorised) and compared by Pearson and
    partial Pearson, which is what ``spearman`` / ``partial_spearman`` compute. With a torch
    ``device`` the same numbers are computed there
    (:func:`figureground.analysis.torch_stats.rsa_statistic`).
    """
    from scipy.stats import rankdata

    if device is not None:
        from figureground.analysis.torch_stats import rsa_statistic

        return rsa_statistic(meg_square, model_square, method, partial_pairs, device)

    from figureground.analysis.rdm_compare import compare_rdms

    n = meg_square.shape[-1]
    rows, cols = np.triu_indices(n, 1)
    ranked = method == "spearman"
    plain = "pearson" if ranked else method
    partial = "partial_pearson" if ranked else partial_method_of(method)

    def statistic(index: np.ndarray) -> np.ndarray:
        i, j = index[rows], index[cols]
        distinct = i != j
        i, j = i[distinct], j[distinct]
        out = np.full((meg_square.shape[0], model_square.shape[0] + len(partial_pairs)), np.nan)
        if i.size < 3:
            return out
        data = meg_square[:, i, j]
        models = model_square[:, i, j]
        if ranked:
            data, models = rankdata(data, axis=-1), rankdata(models, axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, : models.shape[0]] = compare_rdms(data, models, plain)
            for k, (target, given) in enumerate(partial_pairs):
                pair = models[[target, given]]
                out[:, models.shape[0] + k] = compare_rdms(data, pair, partial)[:, 0]
        out[~np.isfinite(out)] = np.nan  # e.g. a resample whose model RDMs are collinear
        return out

    return statistic


def _bootstrap_distribution(
    meg_rdms: np.ndarray,
    model_rdms: np.ndarray,
    n_conditions: int,
    cfg: RsaConfig,
    partial_pairs: Sequence[tuple[int, int]],
    device: str | None,
) -> np.ndarray:
    """Bootstrap samples (n_boot, times, models + partial pairs) of the RSA curves.

    Spearman and Pearson on the CPU re-weight pairs instead of re-sorting
    (:func:`figureground.analysis.rsa_bootstrap.bootstrap_rsa`); cosine and torch devices go
    through :func:`figureground.analysis.stats.bootstrap`. Both use the same draws.
    """
    from figureground.analysis.rsa_bootstrap import METHODS, bootstrap_draws, bootstrap_rsa
    from figureground.analysis.stats import bootstrap

    if device is None and cfg.method in METHODS:
        draws = bootstrap_draws(n_conditions, cfg.n_boot, cfg.seed)
        partials = [(target, [given]) for target, given in partial_pairs]
        return bootstrap_rsa(meg_rdms, model_rdms, draws, cfg.method, partials)
    n_times = meg_rdms.shape[0]
    model_square = _square(np.asarray(model_rdms, dtype=np.float64), n_conditions)
    step = max(1, BOOT_MEMORY_BYTES // (8 * n_conditions * n_conditions))
    blocks = []
    for start in range(0, n_times, step):
        block = _square(np.asarray(meg_rdms[start : start + step]), n_conditions)
        with warnings.catch_warnings(), np.errstate(invalid="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            result = bootstrap(
                _rsa_statistic(block, model_square, cfg.method, partial_pairs, device),
                n_conditions,
                n_boot=cfg.n_boot,
                ci=cfg.ci,
                seed=cfg.seed,
            )
        blocks.append(result.distribution)
    return np.concatenate(blocks, axis=1)


def rsa_inference(
    meg_rdms: np.ndarray,
    model_rdms: np.ndarray,
    n_conditions: int,
    cfg: RsaConfig,
    partial_pairs: Sequence[tuple[int, int]],
    scheduler: Any = SERIAL,
    device: str | None = None,
) -> dict[str, np.ndarray]:
    """Bootstrap intervals and permutation p-values of one participant's RSA curves.

    Parameters
    ----------
    meg_rdms : condensed MEG RDMs (times, pairs).
    model_rdms : condensed model RDMs (models, pairs).
    n_conditions : images (or concepts) in the RDMs.
    cfg : RSA settings (method, n_boot, n_permutations, ci, seed).
    partial_pairs : (target, given) model indices of the partial RSA curves.
    scheduler : where the permutation blocks run: ``serial``, a Dask address or client
        (:func:`figureground.analysis.stats.null_distribution`; identical nulls). The MEG RDMs
        are ranked and standardised once per call; each model RDM is tested with the same
        permutations (:func:`figureground.analysis.stats.permutation_draws` from ``cfg.seed``).
    device : a torch device for the bootstrap and the permutations (None: numpy; with a
        device the permutations run in this process).

    Returns
    -------
    dict with ``ci_low``, ``ci_high`` (times, models + partial pairs) and ``p_perm``,
    ``p_perm_fwer`` (times, models; NaN for partial curves and methods without a
    permutation test), and ``distribution`` (n_boot, times, models + partial pairs) when
    ``n_boot`` > 0. The bootstrap resamples images with the same draws at every time.
    """
    from figureground.analysis.stats import (
        TIE_TOLERANCE,
        check_rdms,
        null_correlations,
        null_distribution,
        permutation_draws,
        permutation_p_value,
        standardised_rdms,
    )

    n_times = meg_rdms.shape[0]
    n_curves = model_rdms.shape[0] + len(partial_pairs)
    out = {key: np.full((n_times, n_curves), np.nan) for key in ("ci_low", "ci_high")}
    out["p_perm"] = np.full((n_times, n_curves), np.nan)
    out["p_perm_fwer"] = np.full((n_times, n_curves), np.nan)
    if cfg.n_boot > 0:
        distribution = _bootstrap_distribution(
            meg_rdms, model_rdms, n_conditions, cfg, partial_pairs, device
        )
        tail = (1 - cfg.ci) / 2 * 100
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN times: NaN bounds
            out["ci_low"] = np.nanpercentile(distribution, tail, axis=0)
            out["ci_high"] = np.nanpercentile(distribution, 100 - tail, axis=0)
        out["distribution"] = distribution
    permutation_method = PERMUTATION_METHOD[cfg.method]
    if cfg.n_permutations > 0 and permutation_method is not None:
        check_rdms(meg_rdms, model_rdms[0])
        # Ranked and standardised once for every model; every model gets the same draws.
        z_data = standardised_rdms(meg_rdms, permutation_method)
        perms = permutation_draws(n_conditions, cfg.n_permutations, cfg.seed)
        identity = np.arange(n_conditions)[None]
        for k, z_model in enumerate(standardised_rdms(model_rdms, permutation_method)):
            null = null_distribution(z_data, z_model, perms, scheduler, device=device)
            observed = null_correlations(z_data, z_model, identity, device)[0]
            out["p_perm"][:, k] = permutation_p_value(observed, null, "greater", TIE_TOLERANCE)
            maxima = null.max(axis=1)
            out["p_perm_fwer"][:, k] = (
                1.0 + (maxima[None, :] >= observed[:, None] - TIE_TOLERANCE).sum(1)
            ) / (1.0 + cfg.n_permutations)
    return out


def rsa_device(backend: str) -> tuple[str, str | None]:
    """(RDM backend, torch device or None) of ``analyses.rsa.backend``.

    Raises
    ------
    UsageError
        ``torch_cuda`` without a visible CUDA GPU.
    """
    if backend == "numpy":
        return "numpy", None
    if backend == "torch_cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("analyses.rsa.backend is torch_cuda but no CUDA GPU is visible")
        return "torch", "cuda"
    return "torch", "cpu"


MODEL_RDM_CACHE_PAIRS = 2**24  # model RDM values kept for the next participant (128 MiB)


@dataclass(frozen=True)
class RsaRun:
    """One participant's RSA at one level: the tidy table, MEG RDMs, labels and curves."""

    table: pd.DataFrame
    meg_rdms: np.ndarray
    labels: list[str]
    curves: Curves | None  # None without bootstrap samples (n_boot = 0)


def rsa_curves(
    meg: Any,
    features: Mapping[str, Any],
    level: str,
    cfg: RsaConfig,
    image_ids: Sequence[str] | None = None,
    scheduler: Any = SERIAL,
    model_rdm_cache: dict[tuple[str, ...], np.ndarray] | None = None,
) -> RsaRun:
    """RSA curves of one participant at one level, with intervals and p-values.

    Returns the tidy table (:data:`RSA_COLUMNS` less model/weights/stratum/view), the MEG
    RDMs (times, pairs), the labels of their rows (image ids or concepts) and the curves
    with their bootstrap distribution for the verdict. ``scheduler`` runs the permutation
    tests. ``model_rdm_cache`` keeps the model RDMs by the labels of their conditions, so
    participants shown the same images share them (RDMs of up to
    :data:`MODEL_RDM_CACHE_PAIRS` pairs are kept).
    """
    import xarray as xr

    from figureground.analysis.rdm_calc import compute_rdms
    from figureground.analysis.rsa import PARTIAL_PAIRS, rsa_timecourse

    if image_ids is not None:
        wanted = {str(i) for i in image_ids}
        meg = meg.sel(image=[i for i in map(str, meg["image"].values) if i in wanted])
    meg_values, model_values, labels = level_patterns(meg, features, level)
    if level == "concept":
        # The concept level is the image-level RSA of the concept means; passing the means
        # spares rsa_timecourse a second copy of every image's responses.
        meg = xr.DataArray(
            meg_values,
            dims=("image", "channel", "time"),
            coords={"image": labels, "channel": meg["channel"].values, "time": meg["time"].values},
            attrs=meg.attrs,
        )
        features = {
            name: xr.DataArray(model_values[name], dims=("image", "feature"),
                               coords={"image": labels}, attrs=array.attrs)
            for name, array in features.items()
        }  # fmt: skip
    backend, device = rsa_device(cfg.backend)
    conditions = list(model_values)
    cache_key = (*conditions, *labels)
    model_rdms = None if model_rdm_cache is None else model_rdm_cache.get(cache_key)
    if model_rdms is None:
        model_rdms = np.stack([compute_rdms(model_values[c], cfg.model_metric) for c in conditions])
        if model_rdm_cache is not None and model_rdms.size <= MODEL_RDM_CACHE_PAIRS:
            model_rdm_cache[cache_key] = model_rdms
    n_pairs = len(labels) * (len(labels) - 1) // 2
    # Filled by rsa_timecourse as it goes (its conditions are these labels, in this order).
    meg_rdms = np.empty(
        (meg_values.shape[-1], n_pairs), dtype=np.result_type(meg_values.dtype, np.float32)
    )
    table = rsa_timecourse(
        meg,
        features,
        metric=cfg.metric,
        model_metric=cfg.model_metric,
        method=cfg.method,
        level="image",
        partial=cfg.partial,
        batch_size=cfg.batch_size,
        backend=backend,
        device=device,
        rdms_out=meg_rdms,
        model_rdms=model_rdms,
    ).assign(level=level)
    if int(table["n_conditions"].iloc[0]) != len(labels):  # an internal invariant
        raise RuntimeError(
            f"RSA used {table['n_conditions'].iloc[0]} conditions, not {len(labels)}"
        )
    partial_pairs = [
        (conditions.index(a), conditions.index(b))
        for a, b in PARTIAL_PAIRS
        if cfg.partial and a in conditions and b in conditions
    ]
    if device is not None and not np.isfinite(meg_rdms).all():
        device = None  # NaN pairs: numpy's comparisons leave them out, torch's would not
    inference = rsa_inference(
        meg_rdms, model_rdms, len(labels), cfg, partial_pairs, scheduler, device
    )
    distribution = inference.pop("distribution", None)
    curves = [(c, "") for c in conditions] + [
        (conditions[a], conditions[b]) for a, b in partial_pairs
    ]
    times = np.asarray(meg["time"].values, dtype=np.float64)
    extra = pd.DataFrame(
        {
            "condition": np.repeat([c for c, _ in curves], times.size),
            "given": np.repeat([g for _, g in curves], times.size),
            "time": np.tile(times, len(curves)),
            **{key: values.T.reshape(-1) for key, values in inference.items()},
        }
    )
    table = table.merge(extra, on=["condition", "given", "time"], how="left", validate="1:1")
    found = None
    if distribution is not None:
        names = tuple(f"{c}|{g}" if g else c for c, g in curves)
        estimate = np.stack(
            [
                table[(table["condition"] == c) & (table["given"] == g)]
                .sort_values("time")["value"]
                .to_numpy(dtype=np.float64)
                for c, g in curves
            ],
            axis=1,
        )
        found = Curves(times, names, estimate, distribution, tuple(labels))
    return RsaRun(table, meg_rdms, labels, found)


def rsa_one(
    meg: Any,
    features: Mapping[str, Any],
    level: str,
    cfg: RsaConfig,
    image_ids: Sequence[str] | None = None,
    scheduler: Any = SERIAL,
) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """:func:`rsa_curves` without the bootstrap distribution: (table, MEG RDMs, labels)."""
    run = rsa_curves(meg, features, level, cfg, image_ids, scheduler)
    return run.table, run.meg_rdms, run.labels


def describe_store(info: FeatureStore, layer: str) -> dict[str, str]:
    return {"model": str(info.model), "weights": str(info.weights), "layer": layer}


RunKey = tuple[int, str, str, str]  # (store index, layer, view, level)


@dataclass
class RsaStudy:
    """Every participant's RSA of a study: the table, MEG RDMs and the verdict's curves."""

    table: pd.DataFrame
    meg_rdms: dict[tuple[str, str], dict[str, tuple[list[str], np.ndarray]]]
    curves: dict[RunKey, dict[str, Curves]] = field(default_factory=dict)
    descriptors: dict[RunKey, dict[str, str]] = field(default_factory=dict)
    skipped_views: dict[str, str] = field(default_factory=dict)


def viewed_features(
    features: Mapping[str, Any], view: str, masks: np.ndarray | None
) -> dict[str, Any]:
    """Each condition's features as (image, feature) DataArrays in ``view``."""
    import xarray as xr

    from figureground.analysis.views import view_values

    values = view_values({c: a.values for c, a in features.items()}, view, masks)
    out = {}
    for condition, array in features.items():
        coords: dict[str, Any] = {"image": array["image"].values}
        if "concept" in array.coords:
            coords["concept"] = ("image", array["concept"].values)
        out[condition] = xr.DataArray(
            values[condition], dims=("image", "feature"), coords=coords, attrs=array.attrs
        )
    return out


def region_masks(
    view: str, features: Mapping[str, Any], info: FeatureStore, mask_grids: Any
) -> np.ndarray | None:
    if view != "region":
        return None
    array = next(iter(features.values()))
    grid = tuple(array.shape[2:4]) if array.ndim >= 4 else (1, 1)
    ids = [str(i) for i in array["image"].values]
    from figureground.features.store import read_root_attrs

    return mask_grids.on_grid(read_root_attrs(info.path), ids, grid)


def rsa_results(
    cfg: AnalysesConfig,
    meg: Mapping[str, Any],
    stores: Sequence[FeatureStore],
    strata: Mapping[str, Sequence[str]],
    scheduler: Any = SERIAL,
    mask_grids: Any = None,
) -> RsaStudy:
    """RSA for every model, layer, view, participant, level and stratum.

    ``strata`` maps a stratum name to its image ids (image level only); ``all`` uses every
    image at every level. ``cfg.views`` are the views of each layer
    (:mod:`figureground.analysis.views`); ``region`` needs ``mask_grids``
    (:class:`figureground.analysis.study.masks.MaskGrids`) and is skipped, with a reason in
    ``skipped_views``, without them. Also returns the MEG RDMs per (level, stratum) and
    participant (labels, rdms) for the noise ceiling across participants, and the curves
    with their bootstrap distributions (stratum ``all``) for the verdict. Participants are
    the outer loop, so lazily read recordings are read once each; rows come out ordered by
    model, layer, view, participant. ``scheduler`` runs the permutation tests.
    """
    tables: dict[tuple[int, int, int, int, int], pd.DataFrame] = {}
    study = RsaStudy(pd.DataFrame(columns=RSA_COLUMNS), {})
    runs = [(level, ALL_IMAGES, None) for level in cfg.rsa.levels]
    runs += [("image", name, ids) for name, ids in strata.items()]
    views = list(cfg.views)
    participants = list(meg)
    model_rdms: dict[tuple[int, ...], dict] = {}  # shared by participants shown the same images
    for participant in held_first(meg):
        responses = meg[participant]
        p_index = participants.index(participant)
        for s_index, info in enumerate(stores):
            for l_index, layer in enumerate(info.layers):
                features = condition_features(info, layer)
                spatial = next(iter(features.values())).ndim >= 4
                for v_index, view in enumerate(views):
                    if not spatial and v_index > 0:  # pooled features: every view is the same
                        study.skipped_views[view] = (
                            f"{info.key} {layer} is pooled (no map), so it equals the "
                            f"{views[0]} view"
                        )
                        continue
                    if view == "region" and mask_grids is None:
                        study.skipped_views[view] = "no object masks (variants/mask) to read"
                        continue
                    try:
                        masks = region_masks(view, features, info, mask_grids)
                    except DataError as exc:
                        study.skipped_views[view] = str(exc)
                        continue
                    viewed = viewed_features(features, view, masks)
                    for r_index, (level, stratum, ids) in enumerate(runs):
                        log.info(
                            "RSA: %s %s %s (%s view), %s level, %s",
                            participant, info.key, layer, view, level, stratum,
                        )  # fmt: skip
                        run = rsa_curves(
                            responses,
                            viewed,
                            level,
                            cfg.rsa,
                            ids,
                            scheduler=scheduler,
                            model_rdm_cache=model_rdms.setdefault(
                                (s_index, l_index, v_index, r_index), {}
                            ),
                        )
                        described = {**describe_store(info, layer), "level": level, "view": view}
                        table = run.table.assign(
                            participant=participant, stratum=stratum, **described
                        )
                        tables[(s_index, l_index, v_index, p_index, r_index)] = table[RSA_COLUMNS]
                        if v_index == 0 or (level, stratum) not in study.meg_rdms:
                            study.meg_rdms.setdefault((level, stratum), {})[participant] = (
                                run.labels,
                                run.meg_rdms,
                            )
                        if stratum == ALL_IMAGES and run.curves is not None:
                            key = (s_index, layer, view, level)
                            study.curves.setdefault(key, {})[participant] = run.curves
                            study.descriptors[key] = described
    study.meg_rdms = {
        run: {p: per_person[p] for p in participants if p in per_person}
        for run, per_person in study.meg_rdms.items()
    }
    study.curves = {
        key: {p: per_person[p] for p in participants if p in per_person}
        for key, per_person in study.curves.items()
    }
    if tables:
        study.table = pd.concat([tables[k] for k in sorted(tables)], ignore_index=True)
    return study


def scaled(responses: Any) -> Any:
    """Responses divided by their overall standard deviation (any units -> unit scale).

    Correlations and R² are unchanged; the ridge solvers then work on numbers of order 1.
    """
    scale = float(np.std(responses.values))
    return responses / scale if scale > 0 else responses


def span_basis(features: Any, max_images: int = 5000) -> Any:
    """Features expressed in an orthonormal basis of their own span: (image, rank).

    With fewer images than features, ``X = U S Vt`` and ``X V = U S`` keeps every inner
    product between images, and every projection onto directions inside the span (where PCA
    axes fitted on any subset of the images lie, and where ridge solutions lie). PCA scores
    on training folds (up to sign) and ridge predictions are therefore unchanged, while PCA
    and the solvers work on ``rank <= n_images`` columns instead of, e.g., 401,408. Not used
    for RSA (correlation distance is not rotation-invariant). Arrays with at least half as
    many images as features, or more than ``max_images`` images, are returned unchanged.
    """
    import xarray as xr

    values = np.asarray(features.values, dtype=np.float64).reshape(features.sizes["image"], -1)
    n_images, n_features = values.shape
    if 2 * n_images > n_features or n_images > max_images:
        return features
    u, s, _ = np.linalg.svd(values, full_matrices=False)
    rank = int((s > s[0] * n_features * np.finfo(np.float64).eps).sum()) if s.size else 0
    return xr.DataArray(
        (u[:, :rank] * s[:rank]).astype(features.dtype),
        dims=("image", "component"),
        coords={"image": features["image"].values},
        attrs=dict(features.attrs),
    )
