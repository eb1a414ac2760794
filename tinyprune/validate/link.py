"""A connection to tinyprune firmware over a serial line (a real port, or QEMU / the native host
build through ``socket://127.0.0.1:PORT``), speaking the protocol of ``protocol.py``.

Robustness (docs/protocol.md): every request carries a fresh sequence number and only a reply
with that number is accepted, so an output is never attributed to the wrong sample. Requests
are idempotent, so on a timeout, a damaged frame or a framing error reply the request is sent
again, a bounded number of times. The input is loaded in chunks and INFER carries its CRC; the
device refuses to run on anything else (a reset board has lost its input: the link re-syncs
with ``info``, checks the model hash again and reloads). The output read back is checked
against the CRC the device computed before it was sent.

May import tinyprune.errors and tinyprune.validate.protocol only (plus pyserial, numpy).
"""
from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field

import numpy as np

from tinyprune.errors import ToolError, ValidationFailed
from tinyprune.validate import protocol as P

RETRYABLE = {P.E_BAD_CRC, P.E_BAD_LENGTH, P.E_BAD_COBS}


class DeviceError(ToolError):
    """The device answered a request with an error frame that retrying does not fix."""

    def __init__(self, message, code, hint=None):
        super().__init__(message, hint)
        self.code = code


@dataclass
class Inference:
    output: bytes
    counter: int
    layer_counts: list[int] | None = None
    attempts: int = 1


@dataclass
class LinkStats:
    requests: int = 0
    retries: int = 0
    resyncs: int = 0
    bad_frames: int = 0
    stray_frames: int = 0
    log: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"requests": self.requests, "retries": self.retries, "resyncs": self.resyncs,
                "bad_frames": self.bad_frames, "stray_frames": self.stray_frames}


