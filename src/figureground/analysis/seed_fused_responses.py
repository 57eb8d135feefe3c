"""The responses the fused seed method reads: one participant's MEG rows by image id."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from figureground.analysis.seed import matched_ids, select_window
from figureground.errors import DataError, UsageError

if TYPE_CHECKING:
    import xarray as xr

RESPONSES = ("image", "concept")


@dataclasses.dataclass(frozen=True)
class Responses:
    """One participant's responses as the seed method reads them, row by image id.

    ``data`` has dims (image | concept, channel, time); ``row_of`` maps each image id to
    its row label in ``data`` (the id itself, or its concept for ``response="concept"``).
    """

    participant: str
    data: xr.DataArray
    row_of: Mapping[str, str]

    def check(self, image_ids: Sequence[str]) -> None:
        """Raise a DataError naming the ids of ``image_ids`` this participant has no MEG for."""
        missing = [str(i) for i in image_ids if str(i) not in self.row_of]
        if missing:
            raise DataError(
                f"image id(s) {missing[:3]} are not in participant {self.participant}'s MEG "
                f"({len(self.row_of)} images); expected ids present in both the MEG and the "
                "images"
            )

    def rows(self, image_ids: Sequence[str]) -> np.ndarray:
        """Float32 rows (images, sensors, times) of ``image_ids``, read from ``data``."""
        self.check(image_ids)
        labels = [self.row_of[str(i)] for i in image_ids]
        return np.asarray(self.data.sel({self.data.dims[0]: labels}).values, dtype=np.float32)


def prepare_responses(
    meg: xr.DataArray,
    participant: str = "",
    response: str = "image",
    tmin: float | None = None,
    tmax: float | None = None,
) -> Responses:
    """A participant's responses (image, channel, time) windowed to ``tmin``..``tmax``.

    ``response="concept"`` reads each image's concept mean over all the participant's
    images (concepts x channels x times, computed here once) instead of its own response.
    """
    if response not in RESPONSES:
        raise UsageError(f"response must be one of {RESPONSES}; got {response!r}")
    if meg.ndim != 3 or "image" not in meg.dims:
        raise UsageError(f"MEG must have dims (image, channel, time); got {meg.dims}")
    window = select_window(meg.transpose("image", "channel", "time"), tmin, tmax)
    ids = [str(i) for i in window["image"].values]
    if response == "image":
        return Responses(participant, window.assign_coords(image=ids), {i: i for i in ids})
    if "concept" not in window.coords:
        raise UsageError(
            "response='concept' needs a 'concept' coordinate along 'image' in the MEG data"
        )
    means = window.groupby("concept").mean("image").load()
    means = means.assign_coords(concept=[str(c) for c in means["concept"].values])
    concepts = [str(c) for c in window["concept"].values]
    return Responses(participant, means, dict(zip(ids, concepts, strict=True)))


def selected_ids(
    responses: Mapping[str, Responses],
    source_ids: Sequence[str],
    image_ids: Sequence[str] | None,
) -> dict[str, list[str]]:
    """Per participant, the ids to compute, in MEG order (the stored path's order).

    ``image_ids`` (None: every id of ``source_ids``) must be in the source and in every
    participant's MEG.
    """
    in_source = set(source_ids)
    wanted = None if image_ids is None else [str(i) for i in image_ids]
    if wanted is not None:
        absent = [i for i in wanted if i not in in_source]
        if absent:
            raise DataError(
                f"image id(s) {absent[:3]} are not among the {len(in_source)} images of the "
                "source; expected ids of images in the source"
            )
    selected = {}
    for participant, meg in responses.items():
        meg_ids = list(meg.row_of)
        if wanted is not None:
            meg.check(wanted)
        candidates = np.asarray(wanted if wanted is not None else list(source_ids))
        what = f"seed (fused), participant {participant}"
        selected[participant] = matched_ids(np.asarray(meg_ids), candidates, what)
    return selected
