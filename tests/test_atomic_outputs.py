"""A failed command never damages a good output (issue 13, item 2), and an unusable output path is bad
input naming the path (item 5): every command that writes is run once so that it fails, and the
previous output tree must be byte-identical afterwards (every file hashed, symlinks and folders
listed); then each command gets an output path under a regular file, an existing file or folder of
the wrong kind, and a path even root may not write (/sys), and must exit 2 with one line naming it.

The `build` cases make one small real build (the example's int8 model, --no-sim) and fail later
builds into the same folder at different stages (bad input 2, over budget 3, validation 4, missing
tool 5, internal error): OUT/BOARD stays as it was, the attempt lands in OUT/BOARD.failed, and a
re-run of the good build is still served from the stage cache."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from tinyprune import _fs
from tinyprune.cli import main
from tinyprune.errors import UserInputError

ROOT = Path(__file__).resolve().parents[1]
BOARD = "nucleo-f746"
EMBEDDING_LOOKUP = 7   # tflite BuiltinOperator: an operator tinyprune's code generator does not support
MEAN = 40


def tree(root: Path) -> dict:
    """Every entry under root: file -> sha256, symlink -> its target, folder -> 'dir'."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run(capfd, *args) -> tuple[int, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    return code, capfd.readouterr().err


def fake_output(folder: Path, files: dict) -> dict:
    """A previous (good) output of a command: the given files, returned as a tree."""
    for name, content in files.items():
        p = folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return tree(folder.parent)


def no_litter(parent: Path) -> None:
    """No temporary folder or file of ours is left beside the outputs."""
    assert not [p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name or ".probe-" in p.name]


def patched_opcode(data: bytes, old: int, new: int) -> bytes:
    """The model with every operator code ``old`` rewritten to ``new`` in place (same size)."""
    import tflite
    buf = bytearray(data)
    m = tflite.Model.GetRootAsModel(data, 0)
    hits = 0
    for i in range(m.OperatorCodesLength()):
        oc = m.OperatorCodes(i)
        if max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()) != old:
            continue
        hits += 1
        if o := oc._tab.Offset(4):            # deprecated_builtin_code: int8
            buf[oc._tab.Pos + o] = new
        if o := oc._tab.Offset(10):           # builtin_code: int32
            struct.pack_into("<i", buf, oc._tab.Pos + o, new)
    assert hits, f"no operator {old} in the model"
    return bytes(buf)


