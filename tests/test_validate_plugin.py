"""The pytest plugin (tinyprune.testing): users' own on-device regression tests, run through
pytester against the native host build and QEMU, and skipped with a reason without a device."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data" / "fake_model"))
import fake_model  # noqa: E402

# pybind11 extensions cannot be imported twice: load TFLite Micro here, before pytester's in-process
# runs snapshot sys.modules (they would drop it after the first inner run and fail to re-import it)
import tinyprune.validate.reference  # noqa: E402,F401
from tflite_micro.python.tflite_micro import runtime  # noqa: E402,F401

pytest_plugins = ["pytester"]

USER_TESTS = '''
import numpy as np

def test_info(tinyprune_device, tinyprune_reference):
    info = tinyprune_device.info()
    assert info.input_bytes == tinyprune_reference.input.nbytes
    assert info.output_bytes == 4

def test_outputs_match_reference(tinyprune_device, tinyprune_reference):
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.integers(-128, 128, size=16).astype(np.int8)
        y, counter = tinyprune_device.infer(x)
        assert y.dtype == np.int8 and counter > 0
        assert np.array_equal(y, tinyprune_reference.run(x).ravel())

def test_class_of_a_clear_example(tinyprune_device):
    x = np.full(16, -40, dtype=np.int8)
    x[8:12] = 100       # features of class 2
    y, _ = tinyprune_device.infer(x)
    assert int(np.argmax(y)) == 2

def test_layers(tinyprune_device):
    r = tinyprune_device.run(np.zeros(16, np.int8), layers=True)
    assert len(r.layer_counts) == 2
'''


@pytest.fixture(scope="module")
def fake_build(tmp_path_factory):
    return fake_model.make_build(tmp_path_factory.mktemp("plugin"), seed=0)


def test_without_a_device_the_fixture_skips_with_the_reason(pytester):
    pytester.makepyfile(test_user=USER_TESTS)
    r = pytester.runpytest("-rs")
    r.assert_outcomes(skipped=4)
    r.stdout.fnmatch_lines(["*no tinyprune device: pass --tinyprune-port PORT*"])


def test_options_are_listed_in_help(pytester):
    r = pytester.runpytest("--help")
    r.stdout.fnmatch_lines(["*--tinyprune-port*", "*--tinyprune-sim*", "*--tinyprune-host*"])


@pytest.mark.hostcc
@pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler")
def test_user_regression_tests_run_against_the_host_build(pytester, fake_build):
    pytester.makepyfile(test_user=USER_TESTS)
    r = pytester.runpytest(f"--tinyprune-host={fake_build}")
    r.assert_outcomes(passed=4)


@pytest.mark.hostcc
@pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler")
def test_a_failing_user_assertion_fails(pytester, fake_build):
    pytester.makepyfile(test_user='''
import numpy as np
def test_wrong(tinyprune_device):
    y, _ = tinyprune_device.infer(np.zeros(16, np.int8))
    assert int(np.argmax(y)) == 99
''')
    r = pytester.runpytest(f"--tinyprune-host={fake_build}")
    r.assert_outcomes(failed=1)


def test_two_devices_is_a_usage_error(pytester, fake_build):
    pytester.makepyfile(test_user=USER_TESTS)
    r = pytester.runpytest(f"--tinyprune-host={fake_build}", f"--tinyprune-sim={fake_build}")
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    r.stderr.fnmatch_lines(["*give only one of --tinyprune-sim, --tinyprune-host*"])


@pytest.mark.qemu
@pytest.mark.arm
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs qemu-system-arm and arm-none-eabi-gcc")
def test_user_regression_tests_run_in_qemu(pytester, fake_build):
    from tinyprune.firmware import build_firmware

    build_firmware(fake_build / "codegen", "mps2-an500", fake_build / "firmware")
    pytester.makepyfile(test_user=USER_TESTS)
    r = pytester.runpytest(f"--tinyprune-sim={fake_build}")
    r.assert_outcomes(passed=4)


def test_build_alone_feeds_the_build_and_reference_fixtures(pytester, fake_build):
    """--tinyprune-build without a device used to be ignored (tinyprune_build skipped)."""
    pytester.makepyfile(test_user='''
import numpy as np
def test_reference(tinyprune_build, tinyprune_reference):
    assert (tinyprune_build / "model_int8.tflite").is_file()
    assert tinyprune_reference.run(np.zeros(16, np.int8)).size == 4
def test_device(tinyprune_device):
    pass
''')
    r = pytester.runpytest(f"--tinyprune-build={fake_build}", "-rs")
    r.assert_outcomes(passed=1, skipped=1)
    r.stdout.fnmatch_lines(["*no tinyprune device*"])


def test_build_naming_another_folder_than_the_device_is_a_usage_error(pytester, fake_build, tmp_path):
    r = pytester.runpytest(f"--tinyprune-build={tmp_path}", f"--tinyprune-host={fake_build}")
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    r.stderr.fnmatch_lines(["*--tinyprune-build * and --tinyprune-host * name different builds*"])


@pytest.mark.parametrize("value", ["0", "-1"])
def test_timeout_must_be_positive(pytester, value):
    r = pytester.runpytest(f"--tinyprune-timeout={value}")
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    r.stderr.fnmatch_lines(["*--tinyprune-timeout *: give the seconds one inference may take (> 0)*"])


@pytest.mark.hostcc
@pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler")
def test_timeout_option_reaches_the_link(pytester, fake_build):
    pytester.makepyfile(test_user='''
def test_timeout(tinyprune_device):
    assert tinyprune_device.infer_timeout == 0.75
''')
    r = pytester.runpytest(f"--tinyprune-host={fake_build}", "--tinyprune-timeout=0.75")
    r.assert_outcomes(passed=1)
