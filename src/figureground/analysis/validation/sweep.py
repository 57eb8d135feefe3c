"""The validation sweep: simulated brains with a known answer, every method's decision.

Planted conditions (weights of the foreground and background signal in the simulator):
``fg_only`` (1, 0), ``equal`` (1, 1) and ``bg_only`` (0, 1); each at several SNRs, with
``replicates`` datasets of ``participants`` participants per cell. Every dataset is written
by :func:`figureground.neural.simulate.simulate_meg` in the THINGS-MEG format, read back by
:func:`figureground.neural.things_meg.load` (window ``tmin``..``tmax``, every ``decim``-th
sample) and removed once analysed. The same replicate seed is used in every condition and SNR
(common random numbers: the same noise, sensor patterns and, for synthetic features, the same
embeddings), so differences between cells come from the planted weights alone.

Features: a given store (fixed for every replicate) or, by default, a synthetic store drawn
per replicate (:mod:`figureground.analysis.validation.synthetic`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from figureground import fsutil, logs
from figureground.analysis.validation.methods import (
    BG,
    FG,
    METHODS,
    Dataset,
    MethodSettings,
    decide,
)
from figureground.errors import UsageError

log = logs.get_logger(__name__)

# condition -> (fg_weight, bg_weight, planted decision)
CONDITIONS: dict[str, tuple[float, float, str]] = {
    "fg_only": (1.0, 0.0, "fg"),
    "equal": (1.0, 1.0, "equal"),
    "bg_only": (0.0, 1.0, "bg"),
}
DATASET_COLUMNS = [
    "method",
    "condition",
    "fg_weight",
    "bg_weight",
    "snr",
    "replicate",
    "seed",
    "planted",
    "effect",
    "statistic",
    "p_value",
    "decision",
    "correct",
    "significant",
    "alpha",
    "features",
]


@dataclass(frozen=True)
class SweepSettings:
    """Everything that determines a sweep's results.

    Parameters
    ----------
    snrs : simulator SNRs (single-trial signal / noise variance in the signal window).
    replicates : simulated datasets per (condition, SNR).
    participants : simulated participants per dataset.
    seed : replicate ``r`` uses seed ``seed + r``.
    n_images : images of the synthetic store (ignored with a given store).
    layer : feature layer (the synthetic store names its one layer so).
    sessions : sessions per participant (variance-partitioning folds follow them).
    tmin, tmax, decim : analysis window (s) and decimation when loading.
    norm_ratio : synthetic ``no_background`` embedding scale (see ``synthetic``).
    conditions : planted conditions to run (keys of :data:`CONDITIONS`).
    methods : decision rules to run (keys of ``methods.METHODS``).
    """

    snrs: tuple[float, ...] = (0.002, 0.005, 0.02, 0.1)
    replicates: int = 10
    participants: int = 4
    seed: int = 0
    n_images: int = 48
    layer: str = "layer2"
    sessions: int = 4
    tmin: float = 0.05
    tmax: float = 0.6
    decim: int = 2
    norm_ratio: float = 1.25
    conditions: tuple[str, ...] = tuple(CONDITIONS)
    methods: tuple[str, ...] = tuple(METHODS)
    analysis: MethodSettings = field(default_factory=MethodSettings)

    def check(self) -> None:
        """Raise a one-line UsageError for an out-of-range setting."""
        unknown = [c for c in self.conditions if c not in CONDITIONS]
        unknown += [m for m in self.methods if m not in METHODS]
        if unknown:
            raise UsageError(
                f"unknown condition/method {unknown}; conditions are {list(CONDITIONS)}, "
                f"methods {list(METHODS)}"
            )
        checks = {
            "snrs": len(self.snrs) > 0 and all(s >= 0 for s in self.snrs),
            "replicates": self.replicates >= 1,
            "participants": self.participants >= 2,
            "n_images": self.n_images >= 12,
            "sessions": self.sessions >= 2,
            "decim": self.decim >= 1,
            "tmax": self.tmax > self.tmin,
        }
        for name, ok in checks.items():
            if not ok:
                raise UsageError(f"{name}={getattr(self, name)!r} is out of range")


def _open(store: Path, variant: str, layer: str):
    import xarray as xr

    return xr.open_zarr(store, group=variant, consolidated=False)[layer].load()


def _load_participants(folder: Path, settings: SweepSettings) -> dict:
    from figureground.neural import things_meg

    return {
        f"P{n}": things_meg.load(
            folder / f"preprocessed_P{n}-epo.fif",
            folder / f"sample_attributes_P{n}.csv",
            tmin=settings.tmin,
            tmax=settings.tmax,
            decim=settings.decim,
        )
        for n in range(1, settings.participants + 1)
    }


def analyse_dataset(data: Dataset, settings: SweepSettings) -> list[dict]:
    """Effect, statistic, p-value and decision of every method on one dataset."""
    rows = []
    for name in settings.methods:
        result = METHODS[name](data, settings.analysis)
        rows.append(
            {
                "method": name,
                **result,
                "decision": decide(result["effect"], result["p_value"], settings.analysis.alpha),
            }
        )
    return rows


def _dataset_rows(
    store: Path, work: Path, condition: str, snr: float, replicate: int, settings: SweepSettings
) -> pd.DataFrame:
    from figureground.neural.simulate import simulate_meg

    fg_weight, bg_weight, planted = CONDITIONS[condition]
    seed = settings.seed + replicate
    folder = work / f"{condition}_snr{snr:g}_r{replicate}"
    simulate_meg(
        store,
        folder,
        fg_weight,
        bg_weight,
        snr,
        seed,
        participants=settings.participants,
        layer=settings.layer,
        test_images=0,
        test_reps=settings.sessions,
    )
    try:
        data = Dataset(
            _load_participants(folder, settings),
            _open(store, FG, settings.layer),
            _open(store, BG, settings.layer),
        )
        rows = analyse_dataset(data, settings)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    table = pd.DataFrame(rows)
    table = table.assign(
        condition=condition,
        fg_weight=fg_weight,
        bg_weight=bg_weight,
        snr=float(snr),
        replicate=replicate,
        seed=seed,
        planted=planted,
        alpha=settings.analysis.alpha,
    )
    table["correct"] = table["decision"] == planted
    table["significant"] = table["decision"] != "equal"
    return table


def _replicate_store(
    features: Path | None, work: Path, replicate: int, settings: SweepSettings
) -> Path:
    """The given store, or a synthetic one drawn with the replicate's seed."""
    if features is not None:
        return features
    from figureground.analysis.validation.synthetic import synthetic_features, write_feature_store

    store = work / f"features_r{replicate}.zarr"
    if not store.exists():
        arrays = synthetic_features(
            settings.n_images, seed=settings.seed + replicate, norm_ratio=settings.norm_ratio
        )
        write_feature_store(arrays, store, settings.layer, seed=settings.seed + replicate)
    return store


