"""Study runner: RSA, encoding, noise ceilings, clusters and strata on a tiny simulated study."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr

from figureground.analysis import runner
from figureground.analysis.study import columns, encoding_results
from figureground.config import parse_study
from figureground.errors import UsageError
from figureground.features.store import FeatureStore
from figureground.neural import things_meg
from figureground.neural.simulate import simulate_meg

CONDITIONS = ("original", "no_background", "no_foreground")
N_IMAGES = 30


def _ids() -> list[str]:
    return [f"thing{i % 6}_{i // 6 + 1:02d}b" for i in range(N_IMAGES)]


def _write_store(path: Path) -> Path:
    """Feature store readable by ``open_features``: independent random layer2 features."""
    rng = np.random.default_rng(3)
    ids = _ids()
    for index, condition in enumerate(CONDITIONS):
        values = rng.standard_normal((N_IMAGES, 8, 4, 4)).astype(np.float32)
        dataset = xr.Dataset(
            {"layer2": (("image", "channel", "y", "x"), values)},
            coords={
                "image": ids,
                "concept": ("image", [i.rsplit("_", 1)[0] for i in ids]),
                "done": ("image", np.ones(N_IMAGES, dtype=np.int8)),
            },
        )
        dataset.to_zarr(
            path,
            group=condition,
            zarr_format=3,
            mode="w" if index == 0 else "a",
            consolidated=False,
        )
    zarr.open_group(str(path), mode="a").attrs["variants"] = list(CONDITIONS)
    return path


ANALYSES = {
    "seed_method": {"enabled": False},
    "responses": {"tmax": 0.6, "decim": 4},
    "rsa": {"levels": ["image", "concept"], "n_boot": 40, "n_permutations": 40},
    "encoding": {
        "n_splits": 3,
        "n_components": 5,
        "inner_splits": 3,
        "n_iter": 2,
        "time_step": 2,
        "alphas": [1.0, 100.0, 10000.0],
    },
    "noise_ceiling": {"n_splits": 5},
    "stats": {"n_permutations": 64},
    "strata": {"threshold": 0.5, "min_images": 3},
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    base = tmp_path_factory.mktemp("runner")
    store = _write_store(base / "features.zarr")
    simulate_meg(
        store,
        base / "neural",
        fg_weight=1.0,
        bg_weight=0.0,
        snr=8.0,
        seed=2,
        participants=2,
        layer="layer2",
        test_images=5,
    )
    neural = {
        f"P{n}": {
            "epochs": base / "neural" / f"preprocessed_P{n}-epo.fif",
            "attributes": base / "neural" / f"sample_attributes_P{n}.csv",
        }
        for n in (1, 2)
    }
    fractions = np.linspace(0.1, 0.99, N_IMAGES)
    variants_csv = base / "variants.csv"
    pd.DataFrame({"image_id": _ids(), "fg_fraction": fractions, "status": "ok"}).to_csv(
        variants_csv, index=False
    )
    stores = {"tiny": FeatureStore(store, "tiny", "random", ("layer2",), "tiny")}
    cfg = parse_study({"analyses": ANALYSES}).analyses
    summary = runner.run_analyses(
        cfg, neural, stores, base / "results", {"study": "tiny"}, variants_csv=variants_csv
    )
    return base, summary, neural


def _csv(base: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(base / "results" / name, keep_default_na=False, na_values=[""])


def test_csvs_have_documented_columns(finished: tuple[Path, dict, dict]) -> None:
    base, _, _ = finished
    expected = {
        "rsa_timecourse.csv": columns.RSA_COLUMNS,
        "encoding.csv": columns.ENCODING_COLUMNS,
        "variance_partition.csv": columns.PARTITION_COLUMNS,
        "noise_ceiling.csv": columns.CEILING_COLUMNS,
        "clusters.csv": columns.CLUSTER_COLUMNS,
    }
    for name, names in expected.items():
        assert list(_csv(base, name).columns) == names, name
    rsa = _csv(base, "rsa_timecourse.csv")
    assert set(rsa["participant"]) == {"P1", "P2"}
    assert set(rsa["level"]) == {"image", "concept"}
    assert set(rsa["stratum"]) == {"all", "with_background", "little_background"}


def test_summary_has_every_section(finished: tuple[Path, dict, dict]) -> None:
    base, summary, _ = finished
    on_disk = json.loads((base / "results" / "summary.json").read_text())
    for key in (
        "rsa",
        "encoding",
        "variance_partition",
        "noise_ceiling",
        "clusters",
        "strata",
        "responses",
        "notes",
        "provenance",
    ):
        assert key in on_disk, key
    assert on_disk["strata"]["ran"] is True
    assert on_disk["clusters"]["n_participants"] == 2
    # 2 participants: the exact sign-flip test cannot reach 0.05, and the summary says so
    assert any("smallest attainable p-value is 0.5" in note for note in summary["notes"])


def test_figure_beats_ground(finished: tuple[Path, dict, dict]) -> None:
    base, summary, _ = finished
    rsa = _csv(base, "rsa_timecourse.csv")
    plain = rsa[rsa["given"].isna() & (rsa["stratum"] == "all") & (rsa["time"] > 0.05)]
    means = plain.groupby(["participant", "level", "condition"])["value"].mean().unstack()
    assert (means["no_background"] > means["no_foreground"] + 0.1).all()
    rows = pd.DataFrame(summary["rsa"]["figure_vs_ground"])
    # the brain follows the flattened no-background map, so the flat view must see it
    flat = rows[(rows["stratum"] == "all") & (rows["view"] == "flat")]
    assert len(flat) > 0 and (flat["figure_minus_ground"] > 0).all()
    enc = pd.DataFrame(summary["encoding"]["figure_vs_ground"])
    assert (enc["figure_minus_ground"] > 0).all()
    part = pd.DataFrame(summary["variance_partition"]["figure_vs_ground"])
    assert (part["figure_minus_ground"] > 0).all()


def test_rsa_matches_scipy_and_intervals_cover(finished: tuple[Path, dict, dict]) -> None:
    base, _, neural = finished
    rsa = _csv(base, "rsa_timecourse.csv")
    meg = things_meg.load(neural["P1"]["epochs"], neural["P1"]["attributes"], tmax=0.6, decim=4)
    ids = [str(i) for i in meg["image"].values]
    features = xr.open_zarr(base / "features.zarr", group="no_background", consolidated=False)[
        "layer2"
    ]
    model = features.sel(image=ids).values.reshape(len(ids), -1)
    model_rdm = pdist(model, "correlation")
    time_index = int(np.argmin(np.abs(meg["time"].values - 0.2)))
    t = float(meg["time"].values[time_index])
    meg_rdm = pdist(meg.values[:, :, time_index].astype(np.float64), "correlation")
    expected = spearmanr(meg_rdm, model_rdm).statistic
    row = rsa[
        (rsa["participant"] == "P1")
        & (rsa["level"] == "image")
        & (rsa["view"] == "flat")
        & (rsa["stratum"] == "all")
        & (rsa["condition"] == "no_background")
        & rsa["given"].isna()
        & np.isclose(rsa["time"], t)
    ]
    assert len(row) == 1
    assert row["value"].iloc[0] == pytest.approx(expected, abs=1e-4)
    plain = rsa[rsa["given"].isna()]
    inside = (plain["ci_low"] <= plain["value"] + 1e-9) & (
        plain["value"] <= plain["ci_high"] + 1e-9
    )
    assert inside.mean() > 0.9
    assert plain["p_perm"].between(0, 1).all()
    assert (plain["p_perm_fwer"] >= plain["p_perm"] - 1e-12).all()
    late = plain[
        (plain["condition"] == "no_background")
        & (plain["level"] == "image")
        & (plain["stratum"] == "all")
        & plain["time"].between(0.1, 0.4)
    ]
    assert late["p_perm"].min() <= 2 / 41  # the planted signal beats every permutation


def test_noise_ceilings(finished: tuple[Path, dict, dict]) -> None:
    base, _, _ = finished
    ceiling = _csv(base, "noise_ceiling.csv")
    kinds = set(zip(ceiling["analysis"], ceiling["estimate"], strict=True))
    assert {
        ("rsa", "test_repetitions"),
        ("rsa", "participants"),
        ("encoding", "split_half_reliability"),
        ("encoding", "single_trial_r"),
    } <= kinds
    rsa = ceiling[ceiling["analysis"] == "rsa"]
    assert (rsa["lower"] <= rsa["upper"] + 1e-9).all()
    single = ceiling[ceiling["estimate"] == "single_trial_r"]
    assert single["value"].between(0, 1).all()


def test_span_basis_keeps_encoding_exact() -> None:
    from figureground.analysis.encoding import RidgeSettings, encode

    rng = np.random.default_rng(0)
    ids = [f"img{i}" for i in range(12)]
    features = xr.DataArray(
        rng.standard_normal((12, 200)), dims=("image", "unit"), coords={"image": ids}
    )
    meg = xr.DataArray(
        rng.standard_normal((12, 3, 4)),
        dims=("image", "channel", "time"),
        coords={"image": ids, "channel": ["a", "b", "c"], "time": np.arange(4.0)},
    )
    reduced = encoding_results.span_basis(features)
    assert reduced.shape == (12, 12)
    settings = RidgeSettings(n_components=None, alphas=(1.0, 10.0), inner_splits=3)
    full = encode(meg, features, n_splits=3, settings=settings).values
    fast = encode(meg, reduced, n_splits=3, settings=settings).values
    np.testing.assert_allclose(fast, full, atol=1e-4)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"rsa": {"ci": 1.5}}, "analyses.rsa.ci"),
        ({"encoding": {"n_splits": 1}}, "analyses.encoding.n_splits"),
        ({"responses": {"decim": 0}}, "analyses.responses.decim"),
        ({"rsa": {"method": "kendall"}}, "spearman"),
        ({"strata": {"min_imgs": 3}}, "did you mean 'min_images'"),
        ({"mask_partition": {"rings": 0}}, "analyses.mask_partition.rings"),
        ({"readout": {"grid": [1, 7]}}, "analyses.readout.grid"),
        ({"readout": {"window": 0}}, "analyses.readout.window"),
        ({"sensors": {"max_conditions": 2}}, "analyses.sensors.max_conditions"),
        ({"sensors": {"metric": "crossnobis"}}, "correlation"),
        ({"decoding": {"decim": 0}}, "analyses.decoding.decim"),
        ({"decoding": {"max_pair": 5}}, "did you mean 'max_pairs'"),
    ],
)
def test_analyses_config_is_validated(section: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_study({"analyses": section})


def test_recordings_hold_one_participant_at_a_time(monkeypatch) -> None:
    from figureground.analysis.study import inputs
    from figureground.neural import things_meg

    reads: list[str] = []

    def fake_load(epochs, attributes, trial_type, **kwargs):
        reads.append(str(epochs))
        return {"epochs": str(epochs), **kwargs}

    monkeypatch.setattr(things_meg, "load", fake_load)
    files = {"P1": {"epochs": "p1.fif"}, "P2": {"epochs": "p2.fif"}}
    meg = inputs.load_recordings(files, decim=2)
    assert reads == []  # nothing read until asked
    assert meg["P1"] == {"epochs": "p1.fif", "decim": 2}
    assert meg["P1"]["epochs"] == "p1.fif" and reads == ["p1.fif"]  # held, not re-read
    assert [p for p, _ in meg.items()] == ["P1", "P2"]
    assert reads == ["p1.fif", "p2.fif"]
    assert meg._held[0] == "P2"  # only the last one is held


def test_strata_by_a_stimulus_measure(tmp_path: Path) -> None:
    from figureground.analysis.study.tables import image_strata
    from figureground.config import AnalysesConfig, StrataConfig

    variants = tmp_path / "variants.csv"
    pd.DataFrame(
        {
            "image_id": [f"i{k}" for k in range(8)],
            "status": "ok",
            "fg_fraction": 0.3,
            "haze": [0.0, 0.01, 0.02, 0.03, 0.1, 0.2, 0.3, 0.4],
        }
    ).to_csv(variants, index=False)
    cfg = AnalysesConfig(strata=StrataConfig(by="haze", min_images=3))
    strata, info = image_strata(cfg, variants, [f"i{k}" for k in range(8)])
    assert info["ran"] and info["by"] == "haze" and info["threshold"] == pytest.approx(0.065)
    assert strata == {"haze_low": ["i0", "i1", "i2", "i3"], "haze_high": ["i4", "i5", "i6", "i7"]}
    cfg = AnalysesConfig(strata=StrataConfig(by="silhouette_detectability", min_images=3))
    strata, info = image_strata(cfg, variants, [f"i{k}" for k in range(8)])
    assert strata == {} and "no silhouette_detectability column" in info["reason"]
