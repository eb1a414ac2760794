"""The layer-shape sweep (benchmarks/shapes.py), fast subset: no layer of a supported shape runs the
reference kernel on Cortex-M7, and the shapes the DSP kernels do not take yet are warnings with their
reason. What code generation decides here is what the C runs (tests/test_variants.py checks that in QEMU)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _shapes():
    spec = importlib.util.spec_from_file_location("tp_bench_shapes", ROOT / "benchmarks" / "shapes.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


shapes = _shapes()


def test_fast_subset_and_unsupported_list_name_sweep_shapes():
    assert set(shapes.FAST) <= set(shapes.BY_NAME)
    assert set(shapes.UNSUPPORTED) <= set(shapes.BY_NAME)
    assert not set(shapes.FAST) & set(shapes.UNSUPPORTED)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    pytest.importorskip("tensorflow")
    from tinyprune.codegen.generate import generate
    root = tmp_path_factory.mktemp("shapes")
    out = {}
    for name in [*shapes.FAST, *shapes.UNSUPPORTED]:
        path = root / f"{name}.tflite"
        path.write_bytes(shapes.build_model(shapes.BY_NAME[name]))
        out[name] = generate(path, root / name, board="mps2-an500", tflm_arena=False).report
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", shapes.FAST)
def test_no_reference_on_cortex_m7(generated, name):
    rep = generated[name]
    kind = shapes.KIND[shapes.BY_NAME[name]["op"]]
    layers = [L for L in rep["layers"] if L["kind"] == kind]
    assert layers, f"{name}: no {kind} layer in the converted model"
    assert not rep["kernel_fallbacks"] and not rep["warnings"], rep["warnings"]
    assert all(not L["variant"]["name"].startswith("reference/") and L["variant"]["name"] != "portable"
               for L in layers), [L["variant"] for L in layers]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(shapes.UNSUPPORTED))
def test_unsupported_shapes_are_warned_with_the_reason(generated, name):
    rep = generated[name]
    assert rep["kernel_fallbacks"] and len(rep["warnings"]) == len(rep["kernel_fallbacks"])
    assert "not a multiple of 4" in rep["warnings"][0]
