"""THINGS-MEG's trial design and its sample-attributes table, for any set of stimuli.

What the public data show (docs/things_meg_format.md, with sources): per participant 12
sessions of 10 runs; in every session one exemplar of every concept (the same exemplar
number for all concepts of a session, a per-participant permutation of sessions), the 200
test images once each (200 distinct concepts, later exemplars, never experiment images) and
200 catch trials; the CSV has 18 columns and empty (NaN) fields where a value does not
apply; the event code of a trial is its ``things_image_nr`` (999999 for catch trials).

This module builds that design for the images of a feature store or stimulus set:

- ``sessions`` defaults to the largest number of experiment exemplars of a concept (12 for
  THINGS); exemplar slot ``k`` of every concept is shown in session ``perm[k]`` (a seeded
  permutation per participant); concepts with fewer exemplars are absent from some sessions.
- ``test_images`` stimuli of distinct concepts are test images, shown once per session.
- ``catch_per_session`` catch trials per session (``images_catch_meg/catchNNN.jpg``).
- Trials of a session are shuffled and split into ``runs`` runs.

Numbering (THINGS-MEG's definitions, checked against ds004212 events.tsv version 1.0.0):
``things_category_nr`` 1-based in THINGS order (names sorted with ``_`` read as a space);
``things_image_nr`` 1-based over the stimuli ordered by concept then exemplar;
``category_nr`` = things_category_nr (catch: number of concepts + 1); ``exemplar_nr`` the
exemplar (test: largest experiment exemplar + 1; catch: the catch image number);
``image_nr`` = (category_nr - 1) x E + exemplar_nr for experiment images, E x concepts +
catch number for catch, E x concepts + catch images + test_image_nr for test images, with E
the largest experiment exemplar number.

Columns whose meaning is not documented publicly (``onset``, ``image_on``, ``image_off``,
``responded``, ``key_id``, ``key_time``, ``RT``) are filled plausibly (1.5 +- 0.2 s between
onsets within a run, images on for 0.5 s, catch trials answered with a key press 0.4-0.9 s
after onset in 90% of cases); see the docs for which columns are verified.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from figureground.errors import DataError, UsageError

ATTRIBUTE_COLUMNS = (
    "trial_type", "image_nr", "category_nr", "exemplar_nr", "test_image_nr",
    "things_category_nr", "things_image_nr", "things_exemplar_nr", "image_path", "onset",
    "image_on", "image_off", "responded", "key_id", "key_time", "RT", "session_nr", "run_nr",
)  # fmt: skip
INTEGER_COLUMNS = (
    "image_nr", "category_nr", "exemplar_nr", "test_image_nr", "things_category_nr",
    "things_image_nr", "things_exemplar_nr", "responded", "key_id", "session_nr", "run_nr",
)  # fmt: skip
CATCH_CODE = 999999  # event code of catch trials (the authors' fillna(999999))
RUNS_PER_SESSION = 10
_EXEMPLAR = re.compile(r"_(\d+)[A-Za-z]*$")


@dataclass(frozen=True)
class DesignParams:
    """The trial design of one simulated participant set (see the module docstring)."""

    test_images: int
    sessions: int | None = None
    catch_per_session: int | None = None
    runs: int = RUNS_PER_SESSION


def things_order(concepts: list[str]) -> list[str]:
    """Concepts in THINGS order: sorted with ``_`` read as a space (``camera_lens`` first)."""
    return sorted(set(concepts), key=lambda name: (name.replace("_", " "), name))


def stimulus_table(image_ids: list[str], concepts: list[str]) -> pd.DataFrame:
    """One row per stimulus: concept, exemplar, things_category_nr, things_image_nr."""
    order = things_order(concepts)
    category = {c: i + 1 for i, c in enumerate(order)}
    exemplars = []
    for image_id in image_ids:
        match = _EXEMPLAR.search(image_id)
        exemplars.append(int(match.group(1)) if match else 0)
    table = pd.DataFrame({"image_id": image_ids, "concept": concepts, "exemplar": exemplars})
    table["things_category_nr"] = table["concept"].map(category)
    # Stimuli without an exemplar number in their name are numbered within their concept.
    unnumbered = table["exemplar"] == 0
    if unnumbered.any():
        rank = table.groupby("concept").cumcount() + 1
        table.loc[unnumbered, "exemplar"] = rank[unnumbered]
    if table.duplicated(["concept", "exemplar"]).any():
        table["exemplar"] = table.groupby("concept").cumcount() + 1
    table = table.sort_values(["things_category_nr", "exemplar", "image_id"], kind="stable")
    table["things_image_nr"] = np.arange(1, len(table) + 1)
    return table.reset_index(drop=True)


def choose_test_images(stimuli: pd.DataFrame, n_test: int, rng: np.random.Generator) -> list[int]:
    """Rows of ``n_test`` stimuli of distinct concepts (the last exemplar of each concept)."""
    concepts = stimuli["things_category_nr"].unique()
    if n_test > len(concepts):
        raise UsageError(
            f"test_images={n_test}, but there are only {len(concepts)} concepts; test images "
            "come from distinct concepts"
        )
    if n_test <= 0:
        return []
    chosen = np.sort(rng.choice(concepts, n_test, replace=False))
    last = stimuli.groupby("things_category_nr")["exemplar"].idxmax()
    return [int(last[c]) for c in chosen]


def _trial_rows(stimuli: pd.DataFrame, rows: np.ndarray, kind: str) -> list[dict]:
    return [{"trial_type": kind, "_row": int(r)} for r in rows]


def design_trials(
    stimuli: pd.DataFrame, test_rows: list[int], params: DesignParams, rng: np.random.Generator
) -> pd.DataFrame:
    """The sample attributes of one participant (:data:`ATTRIBUTE_COLUMNS` plus ``_row``,
    the stimulus row of each trial, -1 for catch trials), in presentation order."""
    exp = stimuli.drop(index=test_rows)
    if exp.empty:
        raise DataError("every stimulus is a test image; no experiment images are left")
    slot = exp.groupby("things_category_nr").cumcount().to_numpy()
    sessions = params.sessions or max(2, int(slot.max()) + 1)
    if slot.max() >= sessions:
        raise UsageError(
            f"sessions={sessions}, but a concept has {int(slot.max()) + 1} experiment "
            "exemplars; THINGS-MEG shows one exemplar of a concept per session"
        )
    catch = params.catch_per_session
    catch = len(test_rows) if catch is None else int(catch)
    session_of_slot = rng.permutation(sessions)
    exp_session = session_of_slot[slot]
    records = []
    for session in range(sessions):
        trials = (
            _trial_rows(stimuli, exp.index.to_numpy()[exp_session == session], "exp")
            + _trial_rows(stimuli, np.asarray(test_rows, dtype=int), "test")
            + [{"trial_type": "catch", "_row": -1, "_catch": k + 1} for k in range(catch)]
        )
        order = rng.permutation(len(trials))
        runs = np.array_split(np.arange(len(trials)), max(1, min(params.runs, len(trials))))
        for run, positions in enumerate(runs):
            onset = 2.0
            for position in positions:
                trial = dict(trials[order[position]])
                trial.update(session_nr=session + 1, run_nr=run + 1, onset=round(onset, 4))
                records.append(trial)
                onset += rng.uniform(1.3, 1.7)
    table = pd.DataFrame.from_records(records)
    return _attributes(table, stimuli, test_rows, catch, rng)


def _attributes(
    trials: pd.DataFrame,
    stimuli: pd.DataFrame,
    test_rows: list[int],
    catch_images: int,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Fill the 18 THINGS-MEG columns of each trial (NaN where a field does not apply)."""
    n_concepts = int(stimuli["things_category_nr"].max())
    exp_rows = stimuli.drop(index=test_rows)
    max_exemplar = int(exp_rows["exemplar"].max())
    test_number = {row: k + 1 for k, row in enumerate(test_rows)}
    rows = trials["_row"].to_numpy()
    kind = trials["trial_type"].to_numpy()
    real = rows >= 0
    picked = stimuli.iloc[np.where(real, rows, 0)]
    out = pd.DataFrame({"trial_type": kind})
    category = np.where(real, picked["things_category_nr"].to_numpy(), n_concepts + 1)
    catch_nr = trials.get("_catch", pd.Series(np.nan, index=trials.index)).to_numpy()
    test_nr = np.array([test_number.get(int(r), np.nan) for r in rows], dtype=float)
    exemplar = np.where(kind == "exp", picked["exemplar"].to_numpy(), max_exemplar + 1)
    exemplar = np.where(kind == "catch", catch_nr, exemplar)
    base = max_exemplar * n_concepts
    image_nr = np.select(
        [kind == "exp", kind == "catch"],
        [(category - 1) * max_exemplar + exemplar, base + catch_nr],
        base + catch_images + test_nr,
    )
    out["image_nr"] = image_nr
    out["category_nr"] = category
    out["exemplar_nr"] = exemplar
    out["test_image_nr"] = test_nr
    out["things_category_nr"] = np.where(real, category, np.nan)
    out["things_image_nr"] = np.where(real, picked["things_image_nr"].to_numpy(), np.nan)
    out["things_exemplar_nr"] = np.where(real, picked["exemplar"].to_numpy(), np.nan)
    ids = picked["image_id"].to_numpy()
    concepts = picked["concept"].to_numpy()
    out["image_path"] = [
        f"images_meg/{c}/{i}.jpg"
        if k == "exp"
        else f"images_test_meg/{i}.jpg"
        if k == "test"
        else f"images_catch_meg/catch{int(n):03d}.jpg"
        for k, i, c, n in zip(kind, ids, concepts, np.nan_to_num(catch_nr), strict=True)
    ]
    out["onset"] = trials["onset"].to_numpy()
    out["image_on"] = out["onset"]
    out["image_off"] = out["onset"] + 0.5
    responded = (kind == "catch") & (rng.random(len(out)) < 0.9)
    rt = np.where(responded, rng.uniform(0.4, 0.9, len(out)), np.nan)
    out["responded"] = responded.astype(int)
    out["key_id"] = np.where(responded, 1.0, np.nan)  # a key code (meaning not published)
    out["key_time"] = out["image_on"] + rt
    out["RT"] = rt
    out["session_nr"] = trials["session_nr"].to_numpy()
    out["run_nr"] = trials["run_nr"].to_numpy()
    for column in INTEGER_COLUMNS:
        out[column] = pd.array(out[column].to_numpy(dtype=float), dtype="Float64").astype("Int64")
    out["_row"] = rows
    return out


def event_codes(attributes: pd.DataFrame) -> np.ndarray:
    """Event code of each trial: things_image_nr, CATCH_CODE for catch trials."""
    codes = attributes["things_image_nr"].astype("Float64").fillna(CATCH_CODE)
    return codes.to_numpy(dtype=np.int64)
