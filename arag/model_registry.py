"""Which trained models serve a collection, and where their versions live.

Per collection, under ``<data_dir>/models/<collection>/``::

    active.json            the embedder and reranker in use (absent: the packaged defaults)
    embedder-v1/ …         versioned model directories, each with card.json and CARD.md
    reranker-v1/ …
    calibration/           calibrations of the scorers that need no training, per embedder

A trained embedder serves its own Chroma collection (``<collection>--embedder-vN``), filled by
re-embedding the chunks before ``active.json`` is switched, so every reader sees either the old
model with its vectors or the new one with its vectors, never a mix. ``active.json`` is written
to a temporary file and renamed into place.

Example:
    >>> import tempfile
    >>> reg = ModelRegistry(Settings(data_dir=tempfile.mkdtemp(), collection="docs"))
    >>> reg.chroma_collection()
    'docs'
    >>> reg.new_version_dir("embedder").name
    'embedder-v1'
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from arag.settings import Settings

KINDS = ("embedder", "reranker")


class ModelRegistry:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.root = settings.data_dir / "models" / settings.collection

    @property
    def active_file(self) -> Path:
        return self.root / "active.json"

    def active(self) -> dict:
        """``{"embedder": {...}, "reranker": {...}}`` for the kinds that have a trained model in use."""
        try:
            return json.loads(self.active_file.read_text())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise RuntimeError(f"{self.active_file} is not valid JSON ({exc}); delete it to return to the defaults") from exc

    def active_dir(self, kind: str) -> Path | None:
        entry = self.active().get(kind)
        return Path(entry["dir"]) if entry else None

    def chroma_collection(self) -> str:
        """The Chroma collection holding the vectors of the active embedder."""
        entry = self.active().get("embedder")
        return entry["collection"] if entry else self.settings.collection

    def versions(self, kind: str) -> list[Path]:
        pattern = re.compile(rf"^{kind}-v(\d+)$")
        found = [(int(m.group(1)), p) for p in (self.root.iterdir() if self.root.exists() else [])
                 if (m := pattern.match(p.name)) and p.is_dir()]
        return [p for _, p in sorted(found)]

    def new_version_dir(self, kind: str) -> Path:
        if kind not in KINDS:
            raise ValueError(f"unknown model kind {kind!r}")
        numbers = [int(p.name.rsplit("-v", 1)[1]) for p in self.versions(kind)]
        return self.root / f"{kind}-v{max(numbers, default=0) + 1}"

    def activate(self, kind: str, entry: dict | None) -> None:
        """Make ``entry`` (at least ``{"dir": ...}``) the active model of ``kind``; None returns to the default."""
        state = self.active()
        if entry is None:
            state.pop(kind, None)
        else:
            state[kind] = entry
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.active_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.active_file)

    def calibration_path(self, scorer: str, embedder_id: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.@-]", "_", embedder_id)
        return self.root / "calibration" / f"{scorer}--{safe}.json"
