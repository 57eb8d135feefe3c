"""The stimulus-validity figure draws from a variants table, with NaN values and without."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from figureground.report.figures import figure_png
from figureground.report.validity import fig_stimulus_validity

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def variants_table(n: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    auc = rng.uniform(0.0, 0.6, n)
    return pd.DataFrame(
        {
            "image_id": [f"img{i}" for i in range(n)],
            "status": ["ok"] * (n - 1) + ["failed"],
            "haze": rng.uniform(0, 0.06, n),
            "haze_fraction": rng.uniform(0, 1, n),
            "silhouette_auc": auc,
            "silhouette_detectability": np.abs(auc - 0.5) * 2,
        }
    )


def texts(fig: Figure) -> str:
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts)


def test_draws_a_small_table() -> None:
    fig = fig_stimulus_validity(variants_table())
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert "5 images" in fig.get_suptitle()  # the failed row is left out
    assert texts(fig).count("n = 5") == 3
    assert [ax.get_title() for ax in fig.axes][2].startswith("Silhouette")
    assert figure_png(fig).startswith(PNG_SIGNATURE)


def test_draws_with_nan_values_and_missing_columns() -> None:
    table = variants_table()
    table.loc[[0, 1], "silhouette_auc"] = np.nan
    table["haze"] = np.nan  # every value missing
    fig = fig_stimulus_validity(table)
    assert "n = 3" in texts(fig) and "2 without a value" in texts(fig)
    assert "n = 0" in texts(fig) and "5 without a value" in texts(fig)
    assert figure_png(fig).startswith(PNG_SIGNATURE)
    # A table of an earlier version (no such columns) and an empty table draw too.
    older = fig_stimulus_validity(table.drop(columns=["haze", "haze_fraction"]))
    assert texts(older).count("not in this table") == 2
    assert figure_png(older).startswith(PNG_SIGNATURE)
    empty = fig_stimulus_validity(table.iloc[:0])
    assert "0 images" in empty.get_suptitle()
    assert figure_png(empty).startswith(PNG_SIGNATURE)
    # As read back from variants.csv: nullable floats with <NA>.
    read_back = variants_table().astype({"silhouette_auc": "Float64"})
    read_back.loc[0, "silhouette_auc"] = pd.NA
    assert "1 without a value" in texts(fig_stimulus_validity(read_back))
