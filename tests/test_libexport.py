"""The generated folder as a library: CMake (host compiler and an arm-none-eabi toolchain file),
the Zephyr module's CMake, PlatformIO's library.json, the Arduino layout, and two models (MLPerf
Tiny KWS as `kws`, IC as `ic`) linked into one host program and one QEMU firmware, each run
bit-exact against TFLite Micro (examples/two_models/main.c, the same program on host and board)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyprune.codegen.generate import generate

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO.parent / "shared/models/mlperf-tiny"
KWS, IC = MODELS / "kws_dscnn_int8.tflite", MODELS / "ic_resnet8_int8.tflite"
EXAMPLE = REPO / "examples/two_models"
TOOLCHAIN = REPO / "firmware/cmake/arm-none-eabi.cmake"
INPUTS = {"kws": (KWS, 7, 0), "ic": (IC, 13, 5)}   # in[i] = (i * mul + add) & 0xFF, as in main.c

pytestmark = [
    pytest.mark.hostcc,
    pytest.mark.skipif(shutil.which("gcc") is None, reason="no host C compiler"),
    pytest.mark.skipif(not (KWS.is_file() and IC.is_file()), reason=f"MLPerf Tiny models not in {MODELS}"),
]
needs_cmake = pytest.mark.skipif(shutil.which("cmake") is None,
                                 reason="cmake not installed (scripts/install-system-deps.sh installs it)")
needs_arm = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc not installed")


def tflm_output(name: str) -> bytes:
    from tinyprune.tflm import interpreter
    path, mul, add = INPUTS[name]
    it = interpreter(path.read_bytes())
    d = it.get_input_details(0)
    n = int(np.prod(d["shape"]))
    it.set_input(((np.arange(n) * mul + add) & 0xFF).astype(np.uint8).view(np.int8).reshape(d["shape"]), 0)
    it.invoke()
    return it.get_output(0).astype(np.int8).tobytes()


def parse_outputs(text: str) -> dict[str, bytes]:
    assert "TP_TWO_MODELS_OK" in text, text
    return {m.group(1): bytes.fromhex(m.group(2)) for m in re.finditer(r"TP_OUT (\w+) ([0-9a-f]+)", text)}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("lib")
    for name, (path, _, _) in INPUTS.items():
        generate(path, root / name, prefix=name, tflm_arena=False)
    return root


@pytest.fixture(scope="module")
def reference():
    return {name: tflm_output(name) for name in INPUTS}


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert r.returncode == 0, f"{cmd}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def test_standard_layout_files(models):
    files = sorted(p.relative_to(models / "kws").as_posix() for p in (models / "kws").rglob("*") if p.is_file())
    meta = json.loads((models / "kws/codegen.json").read_text())
    assert meta["layout"] == "standard" and meta["source_dir"] == "."
    assert [f for f in files if not f.startswith("kernels/")] == [
        "CMakeLists.txt", "Makefile", "codegen.json", "kws.c", "kws.h", "kws_weights.c", "kws_weights.h",
        "library.json", "tinyprune_kernels.cmake", "zephyr/CMakeLists.txt", "zephyr/module.yml"]
    kernel_files = [f for f in files if f.startswith("kernels/")]
    assert sorted(f"kernels/{k}" for k in meta["kernel_files"]) == kernel_files
    # every kernel file the folder has is listed (once) in both CMake files, so none is left out
    for cm in ("CMakeLists.txt", "zephyr/CMakeLists.txt"):
        listed = re.findall(r"^\s+(kernels/\S+?)\)?$", (models / "kws" / cm).read_text(), re.M)
        assert listed == [f"kernels/{k}" for k in meta["kernel_files"]], cm
    # all model-specific symbols carry the prefix: only tp_* kernels are shared between models
    run(["make", "-s", "-C", str(models / "kws")])
    nm = run(["nm", "-g", "--defined-only", str(models / "kws/libkws.a")]).stdout
    syms = {line.split()[-1] for line in nm.splitlines() if re.match(r"^[0-9a-f]+ [A-Z] ", line)}
    assert syms and all(s.startswith(("kws_", "tp_")) for s in syms), sorted(syms)


def _host_project(tmp: Path, models: Path, body: str) -> Path:
    app = tmp / "app"
    app.mkdir()
    (app / "CMakeLists.txt").write_text(f"""cmake_minimum_required(VERSION 3.13)
project(two_models C)
add_executable(two_models "{EXAMPLE}/main.c" "{REPO}/firmware/harness/bsp_host.c")
target_include_directories(two_models PRIVATE "{REPO}/firmware/bsp")
{body}
""")
    return app


@needs_cmake
@pytest.mark.slow
def test_cmake_host_two_models_bit_exact(models, reference, tmp_path):
    app = _host_project(tmp_path, models, f"""add_subdirectory("{models}/kws" kws)