@pytest.fixture(scope="module")
def models(converted, tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    good = converted("example") / "model_int8.tflite"
    rng = np.random.default_rng(0)
    (d / "random.tflite").write_bytes(rng.integers(0, 256, good.stat().st_size, dtype=np.uint8).tobytes())
    (d / "embedding_lookup.tflite").write_bytes(patched_opcode(good.read_bytes(), MEAN, EMBEDDING_LOOKUP))
    (d / "bad.npz").write_bytes(b"not an npz archive")
    (d / "a_file").write_text("a regular file\n")
    return {"good": good, "random": d / "random.tflite", "unsupported-op": d / "embedding_lookup.tflite", "bad_npz": d / "bad.npz",
            "file": d / "a_file"}


# ------------------------------------------------------------------------------------- the helpers

def test_atomic_output_dir_replaces_as_a_whole_and_keeps_out_on_failure(tmp_path):
    out = tmp_path / "out"
    with _fs.atomic_output_dir(out, "m.json") as t:
        (t / "m.json").write_text("1")
        (t / "stale.c").write_text("old")
    before = tree(tmp_path)
    with pytest.raises(RuntimeError), _fs.atomic_output_dir(out, "m.json") as t:
        (t / "m.json").write_text("2")
        raise RuntimeError("stage failed")
    assert tree(tmp_path) == before
    with _fs.atomic_output_dir(out, "m.json") as t:
        (t / "m.json").write_text("3")
    assert sorted(os.listdir(out)) == ["m.json"] and (out / "m.json").read_text() == "3"   # stale.c is gone
    assert (out.stat().st_mode & 0o777) == 0o777 & ~_fs._umask()   # not mkdtemp's 0700
    no_litter(tmp_path)
    # a failure in a folder that did not exist leaves no folder behind, not even its parents
    with pytest.raises(RuntimeError), _fs.atomic_output_dir(tmp_path / "new" / "deeper" / "out", "m.json"):
        raise RuntimeError
    assert not (tmp_path / "new").exists()


def test_a_folder_that_is_not_the_commands_output_is_refused_not_deleted(tmp_path, monkeypatch):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    before = tree(tmp_path)
    refused = pytest.raises(UserInputError, match=r"cannot write to .*mine: it is a folder with other files \(no m.json")
    with refused, _fs.atomic_output_dir(tmp_path / "mine", "m.json"):
        pytest.fail("the work must not start")
    assert tree(tmp_path) == before
    # nor is the current folder (it would be renamed away under the user's shell)
    (tmp_path / "mine" / "m.json").write_text("{}")
    monkeypatch.chdir(tmp_path / "mine")
    for out in (".", tmp_path / "mine", tmp_path):
        with pytest.raises(UserInputError, match="it is the current folder or contains it|other files"):
            _fs.atomic_output_dir(out, "m.json").__enter__()
    assert os.listdir(tmp_path) == ["mine"]


def test_build_refuses_a_board_folder_that_is_not_a_build(tmp_path, capfd):
    before = fake_output(tmp_path / BOARD, {"notes.txt": "mine"})
    code, err = run(capfd, "build", "--board", BOARD, "-o", tmp_path)
    assert code == 2 and f"cannot write to {tmp_path / BOARD}: it is a folder with other files (no summary.json" \
        in err, err
    assert tree(tmp_path) == before


@pytest.mark.parametrize("exc, words", [(PermissionError(errno.EACCES, "Permission denied"), "permission denied"),
                                        (OSError(errno.EROFS, "Read-only file system"), "read-only file system")])
def test_unwritable_locations_are_bad_input_naming_the_path(tmp_path, monkeypatch, exc, words):
    def refuse(*a, **kw):
        raise exc
    monkeypatch.setattr(_fs.tempfile, "mkdtemp", refuse)
    monkeypatch.setattr(_fs.tempfile, "mkstemp", refuse)
    for call in (lambda: _fs.atomic_output_dir(tmp_path / "o", "m.json").__enter__(),
                 lambda: _fs.atomic_write_text(tmp_path / "r.json", "{}"),
                 lambda: _fs.check_output_file(tmp_path / "r.json")):
        with pytest.raises(UserInputError) as e:
            call()
        assert e.value.exit_code == 2 and str(e.value).startswith(f"cannot write to {tmp_path}/")
        assert words in e.value.message
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------- each command fails, output intact

def test_convert_failure_keeps_the_previous_output(tmp_path, capfd, models):
    good = tmp_path / "conv"
    before = fake_output(good, {"convert.json": "{}", "model.onnx": b"onnx", "model_int8.tflite": b"tfl"})
    code, err = run(capfd, "convert", "example", "--data", models["bad_npz"], "-o", good)
    assert code == 2, err
    (tmp_path / "garbage.onnx").write_bytes(b"\x00garbage")
    code2, err2 = run(capfd, "convert", tmp_path / "garbage.onnx", "-o", good)
    assert code2 == 2, err2
    before[Path("garbage.onnx").name] = tree(tmp_path)["garbage.onnx"]
    assert tree(tmp_path) == before
    no_litter(tmp_path)


def test_prune_failure_keeps_the_previous_output(tmp_path, capfd, models):
    good = tmp_path / "pruned"
    before = fake_output(good, {"prune.json": "{}", "channels.json": "{}", "pruned_model.pt": b"pt"})
    code, err = run(capfd, "prune", "example", "--max-macs", "100000", "--epochs", "0", "--data", models["bad_npz"],
                    "-o", good)
    assert code == 2, err
    assert tree(tmp_path) == before
    no_litter(tmp_path)


@pytest.mark.parametrize("case", ["random", "unsupported-op", "check-bad-data"])
def test_codegen_failure_keeps_the_previous_output(tmp_path, capfd, models, case):
    good = tmp_path / "cg"
    before = fake_output(good, {"codegen.json": "{}", "model.c": "int x;", "kernels/k.c": "int k;"})
    if case == "check-bad-data":   # the reported case: --check replaced OUT before reading --data
        code, err = run(capfd, "codegen", models["good"], "-o", good, "--check", "--data", models["bad_npz"])
        assert "bad.npz is not an .npz file" in err
    else:
        code, err = run(capfd, "codegen", models[case], "-o", good)
        if case == "unsupported-op":
            assert "unsupported operator EMBEDDING_LOOKUP" in err, err
    assert code == 2, err
    assert tree(tmp_path) == before
    no_litter(tmp_path)


def test_codegen_success_replaces_the_folder_and_refuses_a_foreign_one(tmp_path, capfd, models):
    out = tmp_path / "cg"
    fake_output(out, {"codegen.json": "{}", "oldprefix.c": "int stale;", "kernels/gone.c": "int gone;"})
    code, err = run(capfd, "codegen", models["good"], "-o", out)
    assert code == 0, err
    assert not (out / "oldprefix.c").exists() and not (out / "kernels" / "gone.c").exists()
    assert (out / "model.c").is_file() and (out / "codegen.json").is_file()
    no_litter(tmp_path)
    foreign = tmp_path / "src"
    before = fake_output(foreign, {"main.c": "int main(void) { return 0; }"})
    code, err = run(capfd, "codegen", models["good"], "-o", foreign)
    assert code == 2 and f"cannot write to {foreign}: it is a folder with other files" in err, err
    assert tree(tmp_path) == before


def test_report_and_bench_failures_keep_the_previous_output(tmp_path, capfd, models):
    d = tmp_path / "b"
    before = fake_output(d, {"summary.json": "{not json", "report.html": "<html>old</html>", "summary.md": "old"})
    code, err = run(capfd, "report", d)
    assert code == 2 and "summary.json: not valid JSON" in err, err
    assert tree(tmp_path) == before
    (tmp_path / "bench.json").write_text('{"old": 1}\n')
    before = tree(tmp_path)
    code, err = run(capfd, "bench", models["random"], "-o", tmp_path / "bench.json")
    assert code == 2, err
    assert tree(tmp_path) == before
    no_litter(tmp_path)


# ----------------------------------------------------------------------------- output path errors

def sys_path() -> Path:
    """A folder even root cannot create (sysfs): PermissionError, checked here, else the test skips."""
    p = Path("/sys/tinyprune-out")
    try:
        p.mkdir()
    except PermissionError:
        return p
    except OSError:
        pass
    else:
        p.rmdir()
    pytest.skip("/sys lets this user create folders")


def _assert_path_error(code, err, path, words):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert lines[0] == f"error: cannot write to {path}: {words}", err
    assert "Traceback" not in err and "internal error" not in err


@pytest.mark.parametrize("kind", ["under-a-file", "permission"])
@pytest.mark.parametrize("command", ["convert", "prune", "codegen", "bench"])
def test_unusable_out_is_bad_input_naming_it(tmp_path, capfd, models, command, kind):
    if kind == "under-a-file":
        out, words = models["file"] / "out", f"{models['file']} is a file, not a folder"
    else:
        out, words = sys_path(), "permission denied"
    if command == "bench":
        out = out / "bench.json"
    args = {"convert": ["convert", "example"],
            "prune": ["prune", "example", "--max-macs", "100000", "--epochs", "0"],
            "codegen": ["codegen", models["good"]],
            "bench": ["bench", models["good"]]}[command]
    code, err = run(capfd, *args, "-o", out)
    _assert_path_error(code, err, out, words)


def test_out_naming_an_existing_file_is_bad_input(tmp_path, capfd, models):
    f = models["file"]
    code, err = run(capfd, "prune", "example", "--max-macs", "100000", "--epochs", "0", "-o", f)
    _assert_path_error(code, err, f, "it is a file")
    for cmd in (["convert", "example"], ["codegen", models["good"]]):   # click's own check, also exit 2
        code, err = run(capfd, *cmd, "-o", f)
        assert code == 2 and str(f) in err and "is a file" in err, err
    code, err = run(capfd, "bench", models["good"], "-o", tmp_path)
    _assert_path_error(code, err, tmp_path, "it is a folder")


# ---------------------------------------------------------------------------------------- build

@pytest.fixture(scope="module")
def good_build(models, tmp_path_factory):
    from tinyprune.pipeline import build
    out = tmp_path_factory.mktemp("out")
    build(str(models["good"]), BOARD, out=str(out), sim=False, samples=20, progress=False)
    return out


def small_board(folder: Path) -> Path:
    """The same board name with 16 KB of flash: the example's firmware cannot fit."""
    toml = (ROOT / "boards" / f"{BOARD}.toml").read_text()
    assert toml.count("1048576") == 2               # flash_bytes and the FLASH region's length
    (folder / f"{BOARD}.toml").write_text(toml.replace("1048576", "16384"))
    return folder / f"{BOARD}.toml"


def build_args(out, model, *more):
    return ["build", model, "--board", BOARD, "--no-sim", "--samples", "20", *more, "-o", out]


@pytest.mark.slow
@pytest.mark.arm
@pytest.mark.parametrize("case, exit_code", [("random", 2), ("unsupported-op", 2), ("over-budget", 3), ("no-toolchain", 5)])
def test_failed_build_keeps_the_good_build_and_its_cache(good_build, models, tmp_path, capfd, monkeypatch, case,
                                                         exit_code):
    out = good_build
    before = tree(out / BOARD)
    args = build_args(out, models.get(case, models["good"]))
    if case == "over-budget":
        args[args.index("--board") + 1] = small_board(tmp_path)
    elif case == "no-toolchain":
        monkeypatch.setenv("PATH", str(tmp_path))   # no arm-none-eabi-gcc
        args.insert(-2, "--force")
    code, err = run(capfd, *args)
    assert code == exit_code, err
    assert tree(out / BOARD) == before
    failed = out / f"{BOARD}.failed"
    assert f"{out / BOARD} is unchanged; this attempt's report: {failed}/report.html" in err, err
    assert ".tmp-" not in err            # paths name the kept attempt, not the vanished work folder
    import json
    s = json.loads((failed / "summary.json").read_text())
    assert s["status"] == {2: "bad_input", 3: "over_budget", 5: "missing_tool"}[exit_code]
    assert (failed / "report.html").is_file()
    no_litter(out)
    if case == "unsupported-op":   # the reported case: the good build still validates (the old one blamed the board)
        code, err = run(capfd, "validate", out / BOARD, "--host", "--samples", "5", "-o", tmp_path / "v.json")
        assert code == 0, err
    # the good build is still served from its cache, and the stale attempt goes away
    monkeypatch.undo()
    from tinyprune.pipeline import build
    res = build(str(models["good"]), BOARD, out=str(out), sim=False, samples=20, progress=False)
    assert set(res.stages.values()) == {"skipped", "cached"}, res.stages
    assert not failed.exists()
    again = {k: v for k, v in tree(out / BOARD).items() if k not in ("summary.json", "report.html", "summary.md")}
    assert again == {k: v for k, v in before.items() if k not in ("summary.json", "report.html", "summary.md")}


@pytest.mark.slow
@pytest.mark.arm
@pytest.mark.parametrize("failure", ["validation", "internal"])
def test_build_failing_in_validation_or_internally_keeps_the_good_build(good_build, models, monkeypatch, failure):
    import tinyprune.validate as validate_pkg
    from tinyprune.errors import ValidationFailed
    from tinyprune.pipeline import build
    from tinyprune.pipeline.build import _Pipeline

    out = good_build
    before = tree(out / BOARD)
    if failure == "validation":
        class Failing:
            def to_dict(self):
                return {"samples": 7, "passed": False, "failures": ["sample 3 differs"], "mismatched_samples": [3]}
        monkeypatch.setattr(validate_pkg, "validate", lambda *a, **kw: Failing())
        with pytest.raises(ValidationFailed) as e:
            build(str(models["good"]), BOARD, out=str(out), sim=False, samples=7, progress=False)
        assert e.value.exit_code == 4 and "sample 3 differs" in str(e.value)
        assert f"see {out / BOARD}.failed/validate-*.json" in str(e.value)
    else:
        def boom(self, *a, **kw):
            raise RuntimeError("a bug")
        monkeypatch.setattr(_Pipeline, "stage_codegen", boom)
        with pytest.raises(RuntimeError, match="a bug"):
            build(str(models["good"]), BOARD, out=str(out), sim=False, samples=20, progress=False)
    assert tree(out / BOARD) == before
    assert (out / f"{BOARD}.failed" / "summary.json").is_file()
    no_litter(out)


@pytest.mark.slow
@pytest.mark.arm
def test_firmware_and_validate_failures_keep_the_build(good_build, tmp_path, capfd, monkeypatch, models):
    d = good_build / BOARD
    before = tree(d)
    code, err = run(capfd, "validate", d, "--host", "--data", models["bad_npz"])
    assert code == 2, err
    monkeypatch.setenv("TINYPRUNE_QEMU", "/nonexistent/qemu-system-arm")
    code, err = run(capfd, "validate", d, "--sim")   # no firmware-sim/ yet: nothing may be built for it
    assert code == 5 and "qemu-system-arm not found" in err, err
    # validate's own report is the one output a failed run replaces (issue 13, item 7): a stale
    # `passed: true` must not survive a run that could not happen
    rep = json.loads((d / "validate.json").read_text())
    assert rep["passed"] is False and "qemu-system-arm not found" in rep["error"]["message"]
    (d / "validate.json").unlink()
    before = {k: v for k, v in before.items() if k != "validate.json"}
    monkeypatch.setenv("PATH", str(tmp_path))
    code, err = run(capfd, "firmware", d, "--board", BOARD)
    assert code == 5 and "arm-none-eabi-gcc" in err, err
    monkeypatch.undo()
    assert tree(d) == before
    code, err = run(capfd, "firmware", d, "--board", small_board(tmp_path))   # fails after compiling, in its
    assert code == 3 and "firmware does not fit" in err, err                  # temporary folder
    assert tree(d) == before
    no_litter(d)
    # output path errors of build, firmware and validate
    f = models["file"]
    for args, path in ((["build", models["good"], "--board", BOARD, "-o", f / "out"], f / "out" / BOARD),
                       (["firmware", d, "--board", BOARD, "-o", f / "fw"], f / "fw"),
                       (["validate", d, "--host", "-o", f / "v.json"], f / "v.json")):
        code, err = run(capfd, *args)
        _assert_path_error(code, err, path, f"{f} is a file, not a folder")
    sysp = sys_path()
    for args, path in ((["build", models["good"], "--board", BOARD, "-o", sysp], sysp / BOARD),
                       (["firmware", d, "--board", BOARD, "-o", sysp], sysp),
                       (["validate", d, "--host", "--junit", sysp / "j.xml"], sysp / "j.xml")):
        code, err = run(capfd, *args)
        _assert_path_error(code, err, path, "permission denied")
    code, err = run(capfd, "validate", d, "--host", "-o", d)   # click's own check, also exit 2
    assert code == 2 and str(d) in err and "is a directory" in err, err
    assert tree(d) == before
