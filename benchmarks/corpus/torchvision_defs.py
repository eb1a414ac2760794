"""torchvision's model definitions without torchvision's compiled operators.

The only torchvision wheel that matches the pinned CPU ``torch==2.13.0`` is 0.28.0, a CUDA build: its
``_C.so`` does not load with the CPU torch, and ``torchvision/__init__.py`` then fails at import
(``torchvision/_meta_registrations.py`` registers fake kernels for ops that do not exist). The model
definitions (``torchvision.models.*``) are plain PyTorch and need none of those C ops.

``models()`` therefore puts a bare package object named ``torchvision`` into ``sys.modules`` whose
``__path__`` and ``__spec__`` are the installed package's (found with ``importlib.util.find_spec``),
so Python imports submodules from the real package folder but never runs its ``__init__.py``; then
it imports ``torchvision.models``. It is a test/benchmark dependency only (``pip install -e .[dev]``):
tinyprune itself never imports torchvision.

May import: torch and torchvision only.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types

MISSING = ("torchvision is not installed; it is a test/benchmark dependency: "
           "pip install -c constraints.txt -e .[dev] (or pip install -c constraints.txt torchvision==0.28.0)")


class TorchvisionMissing(ImportError):
    """torchvision is not installed (the corpus' torchvision entries skip with this message)."""


def models() -> types.ModuleType:
    """``torchvision.models`` imported without running ``torchvision/__init__.py``.

    Raises TorchvisionMissing (an ImportError) when torchvision is not installed. When a working
    ``torchvision`` is already imported (a CPU build), it is used as it is."""
    if "torchvision.models" in sys.modules:
        return sys.modules["torchvision.models"]
    if "torchvision" not in sys.modules:
        spec = importlib.util.find_spec("torchvision")
        if spec is None or not spec.submodule_search_locations:
            raise TorchvisionMissing(MISSING)
        pkg = types.ModuleType("torchvision")
        pkg.__path__ = list(spec.submodule_search_locations)
        pkg.__spec__ = spec
        pkg.__file__ = spec.origin
        pkg.__package__ = "torchvision"
        sys.modules["torchvision"] = pkg
    return importlib.import_module("torchvision.models")


def version() -> str | None:
    """The installed torchvision's version (from its metadata: no import), or None."""
    from importlib.metadata import PackageNotFoundError, version as _version
    try:
        return _version("torchvision")
    except PackageNotFoundError:
        return None