add_subdirectory("{models}/ic" ic)
target_link_libraries(two_models PRIVATE kws ic)""")
    run(["cmake", "-S", str(app), "-B", str(app / "build"), "-DCMAKE_C_FLAGS=-Wall -Wextra -Werror -O2"])
    run(["cmake", "--build", str(app / "build"), "-j2"])
    # each kernel compiled once, into the shared library (tp_add_s8 only IC uses, from IC's folder)
    objs = run(["ar", "t", str(app / "build/kws/libtinyprune_kernels.a")]).stdout.split()
    assert len(objs) == len(set(objs)) and "tp_add_s8.c.o" in objs and "tp_depthwise_conv_s8.c.o" in objs
    assert not (app / "build/ic/libtinyprune_kernels.a").exists()
    got = parse_outputs(run([str(app / "build/two_models")]).stdout)
    assert got == reference


@needs_cmake
def test_cmake_refuses_kernels_of_another_version(models, tmp_path):
    other = tmp_path / "ic"
    shutil.copytree(models / "ic", other)
    conv = other / "kernels/tp_conv_s8.c"
    conv.write_text(conv.read_text() + "\n/* another tinyprune */\n")
    app = _host_project(tmp_path, models, f"""add_subdirectory("{models}/kws" kws)
add_subdirectory("{other}" ic)
target_link_libraries(two_models PRIVATE kws ic)""")
    r = subprocess.run(["cmake", "-S", str(app), "-B", str(app / "build")], capture_output=True, text=True)
    assert r.returncode != 0
    assert f"{other}/kernels/tp_conv_s8.c (model ic) differs from {models}/kws/kernels/tp_conv_s8.c" in \
        re.sub(r"\s*\n\s*", " ", r.stderr).replace("  ", " ")


@needs_cmake
@needs_arm
@pytest.mark.slow
def test_cmake_arm_toolchain(models, tmp_path):
    app = tmp_path / "arm"
    app.mkdir()
    (app / "CMakeLists.txt").write_text(f"""cmake_minimum_required(VERSION 3.13)
project(two_models_arm C)
add_subdirectory("{models}/kws" kws)
add_subdirectory("{models}/ic" ic)
""")
    run(["cmake", "-S", str(app), "-B", str(app / "build"), f"-DCMAKE_TOOLCHAIN_FILE={TOOLCHAIN}",
         "-DTINYPRUNE_CPU_FLAGS=-mcpu=cortex-m7 -mthumb -mfloat-abi=hard -mfpu=fpv5-sp-d16"])
    run(["cmake", "--build", str(app / "build"), "-j2"])
    libs = [app / "build/kws/libkws.a", app / "build/ic/libic.a", app / "build/kws/libtinyprune_kernels.a"]
    defined: list[str] = []
    for lib in libs:
        head = run(["arm-none-eabi-objdump", "-f", str(lib)]).stdout
        assert "elf32-littlearm" in head, head
        nm = run(["arm-none-eabi-nm", "-g", "--defined-only", str(lib)]).stdout
        defined += [line.split()[-1] for line in nm.splitlines() if re.match(r"^[0-9a-f]+ T ", line)]
    assert len(defined) == len(set(defined))       # no function defined twice: linkable together
    # the DSP variants are compiled in (Cortex-M7 has the DSP extension; TINYPRUNE_ARM_DSP defaults ON)
    assert "tp_conv_s8_arm" in defined and "kws_invoke" in defined and "ic_invoke" in defined


FAKE_ZEPHYR = """# The few Zephyr CMake functions a module uses, on plain CMake (the real ones live in zephyr/cmake).
macro(zephyr_library_named name)
  set(ZEPHYR_CURRENT_LIBRARY ${name})
  add_library(${name} STATIC)
  set_property(GLOBAL APPEND PROPERTY ZEPHYR_LIBS ${name})
endmacro()
function(zephyr_library_sources)
  target_sources(${ZEPHYR_CURRENT_LIBRARY} PRIVATE ${ARGN})
endfunction()
function(zephyr_library_compile_definitions)
  target_compile_definitions(${ZEPHYR_CURRENT_LIBRARY} PRIVATE ${ARGN})
endfunction()
function(zephyr_include_directories)
  target_include_directories(zephyr_interface INTERFACE ${ARGN})
endfunction()
add_library(zephyr_interface INTERFACE)
"""


@needs_cmake
@pytest.mark.slow
def test_zephyr_module(models, reference, tmp_path):
    for name in INPUTS:
        yml = (models / name / "zephyr/module.yml").read_text()
        assert re.search(rf"^name: {name}$", yml, re.M) and re.search(r"^build:\n  cmake: zephyr$", yml, re.M)
    modules = "\n".join(f'add_subdirectory("{models}/{n}/zephyr" zephyr_{n})' for n in INPUTS)
    app = _host_project(tmp_path, models, FAKE_ZEPHYR + modules + """
