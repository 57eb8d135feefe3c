"""Run a study's analyses on its recordings and feature stores; write the results contract.

Files written to ``results/``:

- ``seed_distance.csv``: participant, image_id, condition, model, weights, layer, distance.
- ``rsa_timecourse.csv``: one row per participant, model, layer, level, stratum, condition
  (``given`` names the condition partialled out, "" otherwise) and time, with the RSA value,
  its bootstrap interval over images (``ci_low``, ``ci_high``) and the permutation p-value
  per time point (``p_perm``) and corrected over time by the maximum statistic
  (``p_perm_fwer``).
- ``encoding.csv``: cross-validated Pearson r per participant, model, layer, condition and
  time (mean over folds and sensors).
- ``variance_partition.csv``: cross-validated R² of the joint, figure-only and ground-only
  models and the unique figure, unique ground and shared components over time.
- ``noise_ceiling.csv``: RSA ceilings (lower/upper bounds, rsatoolbox definitions) from the
  test images' repetitions and across participants, and the encoding ceilings from split-half
  reliability (band over random splits).
- ``clusters.csv``: cluster-based sign-flip permutation tests over time across participants,
  for each curve (against 0) and for figure minus ground.
- ``summary.json``: every analysis's summary numbers, notes and the run's provenance.

The "foreground" (figure) model is the ``no_background`` condition, the "background"
(ground) model the ``no_foreground`` condition. The "pooled" participant of the seed
summaries averages each image's distance over participants first; the ``mean`` participant
of the other summaries averages curves over participants.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from figureground import logs
from figureground.config import CONDITIONS, AnalysesConfig, RsaConfig
from figureground.errors import DataError, UsageError
from figureground.fsutil import atomic_path, atomic_write_json

log = logs.get_logger(__name__)

SEED_COLUMNS = ["participant", "image_id", "condition", "model", "weights", "layer", "distance"]
RSA_COLUMNS = [
    "participant", "model", "weights", "layer", "level", "stratum", "condition", "given",
    "time", "value", "ci_low", "ci_high", "p_perm", "p_perm_fwer", "metric", "method",
    "model_metric", "n_conditions",
]  # fmt: skip
ENCODING_COLUMNS = [
    "participant", "model", "weights", "layer", "condition", "time", "value", "metric",
    "n_folds", "folds_by", "n_images",
]  # fmt: skip
PARTITION_COLUMNS = [
    "participant", "model", "weights", "layer", "component", "time", "value", "metric",
]  # fmt: skip
CEILING_COLUMNS = [
    "participant", "analysis", "estimate", "level", "method", "time", "value", "lower",
    "upper", "n_images", "n_rdms",
]  # fmt: skip
CLUSTER_COLUMNS = [
    "analysis", "model", "weights", "layer", "level", "stratum", "curve", "tail", "cluster",
    "start", "stop", "p_value", "t_sum", "n_participants", "min_p_attainable", "significant",
]  # fmt: skip
POOLED = "pooled"
MEAN = "mean"
FIGURE, GROUND = "no_background", "no_foreground"
ALL_IMAGES = "all"
# RSA comparison -> (noise-ceiling method, permutation-test method or None)
CEILING_METHOD = {"spearman": "spearman", "pearson": "corr", "cosine": "cosine"}
PERMUTATION_METHOD = {"spearman": "spearman", "pearson": "pearson", "cosine": None}
BOOT_MEMORY_BYTES = 2**28  # square RDMs held at once by the bootstrap (time points x n x n)


# ----------------------------------------------------------------------------- inputs


def load_recordings(
    neural_files: Mapping[str, Mapping[str, Path | None]], **kwargs: Any
) -> dict[str, Any]:
    """Per-participant experiment responses, dims (image, channel, time)."""
    from figureground.neural import things_meg

    return {
        participant: things_meg.load(
            files["epochs"], files.get("attributes"), trial_type="exp", **kwargs
        )
        for participant, files in neural_files.items()
    }


def load_test_recordings(
    neural_files: Mapping[str, Mapping[str, Path | None]], **kwargs: Any
) -> dict[str, Any]:
    """Per-participant test responses, dims (image, repetition, channel, time).

    Participants without test trials are left out (logged).
    """
    from figureground.neural import things_meg

    found = {}
    for participant, files in neural_files.items():
        try:
            found[participant] = things_meg.load(
                files["epochs"], files.get("attributes"), trial_type="test", **kwargs
            )
        except DataError as exc:
            log.warning("%s: no usable test trials for noise ceilings (%s)", participant, exc)
    return found


def select_stores(
    feature_stores: Mapping[str, Mapping[str, Any]], wanted: Sequence[str]
) -> list[Mapping[str, Any]]:
    """The feature stores named in ``wanted`` (store key or model name); all when empty."""
    stores = list(feature_stores.values())
    if not wanted:
        return stores
    names = {s["key"] for s in stores} | {s["model"] for s in stores}
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise UsageError(
            f"analyses.models {unknown} match no feature store; have {', '.join(sorted(names))}"
        )
    return [s for s in stores if s["key"] in wanted or s["model"] in wanted]


def condition_features(info: Mapping[str, Any], layer: str) -> dict[str, Any]:
    """One layer of every condition, loaded, with model and layer in its attributes."""
    from figureground.features.store import open_features

    arrays = {}
    for condition in CONDITIONS:
        dataset = open_features(info["store"], condition)
        if layer not in dataset.data_vars:
            raise DataError(
                f"feature store {info['store']} ({condition}) has no layer {layer!r}; "
                f"it has {sorted(dataset.data_vars)}"
            )
        array = dataset[layer].load()
        # Zarr gives numpy StringDType ids, which some numpy calls cannot cast; plain str.
        ids = np.array([str(i) for i in array["image"].values])
        array = array.assign_coords(image=ids)
        if "concept" in array.coords:
            array = array.assign_coords(
                concept=("image", np.array([str(c) for c in array["concept"].values]))
            )
        array.attrs.update(model=str(info["model"]), layer=layer)
        arrays[condition] = array
    return arrays


def _post_stimulus(times: np.ndarray) -> np.ndarray:
    return np.asarray(times, dtype=np.float64) >= 0


# ----------------------------------------------------------------------------- seed method


def seed_results(
    cfg: AnalysesConfig, meg: Mapping[str, Any], feature_stores: Mapping[str, Mapping[str, Any]]
) -> pd.DataFrame:
    """Seed distances for every participant, model, layer and condition."""
    from figureground.analysis.seed import seed_analysis
    from figureground.features.store import open_features

    tables = []
    for info in feature_stores.values():
        groups = {condition: open_features(info["store"], condition) for condition in CONDITIONS}
        for layer in info["layers"]:
            tables.append(
                seed_analysis(
                    meg,
                    groups,
                    layer=layer,
                    model=info["model"],
                    weights=info["weights"],
                    response=cfg.seed.response,
                    tmin=cfg.seed.tmin,
                    tmax=cfg.seed.tmax,
                    zscore=cfg.seed.zscore,
                )
            )
    if not tables:
        raise DataError("no feature stores to analyse")
    return pd.concat(tables, ignore_index=True)


def with_pooled(table: pd.DataFrame) -> pd.DataFrame:
    """Add a ``pooled`` participant: each image's distance averaged over participants."""
    keys = ["image_id", "condition", "model", "weights", "layer"]
    pooled = table.groupby(keys, sort=True, as_index=False)["distance"].mean()
    pooled.insert(0, "participant", POOLED)
    return pd.concat([table[SEED_COLUMNS], pooled[SEED_COLUMNS]], ignore_index=True)


