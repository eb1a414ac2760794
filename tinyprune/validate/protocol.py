"""The tinyprune serial protocol, host side: COBS framing, CRC-32, frame encode/decode and the
payload layouts (version 2; the specification is docs/protocol.md, the firmware side
firmware/harness/protocol.c).

A decoded frame is ``version u8 | type u8 | seq u16 | len u16 | payload | crc32 u32`` (little
endian), the CRC (zlib's CRC-32) over everything before it; on the wire it is COBS-encoded and
followed by one 0x00 byte.

This module is pure byte handling: it may import only the standard library and tinyprune.errors.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

PROTO_VERSION = 2            # 2: info carries the firmware build id (docs/protocol.md, Versioning)
HEADER = struct.Struct("<BBHH")
MAX_PAYLOAD = 1024           # the firmware's TP_MAX_PAYLOAD (info reports the actual value)
DELIMITER = b"\x00"

CMD_INFO, CMD_LOAD, CMD_INFER, CMD_READ, CMD_SELFTEST, CMD_EXIT = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
REPLY = 0x80
ERROR = 0xFF
COMMAND_NAMES = {CMD_INFO: "info", CMD_LOAD: "load", CMD_INFER: "infer", CMD_READ: "read",
                 CMD_SELFTEST: "selftest", CMD_EXIT: "exit"}

E_BAD_CRC, E_BAD_LENGTH, E_UNKNOWN_CMD, E_BAD_VERSION, E_BAD_ARG, E_INPUT_CRC, E_MODEL, E_BAD_COBS = range(1, 9)
ERROR_NAMES = {E_BAD_CRC: "bad CRC", E_BAD_LENGTH: "bad length", E_UNKNOWN_CMD: "unknown command",
               E_BAD_VERSION: "wrong protocol version", E_BAD_ARG: "bad argument",
               E_INPUT_CRC: "input CRC mismatch", E_MODEL: "model failed", E_BAD_COBS: "bad COBS framing"}

REGION_OUTPUT, REGION_LAYERS = 0, 1
SELFTEST_SEED = 0x2545F491


class FrameError(ValueError):
    """A frame that cannot be decoded (bad COBS, CRC, length or version)."""


def crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def cobs_encode(data: bytes) -> bytes:
    out = bytearray([0])
    code_at, code = 0, 1
    last = len(data) - 1
    for i, b in enumerate(data):
        if b == 0:
            out[code_at] = code
            code_at, code = len(out), 1
            out.append(0)
        else:
            out.append(b)
            code += 1
            if code == 0xFF and i != last:  # a full block that ends the data needs no successor
                out[code_at] = code
                code_at, code = len(out), 1
                out.append(0)
    out[code_at] = code
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        i += 1
        if code == 0 or i + code - 1 > n:
            raise FrameError("bad COBS encoding")
        block = data[i:i + code - 1]
        if 0 in block:
            raise FrameError("zero byte inside a COBS frame")
        out += block
        i += code - 1
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    payload: bytes = b""
    version: int = PROTO_VERSION

    def encode(self) -> bytes:
        """The frame's bytes on the wire: COBS(header + payload + crc) + 0x00."""
        if len(self.payload) > 0xFFFF:
            raise ValueError("payload too long")
        body = HEADER.pack(self.version, self.type, self.seq & 0xFFFF, len(self.payload)) + self.payload
        return cobs_encode(body + struct.pack("<I", crc32(body))) + DELIMITER


def decode_frame(encoded: bytes, *, check_version: bool = True) -> Frame:
    """Decode one COBS frame (without its delimiter); FrameError if it is damaged."""
    raw = cobs_decode(encoded)
    if len(raw) < HEADER.size + 4:
        raise FrameError(f"frame too short ({len(raw)} bytes)")
    body, (want,) = raw[:-4], struct.unpack("<I", raw[-4:])
    if crc32(body) != want:
        raise FrameError("CRC mismatch")
    version, ftype, seq, length = HEADER.unpack_from(body)
    if length != len(body) - HEADER.size:
        raise FrameError(f"length field {length} but {len(body) - HEADER.size} payload bytes")
    if check_version and version != PROTO_VERSION:
        raise FrameError(f"protocol version {version}, expected {PROTO_VERSION}")
    return Frame(ftype, seq, bytes(body[HEADER.size:]), version)


