"""Simulated THINGS-MEG data with a known answer: a "brain" driven by named codes.

Per-image responses are a weighted mix of codes (:mod:`figureground.neural.codes`): network
embeddings of the variants (``figure`` = no background, ``ground`` = no foreground, ``image``
= original) or pixel descriptors of the object and the rest (no network involved). Each
code's principal components drive smooth random sensor patterns with an early and a late
temporal bump; every image shares an evoked response; noise is spatially correlated and
smooth in time. The epochs are then z-scored against the baseline (-0.1 to 0 s) per epoch
and channel, as the authors' preprocessing does (``mne.baseline.rescale(..., mode='zscore')``
in THINGS-data ``MEG/step1_preprocessing.py``): the files hold dimensionless z-scores with a
baseline SD of 1, while the channels still say tesla, as in the released files.

Files follow the THINGS-MEG format and design (:mod:`figureground.neural.design`): 271 CTF
axial gradiometers named with their ``-1609`` suffix, 200 Hz, -0.1 to 1.3 s, sessions with
one exemplar of every concept, test images once per session, catch trials, 18 attribute
columns with empty fields where a value does not apply, event codes ``things_image_nr``
(999999 for catch trials), the attributes also attached to the epochs.

Signal-to-noise ratio (``snr``), precisely: before the baseline z-scoring, over the sensors
and samples of the signal window (``SIGNAL_WINDOW``, 0 to 0.8 s), the variance across images
(population variance) of the noise-free image-specific signal, averaged over those sensors
and samples, divided by the single-trial noise variance averaged over the same sensors and
samples. The evoked response (the same for every image) is not signal. ``snr=0`` gives data
without image-specific signal. The ground truth also reports the THINGS-MEG authors' noise
ceiling measured on the simulated test trials (:mod:`figureground.neural.reliability`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from figureground.conditions import NO_BACKGROUND, NO_FOREGROUND
from figureground.errors import DataError, UsageError
from figureground.neural.codes import ImageCodes, network_codes, pca_scores  # noqa: F401
from figureground.neural.design import (
    ATTRIBUTE_COLUMNS,  # noqa: F401  (re-exported: the CSV's columns)
    DesignParams,
)
from figureground.neural.simulate_brain import (  # noqa: F401  (re-exported)
    BASELINE,
    DEFAULT_EVOKED,
    SIGNAL_WINDOW,
    BrainParams,
    ParticipantBrain,
    draw_brain,
    times,
    zscore_baseline,
)
from figureground.neural.simulate_files import simulate_codes
from figureground.neural.simulate_memory import (  # noqa: F401  (re-exported)
    simulate_responses,
    simulated_reliability,
)

FG_VARIANT, BG_VARIANT = NO_BACKGROUND, NO_FOREGROUND


# ----------------------------------------------------------------------------- entry points
def simulate_meg(
    features_path: str | Path,
    out_dir: str | Path,
    fg_weight: float,
    bg_weight: float,
    snr: float,
    seed: int,
    participants: int = 4,
    layer: str = "layer2",
    test_images: int | None = None,
    sessions: int | None = None,
    catch_per_session: int | None = None,
    components: int = 4,
    evoked_amplitude: float = DEFAULT_EVOKED,
    image_weight: float = 0.0,
    chunk: int = 256,
) -> Path:
    """A simulated THINGS-MEG dataset whose brain follows a feature store's embeddings.

    Parameters
    ----------
    features_path : feature store (Zarr) with groups ``no_background`` and ``no_foreground``
        (and ``original`` when ``image_weight`` > 0).
    out_dir : output folder (see :func:`simulate_codes`).
    fg_weight, bg_weight, image_weight : weights (>= 0) of the figure (no-background),
        ground (no-foreground) and whole-image (original) embeddings, each first scaled to
        unit windowed variance; the mix is then scaled to ``snr``.
    snr : signal-to-noise ratio as defined in the module docstring (>= 0).
    seed : everything random follows from it; the same seed writes the same files.
    test_images : stimuli of distinct concepts shown once per session; default
        min(200, concepts, n_images // 10).
    sessions, catch_per_session : the design (:class:`figureground.neural.design.DesignParams`).
    components : principal components kept per embedding.
    """
    weights = (("figure", float(fg_weight)), ("ground", float(bg_weight)))
    if image_weight:
        weights += (("image", float(image_weight)),)
    for name, value in weights:
        if not value >= 0:
            label = {"figure": "fg_weight", "ground": "bg_weight"}.get(name, "image_weight")
            raise UsageError(f"{label}={value!r} is out of range; expected >= 0")
    names = [n for n, _ in weights]
    shared = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    codes = network_codes(features_path, layer, names, components, shared)
    brain = BrainParams(
        weights, float(snr), int(seed), int(participants), int(components), float(evoked_amplitude)
    )
    design = _design(codes, test_images, sessions, catch_per_session)
    return simulate_codes(codes, out_dir, brain, design, chunk)


def _design(
    codes: ImageCodes,
    test_images: int | None,
    sessions: int | None,
    catch_per_session: int | None,
) -> DesignParams:
    n_concepts = len(set(codes.concepts))
    n_test = (
        min(200, n_concepts, len(codes.image_ids) // 10) if test_images is None else test_images
    )
    if not 0 <= n_test < len(codes.image_ids):
        raise UsageError(f"test_images={n_test}; expected 0 <= K < {len(codes.image_ids)} images")
    if sessions is not None and sessions < 1:
        raise UsageError(f"sessions={sessions}; expected >= 1")
    if catch_per_session is not None and catch_per_session < 0:
        raise UsageError(f"catch_per_session={catch_per_session}; expected >= 0")
    return DesignParams(int(n_test), sessions, catch_per_session)


def pixel_weights(
    fg_weight: float,
    bg_weight: float,
    image_weight: float = 0.0,
    centre_weight: float = 0.0,
    position: str = "tolerant",
) -> dict[str, float]:
    """Pixel-code weights of a brain: figure / ground pooled over their regions
    (``position`` ``tolerant``) or per grid cell (``grid``), whole image, image centre."""
    if position not in ("tolerant", "grid"):
        raise UsageError(f"position {position!r} is not one of tolerant, grid")
    suffix = "_grid" if position == "grid" else ""
    return {
        f"figure{suffix}": fg_weight,
        f"ground{suffix}": bg_weight,
        "image": image_weight,
        "centre": centre_weight,
    }


def simulate_pixels(
    images: Mapping[str, Path],
    masks: Mapping[str, Path],
    out_dir: str | Path,
    weights: Mapping[str, float],
    snr: float,
    seed: int,
    participants: int = 4,
    test_images: int | None = None,
    sessions: int | None = None,
    catch_per_session: int | None = None,
    components: int = 4,
    evoked_amplitude: float = DEFAULT_EVOKED,
) -> Path:
    """A simulated THINGS-MEG dataset whose brain follows pixel descriptors (no network).

    ``weights`` maps regions of :mod:`figureground.stimuli.descriptors` (``figure``,
    ``ground``, ``figure_grid``, ``ground_grid``, ``image``, ``centre``) to weights.
    """
    from figureground.neural.codes import pixel_codes

    regions = [r for r, w in weights.items() if w > 0] or ["image"]
    codes = pixel_codes(images, masks, regions, n_components=components)
    brain = BrainParams(
        tuple((str(k), float(v)) for k, v in weights.items()),
        float(snr),
        int(seed),
        int(participants),
        int(components),
        float(evoked_amplitude),
    )
    if not codes.image_ids:
        raise DataError("no images to simulate from")
    return simulate_codes(
        codes, out_dir, brain, _design(codes, test_images, sessions, catch_per_session)
    )
