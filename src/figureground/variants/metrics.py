"""Per-image mask metrics: foreground fraction, confidence, bounding box, little background."""

from __future__ import annotations

import numpy as np

CONFIDENT_LOW, CONFIDENT_HIGH = 0.05, 0.95


def bounding_box(alpha: np.ndarray, threshold: float = 0.5) -> str:
    """``"x0,y0,x1,y1"`` (x1, y1 exclusive) of pixels with alpha above ``threshold``; "" if none."""
    rows = np.flatnonzero((alpha > threshold).any(axis=1))
    cols = np.flatnonzero((alpha > threshold).any(axis=0))
    if rows.size == 0:
        return ""
    return f"{cols[0]},{rows[0]},{cols[-1] + 1},{rows[-1] + 1}"


def mask_metrics(
    alpha: np.ndarray, threshold: float = 0.5, little_background_above: float = 0.9
) -> dict[str, object]:
    """Metrics of a soft alpha in [0, 1].

    Returns
    -------
    dict
        ``fg_fraction`` (mean alpha), ``mask_confidence`` (share of pixels below 0.05 or above
        0.95), ``bbox`` (see :func:`bounding_box`) and ``little_background``
        (``fg_fraction > little_background_above``). Floats are rounded to 6 decimals so that
        the CSV is the same whether a value was computed or read back from its record.
    """
    fg_fraction = round(float(alpha.mean(dtype=np.float64)), 6)
    confident = (alpha < CONFIDENT_LOW) | (alpha > CONFIDENT_HIGH)
    return {
        "fg_fraction": fg_fraction,
        "mask_confidence": round(float(confident.mean()), 6),
        "bbox": bounding_box(alpha, threshold),
        "little_background": bool(fg_fraction > little_background_above),
    }
