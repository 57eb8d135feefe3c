"""The validation sweep: the pipeline's own verdict on brains with a known answer.

For each replicate ``r`` (seed ``seed + r``): draw ``concepts`` concepts of the pool (all
their exemplars), reduce every code to its principal components over those images, simulate
``participants`` participants of every brain of :data:`brains.BRAINS` in memory with the
simulator's generative model (z-scored epochs; :func:`figureground.neural.simulate.
simulate_responses`), and run the analysis the pipeline runs: RSA curves per view
(:func:`figureground.analysis.study.rsa_results.rsa_curves`) and the verdict
(:func:`figureground.analysis.verdict.verdict_tables`). Per dataset and view the decision of
two rules is recorded: ``verdict`` (the pipeline's: figure minus ground significant and the
winning variant beats the original image) and ``difference`` (figure minus ground alone),
for the group and for each participant. The seed method's statistic is recorded too (mean
over images of d(no foreground) - d(no background)).

Power is the share of datasets whose group decision equals the planted answer; the
false-positive rate (nulls) the share with any figure or ground window; both with exact
(Clopper-Pearson) 95% intervals.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from figureground import fsutil, logs
from figureground.analysis.validation.brains import BRAINS, Brain
from figureground.analysis.validation.pool import Pool, PoolSettings, build_pool
from figureground.conditions import CONDITIONS, NO_BACKGROUND, NO_FOREGROUND
from figureground.errors import UsageError

log = logs.get_logger(__name__)

RULES = ("verdict", "difference")
DECISION_COLUMNS = [
    "brain", "source", "planted", "snr", "replicate", "seed", "view", "rule", "who",
    "decision", "correct", "significant", "seed_effect", "n_images",
]  # fmt: skip


@dataclass(frozen=True)
class SweepSettings:
    """Everything that determines a sweep's results (see the module docstring)."""

    snrs: tuple[float, ...] = (0.02, 0.05)
    replicates: int = 20
    null_replicates: int = 40
    participants: int = 4
    concepts: int = 18
    seed: int = 0
    brains: tuple[str, ...] = tuple(BRAINS)
    views: tuple[str, ...] = ("region", "flat")
    n_boot: int = 100
    alpha: float = 0.05
    tmin: float = 0.0
    tmax: float = 0.6
    decim: int = 10
    components: int = 4
    workers: int = 1
    pool: PoolSettings = field(default_factory=PoolSettings)

    def check(self) -> None:
        """One-line UsageError for an out-of-range setting."""
        unknown = [b for b in self.brains if b not in BRAINS]
        if unknown:
            raise UsageError(f"unknown brains {unknown}; expected some of {list(BRAINS)}")
        checks = {
            "snrs": len(self.snrs) > 0 and all(s >= 0 for s in self.snrs),
            "replicates": self.replicates >= 1,
            "null_replicates": self.null_replicates >= 1,
            "participants": self.participants >= 1,
            "concepts": 3 <= self.concepts <= self.pool.concepts,
            "n_boot": self.n_boot >= 20,
            "views": len(self.views) >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise UsageError(f"{name}={getattr(self, name)!r} is out of range")


def _subset(pool: Pool, settings: SweepSettings, replicate: int) -> np.ndarray:
    """Rows of the pool images of the replicate's concepts (sorted by image id)."""
    rng = np.random.default_rng([settings.seed, 101, replicate])
    concepts = sorted(set(pool.concepts))
    chosen = set(rng.choice(concepts, settings.concepts, replace=False))
    rows = [i for i, c in enumerate(pool.concepts) if c in chosen]
    return np.array(sorted(rows, key=lambda i: pool.image_ids[i]))


def _codes(pool: Pool, rows: np.ndarray, source: str, settings: SweepSettings, cache: dict):
    """The replicate's codes of one source (principal components over its images)."""
    from figureground.neural.codes import ImageCodes, pca_scores, standardised_scores

    if source in cache:
        return cache[source]
    ids = tuple(pool.image_ids[i] for i in rows)
    concepts = tuple(pool.concepts[i] for i in rows)
    scores, explained = {}, {}
    if source == "pixels":
        for region, values in pool.descriptors.items():
            scores[region], explained[region] = standardised_scores(
                values[rows], settings.components
            )
    else:
        import xarray as xr

        rng = np.random.default_rng(settings.seed)
        for name, condition in (("figure", NO_BACKGROUND), ("ground", NO_FOREGROUND)):
            if source == "analysed":
                values = pool.maps[condition][rows]
            else:
                from figureground.features.store import read_layer

                values = read_layer(pool.other_store, condition, pool.settings.other_layer, ids)
            raw, ratio = pca_scores(
                xr.DataArray(values.reshape(len(rows), -1), dims=("image", "feature")),
                settings.components,
                rng,
            )
            spread = raw.std(axis=0)
            scores[name], explained[name] = raw / np.where(spread > 0, spread, 1.0), ratio
    cache[source] = ImageCodes(ids, concepts, scores, explained, f"validation:{source}")
    return cache[source]


def _features(pool: Pool, rows: np.ndarray) -> dict:
    import xarray as xr

    ids = [pool.image_ids[i] for i in rows]
    concepts = [pool.concepts[i] for i in rows]
    return {
        condition: xr.DataArray(
            pool.maps[condition][rows],
            dims=("image", "channel", "y", "x"),
            coords={"image": ids, "concept": ("image", concepts)},
            attrs=dict(pool.attrs),
        )
        for condition in CONDITIONS
    }


def decision(rows: pd.DataFrame) -> str:
    """figure / ground / mixed / none / untestable from verdict rows of one contrast."""
    directions = set(rows["direction"])
    if not directions or directions == {"untestable"}:
        return "untestable"
    figure, ground = "figure" in directions, "ground" in directions
    return "mixed" if figure and ground else "figure" if figure else "ground" if ground else "none"


def _seed_effect(pool: Pool, rows: np.ndarray, meg: dict) -> float:
    """The seed method on the analysed layer: mean of d(no foreground) - d(no background),
    for the first participant (enough to see whether it moves with the brain)."""
    from figureground.analysis.seed import seed_distance

    effects = []
    for responses in list(meg.values())[:1]:
        values = responses.values
        fg = seed_distance(values, pool.maps[NO_BACKGROUND][rows], batched=True)
        bg = seed_distance(values, pool.maps[NO_FOREGROUND][rows], batched=True)
        effects.append(float(np.mean(bg - fg)))
    return float(np.mean(effects))


def analyse(
    pool: Pool, rows: np.ndarray, meg: dict, settings: SweepSettings
) -> list[dict[str, object]]:
    """Decisions of every rule, view and participant (and the group) on one dataset."""
    from figureground.analysis.study.layer_views import viewed_features
    from figureground.analysis.study.rsa_results import rsa_curves
    from figureground.analysis.verdict import VerdictSettings, combine_views, verdict_tables
    from figureground.config import RsaConfig

    rsa = RsaConfig(levels=("image",), n_boot=settings.n_boot, n_permutations=0, partial=True)
    verdict_settings = VerdictSettings(alpha=settings.alpha, tmin=settings.tmin,
                                       tmax=settings.tmax, min_conditions=10)  # fmt: skip
    features = _features(pool, rows)
    tables = []
    for view in settings.views:
        masks = pool.masks[rows] if view == "region" else None
        viewed = viewed_features(features, view, masks)
        cache: dict = {}
        curves = {
            p: rsa_curves(m, viewed, "image", rsa, model_rdm_cache=cache).curves
            for p, m in meg.items()
        }
        described = {"model": "m", "weights": "w", "layer": "l", "level": "image", "view": view}
        tables.append(verdict_tables(curves, described, verdict_settings)[0])
    verdict = pd.concat(tables, ignore_index=True)
    if len(settings.views) > 1:
        verdict = pd.concat([verdict, combine_views(verdict, settings.alpha)], ignore_index=True)
    out = []
    for (view, rule, who), own in verdict.groupby(["view", "contrast", "participant"]):
        if rule in RULES:
            out.append({"view": view, "rule": rule, "who": str(who), "decision": decision(own)})
    return out


def _dataset(
    pool: Pool, brain: Brain, snr: float, replicate: int, settings: SweepSettings, cache: dict
) -> pd.DataFrame:
    from figureground.neural.simulate import BrainParams, simulate_responses

    rows = cache.setdefault("rows", _subset(pool, settings, replicate))
    codes = _codes(pool, rows, brain.source, settings, cache)
    seed = settings.seed + replicate
    params = BrainParams(brain.weights, snr, seed, settings.participants, settings.components)
    meg = simulate_responses(
        codes, params, tmin=settings.tmin, tmax=settings.tmax, decim=settings.decim
    )
    seed_effect = _seed_effect(pool, rows, meg)
    table = pd.DataFrame(analyse(pool, rows, meg, settings))
    table = table.assign(
        brain=brain.name,
        source=brain.source,
        planted=brain.planted,
        snr=float(snr),
        replicate=replicate,
        seed=seed,
        seed_effect=seed_effect,
        n_images=len(rows),
    )
    table["significant"] = table["decision"].isin(["figure", "ground", "mixed"])
    table["correct"] = table["decision"] == table["planted"]
    return table[DECISION_COLUMNS]


_POOLS: dict[str, Pool] = {}  # per process: the pool loaded once by each worker


def _loaded_pool(folder: Path, settings: PoolSettings) -> Pool:
    key = str(folder)
    if key not in _POOLS:
        _POOLS.clear()
        _POOLS[key] = build_pool(folder, settings)
    return _POOLS[key]


def _part_path(parts: Path | None, settings: SweepSettings, cell: tuple) -> Path | None:
    if parts is None:
        return None
    replicate, name, snr = cell
    fields = asdict(settings)
    for speed_only in ("workers", "replicates", "null_replicates", "brains", "snrs"):
        fields.pop(speed_only)  # a dataset does not depend on these: more of them resume
    key = fsutil.params_hash({**fields, "cell": [replicate, name, snr]})
    return parts / f"{name}_snr{snr:g}_r{replicate}_{key}.csv"


def _replicate(task: tuple) -> list[pd.DataFrame]:
    """Every cell of one replicate (one worker task; the replicate's codes shared)."""
    folder, settings, replicate, cells, parts = task
    pool = _loaded_pool(folder, settings.pool)
    cache: dict = {}
    tables = []
    for cell in cells:
        _, name, snr = cell
        with logs.inner_progress_hidden():
            table = _dataset(pool, BRAINS[name], snr, replicate, settings, cache)
        cached = _part_path(parts, settings, cell)
        if cached is not None:
            with fsutil.atomic_path(cached) as tmp:
                table.to_csv(tmp, index=False)
        tables.append(table)
    return tables


def run_sweep(
    settings: SweepSettings = SweepSettings(),
    pool_dir: str | Path | None = None,
    parts_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Every (brain, SNR, replicate) dataset; one row per view, rule and participant/group.

    ``pool_dir`` keeps the stimulus pool (built when missing); ``parts_dir`` keeps each
    finished dataset's rows, keyed by the settings, so an interrupted sweep resumes.
    Replicates run in ``settings.workers`` processes (results do not depend on it).
    """
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    settings.check()
    folder = Path(pool_dir or tempfile.mkdtemp(prefix="fg-pool-"))
    build_pool(folder, settings.pool)
    parts = Path(parts_dir) if parts_dir is not None else None
    if parts is not None:
        parts.mkdir(parents=True, exist_ok=True)
    longest = max(settings.replicates, settings.null_replicates)
    tables, tasks = [], []
    for replicate in range(longest):
        todo = []
        for name in settings.brains:
            wanted = (
                settings.null_replicates
                if BRAINS[name].planted == "none"
                else (settings.replicates)
            )
            for snr in settings.snrs:
                if replicate >= wanted:
                    continue
                cached = _part_path(parts, settings, (replicate, name, snr))
                if cached is not None and cached.is_file():
                    tables.append(pd.read_csv(cached, keep_default_na=False))
                else:
                    todo.append((replicate, name, snr))
        if todo:
            tasks.append((folder, settings, replicate, todo, parts))
    total = sum(len(task[3]) for task in tasks)
    log.info("validation: %d datasets to run, %d already done", total, len(tables))
    if settings.workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(settings.workers, mp_context=get_context("spawn")) as executor:
            for found in logs.progress(executor.map(_replicate, tasks), len(tasks), "replicates"):
                tables.extend(found)
    else:
        for task in logs.progress(tasks, len(tasks), "replicates"):
            tables.extend(_replicate(task))
    result = pd.concat(tables, ignore_index=True)[DECISION_COLUMNS]
    return result.sort_values(
        ["brain", "snr", "replicate", "view", "rule", "who"], ignore_index=True
    )


def reliability_table(
    settings: SweepSettings, pool_dir: str | Path, brains: Sequence[str] = ("pixels_figure",)
) -> pd.DataFrame:
    """The authors' noise ceiling of each brain at each SNR of the sweep, on the pool: one
    test image per concept (up to 200), 12 sessions, z-scored epochs
    (:func:`figureground.neural.simulate.simulated_reliability`)."""
    from figureground.neural.simulate import BrainParams, simulated_reliability

    pool = build_pool(Path(pool_dir), settings.pool)
    rows_all = np.arange(len(pool.image_ids))
    n_test = min(200, len(set(pool.concepts)))
    records = []
    for name in brains:
        brain = BRAINS[name]
        codes = _codes(pool, rows_all, brain.source, settings, {})
        for snr in settings.snrs:
            params = BrainParams(brain.weights, snr, settings.seed, 1, settings.components)
            found = simulated_reliability(codes, params, n_test)
            records.append({"brain": name, "snr": float(snr), **found})
    return pd.DataFrame(records)


def proportion_ci(k: int, n: int) -> tuple[float, float]:
    """Exact (Clopper-Pearson) 95% interval of a proportion k / n."""
    from scipy.stats import binomtest

    interval = binomtest(int(k), int(n)).proportion_ci(0.95)
    return float(interval.low), float(interval.high)


def summarise(decisions: pd.DataFrame, who: Sequence[str] = ("group",)) -> pd.DataFrame:
    """Power (planted figure/ground) or false-positive rate (nulls) per brain, SNR, view and
    rule, for the group (default) with exact 95% intervals."""
    rows = []
    chosen = decisions[decisions["who"].astype(str).isin(list(who))]
    keys = ["brain", "planted", "snr", "view", "rule"]
    for (brain, planted, snr, view, rule), group in chosen.groupby(keys, sort=False):
        n = len(group)
        if planted == "none":
            k, measure = int(group["significant"].sum()), "fpr"
        else:
            k, measure = int((group["decision"] == planted).sum()), "power"
        low, high = proportion_ci(k, n)
        rows.append(
            {
                "brain": brain,
                "planted": planted,
                "snr": float(snr),
                "view": view,
                "rule": rule,
                "measure": measure,
                "rate": k / n,
                "ci_low": low,
                "ci_high": high,
                "n_datasets": n,
                "wrong_direction": int(
                    group["decision"].isin({"figure": ["ground"], "ground": ["figure"]}
                                           .get(planted, [])).sum()
                ),
                "decisions": ", ".join(
                    f"{d}:{c}" for d, c in group["decision"].value_counts().sort_index().items()
                ),
            }
        )  # fmt: skip
    order = {name: i for i, name in enumerate(BRAINS)}
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["_order"] = table["brain"].map(order)
    return (
        table.sort_values(["_order", "snr", "view", "rule"])
        .drop(columns="_order")
        .reset_index(drop=True)
    )
