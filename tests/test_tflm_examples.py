"""TFLite Micro's own example models (tests/data/tflm_examples, origin and licence in its README)
generate and run bit-exact with TFLite Micro on the host. person_detect carries a per-channel bias whose
quantized_dimension is the filter's (3) on a 1-D tensor: read as dimension 0, as TFLite Micro does."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tinyprune.cli import main

DIR = Path(__file__).resolve().parent / "data" / "tflm_examples"
pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler")


@pytest.mark.parametrize("name,ops", [
    ("hello_world_int8.tflite", 3),
    ("micro_speech_quantized.tflite", 3),
    ("person_detect.tflite", 30),
])
def test_example_model_is_bit_exact_on_the_host(name, ops, tmp_path, capsys):
    import json
    try:
        main(["codegen", str(DIR / name), "-o", str(tmp_path / "cg"), "--board", "nucleo-f746", "--check",
              "--random", "2", "--json"])
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:]
    rep = json.loads(out.out)
    assert rep["check"]["mismatches"] == 0 and rep["check"]["samples"] == 2
    assert len(rep["layers"]) == ops