get_property(libs GLOBAL PROPERTY ZEPHYR_LIBS)
target_link_libraries(two_models PRIVATE ${libs} ${libs} zephyr_interface)""")
    run(["cmake", "-S", str(app), "-B", str(app / "build")])
    run(["cmake", "--build", str(app / "build"), "-j2"])
    objs = run(["ar", "t", str(app / "build/zephyr_kws/libtinyprune_kernels.a")]).stdout.split()
    assert len(objs) == len(set(objs)) and "tp_add_s8.c.o" in objs
    assert parse_outputs(run([str(app / "build/two_models")]).stdout) == reference


def test_platformio_library_json(models, tmp_path):
    lib = json.loads((models / "kws/library.json").read_text())
    assert lib["name"] == "kws" and lib["frameworks"] == "*" and lib["platforms"] == "*"
    b = lib["build"]
    assert b["srcDir"] == "." and b["includeDir"] == "." and b["libArchive"] is True
    assert b["srcFilter"] == ["+<kws.c>", "+<kws_weights.c>", "+<kernels/>"]
    # the filter's sources: what PlatformIO compiles; each compiles with only the library's folder included
    srcs = [models / "kws/kws.c", models / "kws/kws_weights.c", *sorted((models / "kws/kernels").rglob("*.c"))]
    for s in srcs:
        run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-c", *b["flags"], f"-I{models / 'kws'}", str(s),
             "-o", str(tmp_path / (s.stem + ".o"))])
    assert (models / "kws" / b["includeDir"] / "kws.h").is_file()


@pytest.mark.slow
def test_arduino_layout_cli(tmp_path, reference):
    out = tmp_path / "kws_arduino"
    r = subprocess.run([sys.executable, "-m", "tinyprune.cli", "codegen", str(KWS), "-o", str(out), "--prefix", "kws",
                        "--layout", "arduino", "--check", "--random", "2"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    assert "bit-exact with TFLite Micro on 2 inputs" in r.stdout
    props = dict(line.split("=", 1) for line in (out / "library.properties").read_text().splitlines()
                 if line and not line.startswith("#"))
    assert props["name"] == "kws" and props["includes"] == "kws.h" and props["dot_a_linkage"] == "true"
    assert props["architectures"] == "*" and re.fullmatch(r"\d+\.\d+\.\d+", props["version"])
    top = sorted(p.name for p in out.iterdir())
    assert top == ["codegen.json", "library.properties", "src"]
    assert json.loads((out / "codegen.json").read_text())["source_dir"] == "src"
    # the Arduino IDE compiles src/ recursively with only src/ on the include path
    srcs = sorted((out / "src").rglob("*.c"))
    assert {p.name for p in srcs} >= {"kws.c", "kws_weights.c", "tp_conv_s8.c"}
    objs = []
    for s in srcs:
        objs.append(str(tmp_path / f"{s.stem}.o"))
        run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-c", f"-I{out / 'src'}", str(s), "-o", objs[-1]])
    main = tmp_path / "main.c"
    main.write_text('#include <stdio.h>\n#include "kws.h"\nint main(void) { static int8_t x[KWS_INPUT_BYTES], '
                    'y[KWS_OUTPUT_BYTES]; unsigned i; for (i = 0; i < sizeof x; i++) x[i] = (int8_t)((i * 7u) & 255u);'
                    ' if (kws_invoke(x, y)) return 1; for (i = 0; i < sizeof y; i++) printf("%02x", (unsigned char)y[i]);'
                    ' return 0; }\n')
    run(["gcc", "-std=c99", f"-I{out / 'src'}", str(main), *objs, "-o", str(tmp_path / "a.out")])
    assert bytes.fromhex(run([str(tmp_path / "a.out")]).stdout) == reference["kws"]


def test_arduino_layout_refuses_cmsis_nn(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tinyprune.cli", "codegen", str(KWS), "-o", str(tmp_path / "o"),
                        "--layout", "arduino", "--kernels", "cmsis-nn", "--cmsis-nn", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "--layout arduino takes the portable kernels only" in r.stderr
    assert not (tmp_path / "o").exists()


def _firmware(args, tmp_path):
    return subprocess.run([sys.executable, "-m", "tinyprune.cli", "firmware", *args], capture_output=True,
                          text=True, timeout=600, cwd=tmp_path)


def test_two_models_firmware_refusals(models, tmp_path):
    r = _firmware([str(models / "kws"), str(models / "ic"), "--board", "mps2-an500", "-o", "fw"], tmp_path)
    assert r.returncode == 2 and "need a harness of your own" in r.stderr, r.stderr
    r = _firmware([str(models / "kws"), str(models / "ic"), "--board", "mps2-an500", "--harness", str(EXAMPLE)],
                  tmp_path)
    assert r.returncode == 2 and "give the firmware's output folder with -o OUT" in r.stderr
    twin = tmp_path / "kws2"
    shutil.copytree(models / "kws", twin)
    r = _firmware([str(models / "kws"), str(twin), "--board", "mps2-an500", "-o", "fw", "--harness", str(EXAMPLE)],
                  tmp_path)
    assert r.returncode == 2 and "both hold a model with the prefix 'kws'" in r.stderr
    other = tmp_path / "ic"
    shutil.copytree(models / "ic", other)
    (other / "kernels/tp_nn.h").write_text((other / "kernels/tp_nn.h").read_text() + "\n")
    r = _firmware([str(models / "kws"), str(other), "--board", "mps2-an500", "-o", "fw", "--harness", str(EXAMPLE)],
                  tmp_path)
    assert r.returncode == 2 and "cannot share one copy of the kernels" in r.stderr
    assert not (tmp_path / "fw").exists()


@needs_arm
@pytest.mark.arm
@pytest.mark.qemu
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="qemu-system-arm not installed")
@pytest.mark.parametrize("shared_arena", [False, True])
def test_two_models_one_firmware_qemu_bit_exact(models, reference, tmp_path, shared_arena):
    from tinyprune.firmware.build import build_firmware
    from tinyprune.firmware.elf import Elf
    defines = {"KWS_NO_STATIC_ARENA": None, "IC_NO_STATIC_ARENA": None} if shared_arena else {}
    res = build_firmware([models / "kws", models / "ic"], "mps2-an500", tmp_path / "fw", harness_dir=EXAMPLE,
                         defines=defines)
    assert res.models == ["kws", "ic"]
    syms = Elf(res.elf).symbols
    arenas = {n: json.loads((models / n / "codegen.json").read_text())["arena_bytes"] for n in INPUTS}
    if shared_arena:
        assert "kws_static_arena" not in syms and "ic_static_arena" not in syms
        assert syms["shared_arena"].size == max(arenas.values())
        assert res.arena_bytes is None
    else:
        assert res.arena_bytes == sum(arenas.values())
        assert "shared_arena" not in syms
    # the kernels are compiled once: one object per kernel source in the standalone Makefile
    srcs = re.findall(r"src/\S+\.c", (tmp_path / "fw/Makefile").read_text())
    assert srcs.count("src/kernels/tp_conv_s8.c") == 1 and "src/kernels/tp_add_s8.c" in srcs
    r = subprocess.run(["qemu-system-arm", "-M", "mps2-an500", "-display", "none", "-serial", "stdio", "-monitor",
                        "none", "-semihosting-config", "enable=on,target=native", "-icount", "shift=7", "-kernel",
                        str(res.elf)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout
    assert parse_outputs(r.stdout) == reference


def test_prefix_of_the_shared_kernels_refused(tmp_path):
    from tinyprune.errors import UserInputError
    with pytest.raises(UserInputError, match="name of the shared kernels library"):
        generate(KWS, tmp_path / "o", prefix="tinyprune_kernels", tflm_arena=False)
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_make_archives_two_models_bit_exact(models, reference, tmp_path):
    """Make (and PlatformIO/Arduino, which archive each library): both libNAME.a hold the shared kernels;
    the linker takes each kernel object once, from the first archive that has it."""
    for name in INPUTS:
        run(["make", "-s", "-C", str(models / name), "CFLAGS=-std=c99 -O2 -Wall -Wextra -Werror"])
    exe = tmp_path / "two_models"
    run(["gcc", "-O2", f"-I{REPO}/firmware/bsp", f"-I{models / 'kws'}", f"-I{models / 'ic'}", str(EXAMPLE / "main.c"),
         str(REPO / "firmware/harness/bsp_host.c"), str(models / "kws/libkws.a"), str(models / "ic/libic.a"),
         "-o", str(exe)])
    assert parse_outputs(run([str(exe)]).stdout) == reference
    # compiling every source of both folders into one program is what fails
    srcs = [str(p) for n in INPUTS for p in sorted((models / n).rglob("*.c"))]
    r = subprocess.run(["gcc", f"-I{REPO}/firmware/bsp", f"-I{models / 'kws'}", f"-I{models / 'ic'}",
                        str(EXAMPLE / "main.c"), str(REPO / "firmware/harness/bsp_host.c"), *srcs, "-o",
                        str(tmp_path / "bad")], capture_output=True, text=True)
    assert r.returncode != 0 and "multiple definition of `tp_conv_s8'" in r.stderr