def seed_summary(table: pd.DataFrame, n_boot: int, seed: int) -> dict[str, Any]:
    """Mean, SEM, bootstrap CI per group, and paired Wilcoxon tests between conditions."""
    from figureground.analysis.summaries import describe, paired_tests

    groups = ("participant", "model", "weights", "layer")
    full = with_pooled(table)
    summary = describe(full, value="distance", by=(*groups, "condition"), n_boot=n_boot, seed=seed)
    tests = paired_tests(
        full,
        value="distance",
        item="image_id",
        between="condition",
        within=groups,
        n_boot=n_boot,
        seed=seed,
    )
    return {
        "summary": summary.to_dict(orient="records"),
        "paired_tests": tests.to_dict(orient="records"),
    }


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
    meg_values = meg.sel(image=ids).transpose("image", "channel", "time").values
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
) -> Callable[[np.ndarray], np.ndarray]:
    """Bootstrap callback: RSA (times, models + partial pairs) on resampled images.

    Pairs of an image with its own copy are dropped, as the bootstrap needs for RDMs. For
    Spearman, the ranks are taken once per sample (vectorised) and compared by Pearson and
    partial Pearson, which is what ``spearman`` / ``partial_spearman`` compute.
    """
    from scipy.stats import rankdata

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


def rsa_inference(
    meg_rdms: np.ndarray,
    model_rdms: np.ndarray,
    n_conditions: int,
    cfg: RsaConfig,
    partial_pairs: Sequence[tuple[int, int]],
) -> dict[str, np.ndarray]:
    """Bootstrap intervals and permutation p-values of one participant's RSA curves.

    Parameters
    ----------
    meg_rdms : condensed MEG RDMs (times, pairs).
    model_rdms : condensed model RDMs (models, pairs).
    n_conditions : images (or concepts) in the RDMs.
    cfg : RSA settings (method, n_boot, n_permutations, ci, seed).
    partial_pairs : (target, given) model indices of the partial RSA curves.

    Returns
    -------
    dict with ``ci_low``, ``ci_high`` (times, models + partial pairs) and ``p_perm``,
    ``p_perm_fwer`` (times, models; NaN for partial curves and methods without a
    permutation test). The bootstrap resamples images with the same draws at every time.
    """
    from figureground.analysis.stats import bootstrap, rdm_permutation_test

    n_times = meg_rdms.shape[0]
    n_curves = model_rdms.shape[0] + len(partial_pairs)
    out = {key: np.full((n_times, n_curves), np.nan) for key in ("ci_low", "ci_high")}
    out["p_perm"] = np.full((n_times, n_curves), np.nan)
    out["p_perm_fwer"] = np.full((n_times, n_curves), np.nan)
    if cfg.n_boot > 0:
        model_square = _square(np.asarray(model_rdms, dtype=np.float64), n_conditions)
        step = max(1, BOOT_MEMORY_BYTES // (8 * n_conditions * n_conditions))
        for start in range(0, n_times, step):
            block = _square(np.asarray(meg_rdms[start : start + step]), n_conditions)
            with warnings.catch_warnings(), np.errstate(invalid="ignore"):
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN times: NaN bounds
                result = bootstrap(
                    _rsa_statistic(block, model_square, cfg.method, partial_pairs),
                    n_conditions,
                    n_boot=cfg.n_boot,
                    ci=cfg.ci,
                    seed=cfg.seed,
                )
            out["ci_low"][start : start + step] = result.lower
            out["ci_high"][start : start + step] = result.upper
    permutation_method = PERMUTATION_METHOD[cfg.method]
    if cfg.n_permutations > 0 and permutation_method is not None:
        for k, model_rdm in enumerate(model_rdms):
            test = rdm_permutation_test(
                meg_rdms,
                model_rdm,
                n_permutations=cfg.n_permutations,
                method=permutation_method,
                seed=cfg.seed,
            )
            out["p_perm"][:, k] = test.p_value
            maxima = test.null.max(axis=1)
            out["p_perm_fwer"][:, k] = (
                1.0 + (maxima[None, :] >= test.observed[:, None]).sum(1)
            ) / (1.0 + cfg.n_permutations)
    return out


def rsa_one(
    meg: Any,
    features: Mapping[str, Any],
    level: str,
    cfg: RsaConfig,
    image_ids: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """RSA curves of one participant at one level, with intervals and p-values.

    Returns the tidy table (:data:`RSA_COLUMNS` less model/weights/stratum), the MEG RDMs
    (times, pairs) and the labels of their rows (image ids or concepts).
    """
    from figureground.analysis.rdm_calc import compute_rdms
    from figureground.analysis.rsa import PARTIAL_PAIRS, rsa_timecourse

    if image_ids is not None:
        wanted = {str(i) for i in image_ids}
        meg = meg.sel(image=[i for i in map(str, meg["image"].values) if i in wanted])
    meg_values, model_values, labels = level_patterns(meg, features, level)
    table = rsa_timecourse(
        meg,
        features,
        metric=cfg.metric,
        model_metric=cfg.model_metric,
        method=cfg.method,
        level=level,
        partial=cfg.partial,
        batch_size=cfg.batch_size,
    )
    conditions = list(model_values)
    meg_rdms = compute_rdms(meg_values, cfg.metric, batch_size=cfg.batch_size)
    model_rdms = np.stack([compute_rdms(model_values[c], cfg.model_metric) for c in conditions])
    partial_pairs = [
        (conditions.index(a), conditions.index(b))
        for a, b in PARTIAL_PAIRS
        if cfg.partial and a in conditions and b in conditions
    ]
    inference = rsa_inference(meg_rdms, model_rdms, len(labels), cfg, partial_pairs)
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
    return table, meg_rdms, labels


def _describe(info: Mapping[str, Any], layer: str) -> dict[str, str]:
    return {"model": str(info["model"]), "weights": str(info["weights"]), "layer": layer}


def rsa_results(
    cfg: AnalysesConfig,
    meg: Mapping[str, Any],
    stores: Sequence[Mapping[str, Any]],
    strata: Mapping[str, Sequence[str]],
) -> tuple[pd.DataFrame, dict[tuple[str, str], dict[str, tuple[list[str], np.ndarray]]]]:
    """RSA for every model, layer, participant, level and stratum.

    ``strata`` maps a stratum name to its image ids (image level only); ``all`` uses every
    image at every level. Also returns the MEG RDMs per (level, stratum) and participant
    (labels, rdms) for the noise ceiling across participants.
    """
    tables = []
    meg_rdms: dict[tuple[str, str], dict[str, tuple[list[str], np.ndarray]]] = {}
    runs = [(level, ALL_IMAGES, None) for level in cfg.rsa.levels]
    runs += [("image", name, ids) for name, ids in strata.items()]
    for info in stores:
        for layer in info["layers"]:
            features = condition_features(info, layer)
            for participant, responses in meg.items():
                for level, stratum, ids in runs:
                    log.info(
                        "RSA: %s %s %s, %s level, %s",
                        participant,
                        info["key"],
                        layer,
                        level,
                        stratum,
                    )
                    table, rdms, labels = rsa_one(responses, features, level, cfg.rsa, ids)
                    table = table.assign(
                        participant=participant, stratum=stratum, **_describe(info, layer)
                    )
                    tables.append(table[RSA_COLUMNS])
                    meg_rdms.setdefault((level, stratum), {})[participant] = (labels, rdms)
    return pd.concat(tables, ignore_index=True), meg_rdms


def scaled(responses: Any) -> Any:
    """Responses divided by their overall standard deviation (Tesla -> unit scale).

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


def encoding_results(
    cfg: AnalysesConfig, meg: Mapping[str, Any], stores: Sequence[Mapping[str, Any]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Encoding accuracy per condition and variance partitioning, for every model and layer."""
    from figureground.analysis.encoding import (
        RidgeSettings,
        encode,
        encoding_table,
        variance_partition,
    )

    enc = cfg.encoding
    settings = RidgeSettings(
        n_components=enc.n_components,
        alphas=enc.alphas,
        inner_splits=enc.inner_splits,
        n_iter=enc.n_iter,
    )
    options = {
        "n_splits": enc.n_splits,
        "settings": settings,
        "seed": enc.seed,
        "backend": enc.backend,
    }
    encodings, partitions = [], []
    for info in stores:
        for layer in info["layers"]:
            features = {
                name: span_basis(array) for name, array in condition_features(info, layer).items()
            }
            for participant, responses in meg.items():
                responses = scaled(responses.isel(time=slice(None, None, enc.time_step)))
                names = {"participant": participant, **_describe(info, layer)}
                for condition in CONDITIONS:
                    log.info("encoding: %s %s %s %s", participant, info["key"], layer, condition)
                    scores = encode(responses, features[condition], **options)
                    encodings.append(
                        encoding_table(
                            scores,
                            condition=condition,
                            n_folds=scores.sizes["fold"],
                            folds_by=scores.attrs["folds_by"],
                            n_images=scores.attrs["n_images"],
                            **names,
                        )
                    )
                if enc.variance_partition:
                    log.info("variance partition: %s %s %s", participant, info["key"], layer)
                    partitions.append(
                        variance_partition(
                            responses, features[FIGURE], features[GROUND], **options, **names
                        )
                    )
    encoding = pd.concat(encodings, ignore_index=True)[ENCODING_COLUMNS]
    partition = (
        pd.concat(partitions, ignore_index=True)[PARTITION_COLUMNS]
        if partitions
        else pd.DataFrame(columns=PARTITION_COLUMNS)
    )
    return encoding, partition


# ----------------------------------------------------------------------------- noise ceilings


def _ceiling_rows(
    participant: str,
    analysis: str,
    estimate: str,
    level: str,
    method: str,
    times: np.ndarray,
    value: Any,
    lower: Any,
    upper: Any,
    n_images: int,
    n_rdms: int,
) -> pd.DataFrame:
    size = len(times)
    return pd.DataFrame(
        {
            "participant": participant,
            "analysis": analysis,
            "estimate": estimate,
            "level": level,
            "method": method,
            "time": np.asarray(times, dtype=np.float64),
            "value": np.broadcast_to(np.asarray(value, dtype=np.float64), size),
            "lower": np.broadcast_to(np.asarray(lower, dtype=np.float64), size),
            "upper": np.broadcast_to(np.asarray(upper, dtype=np.float64), size),
            "n_images": n_images,
            "n_rdms": n_rdms,
        }
    )[CEILING_COLUMNS]


def rsa_ceiling_repetitions(test: Any, cfg: AnalysesConfig, participant: str) -> pd.DataFrame:
    """RSA noise ceiling of one participant from the test images' repetitions.

    One RDM per repetition (or per random group of repetitions, ``rsa_groups``); the lower
    and upper bounds follow rsatoolbox's ``boot_noise_ceiling`` definitions.
    """
    from figureground.analysis.noise_ceiling import average_repetition_groups, rdm_noise_ceiling
    from figureground.analysis.rdm_calc import compute_rdms

    nc = cfg.noise_ceiling
    if test.sizes["image"] < 3:
        raise DataError(f"{test.sizes['image']} test image(s); the RSA ceiling needs 3")
    test = test.transpose("image", "repetition", "channel", "time")
    if nc.rsa_groups is None:
        groups = [test.isel(repetition=r) for r in range(test.sizes["repetition"])]
    else:
        groups = average_repetition_groups(test, nc.rsa_groups, nc.seed)
    rdms = np.stack(
        [
            compute_rdms(np.asarray(g.values), cfg.rsa.metric, batch_size=cfg.rsa.batch_size)
            for g in groups
        ]
    )
    method = CEILING_METHOD[cfg.rsa.method]
    lower, upper = rdm_noise_ceiling(rdms, method)
    return _ceiling_rows(
        participant,
        "rsa",
        "test_repetitions",
        "image",
        method,
        test["time"].values,
        np.nan,
        lower,
        upper,
        test.sizes["image"],
        len(groups),
    )


def rsa_ceiling_participants(
    meg_rdms: Mapping[str, tuple[list[str], np.ndarray]],
    times: np.ndarray,
    level: str,
    method: str,
) -> pd.DataFrame | None:
    """RSA noise ceiling across participants' experiment RDMs (same images), or None."""
    from figureground.analysis.noise_ceiling import rdm_noise_ceiling

    if len(meg_rdms) < 2:
        return None
    labels = [tuple(lab) for lab, _ in meg_rdms.values()]
    if len(set(labels)) != 1:
        log.warning("participants saw different %ss; no ceiling across participants", level)
        return None
    stacked = np.stack([rdms for _, rdms in meg_rdms.values()])
    lower, upper = rdm_noise_ceiling(stacked, CEILING_METHOD[method])
    return _ceiling_rows(
        MEAN,
        "rsa",
        "participants",
        level,
        CEILING_METHOD[method],
        times,
        np.nan,
        lower,
        upper,
        len(labels[0]),
        len(meg_rdms),
    )


def encoding_ceiling(test: Any, cfg: AnalysesConfig, participant: str) -> pd.DataFrame:
    """Split-half reliability band, and the ceiling on single-trial encoding r, per time.

    ``split_half_reliability`` is the Spearman-Brown corrected reliability of the mean of
    all repetitions. Experiment images are seen once, so the ceiling on the Pearson r of
    any model with their responses is ``sqrt(R1)``, with the single-repetition reliability
    ``R1 = R / (k - (k - 1) R)`` (Spearman-Brown back to one of ``k`` repetitions), clipped
    to [0, 1] per sensor and averaged over sensors; band over random splits.
    """
    from figureground.analysis.noise_ceiling import reliability_band, split_half_reliability

    nc = cfg.noise_ceiling
    band = reliability_band(test, n_splits=nc.n_splits, seed=nc.seed, ci=nc.ci)
    n_images = test.sizes["image"]
    n_reps = test.sizes["repetition"]
    reliability = split_half_reliability(test, nc.n_splits, nc.seed).values
    single = reliability / (n_reps - (n_reps - 1) * reliability)
    ceiling = np.sqrt(np.clip(single, 0.0, 1.0)).mean(axis=1)  # (split, time)
    tail = (1 - nc.ci) / 2 * 100
    times = test["time"].values
    return pd.concat(
        [
            _ceiling_rows(
                participant,
                "encoding",
                "split_half_reliability",
                "image",
                "spearman_brown",
                times,
                band["value"],
                band["lower"],
                band["upper"],
                n_images,
                n_reps,
            ),
            _ceiling_rows(
                participant,
                "encoding",
                "single_trial_r",
                "image",
                "spearman_brown",
                times,
                ceiling.mean(0),
                np.percentile(ceiling, tail, axis=0),
                np.percentile(ceiling, 100 - tail, axis=0),
                n_images,
                n_reps,
            ),
        ],
        ignore_index=True,
    )


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
    for group in _groups(rsa, [*model, "level", "stratum"]):
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
    whole = {"level": "image", "stratum": ALL_IMAGES}
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
    options = {"threshold": st.threshold, "n_permutations": st.n_permutations, "seed": st.seed}
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


# ----------------------------------------------------------------------------- strata


def image_strata(
    cfg: AnalysesConfig, variants_csv: Path | None, image_ids: Sequence[str]
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Strata of the analysed images by foreground fraction, and what was decided.

    Returns the strata to run (empty when disabled, without a variants table, or when a
    stratum holds fewer than ``min_images`` images) and a summary of the decision.
    """
    from figureground.analysis.stats import strata_from_variants

    st = cfg.strata
    info: dict[str, Any] = {"enabled": st.enabled, "min_images": st.min_images, "ran": False}
    if not st.enabled:
        info["reason"] = "disabled in the study file"
        return {}, info
    if variants_csv is None or not Path(variants_csv).exists():
        info["reason"] = "no variants table (variants/variants.csv) to read foreground fractions"
        return {}, info
    variants = pd.read_csv(
        variants_csv, keep_default_na=False, na_values=[""], dtype={"image_id": str, "error": str}
    )
    threshold = st.threshold
    if threshold is None:
        column = variants.get("little_background_above")
        threshold = float(column.iloc[0]) if column is not None and len(column) else 0.9
    strata = strata_from_variants(variants, threshold)
    wanted = {str(i) for i in image_ids}
    chosen = {name: [i for i in ids if i in wanted] for name, ids in strata.items()}
    info.update(threshold=threshold, counts={name: len(ids) for name, ids in chosen.items()})
    small = {name: len(ids) for name, ids in chosen.items() if len(ids) < st.min_images}
    if small:
        info["reason"] = (
            "not run: "
            + ", ".join(f"{name} has {n} image(s)" for name, n in small.items())
            + f"; each stratum needs at least {st.min_images} (analyses.strata.min_images)"
        )
        log.info("strata %s", info["reason"])
        return {}, info
    info["ran"] = True
    return chosen, info


# ----------------------------------------------------------------------------- summaries


def curve_summary(table: pd.DataFrame, by: Sequence[str], value: str = "value") -> pd.DataFrame:
    """Peak (value, time) and post-stimulus mean of each curve, per participant and the mean.

    The ``mean`` participant averages the curves over participants first.
    """
    keys = [k for k in by if k != "participant"]
    mean_curve = table.groupby([*keys, "time"], as_index=False, sort=True)[value].mean()
    mean_curve["participant"] = MEAN
    rows = []
    for source in (table, mean_curve):
        for key, group in source.groupby(["participant", *keys], sort=True):
            group = group.sort_values("time")
            values = group[value].to_numpy(dtype=np.float64)
            times = group["time"].to_numpy(dtype=np.float64)
            post = _post_stimulus(times)
            finite = np.isfinite(values)
            peak = int(np.nanargmax(values)) if finite.any() else 0
            rows.append(
                {
                    **dict(zip(["participant", *keys], key, strict=True)),
                    "peak": float(values[peak]) if finite.any() else float("nan"),
                    "peak_time": float(times[peak]),
                    "mean_post": float(np.nanmean(values[post])) if post.any() else float("nan"),
                }
            )
    return pd.DataFrame(rows)


def figure_vs_ground(
    summary: pd.DataFrame,
    by: Sequence[str],
    column: str,
    figure: str = FIGURE,
    ground: str = GROUND,
) -> pd.DataFrame:
    """Post-stimulus mean of the figure curve minus the ground curve, per group."""
    wide = summary.pivot_table(index=list(by), columns=column, values="mean_post", aggfunc="first")
    if figure not in wide.columns or ground not in wide.columns:
        return pd.DataFrame()
    out = wide[[figure, ground]].rename(columns={figure: "figure", ground: "ground"})
    out["figure_minus_ground"] = out["figure"] - out["ground"]
    return out.reset_index()


def _records(table: pd.DataFrame | None) -> list[dict[str, Any]]:
    if table is None or table.empty:
        return []
    return json.loads(table.to_json(orient="records", double_precision=6))


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")


def _ground_truth(neural_files: Mapping[str, Mapping[str, Path | None]]) -> dict | None:
    folders = {Path(files["epochs"]).parent for files in neural_files.values()}
    for folder in folders:
        truth = folder / "ground_truth.json"
        if truth.exists():
            data = json.loads(truth.read_text())
            params = data.get("params", data)
            keep = ("fg_weight", "bg_weight", "snr", "seed", "participants", "layer")
            return {
                **{k: params[k] for k in keep if k in params},
                "features": data.get("features"),
                "snr_definition": data.get("snr_definition"),
            }
    return None


def _attempt(summary: dict[str, Any], what: str, func: Callable[[], Any]) -> Any:
    """Run one analysis; a data problem skips it with a logged warning and a note."""
    try:
        return func()
    except DataError as exc:
        message = f"{what} skipped: {exc}"
        log.warning(message)
        summary["notes"].append(message)
        return None


# ----------------------------------------------------------------------------- entry point


def run_careful(
    cfg: AnalysesConfig,
    neural_files: Mapping[str, Mapping[str, Path | None]],
    feature_stores: Mapping[str, Mapping[str, Any]],
    results_dir: Path,
    summary: dict[str, Any],
    variants_csv: Path | None,
) -> None:
    """RSA, encoding, noise ceilings, strata and cluster tests into ``results_dir``."""
    window = {"tmin": cfg.responses.tmin, "tmax": cfg.responses.tmax, "decim": cfg.responses.decim}
    stores = select_stores(feature_stores, cfg.models)
    meg = load_recordings(neural_files, **window)
    first = next(iter(meg.values()))
    times = np.asarray(first["time"].values, dtype=np.float64)
    summary["responses"] = {
        **window,
        "n_times": int(times.size),
        "participants": sorted(meg),
        "n_images": {p: int(m.sizes["image"]) for p, m in meg.items()},
    }
    ceilings: list[pd.DataFrame] = []
    rsa = encoding = partition = None

    if cfg.rsa.enabled:
        strata, summary["strata"] = image_strata(cfg, variants_csv, first["image"].values)
        found = _attempt(summary, "RSA", lambda: rsa_results(cfg, meg, stores, strata))
        if found is not None:
            rsa, meg_rdms = found
            _write_csv(rsa, results_dir / "rsa_timecourse.csv")
            rsa_sum = curve_summary(
                rsa,
                [
                    "participant",
                    "model",
                    "weights",
                    "layer",
                    "level",
                    "stratum",
                    "condition",
                    "given",
                ],
            )
            plain = rsa_sum[rsa_sum["given"] == ""]
            summary["rsa"] = {
                "options": {
                    k: getattr(cfg.rsa, k)
                    for k in (
                        "levels",
                        "metric",
                        "model_metric",
                        "method",
                        "partial",
                        "n_boot",
                        "n_permutations",
                        "ci",
                        "seed",
                    )
                },
                "summary": _records(rsa_sum),
                "figure_vs_ground": _records(
                    figure_vs_ground(
                        plain,
                        ["participant", "model", "weights", "layer", "level", "stratum"],
                        "condition",
                    )
                ),
            }
            if cfg.noise_ceiling.enabled:
                for (level, stratum), per_person in meg_rdms.items():
                    if stratum != ALL_IMAGES:
                        continue
                    table = rsa_ceiling_participants(per_person, times, level, cfg.rsa.method)
                    if table is not None:
                        ceilings.append(table)
    if cfg.encoding.enabled:
        found = _attempt(summary, "encoding", lambda: encoding_results(cfg, meg, stores))
        if found is not None:
            encoding, partition = found
            _write_csv(encoding, results_dir / "encoding.csv")
            _write_csv(partition, results_dir / "variance_partition.csv")
            by = ["participant", "model", "weights", "layer"]
            enc_sum = curve_summary(encoding, [*by, "condition"])
            part_sum = (
                curve_summary(partition, [*by, "component"])
                if not partition.empty
                else pd.DataFrame()
            )
            summary["encoding"] = {
                "options": {
                    k: getattr(cfg.encoding, k)
                    for k in (
                        "n_splits",
                        "n_components",
                        "alphas",
                        "inner_splits",
                        "n_iter",
                        "backend",
                        "seed",
                    )
                },
                "summary": _records(enc_sum),
                "figure_vs_ground": _records(figure_vs_ground(enc_sum, by, "condition")),
            }
            summary["variance_partition"] = {
                "summary": _records(part_sum),
                "figure_vs_ground": _records(
                    figure_vs_ground(part_sum, by, "component", "unique_fg", "unique_bg")
                )
                if not part_sum.empty
                else [],
            }
    if cfg.noise_ceiling.enabled:
        test = load_test_recordings(neural_files, **window)
        for participant, responses in test.items():
            if cfg.rsa.enabled:
                found = _attempt(
                    summary,
                    f"RSA noise ceiling of {participant}",
                    lambda r=responses, p=participant: rsa_ceiling_repetitions(r, cfg, p),
                )
                if found is not None:
                    ceilings.append(found)
            if cfg.encoding.enabled:
                found = _attempt(
                    summary,
                    f"encoding noise ceiling of {participant}",
                    lambda r=responses, p=participant: encoding_ceiling(r, cfg, p),
                )
                if found is not None:
                    ceilings.append(found)
        ceiling = (
            pd.concat(ceilings, ignore_index=True)
            if ceilings
            else pd.DataFrame(columns=CEILING_COLUMNS)
        )
        _write_csv(ceiling, results_dir / "noise_ceiling.csv")
        summary["noise_ceiling"] = {
            "options": {
                "rsa_groups": cfg.noise_ceiling.rsa_groups,
                "n_splits": cfg.noise_ceiling.n_splits,
                "ci": cfg.noise_ceiling.ci,
            },
            "summary": _records(ceiling_summary(ceiling)),
            "note": (
                "RSA ceilings from the test images' repetitions bound a participant's "
                "single-presentation RDMs but are computed on the test images, not on "
                "the experiment images the RSA uses; the ceiling across participants "
                "uses the experiment RDMs themselves."
            ),
        }
    clusters = cluster_tests(cfg, rsa, encoding, partition)
    _write_csv(clusters, results_dir / "clusters.csv")
    n_people = len(meg)
    summary["clusters"] = {
        "options": {
            "n_permutations": cfg.stats.n_permutations,
            "threshold": cfg.stats.threshold,
            "alpha": cfg.stats.alpha,
            "seed": cfg.stats.seed,
        },
        "n_participants": n_people,
        "n_clusters": len(clusters),
        "significant": _records(clusters[clusters["significant"].astype(bool)]),
    }
    if n_people < 2:
        summary["notes"].append(
            "Cluster tests across participants need at least 2 participants; with "
            f"{n_people} only the per-participant permutation tests are reported."
        )
    elif 2.0 / 2**n_people >= cfg.stats.alpha:
        summary["notes"].append(
            f"With {n_people} participants the exact sign-flip cluster test has only "
            f"2^{n_people} = {2**n_people} distinct sign flips; its smallest attainable p-value "
            f"is {2.0 / 2**n_people:g}, so no cluster across participants can reach p < "
            f"{cfg.stats.alpha:g}. The cluster tests are reported anyway; the per-participant "
            "permutation tests over images (p_perm, p_perm_fwer) carry the inference."
        )


def ceiling_summary(ceiling: pd.DataFrame) -> pd.DataFrame:
    """Post-stimulus mean of each ceiling's value and bounds, per participant and estimate."""
    if ceiling.empty:
        return pd.DataFrame()
    post = ceiling[_post_stimulus(ceiling["time"].to_numpy())]
    keys = ["participant", "analysis", "estimate", "level", "method"]
    return post.groupby(keys, as_index=False, sort=True)[["value", "lower", "upper"]].mean()


def run_analyses(
    cfg: AnalysesConfig,
    neural_files: Mapping[str, Mapping[str, Path | None]],
    feature_stores: Mapping[str, Mapping[str, Any]],
    results_dir: Path,
    provenance: Mapping[str, Any],
    variants_csv: Path | None = None,
) -> dict[str, Any]:
    """Run the configured analyses; write the results files; return the summary.

    ``variants_csv`` (default ``results_dir/../variants/variants.csv``, the run folder's)
    gives the foreground fractions for the stratified RSA.
    """
    results_dir = Path(results_dir)
    if variants_csv is None:
        variants_csv = results_dir.parent / "variants" / "variants.csv"
    summary: dict[str, Any] = {"provenance": dict(provenance), "notes": []}
    for info in feature_stores.values():
        if "replaces" in info:
            summary["notes"].append(
                f"{info['replaces']} could not be used here; {info['model']} "
                f"({info['weights']}) replaces it. Reason: {info.get('replaced_because', '')}"
            )
    truth = _ground_truth(neural_files)
    if truth is not None:
        summary["ground_truth"] = truth
    if cfg.seed.enabled:
        meg = load_recordings(neural_files)
        table = seed_results(cfg, meg, feature_stores)
        _write_csv(table[SEED_COLUMNS], results_dir / "seed_distance.csv")
        summary["seed_distance"] = {
            "options": {
                "response": cfg.seed.response,
                "tmin": cfg.seed.tmin,
                "tmax": cfg.seed.tmax,
                "zscore": cfg.seed.zscore,
            },
            **seed_summary(table, n_boot=cfg.seed.n_boot, seed=cfg.seed.seed),
        }
    if cfg.rsa.enabled or cfg.encoding.enabled or cfg.noise_ceiling.enabled:
        run_careful(cfg, neural_files, feature_stores, results_dir, summary, variants_csv)
    atomic_write_json(results_dir / "summary.json", summary)
    return summary
