"""Validation on known answers: which figure/ground methods recover a planted order.

See ``docs/validation.md``. :func:`run_sweep` simulates brains that follow the figure, the
ground or both equally, :func:`summarise` turns the per-dataset decisions into recovery,
power and false-positive rates, :func:`plot_summary` draws them.
"""

from figureground.analysis.validation.figure import plot_summary
from figureground.analysis.validation.methods import (
    METHODS,
    Dataset,
    MethodSettings,
    decide,
)
from figureground.analysis.validation.sweep import (
    CONDITIONS,
    DATASET_COLUMNS,
    SweepSettings,
    analyse_dataset,
    run_sweep,
    summarise,
)
from figureground.analysis.validation.synthetic import synthetic_features, write_feature_store

__all__ = [
    "CONDITIONS",
    "DATASET_COLUMNS",
    "METHODS",
    "Dataset",
    "MethodSettings",
    "SweepSettings",
    "analyse_dataset",
    "decide",
    "plot_summary",
    "run_sweep",
    "summarise",
    "synthetic_features",
    "write_feature_store",
]
