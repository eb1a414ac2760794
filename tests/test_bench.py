"""`tinyprune bench`: end to end on the MLPerf Tiny KWS model in QEMU (skipped when the model, the
ARM toolchain or QEMU is missing). Asserts determinism, bit-exactness and consistent accounting;
never a timing."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

KWS = Path(__file__).resolve().parents[1].parent / "shared/models/mlperf-tiny/kws_dscnn_int8.tflite"

pytestmark = [
    pytest.mark.skipif(not KWS.is_file(), reason=f"MLPerf Tiny KWS model not found at {KWS}"),
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                       reason="needs arm-none-eabi-gcc and qemu-system-arm (make setup)"),
]


@pytest.fixture(scope="session")
def kws_bench():
    from tinyprune.bench import bench
    return bench(KWS, "mps2-an500", "portable", runs=2)


def test_bench_is_deterministic_and_bit_exact(kws_bench):
    r = kws_bench
    assert r.deterministic and r.bit_exact
    assert len(r.run_totals) == 2 and r.run_totals[0] == r.run_totals[1] == r.instructions
    assert r.instructions > r.macs // 4   # an int8 MAC cannot cost less than a quarter instruction
    assert r.macs == 2_656_768            # DS-CNN KWS: 2.66 M MACs (issue 7)


def test_bench_accounting(kws_bench):
    r = kws_bench
    kinds = [L.kind for L in r.layers]
    assert kinds.count("DEPTHWISE_CONV_2D") == 4 and kinds.count("CONV_2D") == 5
    assert sum(L.macs for L in r.layers) == r.macs
    # per-layer counts (taken with the layer hook) cover the total up to the hook's own cost
    assert 0.9 * r.instructions < sum(L.instructions for L in r.layers) <= 1.1 * r.instructions
    assert r.text_bytes > 0 and r.bss_bytes >= r.arena_bytes > 0
    # the planned arena against the lower bounds codegen reports (two largest live tensors)
    assert r.arena_bytes >= r.peak_lower_bound >= r.two_largest_bound > 8000   # KWS: 25x5x64 B tensors
    d = r.to_dict()
    assert d["instructions"] == r.instructions and len(d["layers"]) == len(r.layers)


def test_bench_cli_errors():
    from tinyprune.cli import main
    with pytest.raises(SystemExit) as e:
        main(["bench", "/nonexistent/model.tflite"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["bench", str(KWS), "--runs", "0"])
    assert e.value.code == 2


@pytest.mark.slow
def test_bench_cli_json(tmp_path):
    out = tmp_path / "r.json"
    r = subprocess.run([sys.executable, "-m", "tinyprune.cli", "bench", str(KWS), "--runs", "1", "--json",
                        "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    d = json.loads(out.read_text())
    assert d["bit_exact"] and d["deterministic"] and d["instructions"] > 0
    assert json.loads(r.stdout)["instructions"] == d["instructions"]
