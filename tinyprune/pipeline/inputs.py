"""In-memory inputs of ``tinyprune.build`` (the Python API): an ``nn.Module`` as the model, a state_dict
object as ``weights``, and data as arrays, a tinyprune.data.Dataset or a torch Dataset/DataLoader.

``take(cfg)`` moves them out of the BuildConfig (whose fields must stay JSON-able: they are written
into summary.json) into an ``InMemory``, leaving a readable label in their place, and gives each a
cache key: the data's array hash (tinyprune.data.fingerprint), the weights' tensor hash, and for a
module the hash of its state_dict, its structure (repr) and the source of every class in it
(``inspect.getsource``). When a class's source is unavailable (defined in ``python -c``, a REPL
without history...) the run is not cached, and ``no_cache`` says why.

May import tinyprune.errors and tinyprune.data (torch only through the objects it is given).
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import os
import uuid
from dataclasses import dataclass, field

import numpy as np

from tinyprune.errors import UserInputError


@dataclass
class InMemory:
    module: object | None = None          # nn.Module
    weights: dict | None = None           # state_dict
    data: object | None = None            # tinyprune.data.Dataset
    keys: dict = field(default_factory=dict)   # label -> hash, for the stage cache keys
    no_cache: str | None = None           # why this run cannot be cached

    def data_or(self, data):
        """The data the user gave: the in-memory Dataset, else ``data`` (a path, a name or None)."""
        return self.data if self.data is not None else data

    def torch_model(self, cfg):
        """A fresh copy of the PyTorch model with its weights (the user's module is never modified)."""
        from tinyprune.convert.loader import load_torch_model, load_weights
        weights = self.weights if self.weights is not None else cfg.weights
        if self.module is None:
            return load_torch_model(cfg.model, weights)
        import copy
        net = copy.deepcopy(self.module)
        if weights is not None:
            load_weights(net, weights)
        return net.eval()


def _is_path(x) -> bool:
    return isinstance(x, (str, os.PathLike))


def take(cfg):
    """-> (cfg with labels instead of objects, InMemory)."""
    from tinyprune.data import as_dataset, fingerprint
    mem = InMemory()
    changes = {k: os.fspath(getattr(cfg, k)) for k in ("model", "weights", "data", "out")
               if isinstance(getattr(cfg, k), os.PathLike)}     # Path objects: the strings the CLI gives
    if not _is_path(cfg.model):
        if not callable(getattr(cfg.model, "state_dict", None)) or not callable(cfg.model):
            raise UserInputError(f"cannot build a {type(cfg.model).__name__}",
                                 hint="pass a torch nn.Module, 'example', 'file.py:factory', 'pkg.module:factory', "
                                      "an .onnx, .keras/.h5, SavedModel directory or .tflite path")
        mem.module = cfg.model
        changes["model"] = f"<{type(cfg.model).__name__} in memory>"
        key, why = module_key(cfg.model)
        mem.keys["module"] = key
        mem.no_cache = why
    if cfg.weights is not None and not _is_path(cfg.weights):
        if not isinstance(cfg.weights, dict):
            raise UserInputError(f"weights: a {type(cfg.weights).__name__}, expected a state_dict or a file path",
                                 hint="pass model.state_dict() or torch.save(model.state_dict(), path)'s path")
        mem.weights = cfg.weights
        changes["weights"] = "<state_dict in memory>"
        mem.keys["weights"] = _state_hash(cfg.weights)
    if cfg.data is not None and not _is_path(cfg.data):
        mem.data = as_dataset(cfg.data)
        fp = fingerprint(mem.data)
        changes["data"] = f"<{mem.data.name or 'data'} in memory, sha256 {fp[:12]}>"
        mem.keys["data"] = fp
    if mem.no_cache:
        mem.keys["nonce"] = uuid.uuid4().hex   # keys that match no earlier or later run
    return (dataclasses.replace(cfg, **changes) if changes else cfg), mem


def _state_hash(state: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        v = state[k]
        a = np.asarray(v.detach().cpu()) if hasattr(v, "detach") else np.asarray(v)
        h.update(f"{k}{a.dtype}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def module_key(module) -> tuple[str, str | None]:
    """(hash of state_dict + structure + class sources, None) or (hash without sources, why not cacheable)."""
    h = hashlib.sha256(_state_hash(module.state_dict()).encode())
    h.update(repr(module).encode())
    classes = sorted({type(m) for m in module.modules()}, key=lambda c: (c.__module__, c.__qualname__))
    for cls in classes:
        try:
            h.update(inspect.getsource(cls).encode())
        except (OSError, TypeError):
            return h.hexdigest(), (f"the source of {cls.__qualname__} is not available (inspect.getsource), so a "
                                   "change to its code could not be detected: this run is not cached")
    return h.hexdigest(), None
