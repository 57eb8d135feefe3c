"""The verdict's statistics: rsatoolbox's model comparison on a small case, max-t error
control over time, windows, the combined rule, untestable designs and views."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from rsatoolbox.inference import eval_bootstrap, eval_bootstrap_pattern
from rsatoolbox.model import ModelFixed
from rsatoolbox.rdm import RDMs
from rsatoolbox.util.inference_util import bootstrap_pair_tests

from figureground.analysis.rdm_calc import compute_rdms
from figureground.analysis.rsa_bootstrap import bootstrap_rsa
from figureground.analysis.verdict import (
    ANY_VIEW,
    Curves,
    VerdictSettings,
    bootstrap_p,
    combine_views,
    contrast_inference,
    group_curves,
    t_test_p,
    verdict_tables,
    windows,
)

N, P, B = 16, 3, 60
NAMES = ("original", "no_background", "no_foreground")


def _case(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Data RDMs (participant, pairs) at one time and model RDMs (original, figure, ground)."""
    rng = np.random.default_rng(seed)
    figure = rng.standard_normal((N, 6))
    ground = rng.standard_normal((N, 6))
    models = np.stack([compute_rdms(x, "correlation") for x in (figure + ground, figure, ground)])
    data = np.stack(
        [compute_rdms(figure + 0.8 * rng.standard_normal((N, 6)), "correlation") for _ in range(P)]
    )
    return data, models


def _fixed_models(models: np.ndarray) -> list[ModelFixed]:
    descriptors = {"index": list(range(N))}
    return [
        ModelFixed(name, RDMs(rdm[None], pattern_descriptors=descriptors))
        for name, rdm in zip(NAMES, models, strict=True)
    ]


def test_participant_bootstrap_and_pairwise_tests_equal_rsatoolbox() -> None:
    data, models = _case()
    rdms = RDMs(data[:1], pattern_descriptors={"index": list(range(N))})
    np.random.seed(11)
    result = eval_bootstrap_pattern(
        _fixed_models(models), rdms, method="spearman", N=B, boot_noise_ceil=False
    )
    np.random.seed(11)
    draws = np.stack([np.random.randint(0, N, size=N) for _ in range(B)])
    ours = bootstrap_rsa(data[:1], models, draws, "spearman")[:, 0, :]  # (B, models)
    np.testing.assert_allclose(ours, np.squeeze(result.evaluations), atol=1e-12)
    difference = ours[:, 1] - ours[:, 2]
    assert bootstrap_p(difference[:, None])[0] == pytest.approx(
        bootstrap_pair_tests(result.evaluations)[1, 2], abs=1e-12
    )
    assert t_test_p(difference[:, None], N)[0] == pytest.approx(
        result.test_pairwise("t-test")[1, 2], rel=1e-9
    )


def test_group_bootstrap_equals_rsatoolbox_over_rdms_and_patterns() -> None:
    data, models = _case(1)
    rdms = RDMs(
        data,
        pattern_descriptors={"index": list(range(N))},
        rdm_descriptors={"index": list(range(P))},
    )
    np.random.seed(4)
    result = eval_bootstrap(_fixed_models(models), rdms, method="corr", N=B, boot_noise_ceil=False)
    np.random.seed(4)
    people_draws, image_draws = [], []
    for _ in range(B):
        people_draws.append(np.random.randint(0, P, size=P))
        image_draws.append(np.random.randint(0, N, size=N))
    image_draws = np.stack(image_draws)
    per_participant = {
        f"P{p}": Curves(
            np.zeros(1),
            NAMES,
            np.zeros((1, 3)),
            bootstrap_rsa(data[p : p + 1], models, image_draws, "pearson"),
        )
        for p in range(P)
    }
    _, distribution, _ = group_curves(per_participant, B, 0, np.stack(people_draws))
    np.testing.assert_allclose(distribution[:, 0, :], np.squeeze(result.evaluations), atol=1e-12)


def test_max_t_controls_the_family_wise_error_over_time() -> None:
    """Null curves over 40 correlated times: any-time rejections in about alpha of datasets."""
    rng = np.random.default_rng(0)
    times = 40
    kernel = np.exp(-0.5 * (np.arange(-6, 7) / 3.0) ** 2)
    rejected = 0
    repeats = 300
    for _ in range(repeats):
        noise = rng.standard_normal((201, times + 12))
        smooth = np.stack([np.convolve(row, kernel, "valid") for row in noise])[:, :times]
        estimate, samples = smooth[0], smooth[1:] + (smooth[0] - smooth[1:].mean(0))
        test = contrast_inference(estimate * 0.25, samples * 0.25, np.ones(times, bool), 0.95, 100)
        rejected += bool((test.p_fwer < 0.05).any())
    assert rejected / repeats < 0.1  # would be near 1 without correction over 40 times
    single = rng.standard_normal((201, 1))
    assert (contrast_inference(single[0] + 5, single[1:] + 5, np.ones(1, bool), 0.95, 100).p_fwer
            < 0.05).all()  # fmt: skip


