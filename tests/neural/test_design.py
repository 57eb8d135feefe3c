"""THINGS-MEG's design and numbering (neural/design.py), checked by hand on small cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from figureground.errors import UsageError
from figureground.neural.design import (
    ATTRIBUTE_COLUMNS,
    CATCH_CODE,
    DesignParams,
    choose_test_images,
    design_trials,
    event_codes,
    stimulus_table,
    things_order,
)


def test_things_order_reads_underscores_as_spaces() -> None:
    # THINGS lists camera_lens before camera1 (plain sorting would not)
    assert things_order(["camera1", "camera_lens", "aardvark"]) == [
        "aardvark",
        "camera_lens",
        "camera1",
    ]


def _stimuli(concepts: int = 4, exemplars: int = 3) -> pd.DataFrame:
    names = [f"c{k}" for k in range(concepts)]
    ids = [f"{c}_{e + 1:02d}s" for c in names for e in range(exemplars)]
    return stimulus_table(ids, [i.rsplit("_", 1)[0] for i in ids])


def test_numbering_follows_the_public_definitions() -> None:
    stimuli = _stimuli()
    assert list(stimuli["things_image_nr"]) == list(range(1, 13))
    rng = np.random.default_rng(0)
    test_rows = choose_test_images(stimuli, 2, rng)
    assert stimuli.loc[test_rows, "concept"].nunique() == 2
    assert (stimuli.loc[test_rows, "exemplar"] == 3).all()  # the last exemplar of its concept
    trials = design_trials(stimuli, test_rows, DesignParams(2, catch_per_session=1), rng)
    assert list(trials.columns[:-1]) == list(ATTRIBUTE_COLUMNS)
    exp = trials[trials["trial_type"] == "exp"]
    # image_nr = (category_nr - 1) * E + exemplar_nr with E the most experiment exemplars (3)
    expected = (exp["category_nr"] - 1) * 3 + exp["exemplar_nr"]
    assert (exp["image_nr"] == expected).all()
    catch = trials[trials["trial_type"] == "catch"]
    assert (catch["image_nr"] == 3 * 4 + catch["exemplar_nr"]).all()
    assert (catch["category_nr"] == 5).all() and catch["things_image_nr"].isna().all()
    test = trials[trials["trial_type"] == "test"]
    assert (test["image_nr"] == 3 * 4 + 1 + test["test_image_nr"]).all()
    assert (test["exemplar_nr"] == 4).all()  # largest experiment exemplar + 1
    codes = event_codes(trials)
    assert (codes[trials["trial_type"].to_numpy() == "catch"] == CATCH_CODE).all()
    real = trials["trial_type"] != "catch"
    np.testing.assert_array_equal(codes[real.to_numpy()], trials.loc[real, "things_image_nr"])


def test_sessions_show_one_exemplar_of_every_concept() -> None:
    stimuli = _stimuli(5, 4)
    rng = np.random.default_rng(3)
    trials = design_trials(stimuli, [], DesignParams(0, catch_per_session=2), rng)
    exp = trials[trials["trial_type"] == "exp"]
    assert trials["session_nr"].nunique() == 4
    per_session = exp.groupby("session_nr")
    assert (per_session["things_category_nr"].nunique() == 5).all()
    assert (per_session["things_exemplar_nr"].nunique() == 1).all()
    sessions = trials.groupby("session_nr")
    assert (sessions["run_nr"].max() == np.minimum(10, sessions.size())).all()
    assert (trials[trials["trial_type"] == "catch"].groupby("session_nr").size() == 2).all()


def test_bad_designs_are_refused() -> None:
    stimuli = _stimuli(2, 3)
    with pytest.raises(UsageError, match="distinct concepts"):
        choose_test_images(stimuli, 3, np.random.default_rng(0))
    with pytest.raises(UsageError, match="one exemplar of a concept per session"):
        design_trials(stimuli, [], DesignParams(0, sessions=2), np.random.default_rng(0))
