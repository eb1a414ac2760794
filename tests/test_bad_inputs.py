"""Issue 13, items 4, 5 and 9: bad data, bad weights and bad firmware files are refused through the
CLI with exit code 2 and one message naming the file and the problem (no traceback, no library
noise, nothing written), and a conversion leaves nothing behind in the temporary folder.

All cases but the last fail before any TensorFlow conversion or QEMU start, so they are fast.
"""
from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tinyprune.cli import main

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
sys.path.insert(0, str(TESTS / "data" / "fake_model"))
import fake_model

EXAMPLE_X = (1, 16, 16)        # the bundled example's sample shape (PyTorch layout)


def run(args, capfd) -> tuple[int, str]:
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capfd.readouterr().err


def assert_refused(code: int, err: str, *needles: str, out: Path | None = None):
    assert code == 2, err
    assert err.startswith("error: "), err
    assert "Traceback" not in err and "Warning" not in err, err
    assert len(err.strip().splitlines()) <= 2, err        # the message and at most one hint
    for n in needles:
        assert n in err, f"{n!r} not in {err!r}"
    if out is not None:
        assert not out.exists(), f"{out} was written"
        assert [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.tmp")] == []


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.fixture()
def nan_npz(tmp_path) -> Path:
    x = np.random.default_rng(0).random((40,) + EXAMPLE_X, dtype=np.float32)
    x[3, 0, 1, 1] = np.nan
    return _npz(tmp_path / "nan.npz", x=x, y=np.arange(40) % 10)


# ---------------------------------------------------------------- item 4: data, every stage

def test_prune_with_nan_data_is_refused_and_writes_nothing(nan_npz, tmp_path, capfd):
    out = tmp_path / "pruned"
    code, err = run(["prune", "example", "--max-macs", "100000", "--data", nan_npz, "--epochs", "0",
                     "-o", out], capfd)
    assert_refused(code, err, str(nan_npz), "'x' has 1 NaN and 0 infinite value(s) (first in sample 3)", out=out)


def test_convert_with_nan_data_is_refused_before_onnx2tf(nan_npz, tmp_path, capfd):
    out = tmp_path / "conv"
    code, err = run(["convert", "example", "--data", nan_npz, "-o", out], capfd)
    assert_refused(code, err, str(nan_npz), "'x' has 1 NaN", out=out)
    assert "onnx2tf" not in err


def test_validate_with_nan_data_is_refused_before_running(tmp_path, capfd):
    build = fake_model.make_build(tmp_path / "build")
    x = np.zeros((5, fake_model.IN), np.float32)     # (N, F): the fake model's input is (1, 16)
    x[4, 2] = np.inf
    data = _npz(tmp_path / "inf.npz", x=x, y=np.zeros(5, np.int64))
    report = tmp_path / "v.json"
    code, err = run(["validate", build, "--host", "--data", data, "-o", report], capfd)
    assert_refused(code, err, str(data), "'x' has 0 NaN and 1 infinite value(s) (first in sample 4)")
    assert not report.exists() and not (build / "host").exists()   # refused before building the runner


def test_codegen_check_with_nan_data_is_refused_before_generating(tmp_path, capfd):
    build = fake_model.make_build(tmp_path / "build")
    x = np.zeros((3, fake_model.IN), np.float32)
    x[0, 0] = np.nan
    data = _npz(tmp_path / "nan.npz", x=x)
    out = tmp_path / "cg"
    code, err = run(["codegen", build / "model_int8.tflite", "-o", out, "--check", "--data", data], capfd)
    assert_refused(code, err, str(data), "'x' has 1 NaN", out=out)


X40 = np.zeros((40,) + EXAMPLE_X, np.float32)
Y40 = np.arange(40) % 10


@pytest.mark.parametrize("arrays, needle", [
    ({"x": X40, "y": np.where(Y40 == 3, np.nan, Y40)}, "'y' has 4 NaN or infinite label(s)"),
    ({"x": X40, "y": Y40 - 1}, "'y' has negative labels (min -1)"),
    ({"x": X40, "y": Y40 + 0.25}, "'y' has non-integer labels (e.g. 0.25)"),
    ({"x": X40, "y": np.array([f"c{i}" for i in Y40])}, "'y' has dtype <U2; expected integer class labels"),
    ({"x": X40, "y": Y40[:39]}, "'y' has shape (39,); expected (40,), one label per sample (x has 40 samples)"),
    ({"x": np.zeros((0,) + EXAMPLE_X), "y": np.zeros(0, int)}, "'x' is empty (shape (0, 1, 16, 16))"),
    ({"x": X40.astype(str), "y": Y40}, "'x' has dtype <U32; expected numbers"),
    ({"inputs": X40, "labels": Y40}, "has no array 'x' (it has: 'inputs', 'labels'; expected: 'x' and 'y'"),
    ({"x": X40, "y": Y40, "x_test": X40, "y_test": Y40[:5]}, "'y_test' has shape (5,); expected (40,)"),
])
def test_bad_npz_contents_are_refused_at_load(tmp_path, capfd, arrays, needle):
    data = _npz(tmp_path / "d.npz", **arrays)
    out = tmp_path / "conv"
    code, err = run(["convert", "example", "--data", data, "-o", out], capfd)
    assert_refused(code, err, str(data), needle, out=out)


def test_object_array_and_random_bytes_are_refused(tmp_path, capfd):
    obj = tmp_path / "obj.npz"
    np.savez(obj, x=np.array([None] * 40, dtype=object), y=Y40)
    code, err = run(["convert", "example", "--data", obj, "-o", tmp_path / "a"], capfd)
    assert_refused(code, err, f"{obj}: array 'x' holds Python objects (dtype object)", out=tmp_path / "a")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(np.random.default_rng(2).bytes(4000))
    code, err = run(["prune", "example", "--max-macs", "100000", "--data", junk, "-o", tmp_path / "b"], capfd)
    assert_refused(code, err, f"{junk} is not an .npz file (not a zip archive", out=tmp_path / "b")


def test_prune_reads_the_documented_keys(tmp_path, capfd):
    """docs/data.md documents x/y; `prune --help` said x_train/y_train: both are read by the one loader."""
    rng = np.random.default_rng(0)
    x, y = rng.random((40,) + EXAMPLE_X, dtype=np.float32), np.arange(40) % 10
    for name, arrays in (("xy", {"x": x, "y": y}), ("train", {"x_train": x, "y_train": y})):
        out = tmp_path / name
        code, err = run(["prune", "example", "--max-macs", "150000", "--data", _npz(tmp_path / f"{name}.npz", **arrays),
                         "--epochs", "0", "-o", out], capfd)
        assert code == 0, err
    a = (tmp_path / "xy" / "prune.json").read_text()
    assert a == (tmp_path / "train" / "prune.json").read_text()


# ---------------------------------------------------------------- item 5: weights and models

def test_random_bytes_weights_are_refused_by_convert_and_prune(tmp_path, capfd):
    w = tmp_path / "w.pt"
    for seed in range(8):   # random bytes made torch.load raise IndexError, KeyError, UnicodeDecodeError, ...
        w.write_bytes(np.random.default_rng(seed).bytes(2000))
        code, err = run(["convert", "example", "--weights", w, "-o", tmp_path / "c"], capfd)
        assert_refused(code, err, f"{w} is not a PyTorch checkpoint", out=tmp_path / "c")
    w.write_bytes(b"\x80\x02" + np.random.default_rng(0).bytes(500))     # looks like a legacy pickle
    code, err = run(["prune", "example", "--max-macs", "100000", "--weights", w, "-o", tmp_path / "p"], capfd)
    assert_refused(code, err, f"{w} is not a readable PyTorch checkpoint", out=tmp_path / "p")


def test_weights_that_do_not_match_the_model_name_the_first_keys(tmp_path, capfd):
    import torch

    from tinyprune.example import build_model

    sd = build_model().state_dict()
    keys = list(sd)
    bad = dict(sd)
    del bad[keys[-1]]
    bad["head.extra"] = torch.zeros(3)
    bad[keys[0]] = torch.zeros(2, 2)
    w = tmp_path / "other.pt"
    torch.save(bad, w)
    code, err = run(["convert", "example", "--weights", w, "-o", tmp_path / "c"], capfd)
    assert_refused(code, err, f"{w} does not match the model", f"1 missing key(s): {keys[-1]}",
                   "1 unexpected key(s): head.extra",
                   f"{keys[0]} is (2, 2) in the file, {tuple(sd[keys[0]].shape)} in the model", out=tmp_path / "c")
    torch.save({f"module.{k}": v for k, v in sd.items()}, w)
    code, err = run(["convert", "example", "--weights", w, "-o", tmp_path / "c"], capfd)
    assert_refused(code, err, f"{len(sd)} missing key(s)", "saved from a DataParallel wrapper")
    nan = {k: v.clone() for k, v in sd.items()}
    nan[keys[0]].view(-1)[0] = float("nan")
    torch.save(nan, w)
    code, err = run(["convert", "example", "--weights", w, "-o", tmp_path / "c"], capfd)
    assert_refused(code, err, f"{w}: weight '{keys[0]}' has 1 NaN or infinite value(s)")


def test_whole_pickled_model_and_weights_as_model_are_explained(tmp_path, capfd):
    import torch

    from tinyprune.example import build_model

    w = tmp_path / "model.pt"
    torch.save(build_model(), w)
    code, err = run(["convert", "example", "--weights", w, "-o", tmp_path / "c"], capfd)
    assert_refused(code, err, f"{w} holds pickled Python objects (tinyprune.example.", "not a state_dict")
    code, err = run(["convert", w, "-o", tmp_path / "c"], capfd)
    assert_refused(code, err, f"model '{w}' is a weights file", "--weights")


# ---------------------------------------------------------------- item 5: firmware files

def _sim_build(root: Path, elf_bytes: bytes) -> Path:
    build = fake_model.make_build(root)
    (build / "firmware").mkdir()
    (build / "firmware" / "firmware.elf").write_bytes(elf_bytes)
    (build / "board.txt").write_text("mps2-an500\n")
    return build


def test_garbage_firmware_is_refused_before_qemu_starts(tmp_path, capfd, monkeypatch):
    # QEMU must not even be looked for: a stand-in that would fail loudly if it were started.
    monkeypatch.setenv("TINYPRUNE_QEMU", str(tmp_path / "no-qemu-here"))
    build = _sim_build(tmp_path / "b", np.random.default_rng(0).bytes(4096))
    elf = build / "firmware" / "firmware.elf"
    code, err = run(["validate", build, "--sim", "--random", "2", "-o", tmp_path / "v.json"], capfd)
    assert_refused(code, err, f"{elf}: not an ELF file (4096 bytes, starting with")
    assert "QEMU" not in err and "qemu" not in err


def _elf_header(shoff: int = 0, shnum: int = 0) -> bytes:
    ident = b"\x7fELF" + bytes([1, 1, 1]) + bytes(9)                     # 32-bit, little-endian
    return ident + struct.pack("<HHIIIIIHHHHHH", 2, 40, 1, 0, 0, shoff, 0, 52, 32, 0, 40, shnum, 0)


@pytest.mark.parametrize("make, needle", [
    (lambda: Path(sys.executable).resolve().read_bytes(), "-bit ELF file; Cortex-M firmware is a 32-bit ELF"),
    (lambda: _elf_header(shoff=0x7FFFFFF0, shnum=3),       # an ARM ELF header whose sections are not there
     "a corrupt or truncated ELF file (its headers point past the end of its 52 bytes)"),
    (lambda: _elf_header()[:40], "not an ELF file (40 bytes, starting with 7f 45 4c 46)"),
])
def test_wrong_kind_of_elf_is_named(tmp_path, capfd, monkeypatch, make, needle):
    monkeypatch.setenv("TINYPRUNE_QEMU", str(tmp_path / "no-qemu-here"))
    data = make()
    if needle.startswith("-bit") and data[4] != 2:
        pytest.skip("the Python executable is not a 64-bit ELF here")
    build = _sim_build(tmp_path / "b", data)
    code, err = run(["validate", build, "--sim", "--random", "2", "-o", tmp_path / "v.json"], capfd)
    assert_refused(code, err, str(build / "firmware" / "firmware.elf"), needle)


needs_arm = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc not installed")


@pytest.mark.arm
@needs_arm
def test_arm_files_that_are_not_tinyprune_harness_firmware(tmp_path):
    from tinyprune.errors import UserInputError
    from tinyprune.firmware import build_firmware
    from tinyprune.firmware.elf import check_firmware

    src = tmp_path / "t.c"
    src.write_text("int main(void) { return 0; }\n")
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m7", "-mthumb", "-c", src, "-o", tmp_path / "t.o"], check=True)
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m7", "-mthumb", "--specs=nosys.specs", src, "-o",
                    tmp_path / "t.elf"], check=True)
    subprocess.run(["arm-none-eabi-strip", tmp_path / "t.elf", "-o", tmp_path / "s.elf"], check=True)
    self_test = build_firmware(None, "mps2-an500", tmp_path / "fw-selftest", harness_dir="selftest")
    build = fake_model.make_build(tmp_path / "b")
    good = build_firmware(build / "codegen", "mps2-an500", build / "firmware")
    cases = {tmp_path / "t.o": "a relocatable object file (.o), not linked firmware",
             tmp_path / "t.elf": "an ARM executable, but not built by tinyprune (no tp_vector_table)",
             tmp_path / "s.elf": "has no symbol table (stripped?)",
             Path(self_test.elf): "tinyprune firmware without the serial harness (no tp_frame_parse, tp_rx_push)"}
    for path, needle in cases.items():
        with pytest.raises(UserInputError) as e:
            check_firmware(path)
        assert str(e.value).startswith(f"{path}: ") and needle in str(e.value)
        assert e.value.exit_code == 2
    assert check_firmware(good.elf).machine == 40