def run_sweep(
    settings: SweepSettings = SweepSettings(),
    features: str | Path | None = None,
    parts_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Run every (condition, SNR, replicate) dataset and every method; one row per decision.

    Parameters
    ----------
    settings : the sweep (see :class:`SweepSettings`).
    features : feature store with ``no_background`` and ``no_foreground`` groups holding
        ``settings.layer``; None draws a synthetic store per replicate.
    parts_dir : folder for finished datasets' rows (one CSV each, keyed by a hash of the
        settings); a rerun skips them, so an interrupted sweep resumes. None: no caching.

    Returns
    -------
    DataFrame with :data:`DATASET_COLUMNS`.
    """
    settings.check()
    store = None if features is None else Path(features)
    if store is not None and not store.exists():
        raise UsageError(f"feature store {store} not found")
    label = "synthetic" if store is None else str(store.resolve())
    key_base = {**asdict(settings), "features": label}
    parts = None if parts_dir is None else Path(parts_dir)
    if parts is not None:
        parts.mkdir(parents=True, exist_ok=True)
    cells = [
        (r, c, s)
        for r in range(settings.replicates)
        for c in settings.conditions
        for s in settings.snrs
    ]
    tables = []
    work = Path(tempfile.mkdtemp(prefix="figureground-validate-"))
    try:
        for replicate, condition, snr in logs.progress(cells, len(cells), "validation datasets"):
            key = fsutil.params_hash({**key_base, "cell": [replicate, condition, snr]})
            cached = (
                None if parts is None else parts / f"{condition}_snr{snr:g}_r{replicate}_{key}.csv"
            )
            if cached is not None and cached.is_file():
                tables.append(pd.read_csv(cached))
                continue
            replicate_store = _replicate_store(store, work, replicate, settings)
            table = _dataset_rows(replicate_store, work, condition, snr, replicate, settings)
            table["features"] = label
            table = table[DATASET_COLUMNS]
            if cached is not None:
                with fsutil.atomic_path(cached) as tmp:
                    table.to_csv(tmp, index=False)
            log.debug("%s snr=%g replicate %d done", condition, snr, replicate)
            tables.append(table)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = pd.concat(tables, ignore_index=True)[DATASET_COLUMNS]
    return result.sort_values(["method", "condition", "snr", "replicate"], ignore_index=True)


def _proportion_ci(k: int, n: int) -> tuple[float, float]:
    """Exact (Clopper-Pearson) 95% interval of a proportion k / n."""
    from scipy.stats import binomtest

    interval = binomtest(int(k), int(n)).proportion_ci(0.95)
    return float(interval.low), float(interval.high)


def summarise(decisions: pd.DataFrame, methods: Sequence[str] | None = None) -> pd.DataFrame:
    """Recovery, power and false-positive rate per method, condition and SNR.

    ``recovery``: share of datasets whose decision equals the planted order. ``power``
    (fg_only / bg_only): share significant in the planted direction (equals recovery there).
    ``fpr`` (equal): share significant in either direction. ``wrong_direction``: share
    significant against a planted direction. ``rate_ci_low`` / ``rate_ci_high``: exact 95%
    interval of power (directional conditions) or of the FPR (equal).
    """
    order = list(methods) if methods is not None else list(dict.fromkeys(decisions["method"]))
    rows = []
    for (method, condition, snr), group in decisions.groupby(["method", "condition", "snr"]):
        n = len(group)
        planted = CONDITIONS[condition][2]
        significant = int(group["significant"].sum())
        correct = int(group["correct"].sum())
        if planted == "equal":
            power, fpr, wrong, k = float("nan"), significant / n, float("nan"), significant
        else:
            wrong_n = int((group["significant"] & ~group["correct"]).sum())
            power, fpr, wrong, k = correct / n, float("nan"), wrong_n / n, correct
        low, high = _proportion_ci(k, n)
        rows.append(
            {
                "method": method,
                "condition": condition,
                "snr": float(snr),
                "n_datasets": n,
                "recovery": correct / n,
                "power": power,
                "fpr": fpr,
                "wrong_direction": wrong,
                "rate_ci_low": low,
                "rate_ci_high": high,
                "mean_effect": float(group["effect"].mean()),
                "decisions": ", ".join(
                    f"{d}:{c}" for d, c in group["decision"].value_counts().sort_index().items()
                ),
            }
        )
    table = pd.DataFrame(rows)
    table["method"] = pd.Categorical(
        table["method"], [m for m in order if m in set(table["method"])]
    )
    table["condition"] = pd.Categorical(
        table["condition"], [c for c in CONDITIONS if c in set(table["condition"])]
    )
    table = table.sort_values(["method", "condition", "snr"], ignore_index=True)
    table["method"] = table["method"].astype(str)
    table["condition"] = table["condition"].astype(str)
    return table