class Link:
    """A protocol client over any pyserial-like object (``read(n)``, ``write(b)``, ``close()``)."""

    def __init__(self, port, *, name: str = "device", timeout: float = 2.0, retries: int = 6,
                 expected_hash: str | None = None, poll: float = 0.01, infer_timeout: float = 20.0):
        self.port = port
        self.infer_timeout = infer_timeout
        self.name = name
        self.timeout = timeout
        self.retries = retries
        self.expected_hash = expected_hash
        self.poll = poll
        self.stats = LinkStats()
        self.device_info: P.DeviceInfo | None = None
        self._seq = 0
        self._decoder = P.FrameDecoder(check_version=False)  # another version gets a clear error
        self._pending: list[P.Frame] = []
        try:
            port.timeout = poll
        except Exception:  # noqa: BLE001 - plain file-like objects have no timeout
            pass

    # -------------------------------------------------------------- opening
    @classmethod
    def open_url(cls, url: str, baud: int = 115200, *, connect_timeout: float | None = None, **kw) -> "Link":
        """Open a serial port or a ``socket://host:port`` URL. Sockets are retried for
        ``connect_timeout`` seconds (default 10: QEMU and the host build need a moment to listen);
        a serial port that cannot be opened fails at once (default 0)."""
        import serial

        if connect_timeout is None:
            connect_timeout = 10.0 if url.startswith("socket://") else 0.0
        deadline = time.monotonic() + connect_timeout
        while True:
            try:
                port = serial.serial_for_url(url, baudrate=baud, timeout=kw.get("poll", 0.01))
                break
            except (serial.SerialException, OSError, ValueError) as e:
                if time.monotonic() > deadline:
                    raise ToolError(f"cannot open serial link {url}: {e}",
                                    hint="check the port name (e.g. /dev/ttyACM0) and that no other program "
                                         "holds it open") from None
                time.sleep(0.1)
        return cls(port, name=kw.pop("name", url), **kw)

    def close(self) -> None:
        try:
            self.port.close()
        except Exception:  # noqa: BLE001
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -------------------------------------------------------------- transport
    def _read_frames(self, deadline: float) -> list[P.Frame]:
        import serial

        while True:
            if self._pending:
                frames, self._pending = self._pending, []
                return frames
            try:
                # never ask for more than is waiting: read(n) blocks until n bytes or the timeout
                waiting = getattr(self.port, "in_waiting", 0)
                data = self.port.read(waiting if waiting > 1 else 1)
            except (serial.SerialException, OSError) as e:
                raise ToolError(f"serial link to {self.name} lost: {e}",
                                hint="the device (or QEMU) stopped or was disconnected") from None
            if data:
                before = self._decoder.errors
                frames = self._decoder.feed(data)
                self.stats.bad_frames += self._decoder.errors - before
                if frames:
                    return frames
            if time.monotonic() > deadline:
                return []

    def request(self, cmd: int, payload: bytes = b"", *, timeout: float | None = None) -> P.Frame:
        """Send one request and return its reply frame (type cmd|0x80), retrying on timeouts and
        damaged frames; DeviceError for an error reply that retrying cannot fix, ToolError when
        no valid reply came after the retries."""
        timeout = self.timeout if timeout is None else timeout
        self._seq = (self._seq + 1) & 0xFFFF or 1
        seq = self._seq
        wire = P.DELIMITER + P.Frame(cmd, seq, payload).encode()
        what = P.COMMAND_NAMES.get(cmd, hex(cmd))
        self.stats.requests += 1
        last = "no reply"
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats.retries += 1
                self.stats.log.append(f"retry {what} seq {seq}: {last}")
            try:
                self.port.write(wire)
                if hasattr(self.port, "flush"):
                    self.port.flush()
            except Exception as e:  # noqa: BLE001 - pyserial raises several types
                raise ToolError(f"cannot write to {self.name}: {e}") from None
            deadline = time.monotonic() + timeout
            retry = False
            while not retry:
                frames = self._read_frames(deadline)
                if not frames:
                    last = f"timed out after {timeout:g} s"
                    break
                for i, f in enumerate(frames):
                    if f.version != P.PROTO_VERSION:
                        raise ToolError(f"{self.name} speaks protocol version {f.version}, this tinyprune speaks "
                                        f"{P.PROTO_VERSION}", hint="rebuild and flash the firmware with this "
                                                                   "tinyprune version")
                    if f.type == P.ERROR and len(f.payload) >= 1:
                        code = f.payload[0]
                        if code in RETRYABLE:
                            if f.seq == seq:  # the device saw our request damaged: resend now
                                last = f"device reported {P.ERROR_NAMES.get(code, code)}"
                                retry = True
                            else:  # noise, or a stale/replayed report: a timeout covers it
                                self.stats.stray_frames += 1
                            continue
                        if f.seq == seq:
                            self._pending = list(frames[i + 1:])
                            raise DeviceError(f"{self.name} answered {what} with error "
                                              f"{code} ({P.ERROR_NAMES.get(code, 'unknown')})", code)
                        self.stats.stray_frames += 1
                        continue
                    if f.seq == seq and f.type == (cmd | P.REPLY):
                        self._pending = list(frames[i + 1:])
                        return f
                    self.stats.stray_frames += 1  # a late reply to an earlier attempt: never used
        raise ToolError(f"no valid reply from {self.name} to '{what}' after {self.retries + 1} attempts ({last})",
                        hint="check the serial connection, the baud rate and that the board runs tinyprune "
                             "firmware (reset it and retry)")

    # -------------------------------------------------------------- commands
    def info(self) -> P.DeviceInfo:
        f = self.request(P.CMD_INFO)
        try:
            info = P.parse_info(f.payload)
        except P.FrameError as e:
            raise ToolError(f"{self.name}: {e}") from None
        if info.protocol_version != P.PROTO_VERSION:
            raise ToolError(f"{self.name} speaks protocol version {info.protocol_version}, this tinyprune "
                            f"speaks {P.PROTO_VERSION}", hint="rebuild and flash the firmware with this tinyprune")
        self.check_hash(info)
        self.device_info = info
        return info

    def check_hash(self, info: P.DeviceInfo) -> None:
        if self.expected_hash and info.model_hash != self.expected_hash:
            raise ValidationFailed(f"wrong firmware on the board: device runs model {info.model_hash}, "
                                   f"build is {self.expected_hash}",
                                   hint="flash this build's firmware (tinyprune flash BUILD_DIR) and retry")

    def _ensure_info(self) -> P.DeviceInfo:
        return self.device_info or self.info()

    def _load(self, data: bytes) -> None:
        info = self._ensure_info()
        chunk = max(1, info.max_payload - 4)
        for off in range(0, len(data), chunk):
            part = data[off:off + chunk]
            f = self.request(P.CMD_LOAD, struct.pack("<I", off) + part)
            if f.payload != struct.pack("<II", off, len(part)):
                raise ToolError(f"{self.name}: load acknowledged the wrong chunk")

    def _read(self, region: int, size: int) -> bytes:
        info = self._ensure_info()
        chunk = max(1, info.max_payload - 5)
        out = bytearray()
        while len(out) < size:
            n = min(chunk, size - len(out))
            f = self.request(P.CMD_READ, struct.pack("<BIH", region, len(out), n))
            if len(f.payload) != 5 + n or f.payload[:5] != struct.pack("<BI", region, len(out)):
                raise ToolError(f"{self.name}: read reply does not match the request")
            out += f.payload[5:]
        return bytes(out)

    def run(self, x, *, layers: bool = False) -> Inference:
        """Run one inference on int8 input x (bytes or an int8 array of input_bytes elements)."""
        info = self._ensure_info()
        data = _as_bytes(x)
        if len(data) != info.input_bytes:
            raise ValueError(f"input has {len(data)} bytes, the model takes {info.input_bytes}")
        want_crc = P.crc32(data)
        attempts = 0
        while True:
            attempts += 1
            self._load(data)
            try:
                f = self.request(P.CMD_INFER, struct.pack("<IB", want_crc, 1 if layers else 0), timeout=self.infer_timeout)
            except DeviceError as e:
                if e.code == P.E_INPUT_CRC and attempts <= self.retries:  # board reset or lost chunk
                    self.stats.resyncs += 1
                    self.stats.log.append("input CRC mismatch: re-sync with info and reload")
                    self.device_info = None
                    self._ensure_info()
                    continue
                raise
            try:
                r, inline_out, inline_counts = P.split_infer(f.payload)
            except P.FrameError as e:
                raise ToolError(f"{self.name}: {e}") from None
            if r.status != 0:
                raise DeviceError(f"{self.name}: model_invoke returned {r.status}", P.E_MODEL)
            if r.output_bytes != info.output_bytes:
                raise ToolError(f"{self.name}: reply announces {r.output_bytes} output bytes, info said "
                                f"{info.output_bytes}")
            out = inline_out if inline_out is not None else self._read(P.REGION_OUTPUT, r.output_bytes)
            if P.crc32(out) != r.output_crc:
                # the buffer changed under us (e.g. a reset between infer and read): run again
                if attempts <= self.retries:
                    self.stats.resyncs += 1
                    self.device_info = None
                    self._ensure_info()
                    continue
                raise ToolError(f"{self.name}: output read back does not match the CRC of the inference")
            counts = None
            if layers and r.num_layers and inline_counts is not None:
                counts = inline_counts
            elif layers and r.num_layers:
                raw = self._read(P.REGION_LAYERS, 4 * r.num_layers)
                counts = list(struct.unpack(f"<{r.num_layers}I", raw))
            return Inference(out, r.counter, counts, attempts)

    def infer(self, x) -> tuple[np.ndarray, int]:
        """Run one inference: (int8 output array, counter delta in the device's counter unit)."""
        r = self.run(x)
        return np.frombuffer(r.output, dtype=np.int8).copy(), r.counter

    def selftest(self) -> dict:
        info = self._ensure_info()
        f = self.request(P.CMD_SELFTEST, timeout=self.infer_timeout)
        if len(f.payload) != 22:
            raise ToolError(f"{self.name}: selftest reply has {len(f.payload)} bytes, expected 22")
        r = P.parse_infer(f.payload[:18])
        (in_crc,) = struct.unpack("<I", f.payload[18:])
        expected_input = P.selftest_input(info.input_bytes)
        return {"status": r.status, "counter": r.counter, "output_crc": r.output_crc, "input_crc": in_crc,
                "input": expected_input, "input_ok": in_crc == P.crc32(expected_input)}

    def exit(self, status: int = 0) -> None:
        """Ask the firmware to end (QEMU exits with this status)."""
        self.request(P.CMD_EXIT, bytes([status & 0xFF]), timeout=1.0)


def _as_bytes(x) -> bytes:
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x)
    a = np.asarray(x)
    if a.dtype != np.int8:
        raise ValueError(f"input must be int8 (quantised), got {a.dtype}")
    return np.ascontiguousarray(a).tobytes()
