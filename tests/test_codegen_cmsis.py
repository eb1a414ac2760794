"""--kernels cmsis-nn: generated code calling ARM CMSIS-NN is bit-exact with TFLite Micro on IC, KWS
and the CMSIS-NN-backed single-op families. Runs only when CMSIS_NN_PATH points to a CMSIS-NN (v6+)
checkout (CI has none)."""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyprune.codegen.check import check, load_inputs
from tinyprune.codegen.generate import generate
from tinyprune.codegen.tflite_reader import read_model
from tinyprune.errors import UserInputError

sys.path.insert(0, str(Path(__file__).resolve().parent))
import codegen_opmodels as M  # noqa: E402

CMSIS = os.environ.get("CMSIS_NN_PATH")
MLPERF = Path(__file__).resolve().parents[1].parent / "shared/models/mlperf-tiny"
needs_cmsis = pytest.mark.skipif(not CMSIS, reason="CMSIS_NN_PATH is not set (no CMSIS-NN checkout)")
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a host gcc")


def test_cmsis_nn_without_a_checkout_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("CMSIS_NN_PATH", raising=False)
    model = MLPERF / "kws_dscnn_int8.tflite"
    if not model.exists():
        pytest.skip("MLPerf Tiny models absent")
    with pytest.raises(UserInputError, match="needs a CMSIS-NN checkout"):
        generate(model, tmp_path / "o", kernels="cmsis-nn")
    with pytest.raises(UserInputError, match="is not a CMSIS-NN checkout"):
        generate(model, tmp_path / "o", kernels="cmsis-nn", cmsis_nn=tmp_path)
    assert not (tmp_path / "o").exists()


@needs_cmsis
@needs_gcc
@pytest.mark.parametrize("name", ["ic_resnet8_int8", "kws_dscnn_int8"])
def test_mlperf_cmsis_nn_bit_exact(tmp_path, name):
    model = MLPERF / f"{name}.tflite"
    if not model.exists():
        pytest.skip("MLPerf Tiny models absent")
    out = tmp_path / "cg"
    generate(model, out, kernels="cmsis-nn")
    rep = json.loads((out / "codegen.json").read_text())
    assert len(rep["cmsis_nn"]["layers"]) == len(rep["layers"])   # every IC/KWS op has a CMSIS-NN kernel
    assert "arm_convolve_wrapper_s8(" in (out / "model.c").read_text()
    r = check(out, model, load_inputs(read_model(model), random=20, seed=5))
    assert r.mismatches == 0 and r.samples == 20


@needs_cmsis
@needs_gcc
@pytest.mark.parametrize("family", ["conv_cases", "depthwise_cases", "pool_cases", "dense_activation_cases"])
def test_cmsis_nn_op_families_bit_exact(tmp_path, family):
    rng = np.random.default_rng(0)
    fn, shapes = getattr(M, family)(rng)
    p = tmp_path / "m.tflite"
    p.write_bytes(M.convert(fn, shapes, rng))
    generate(p, tmp_path / "cg", kernels="cmsis-nn", tflm_arena=False)
    r = check(tmp_path / "cg", p, load_inputs(read_model(p), random=10, seed=1), sanitize=False)
    assert r.mismatches == 0
