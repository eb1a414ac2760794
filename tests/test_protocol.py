"""The serial protocol's host side (tinyprune.validate.protocol): COBS, CRC, frames, stream
decoding. Pure Python; the firmware side is exercised in test_protocol_c.py."""
from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyprune.validate import protocol as P

# Published COBS examples (Cheshire & Baker; the Wikipedia "Consistent Overhead Byte Stuffing" table).
COBS_VECTORS = [
    (b"", b"\x01"),
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
    (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255))),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
]


@pytest.mark.parametrize("raw,enc", COBS_VECTORS)
def test_cobs_known_vectors(raw, enc):
    assert P.cobs_encode(raw) == enc
    assert P.cobs_decode(enc) == raw


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_cobs_round_trip_and_no_zero_bytes(data):
    enc = P.cobs_encode(data)
    assert 0 not in enc
    assert len(enc) <= len(data) + len(data) // 254 + 1
    assert P.cobs_decode(enc) == data


def test_crc_is_zlib_crc32():
    assert P.crc32(b"123456789") == 0xCBF43926  # the CRC-32/ISO-HDLC check value
    assert P.crc32(b"") == 0


def test_frame_layout_is_exactly_as_documented():
    wire = P.Frame(P.CMD_LOAD, 0x1234, b"\x00\x01\x02").encode()
    assert wire.endswith(b"\x00") and 0 not in wire[:-1]
    raw = P.cobs_decode(wire[:-1])
    body = bytes([2, 0x02, 0x34, 0x12, 3, 0]) + b"\x00\x01\x02"  # version 2
    assert raw == body + struct.pack("<I", zlib.crc32(body))


@settings(max_examples=200, deadline=None)
@given(ftype=st.integers(0, 255), seq=st.integers(0, 0xFFFF), payload=st.binary(max_size=1100))
def test_frame_round_trip(ftype, seq, payload):
    f = P.Frame(ftype, seq, payload)
    dec = P.FrameDecoder()
    assert dec.feed(f.encode()) == [f]
    assert dec.errors == 0


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=300), seq=st.integers(0, 0xFFFF), data=st.data())
def test_a_frame_with_one_flipped_bit_is_rejected(payload, seq, data):
    wire = bytearray(P.Frame(P.CMD_INFER, seq, payload).encode())
    bit = data.draw(st.integers(0, 8 * (len(wire) - 1) - 1))  # any bit before the delimiter
    wire[bit // 8] ^= 1 << (bit % 8)
    dec = P.FrameDecoder()
    assert dec.feed(bytes(wire)) == []
    assert dec.errors >= 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4000))
def test_garbage_never_crashes_the_decoder_and_yields_only_valid_frames(garbage):
    dec = P.FrameDecoder(max_encoded=2000)
    for f in dec.feed(garbage):
        # anything that comes out must re-encode to bytes that were on the line
        assert f.encode()[:-1] in garbage
    good = P.Frame(P.CMD_INFO | P.REPLY, 77, b"hello")
    frames = dec.feed(b"\x00" + good.encode())  # one delimiter resynchronises
    assert frames[-1] == good


def test_decoder_handles_bytes_split_anywhere():
    frames = [P.Frame(P.CMD_READ | P.REPLY, i, bytes(range(i, i + 40))) for i in range(5)]
    stream = b"".join(f.encode() for f in frames)
    for step in (1, 2, 3, 7, 64):
        dec = P.FrameDecoder()
        got = []
        for i in range(0, len(stream), step):
            got += dec.feed(stream[i:i + step])
        assert got == frames


def test_overlong_frame_is_dropped_without_buffering_it():
    dec = P.FrameDecoder(max_encoded=100)
    assert dec.feed(b"\x55" * 5000) == []
    assert len(dec._buf) == 0
    good = P.Frame(1, 1, b"x")
    assert dec.feed(b"\x00" + good.encode()) == [good]
    assert dec.errors == 1


@pytest.mark.parametrize("mutate,reason", [
    (lambda body: body[:3], "too short"),
    (lambda body: body[:4] + bytes([body[4] + 1]) + body[5:], "length field"),
    (lambda body: bytes([1]) + body[1:], "version"),
])
def test_decode_frame_rejects_bad_length_and_version(mutate, reason):
    body = bytes(P.HEADER.pack(P.PROTO_VERSION, 0x81, 5, 2)) + b"ab"
    bad = mutate(body)
    wire = P.cobs_encode(bad + struct.pack("<I", P.crc32(bad)))
    with pytest.raises(P.FrameError, match=reason):
        P.decode_frame(wire)


def test_info_payload_round_trip_and_malformed_info():
    hash_ = "ab" * 32
    p = struct.pack("<BHHIII", 2, 1024, 3, 5000, 490, 12) + hash_.encode()
    for s in ("mps2-an500", "portable", "instructions", "0123456789abcdef"):
        p += bytes([len(s)]) + s.encode()
    info = P.parse_info(p)
    assert (info.arena_bytes, info.input_bytes, info.output_bytes, info.num_layers) == (5000, 490, 12, 3)
    assert (info.model_hash, info.board, info.kernel_backend, info.counter_unit, info.build_id) == \
        (hash_, "mps2-an500", "portable", "instructions", "0123456789abcdef")
    with pytest.raises(P.FrameError):
        P.parse_info(p[:-1])
    with pytest.raises(P.FrameError):
        P.parse_info(p + b"\x00")


def test_selftest_input_is_xorshift32():
    x, want = P.SELFTEST_SEED, []
    for _ in range(4):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        want.append(x & 0xFF)
    assert list(P.selftest_input(4)) == want


def test_link_refuses_old_firmware_with_a_rebuild_message():
    """Firmware of protocol version 1 answers a version-2 request with a version-1 error frame
    ('wrong protocol version'): wrong firmware (exit 4), and the user is told to rebuild it."""
    from tinyprune.errors import ValidationFailed
    from tinyprune.validate.link import Link

    class OldFirmware:
        def __init__(self):
            self.out = b""

        def write(self, data):
            seq = P.decode_frame(data.strip(b"\x00"), check_version=False).seq
            self.out += P.Frame(P.ERROR, seq, bytes([P.E_BAD_VERSION, P.CMD_INFO]), version=1).encode()

        def read(self, n):
            data, self.out = self.out[:n], self.out[n:]
            return data

    with pytest.raises(ValidationFailed, match="speaking protocol version 1, this tinyprune speaks 2") as e:
        Link(OldFirmware(), name="dev", timeout=0.2).info()
    assert "rebuild the firmware" in str(e.value) and e.value.exit_code == 4


def test_link_gives_up_after_bounded_retries_on_silence():
    from tinyprune.errors import ToolError
    from tinyprune.validate.link import Link

    class Silent:
        writes = 0

        def write(self, data):
            Silent.writes += 1

        def read(self, n):
            return b""

    with pytest.raises(ToolError, match=r"no valid reply from dev to 'info' after 3 attempts \(timed out"):
        Link(Silent(), name="dev", timeout=0.05, retries=2).info()
    assert Silent.writes == 3
