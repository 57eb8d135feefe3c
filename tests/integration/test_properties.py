"""Property tests not covered elsewhere: manifest files, study validation, root-bound paths,
feature checksums (RDM and seed-distance properties live in test_rsa.py / test_seed.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from figureground.config import parse_study
from figureground.errors import UsageError
from figureground.features.store import image_checksums
from figureground.fsutil import resolve_inside
from figureground.stimuli import read_manifest, write_manifest

TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=0, max_size=12)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ids=st.lists(TEXT.filter(str.strip), min_size=1, max_size=6, unique=True),
    concept=TEXT,
    exemplar=st.one_of(st.none(), st.integers(0, 99)),
)
def test_manifest_round_trips_any_text(tmp_path: Path, ids, concept, exemplar) -> None:
    n = len(ids)
    frame = pd.DataFrame(
        {
            "image_id": ids,
            "concept": [concept] * n,
            "exemplar": pd.array([exemplar] * n, dtype="Int64"),
            "path": [f"object_images/c/{i}.jpg" for i in range(n)],
            "sha256": ["0" * 64] * n,
            "width": pd.array([10] * n, dtype="Int64"),
            "height": pd.array([20] * n, dtype="Int64"),
            "set": ["exp"] * n,
            "status": ["ok"] * n,
            "error": [""] * n,
        }
    )
    path = tmp_path / "m.csv"
    write_manifest(frame, path)
    back = read_manifest(path)
    assert list(back["image_id"]) == ids
    assert list(back["concept"]) == [concept] * n
    assert (
        back["exemplar"].isna().all() if exemplar is None else (back["exemplar"] == exemplar).all()
    )


@settings(max_examples=60, deadline=None)
@given(
    section=st.sampled_from(["stimuli", "variants", "features", "neural", "analyses", "report"]),
    key=st.sampled_from(["workers", "exemplars", "segmenter", "batch_size", "bogus", "demo"]),
    value=st.one_of(st.integers(-5, 5), st.text(max_size=5), st.booleans(), st.none(),
                    st.lists(st.integers(), max_size=2)),
)  # fmt: skip
def test_study_validation_accepts_or_names_the_key(section, key, value) -> None:
    try:
        parse_study({section: {key: value}})
    except UsageError as exc:
        message = str(exc)
        assert "\n" not in message
        assert key in message or section in message


@settings(max_examples=80, deadline=None)
@given(parts=st.lists(st.sampled_from(["..", ".", "a", "b", "c.jpg"]), min_size=1, max_size=6))
def test_resolve_inside_never_leaves_root(tmp_path_factory: pytest.TempPathFactory, parts) -> None:
    root = tmp_path_factory.getbasetemp() / "root"
    rel = "/".join(parts)
    try:
        resolved = resolve_inside(root, rel)
    except UsageError as exc:
        assert "leaves its root" in str(exc)
        depth = 0
        for part in parts:
            depth += -1 if part == ".." else (0 if part == "." else 1)
            if depth < 0:
                break
        assert depth < 0  # refused only when it really leaves
    else:
        assert resolved == root.resolve() or root.resolve() in resolved.parents


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 1000), n=st.integers(1, 4), where=st.integers(0, 10_000))
def test_checksums_follow_content_not_dict_order(seed, n, where) -> None:
    rng = np.random.default_rng(seed)
    outputs = {"b": rng.normal(size=(n, 3, 2)).astype("float32"), "a": rng.normal(size=(n, 4))}
    digests = image_checksums(outputs)
    assert digests == image_checksums(dict(reversed(list(outputs.items()))))
    assert len(set(digests)) == n
    changed = {k: v.copy() for k, v in outputs.items()}
    flat = changed["b"].reshape(-1)
    flat[where % flat.size] += 1.0
    index = (where % flat.size) // 6
    after = image_checksums(changed)
    assert [after[i] != digests[i] for i in range(n)] == [i == index for i in range(n)]
