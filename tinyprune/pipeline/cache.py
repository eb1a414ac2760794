"""Per-stage caching for ``tinyprune build``.

Each stage records, in ``BUILD/.cache/<stage>.json``, a content hash of everything it depends
on (input files' bytes, options, the upstream stages' keys, the tinyprune version and the
sources of the stage's own code) and the list of files it produced. A stage is skipped when
its key is unchanged and all its outputs still exist with the recorded hashes; otherwise it
re-runs, and every stage downstream of it re-runs too because their keys include its key.

May import only tinyprune._fs and tinyprune.errors.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from tinyprune import __version__
from tinyprune._fs import sha256_file


def _hash_update(h, obj) -> None:
    h.update(json.dumps(obj, sort_keys=True, default=str).encode())


def hash_path(path: str | os.PathLike) -> str:
    """Content hash of a file or of a directory tree (names + bytes, sorted)."""
    p = Path(path)
    if p.is_file():
        return sha256_file(p)
    h = hashlib.sha256()
    if p.is_dir():
        for f in sorted(q for q in p.rglob("*") if q.is_file() and "__pycache__" not in q.parts):
            h.update(str(f.relative_to(p)).encode())
            h.update(sha256_file(f).encode())
    else:
        h.update(b"<missing>")
    return h.hexdigest()


def stage_key(stage: str, *, inputs: dict | None = None, options: dict | None = None,
              upstream: list[str] | None = None, code: list[str | os.PathLike] | None = None) -> str:
    """Key for a stage: ``inputs`` maps a label to a file/dir path (hashed by content),
    ``options`` is any JSON-able dict, ``upstream`` the keys of the stages it consumes,
    ``code`` the source files/dirs whose change must invalidate the stage."""
    h = hashlib.sha256()
    _hash_update(h, {"stage": stage, "version": __version__, "options": options or {},
                     "upstream": upstream or []})
    for label, path in sorted((inputs or {}).items()):
        h.update(label.encode())
        h.update(hash_path(path).encode() if path is not None else b"<none>")
    for path in code or []:
        h.update(hash_path(path).encode())
    return h.hexdigest()


@dataclass
class StageCache:
    build_dir: Path

    def _record(self, stage: str) -> Path:
        return Path(self.build_dir) / ".cache" / f"{stage}.json"

    def lookup(self, stage: str, key: str) -> dict | None:
        """The recorded result of ``stage`` if its key matches and its outputs are intact."""
        rec = self._record(stage)
        if not rec.exists():
            return None
        try:
            data = json.loads(rec.read_text())
        except (OSError, ValueError):
            return None
        if data.get("key") != key:
            return None
        for rel, digest in data.get("outputs", {}).items():
            p = Path(self.build_dir) / rel
            if not p.exists() or hash_path(p) != digest:
                return None
        return data

    def store(self, stage: str, key: str, outputs: list[str | os.PathLike], result: dict | None = None) -> None:
        rec = self._record(stage)
        rec.parent.mkdir(parents=True, exist_ok=True)
        out = {}
        for p in outputs:
            p = Path(p)
            rel = os.path.relpath(p, self.build_dir)
            out[rel] = hash_path(p)
        tmp = rec.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": key, "outputs": out, "result": result or {}}, indent=2, sort_keys=True,
                                  default=str))
        os.replace(tmp, rec)

    def annotate(self, stage: str, **fields) -> None:
        """Add facts learnt after the stage's outputs were stored (e.g. how long it ran) to its record."""
        rec = self._record(stage)
        try:
            data = json.loads(rec.read_text())
        except (OSError, ValueError):
            return
        data.update(fields)
        tmp = rec.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
        os.replace(tmp, rec)

    def invalidate(self, stage: str) -> None:
        self._record(stage).unlink(missing_ok=True)
