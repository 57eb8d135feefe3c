"""Simulated responses in memory, without files: for validation sweeps of many datasets.

The same generative model and seeds as the simulated files
(:mod:`figureground.neural.simulate_files`): brains, not trial orders.
"""

from __future__ import annotations

import numpy as np

from figureground.errors import UsageError
from figureground.neural.codes import ImageCodes
from figureground.neural.sensors import things_meg_channel_names
from figureground.neural.simulate_brain import (
    BASELINE,
    BrainParams,
    draw_brain,
    participant_seeds,
    signal_window,
    times,
)
from figureground.neural.things_meg import SFREQ


def simulate_responses(
    codes: ImageCodes,
    params: BrainParams,
    tmin: float | None = None,
    tmax: float | None = None,
    decim: int = 1,
) -> dict[str, object]:
    """Per-participant responses to every image seen once, in memory, as the loader returns
    them: ``{"P1": DataArray (image, channel, time)}``, z-scored against the baseline.

    The same generative model and seeds as :func:`simulate_codes` (brains, not trial
    orders), without files: for validation sweeps that analyse thousands of datasets.
    """
    import xarray as xr

    from figureground.neural.trial_source import select_times

    params.check(codes)
    t = times()
    window = signal_window(t)
    keep = select_times(t, tmin, tmax, decim)
    # the baseline samples (for the z-scoring) and the kept ones; nothing else is computed
    samples = np.union1d(np.flatnonzero(t <= BASELINE[1] + 1e-9), keep)
    position = np.searchsorted(samples, keep)
    names = things_meg_channel_names()
    order = np.argsort(np.asarray(codes.image_ids))
    out = {}
    for number, sequence in enumerate(participant_seeds(params), start=1):
        rng = np.random.default_rng(sequence)
        brain = draw_brain(codes, params, rng, t)
        data, _ = brain.epochs(order, rng, t, window, samples)
        out[f"P{number}"] = xr.DataArray(
            data[:, :, position].astype(np.float32),
            dims=("image", "channel", "time"),
            coords={
                "image": np.asarray(codes.image_ids)[order],
                "channel": names,
                "time": t[keep],
                "concept": ("image", np.asarray(codes.concepts)[order]),
            },
            attrs={"participant": f"P{number}", "sfreq": SFREQ / decim},
        )
    return out


def simulated_reliability(
    codes: ImageCodes, params: BrainParams, test_images: int, sessions: int = 12
) -> dict[str, float]:
    """The THINGS-MEG authors' noise ceiling of this brain, measured in memory.

    ``test_images`` images of distinct concepts are each shown once in each of ``sessions``
    sessions to the first participant's brain (the same generative model and z-scoring as
    the files), and :func:`figureground.neural.reliability.noise_ceiling` is computed as in
    the authors' ``step2c`` script. Returns its summary (peak channel-mean NC in percent for
    ``sessions`` repetitions, the single-trial SNR and reliability at that peak).
    """
    from figureground.neural.reliability import noise_ceiling, summarise

    params.check(codes)
    t = times()
    window = signal_window(t)
    rng = np.random.default_rng(participant_seeds(params)[0])
    brain = draw_brain(codes, params, rng, t)
    concepts = np.asarray(codes.concepts)
    first = [int(np.flatnonzero(concepts == c)[0]) for c in dict.fromkeys(concepts)]
    if test_images > len(first):
        raise UsageError(f"{test_images} test images, but only {len(first)} concepts")
    rows = np.asarray(first[:test_images])
    per_session = [brain.epochs(rows, rng, t, window)[0] for _ in range(sessions)]
    stacked = np.stack(per_session, axis=1)  # (image, session, channel, time)
    ceiling, ncsnr = noise_ceiling(np.transpose(stacked, (2, 3, 1, 0)), n=sessions)
    return {**summarise(ceiling, ncsnr, t), "n_repetitions": sessions, "n_images": len(rows)}
