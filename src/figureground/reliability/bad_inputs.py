"""Bad-input trials through the CLI: each must give one line naming the file or value."""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from figureground.reliability.harness import Outcome, run_cli


def _png_bytes(width: int, height: int, mode: str = "RGB") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new(mode, (width, height), 120).save(buffer, format="PNG")
    return buffer.getvalue()


def _bomb_png(side: int = 40_000) -> bytes:
    """A small PNG whose header declares ``side`` x ``side`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (side + 1) * 4)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def _jpeg(mode: str = "RGB", size: tuple[int, int] = (64, 48), exif_rotate: bool = False) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    image = image.convert(mode)
    buffer = io.BytesIO()
    if exif_rotate:
        exif = Image.Exif()
        exif[0x0112] = 6
        image.save(buffer, format="JPEG", exif=exif)
    else:
        image.save(buffer, format="JPEG")
    return buffer.getvalue()


def _palette_transparent() -> bytes:
    from PIL import Image

    image = Image.new("P", (40, 30), 1)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", transparency=1)
    return buffer.getvalue()


def _png16() -> bytes:
    from PIL import Image

    image = Image.fromarray(np.full((30, 40), 40_000, dtype=np.uint16))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


#: Bad image files: concept name -> (file bytes, expected status: "ok" or "failed").
BAD_IMAGES: dict[str, tuple[Callable[[], bytes], str]] = {
    "zero-byte file": (lambda: b"", "failed"),
    "truncated JPEG": (lambda: _jpeg()[:300], "failed"),
    "truncated PNG": (lambda: _png_bytes(64, 48)[:60], "failed"),
    "PNG named .jpg": (lambda: _png_bytes(64, 48), "ok"),
    "text named .jpg": (lambda: b"this is not an image\n", "failed"),
    "CMYK JPEG": (lambda: _jpeg("CMYK"), "ok"),
    "16-bit PNG": (_png16, "ok"),
    "palette PNG with transparency": (_palette_transparent, "ok"),
    "1 x 1 pixel image": (lambda: _png_bytes(1, 1), "either"),
    "decompression bomb (40000 x 40000 header)": (_bomb_png, "failed"),
    "EXIF rotation 90 degrees": (lambda: _jpeg(exif_rotate=True), "ok"),
}


def bad_images(base: Path) -> list[Outcome]:
    """One ``variants`` run over good images and every bad kind; each is judged on its own."""
    root = base / "bad-images"
    folder = root / "object_images"
    names = {}
    for index, (case, (make, _)) in enumerate(BAD_IMAGES.items()):
        concept = f"bad{index:02d}"
        (folder / concept).mkdir(parents=True, exist_ok=True)
        (folder / concept / f"{concept}_01a.jpg").write_bytes(make())
        names[case] = f"{concept}_01a"
    (folder / "good").mkdir(parents=True, exist_ok=True)
    (folder / "good" / "good_01a.jpg").write_bytes(_jpeg(size=(80, 60)))
    # a symlink loop and a file name that is not UTF-8 inside the stimulus tree
    (folder / "loop").mkdir(exist_ok=True)
    if not (folder / "loop" / "self").is_symlink():
        (folder / "loop" / "self").symlink_to(folder / "loop")
    odd = os.fsencode(folder / "good") + b"/caf\xe9_02a.jpg"
    with open(odd, "wb") as handle:
        handle.write(_jpeg())
    out = base / "bad-images-out"
    proc = run_cli(
        "variants", str(root), "--out", str(out), "--segmenter", "grabcut", "--exemplars", "2",
        timeout=600,
    )  # fmt: skip
    table = pd.read_csv(out / "variants.csv") if (out / "variants.csv").exists() else None
    outcomes = []
    for case, (_, expected) in BAD_IMAGES.items():
        if table is None:
            outcomes.append(
                Outcome("bad input", case, 1, 0, f"no variants.csv: {proc.stderr[-300:]}")
            )
            continue
        row = table[table["image_id"] == names[case]]
        status = row["status"].iloc[0] if len(row) else "missing"
        error = str(row["error"].iloc[0]) if len(row) and status != "ok" else ""
        one_line = "\n" not in error and (status == "ok" or error.strip() != "")
        fits = expected == "either" or status == expected
        ok = bool(len(row)) and fits and one_line and "Traceback" not in proc.stderr
        detail = f"status {status}" + (f": {error}" if error else "")
        if case.startswith("EXIF") and status == "ok":
            from PIL import Image

            mask = out / "mask" / "object_images" / names[case].split("_")[0] / f"{names[case]}.png"
            with Image.open(mask) as image:
                upright = image.size == (48, 64)
            ok = ok and upright
            detail += f"; outputs upright (48 x 64)={upright}"
        outcomes.append(Outcome("bad input", case, 1, int(ok), detail))
    good = (
        table is not None and (table.loc[table["image_id"] == "good_01a", "status"] == "ok").all()
    )
    warned = ("caf" in proc.stderr and "UTF-8" in proc.stderr) or "utf" in proc.stderr.lower()
    outcomes.append(
        Outcome(
            "bad input",
            "symlink loop and non-UTF-8 file name in the stimulus tree",
            1,
            int(bool(good) and proc.returncode == 3),
            f"run went on: exit {proc.returncode} (3 = some images failed), good image ok={good}, "
            f"non-UTF-8 name reported={warned}",
        )
    )
    return outcomes


def _one_line_error(proc, *needles: str) -> tuple[bool, str]:
    lines = proc.stderr.strip().splitlines()
    last = lines[-1] if lines else ""
    ok = (
        proc.returncode not in (0, None)
        and "Traceback" not in proc.stderr
        and all(n in last for n in needles)
    )
    return ok, f"exit {proc.returncode}: {last[:220]}"


Case = tuple[str, list[str], tuple[str, ...], dict[str, str] | None]
"""A refused input: name, CLI arguments, text the one-line error must hold, environment."""


def bad_files(base: Path, variants_dir: Path | None = None) -> list[Outcome]:
    """Manifests, study files and weights files that must be refused in one line."""
    folder = base / "bad-files"
    folder.mkdir(parents=True, exist_ok=True)
    cases = _manifest_cases(folder)
    cases += _study_file_cases(folder, len(cases))
    marker = folder / "pwned"
    cases += _weights_cases(folder, marker)
    outcomes = []
    for name, args, needles, env in cases:
        proc = run_cli(*args, env=env, timeout=300)
        ok, detail = _one_line_error(proc, *needles)
        if "pickle with code" in name:
            ok = ok and not marker.exists()
            detail += f"; code ran={marker.exists()}"
        outcomes.append(Outcome("bad input", name, 1, int(ok), detail))
    return outcomes


def _manifest_cases(folder: Path) -> list[Case]:
    """Manifests (CSV layout) with escaping, absolute and duplicate entries."""
    cases: list[Case] = []
    root = folder / "root"
    (root / "a").mkdir(parents=True, exist_ok=True)
    (root / "b").mkdir(parents=True, exist_ok=True)
    (root / "a" / "cat.png").write_bytes(_png_bytes(20, 20))
    (root / "b" / "cat.png").write_bytes(_png_bytes(20, 20))
    for name, paths, needle in (
        ("manifest path leaving the root (../)", ["../outside.png"], "leaves"),
        ("absolute manifest path", ["/etc/passwd"], "absolute"),
    ):
        csv = folder / f"{name[:20].replace(' ', '_')}.csv"
        pd.DataFrame({"path": paths}).to_csv(csv, index=False)
        args = ["variants", str(root), "--layout", "csv", "--csv", str(csv), "--out",
                str(folder / "o"), "--segmenter", "grabcut"]  # fmt: skip
        cases.append((name, args, (needle,), None))
    args = ["variants", str(root), "--layout", "folder", "--out", str(folder / "o2"),
            "--segmenter", "grabcut"]  # fmt: skip
    cases.append(("duplicate image ids in different folders", args, ("cat",), None))
    return cases


def _study_file_cases(folder: Path, first: int) -> list[Case]:
    """Study files of a wrong type, an unknown key and a Python object (numbered from
    ``first``, the count of the cases before them)."""
    cases: list[Case] = []
    for name, text, needle in (
        ("study file with a wrong type", "variants:\n  workers: many\n", "variants.workers"),
        ("study file with an unknown key", "varaints:\n  workers: 1\n", "varaints"),
        ("study file building Python objects", "name: !!python/object/apply:os.system [id]\n",
         "study"),
    ):  # fmt: skip
        path = folder / f"{needle.replace('.', '_')}_{first + len(cases)}.yaml"
        path.write_text(text)
        cases.append((name, ["run", str(path)], (str(path.name),), None))
    return cases


def _features_args(images: Path, out: Path, model: str, weights: str) -> list[str]:
    return ["features", str(images), "--out", str(out), "--model", model, "--weights", weights]


def _weights_cases(folder: Path, marker: Path) -> list[Case]:
    """A pickle that runs code (it would create ``marker``), another architecture's state
    dict, and a cached model file whose hash does not match."""
    images = folder / "images"
    images.mkdir(exist_ok=True)
    (images / "red.png").write_bytes(_png_bytes(40, 30))
    evil = folder / "evil.pth"
    evil.write_bytes(_evil_pickle(marker))
    other = folder / "other_architecture.pth"
    _save_state_dict(other)
    home = folder / "torch_home"
    (home / "hub" / "checkpoints").mkdir(parents=True, exist_ok=True)
    (home / "hub" / "checkpoints" / "resnet18-f37072fd.pth").write_bytes(b"not the weights")
    return [
        (
            "weights file that is a pickle with code",
            _features_args(images, folder / "e.zarr", "resnet18", str(evil)),
            ("evil.pth",),
            None,
        ),
        (
            "weights file of another architecture",
            _features_args(images, folder / "w.zarr", "resnet50", str(other)),
            ("other_architecture.pth",),
            None,
        ),
        (
            "model file whose hash does not match",
            _features_args(images, folder / "h.zarr", "resnet18", "IMAGENET1K_V1"),
            ("f37072fd",),
            {"TORCH_HOME": str(home)},
        ),
    ]


def _evil_pickle(marker: Path) -> bytes:
    import pickle

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    return pickle.dumps({"state_dict": Evil()})


def _save_state_dict(path: Path) -> None:
    import torch
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), path)


def bad_meg(base: Path) -> list[Outcome]:
    """MEG files with NaN / infinite samples and metadata of the wrong length."""
    import subprocess
    import sys

    folder = base / "bad-meg"
    folder.mkdir(parents=True, exist_ok=True)
    script = (
        "import sys, numpy as np, pandas as pd, mne\n"
        "from figureground.neural import things_meg\n"
        "from figureground.errors import FigureGroundError\n"
        "kind, folder = sys.argv[1], sys.argv[2]\n"
        "n = 6\n"
        "att = pd.DataFrame({'trial_type': ['exp'] * n, 'session_nr': [1] * n, 'run_nr': [1] * n,"
        " 'image_nr': np.arange(n) + 1,"
        " 'image_path': [f'images_meg/c{i}/c{i}_01a.jpg' for i in range(n)]})\n"
        "data = np.random.default_rng(0).standard_normal((n, 3, 20)).astype('float32')\n"
        "if kind == 'nan': data[2, 1, 5] = np.nan\n"
        "if kind == 'inf': data[3, 0, 2] = np.inf\n"
        "info = mne.create_info(['MLC1', 'MLC2', 'MLC3'], 100.0, 'mag')\n"
        "ev = np.column_stack([np.arange(n) * 50, np.zeros(n, int), att['image_nr']])\n"
        "ep = mne.EpochsArray(data, info, events=ev, tmin=-0.1, verbose='error')\n"
        "fif = f'{folder}/preprocessed_P1-epo.fif'\n"
        "ep.save(fif, fmt='single', overwrite=True, verbose='error')\n"
        "csv = f'{folder}/sample_attributes_P1.csv'\n"
        "(att.iloc[:-1] if kind == 'short' else att).to_csv(csv, index=False)\n"
        "try:\n"
        "    things_meg.load(fif, csv).values.sum()\n"
        "except FigureGroundError as exc:\n"
        "    print(exc, file=sys.stderr); sys.exit(1)\n"
    )
    outcomes = []
    for kind, name, needles in (
        ("nan", "MEG with NaN samples", ("NaN",)),
        ("inf", "MEG with infinite samples", ("infinite",)),
        ("short", "metadata mismatched with epochs", ("rows",)),
    ):
        sub = folder / kind
        sub.mkdir(exist_ok=True)
        proc = subprocess.run(
            [sys.executable, "-c", script, kind, str(sub)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        ok, detail = _one_line_error(proc, *needles)
        outcomes.append(Outcome("bad input", name, 1, int(ok), detail))
    return outcomes
