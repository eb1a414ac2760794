"""The firmware harness (firmware/harness/*.c) compiled natively with bsp_host.c and the fake
model, driven over stdin/stdout with well-formed and malformed frames. Every run has a timeout:
the harness must never hang, and must answer each damaged frame with the right error code."""
from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinyprune.validate import protocol as P
from tinyprune.validate.host import build_host

sys.path.insert(0, str(Path(__file__).resolve().parent / "data" / "fake_model"))
import fake_model  # noqa: E402

pytestmark = [pytest.mark.hostcc, pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler")]


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    build = fake_model.make_build(tmp_path_factory.mktemp("fake"), seed=0)
    # -Werror and sanitizers: the harness itself must be warning-free and memory-safe
    exe = build_host(build / "codegen", build / "host-asan",
                     extra_cflags=["-Werror", "-Wextra", "-Wno-unused-parameter", "-fsanitize=address,undefined",
                                   "-fno-sanitize-recover=all", "-g"])
    return exe, build


def converse(exe, data: bytes, timeout: float = 10.0) -> list[P.Frame]:
    r = subprocess.run([str(exe)], input=data, capture_output=True, timeout=timeout)
    assert r.returncode == 0, r.stderr.decode()
    dec = P.FrameDecoder()
    frames = dec.feed(r.stdout)
    assert dec.errors == 0, "the harness sent a damaged frame"
    return frames


def req(cmd, seq, payload=b""):
    return b"\x00" + P.Frame(cmd, seq, payload).encode()


def raw_frame(body: bytes) -> bytes:
    return P.cobs_encode(body + struct.pack("<I", P.crc32(body))) + b"\x00"


def error_of(f: P.Frame) -> int:
    assert f.type == P.ERROR, f
    return f.payload[0]


def test_info_reply_echoes_sequence_and_describes_the_model(harness):
    exe, build = harness
    (f,) = converse(exe, req(P.CMD_INFO, 4242))
    assert (f.type, f.seq) == (P.CMD_INFO | P.REPLY, 4242)
    info = P.parse_info(f.payload)
    assert (info.input_bytes, info.output_bytes, info.arena_bytes, info.num_layers) == (16, 4, 64, 2)
    assert info.board == "host" and info.counter_unit == "ns" and info.kernel_backend == "portable"
    assert info.model_hash == (build / "codegen" / "model.h").read_text().split('MODEL_HASH "')[1][:64]
    from tinyprune.validate.host import host_build_id

    assert info.build_id == host_build_id(exe) and len(info.build_id) == 16  # -DTP_BUILD_ID of the host build


def test_load_infer_read_matches_tflite_micro(harness):
    exe, build = harness
    from tflite_micro.python.tflite_micro import runtime

    x = np.random.default_rng(3).integers(-128, 128, size=16).astype(np.int8)
    data = req(P.CMD_LOAD, 1, struct.pack("<I", 0) + x[:10].tobytes())
    data += req(P.CMD_LOAD, 2, struct.pack("<I", 10) + x[10:].tobytes())
    data += req(P.CMD_INFER, 3, struct.pack("<IB", P.crc32(x.tobytes()), 1))
    data += req(P.CMD_READ, 4, struct.pack("<BIH", 0, 0, 4))
    data += req(P.CMD_READ, 5, struct.pack("<BIH", 1, 0, 8))
    f1, f2, f3, f4, f5 = converse(exe, data)
    assert f1.payload == struct.pack("<II", 0, 10) and f2.payload == struct.pack("<II", 10, 6)
    r, inline_out, inline_counts = P.split_infer(f3.payload)
    assert (r.status, r.output_bytes, r.num_layers) == (0, 4, 2)
    assert len(f3.payload) == 18 + 4 + 2 * 4  # small outputs and the layer counters travel inline
    interp = runtime.Interpreter.from_bytes((build / "model_int8.tflite").read_bytes())
    interp.set_input(x.reshape(1, 16), 0)
    interp.invoke()
    want = interp.get_output(0).tobytes()
    assert f4.payload == b"\x00" + struct.pack("<I", 0) + want
    assert r.output_crc == P.crc32(want) and inline_out == want
    assert [f.seq for f in (f1, f2, f3, f4, f5)] == [1, 2, 3, 4, 5]
    assert f5.payload == b"\x01" + struct.pack("<I", 0) + struct.pack("<2I", *inline_counts)
    assert all(c > 0 for c in inline_counts)


@pytest.mark.parametrize("data,code,seq", [
    (lambda: bytearray(P.Frame(P.CMD_INFO, 9).encode()), None, 9),  # control: no damage
    (lambda: raw_frame(bytes([P.PROTO_VERSION, P.CMD_INFO, 9, 0, 1, 0]) + b"zz"), P.E_BAD_LENGTH, 9),  # len 1, 2 bytes
    (lambda: raw_frame(bytes([P.PROTO_VERSION - 1, P.CMD_INFO, 9, 0, 0, 0])), P.E_BAD_VERSION, 9),
    (lambda: raw_frame(bytes([P.PROTO_VERSION, 0x42, 9, 0, 0, 0])), P.E_UNKNOWN_CMD, 9),
    (lambda: raw_frame(bytes([P.PROTO_VERSION, P.CMD_INFO, 9])), P.E_BAD_LENGTH, 0),  # shorter than a header
    (lambda: b"\x05\x01\x02\x00", P.E_BAD_COBS, 0),  # COBS code runs past the end
    (lambda: raw_frame(bytes([P.PROTO_VERSION, P.CMD_LOAD, 9, 0, 6, 0]) + struct.pack("<I", 15) + b"ab"), P.E_BAD_ARG, 9),
    (lambda: raw_frame(bytes([P.PROTO_VERSION, P.CMD_READ, 9, 0, 7, 0]) + struct.pack("<BIH", 7, 0, 1)), P.E_BAD_ARG, 9),
    (lambda: raw_frame(bytes([P.PROTO_VERSION, P.CMD_READ, 9, 0, 7, 0]) + struct.pack("<BIH", 0, 2, 3)), P.E_BAD_ARG, 9),
    (lambda: raw_frame(bytes([P.PROTO_VERSION, P.CMD_INFER, 9, 0, 5, 0]) + struct.pack("<IB", 1234, 0)), P.E_INPUT_CRC, 9),
])
def test_malformed_frames_get_the_right_error_and_the_next_frame_still_works(harness, data, code, seq):
    exe, _ = harness
    frames = converse(exe, bytes(data()) + req(P.CMD_INFO, 10))
    if code is None:
        assert [f.seq for f in frames] == [9, 10]
        return
    assert len(frames) == 2
    assert error_of(frames[0]) == code and frames[0].seq == seq
    assert frames[1].type == P.CMD_INFO | P.REPLY and frames[1].seq == 10


def test_every_single_bit_flip_of_a_request_is_refused(harness):
    exe, _ = harness
    good = P.Frame(P.CMD_INFO, 77).encode()
    stream = b""
    for bit in range(8 * (len(good) - 1)):
        bad = bytearray(good)
        bad[bit // 8] ^= 1 << (bit % 8)
        stream += bytes(bad) + b"\x00"
    frames = converse(exe, stream + req(P.CMD_INFO, 78))
    assert all(f.type == P.ERROR for f in frames[:-1]), "a damaged request was executed"
    assert frames[-1].seq == 78 and frames[-1].type == P.CMD_INFO | P.REPLY


def test_overlong_frame_and_random_garbage_do_not_hang_or_crash(harness):
    exe, _ = harness
    rng = np.random.default_rng(0)
    garbage = rng.integers(0, 256, size=200_000, dtype=np.uint8).tobytes()
    t = time.monotonic()
    frames = converse(exe, b"\x55" * 5000 + b"\x00" + garbage + req(P.CMD_INFO, 31), timeout=30)
    assert time.monotonic() - t < 30
    assert error_of(frames[0]) == P.E_BAD_LENGTH
    assert all(f.type == P.ERROR for f in frames[:-1])
    assert frames[-1].seq == 31 and frames[-1].type == P.CMD_INFO | P.REPLY


def test_a_stalled_partial_frame_is_dropped_after_the_timeout(harness):
    exe, _ = harness
    p = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        p.stdin.write(P.Frame(P.CMD_INFO, 1).encode()[:5])  # half a frame, no delimiter
        p.stdin.flush()
        time.sleep(0.8)  # > TP_FRAME_TIMEOUT_MS (500 ms)
        p.stdin.write(P.Frame(P.CMD_INFO, 2).encode())  # no leading delimiter: relies on the timeout
        p.stdin.close()
        out = p.stdout.read()
        assert p.wait(timeout=10) == 0
    finally:
        if p.poll() is None:
            p.kill()
    frames = P.FrameDecoder().feed(out)
    # the dropped frame is reported (bad length, seq 0: the host resends without waiting)
    assert [(f.type, f.seq) for f in frames] == [(P.ERROR, 0), (P.CMD_INFO | P.REPLY, 2)]
    assert error_of(frames[0]) == P.E_BAD_LENGTH


def test_selftest_matches_tflite_micro_on_the_documented_input(harness):
    exe, build = harness
    from tflite_micro.python.tflite_micro import runtime

    (f,) = converse(exe, req(P.CMD_SELFTEST, 6))
    r = P.parse_infer(f.payload[:18])
    x = P.selftest_input(16)
    assert struct.unpack("<I", f.payload[18:])[0] == P.crc32(x)
    interp = runtime.Interpreter.from_bytes((build / "model_int8.tflite").read_bytes())
    interp.set_input(np.frombuffer(x, dtype=np.int8).reshape(1, 16), 0)
    interp.invoke()
    assert r.status == 0 and r.output_crc == P.crc32(interp.get_output(0).tobytes())


def test_exit_command_ends_the_program_with_its_status(harness):
    exe, _ = harness
    r = subprocess.run([str(exe)], input=req(P.CMD_EXIT, 3, b"\x07"), capture_output=True, timeout=10)
    assert r.returncode == 7
    (f,) = P.FrameDecoder().feed(r.stdout)
    assert (f.type, f.seq, f.payload) == (P.CMD_EXIT | P.REPLY, 3, b"\x07")
