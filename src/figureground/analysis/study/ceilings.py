"""Noise ceilings of a study.

RSA bounds from test-image repetitions and from participants; encoding split-half bands.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from figureground import logs
from figureground.analysis.study.columns import CEILING_COLUMNS, CEILING_METHOD, MEAN
from figureground.config import AnalysesConfig
from figureground.errors import DataError

log = logs.get_logger(__name__)


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
        groups = average_repetition_groups(test, nc.rsa_groups, nc.random_state)
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
    band = reliability_band(test, n_splits=nc.n_splits, seed=nc.random_state, ci=nc.ci)
    n_images = test.sizes["image"]
    n_reps = test.sizes["repetition"]
    reliability = split_half_reliability(test, nc.n_splits, nc.random_state).values
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


def authors_noise_ceiling(test: Any, participant: str) -> pd.DataFrame:
    """The THINGS-MEG authors' noise ceiling (percent, channel mean) per time.

    ``MEG/step2c_data_quality-noiseceiling.py`` (ViCCo-Group/THINGS-data): responses
    z-scored over the test images within each repetition, ``NC = 100 ncsnr^2 /
    (ncsnr^2 + 1/n)`` with ``n`` the repetitions (:mod:`figureground.neural.reliability`).
    ``value`` is the channel mean; ``lower`` / ``upper`` the 5th / 95th percentile over
    channels. Comparable with the authors' figure and with simulated data.
    """
    from figureground.neural.reliability import noise_ceiling

    data = test.transpose("channel", "time", "repetition", "image").values
    if test.sizes["repetition"] < 2 or test.sizes["image"] < 3:
        raise DataError("the authors' noise ceiling needs >= 2 repetitions of >= 3 test images")
    ceiling, _ = noise_ceiling(data)
    return _ceiling_rows(
        participant,
        "meg",
        "authors_nc_percent",
        "image",
        "kknc",
        test["time"].values,
        np.nanmean(ceiling, axis=0),
        np.nanpercentile(ceiling, 5, axis=0),
        np.nanpercentile(ceiling, 95, axis=0),
        test.sizes["image"],
        test.sizes["repetition"],
    )