# ---------------------------------------------------------------- item 9: nothing left behind

LEFTOVERS = textwrap.dedent('''
    import os, sys, tempfile
    from tinyprune.convert import convert
    tmp = sys.argv[1]
    before = sorted(os.listdir(tmp))
    convert("example", os.path.join(sys.argv[2], "out"), data="digits", calib_samples=20)
    print(repr((sorted(set(os.listdir(tmp)) - set(before)), tempfile.gettempdir(), os.environ["TMPDIR"])))
''')


@pytest.mark.slow
def test_convert_leaves_nothing_in_the_temp_folder(tmp_path):
    """Checked inside the converting process: TensorFlow would remove its autograph files at exit,
    so a long-lived process (a build, a notebook, a test session) used to collect them."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    (tmp / "mine.txt").write_text("not ours")
    env = {k: v for k, v in __import__("os").environ.items() if k != "TINYPRUNE_DEBUG"}
    env.update(TMPDIR=str(tmp), PYTHONPATH=str(ROOT))
    cwd = tmp_path / "cwd"      # and nothing in the working directory either (onnx2tf's default folders)
    cwd.mkdir()
    r = subprocess.run([sys.executable, "-c", LEFTOVERS, str(tmp), str(tmp_path)], env=env, capture_output=True,
                       text=True, timeout=600, cwd=cwd, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [eval(ln) for ln in r.stdout.splitlines() if ln.startswith("(")]  # our own repr
    assert lines == [([], str(tmp), str(tmp))], r.stdout          # nothing new, tempfile and TMPDIR restored
    assert sorted(p.name for p in tmp.iterdir()) == ["mine.txt"]
    assert list(cwd.iterdir()) == []
    assert (tmp_path / "out" / "model_int8.tflite").is_file()
