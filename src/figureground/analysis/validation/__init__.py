"""Validation on known answers: the pipeline's verdict on brains it did not build itself.

See ``docs/validation.md``. :func:`run_sweep` simulates brains driven by the analysed
network, another network and pixel descriptors of figure and ground (position-tolerant and
position-specific), plus nulls without a figure/ground preference (no signal, figure and
ground equally, the whole image, the image centre), and records the pipeline's verdict;
:func:`summarise` gives power and false-positive rates with exact intervals;
:func:`plot_summary` draws them.
"""

from figureground.analysis.validation.brains import BRAINS, NULLS, Brain
from figureground.analysis.validation.figure import plot_summary
from figureground.analysis.validation.pool import PoolSettings, build_pool
from figureground.analysis.validation.sweep import (
    DECISION_COLUMNS,
    RULES,
    SweepSettings,
    decision,
    run_sweep,
    summarise,
)

__all__ = [
    "BRAINS",
    "DECISION_COLUMNS",
    "NULLS",
    "RULES",
    "Brain",
    "PoolSettings",
    "SweepSettings",
    "build_pool",
    "decision",
    "plot_summary",
    "run_sweep",
    "summarise",
]
