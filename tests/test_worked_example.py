"""docs/worked-example.md, run as written: a user's own model file + state_dict + .npz data to
validated nucleo-f746 firmware."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_worked_example(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "examples/custom_model/train.py"), str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    acc = float(r.stdout.split("test accuracy ")[1].split("%")[0])
    assert acc > 90
    r = subprocess.run([sys.executable, "-m", "tinyprune.cli", "build",
                        f"{ROOT}/examples/custom_model/model.py:make_model", "--weights", str(tmp_path / "weights.pt"),
                        "--data", str(tmp_path / "digits8x8.npz"), "--board", "nucleo-f746", "--sim-samples", "10",
                        "--samples", "80", "--json", "-o", str(tmp_path / "build")],
                       capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(r.stdout)
    assert s["status"] == "ok" and s["model"]["kind"] == "pytorch"
    assert s["conversion"]["agreement"] >= 0.98
    assert abs(s["conversion"]["float_accuracy"] - acc / 100) < 6e-5   # same held-out x_test/y_test (printed to 0.01 %)
    assert s["validation"]["host"]["bit_exact"] and s["validation"]["sim"]["bit_exact"]
    assert s["validation"]["host"]["samples"] == 80
    assert s["firmware"]["flash_used"] < s["firmware"]["flash_limit"]