class FrameDecoder:
    """Stream decoder: feed bytes as they arrive, get whole frames out. Damaged frames are
    counted and skipped (the next 0x00 resynchronises); a frame longer than ``max_encoded``
    is dropped without buffering it, so garbage never grows memory."""

    def __init__(self, max_encoded: int = 70_000, *, check_version: bool = True):
        self.max_encoded = max_encoded
        self.check_version = check_version
        self._buf = bytearray()
        self._overflow = False
        self.errors = 0

    def reset(self) -> None:
        self._buf.clear()
        self._overflow = False

    def feed(self, data: bytes) -> list[Frame]:
        frames = []
        data = bytes(data)
        start = 0
        while True:
            end = data.find(0, start)
            if end < 0:
                self._append(data[start:])
                break
            self._append(data[start:end])
            if self._overflow:
                self.errors += 1
            elif self._buf:
                try:
                    frames.append(decode_frame(bytes(self._buf), check_version=self.check_version))
                except FrameError:
                    self.errors += 1
            self.reset()
            start = end + 1
        return frames

    def _append(self, part: bytes) -> None:
        if self._overflow or not part:
            return
        if len(self._buf) + len(part) > self.max_encoded:
            self._overflow = True
            self._buf.clear()
        else:
            self._buf += part


# ----------------------------------------------------------------------------- payloads

@dataclass(frozen=True)
class DeviceInfo:
    protocol_version: int
    max_payload: int
    num_layers: int
    arena_bytes: int
    input_bytes: int
    output_bytes: int
    model_hash: str
    board: str
    kernel_backend: str
    counter_unit: str
    build_id: str = "unknown"   # the firmware build id (firmware.json "build_id"); "unknown" if not embedded

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def parse_info(p: bytes) -> DeviceInfo:
    try:
        version, max_payload, layers, arena, nin, nout = struct.unpack_from("<BHHIII", p, 0)
        off = struct.calcsize("<BHHIII")
        model_hash = p[off:off + 64].decode("ascii")
        off += 64
        strings = []
        for _ in range(4):
            n = p[off]
            strings.append(p[off + 1:off + 1 + n].decode("ascii", "replace"))
            off += 1 + n
        if off != len(p) or len(model_hash) != 64:
            raise ValueError("trailing or missing bytes")
    except (struct.error, IndexError, ValueError, UnicodeDecodeError) as e:
        raise FrameError(f"malformed info reply ({e})") from None
    return DeviceInfo(version, max_payload, layers, arena, nin, nout, model_hash, *strings)


@dataclass(frozen=True)
class InferResult:
    status: int
    counter: int
    output_crc: int
    output_bytes: int
    num_layers: int


INFER_HEADER = struct.Struct("<iIIIH")


def parse_infer(p: bytes) -> InferResult:
    """The 18-byte head of an infer (or selftest) reply."""
    if len(p) < INFER_HEADER.size:
        raise FrameError(f"infer reply has {len(p)} bytes, expected at least {INFER_HEADER.size}")
    status, counter, ocrc, nout, layers = INFER_HEADER.unpack_from(p)
    return InferResult(status, counter, ocrc, nout, layers)


def split_infer(p: bytes) -> tuple[InferResult, bytes | None, list[int] | None]:
    """An infer reply: head, the inline output (None: read it with READ) and the inline layer
    counters (None: read them with READ, or not requested)."""
    r = parse_infer(p)
    rest = p[INFER_HEADER.size:]
    if not rest:
        return r, None, None
    if len(rest) == r.output_bytes:
        return r, bytes(rest), None
    if len(rest) == r.output_bytes + 4 * r.num_layers:
        counts = list(struct.unpack_from(f"<{r.num_layers}I", rest, r.output_bytes))
        return r, bytes(rest[:r.output_bytes]), counts
    raise FrameError(f"infer reply has {len(p)} bytes, which fits neither inline layout")


def selftest_input(n: int) -> bytes:
    """The firmware's built-in self-test input: low bytes of xorshift32 from SELFTEST_SEED."""
    x, out = SELFTEST_SEED, bytearray(n)
    for i in range(n):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out[i] = x & 0xFF
    return bytes(out)
