"""Shared session fixtures.

``converted(name)`` -> Path of a ``tinyprune convert`` output directory (model.onnx,
model_int8.tflite, convert.json) for ``"example"`` (the bundled checkpoint) or any name in
``archs.ARCHS`` / ``archs.LAYOUT_ARCHS`` (trained briefly on digits first). Each model is trained
and converted at most once per pytest session (per xdist worker), and only when a test asks for it.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
if str(REPO_ROOT) not in sys.path:   # the model corpus: `from benchmarks.corpus import ...` (tests/test_corpus.py)
    sys.path.insert(0, str(REPO_ROOT))


@pytest.fixture(scope="session")
def converted(tmp_path_factory):
    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            import torch

            import archs
            from tinyprune.convert import convert

            root = tmp_path_factory.mktemp(f"converted-{name}")
            if name == "example":
                convert("example", root / "out", data="digits")
            elif name in archs.ARCHS or name in archs.LAYOUT_ARCHS:
                weights = root / f"{name}.pt"
                torch.save(archs.trained(name).state_dict(), weights)
                convert(f"{TESTS_DIR / 'archs.py'}:make_{name}", root / "out", data="digits", weights=weights)
            else:
                raise KeyError(f"no converted model {name!r}; known: example, {', '.join(archs.ARCHS)}")
            cache[name] = root / "out"
        return cache[name]

    return get


def pytest_collection_modifyitems(config, items):
    """``fuzz`` tests (thousands of mutants, many minutes) run only when selected: ``-m fuzz``."""
    if "fuzz" in (config.getoption("markexpr", "") or ""):
        return
    skip = pytest.mark.skip(reason="long fuzz run: select it with -m fuzz")
    for item in items:
        if item.get_closest_marker("fuzz") is not None:
            item.add_marker(skip)