def test_windows_are_runs_of_one_sign() -> None:
    significant = np.array([0, 1, 1, 1, 0, 1, 1, 0], bool)
    sign = np.array([0, 1, 1, -1, 0, -1, -1, 1.0])
    assert windows(significant, sign) == [(1, 2, 1), (3, 3, -1), (5, 6, -1)]


def _curves(figure: float, ground: float, original: float, seed: int, n: int = 30) -> Curves:
    """Curves whose bootstrap is Gaussian around the given values after 0.1 s."""
    rng = np.random.default_rng(seed)
    times = np.linspace(-0.1, 0.5, 13)
    post = (times >= 0.1).astype(float)
    curves = [original, figure, ground, figure - 0.5 * ground, ground - 0.5 * figure]
    base = np.stack([value * post for value in curves], axis=1)
    names = (*NAMES, "no_background|no_foreground", "no_foreground|no_background")
    samples = base + 0.01 * rng.standard_normal((200, *base.shape))
    return Curves(times, names, base, samples, tuple(f"i{k}" for k in range(n)))


def test_the_verdict_needs_the_winner_to_beat_the_original() -> None:
    settings = VerdictSettings(min_participants=2)
    people = {f"P{p}": _curves(0.3, 0.1, 0.1, p) for p in range(3)}
    verdict, timecourse = verdict_tables(people, {"view": "region"}, settings)
    group = verdict[(verdict["participant"] == "group") & (verdict["contrast"] == "verdict")]
    assert set(group["direction"]) == {"figure"} and group["start"].min() >= 0.1
    assert set(timecourse["contrast"]) >= {"difference", "figure_vs_original", "figure_fit"}
    # a whole-image code: ground beats figure, but the original beats both -> no verdict
    people = {f"P{p}": _curves(0.05, 0.25, 0.3, p) for p in range(3)}
    verdict, _ = verdict_tables(people, {"view": "region"}, settings)
    group = verdict[verdict["participant"] == "group"]
    difference = group[group["contrast"] == "difference"]
    assert "ground" in set(difference["direction"])  # the plain difference says ground ...
    assert set(group[group["contrast"] == "verdict"]["direction"]) == {"none"}  # ... not this


def test_untestable_designs_say_so() -> None:
    few = {f"P{p}": _curves(0.3, 0.1, 0.1, p, n=10) for p in range(3)}
    verdict, _ = verdict_tables(few, {"view": "flat"}, VerdictSettings())
    assert (verdict["direction"] == "untestable").all()
    assert verdict["note"].str.contains("min_conditions").all()
    two = {f"P{p}": _curves(0.3, 0.1, 0.1, p) for p in range(2)}
    verdict, _ = verdict_tables(two, {"view": "flat"}, VerdictSettings())
    group = verdict[verdict["participant"] == "group"]
    assert (group["direction"] == "untestable").all()
    assert group["note"].str.contains("min_participants").all()
    people = verdict[verdict["participant"] != "group"]
    assert "figure" in set(people[people["contrast"] == "verdict"]["direction"])


def test_combined_views_use_bonferroni() -> None:
    rows = pd.DataFrame(
        {
            "participant": "group", "model": "m", "weights": "w", "layer": "l",
            "level": "image", "contrast": "verdict", "view": ["region", "flat"],
            "start": [0.1, np.nan], "stop": [0.2, np.nan], "direction": ["figure", "none"],
            "estimate": 0.1, "ci_low": 0.0, "ci_high": 0.2, "p_fwer": [0.03, 0.6],
            "n_participants": 4, "n_conditions": 30, "n_boot": 100, "note": "",
        }
    )  # fmt: skip
    combined = combine_views(rows, alpha=0.05)
    assert combined["view"].eq(ANY_VIEW).all()
    assert list(combined["direction"]) == ["none"]  # 0.03 is not below 0.05 / 2
    rows.loc[0, "p_fwer"] = 0.01
    combined = combine_views(rows, alpha=0.05)
    assert list(combined["direction"]) == ["figure"]
    assert combined["p_fwer"].iloc[0] == pytest.approx(0.02)
