"""What every report section is made of: results tables read, PNGs embedded, tables as HTML.

A section is a dict with ``title``, ``figure`` (base64 PNG, or "" for a section of tables
only), ``caption`` and ``tables`` (list of (heading, table)); the template renders them in
order.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import markupsafe
import pandas as pd


def png_base64(png: bytes) -> str:
    """``png`` as base64 text, for a ``data:image/png`` source."""
    return base64.b64encode(png).decode("ascii")


def table_html(table: pd.DataFrame, float_format: str = "{:.4g}") -> str:
    """``table`` as an HTML table (floats formatted, NaN blank); a note when it is empty."""
    if table is None or table.empty:
        return "<p>(none)</p>"
    shown = table.copy()
    for column in shown.columns:
        if pd.api.types.is_float_dtype(shown[column]):
            shown[column] = shown[column].map(
                lambda v: "" if pd.isna(v) else float_format.format(v)
            )
    return shown.to_html(index=False, escape=True, border=0)


def table_markup(table: pd.DataFrame) -> markupsafe.Markup:
    """``table`` as HTML the template inserts as it is (:func:`table_html`)."""
    return markupsafe.Markup(table_html(table))


def read_results_csv(path: Path, *, low_memory: bool = True) -> pd.DataFrame | None:
    """The results table at ``path`` (only empty cells are NaN); None when it is absent."""
    if not path.exists():
        return None
    return pd.read_csv(path, keep_default_na=False, na_values=[""], low_memory=low_memory)


def figure_section(
    title: str, png: bytes, caption: str, tables: list[tuple[str, Any]] | None = None
) -> dict[str, Any]:
    """A section showing ``png`` above ``caption``, then ``tables`` (heading, table)."""
    return {
        "title": title,
        "figure": png_base64(png),
        "caption": caption,
        "tables": [] if tables is None else tables,
    }
