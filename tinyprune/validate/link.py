"""A connection to tinyprune firmware over a serial line (a real port, or QEMU / the native host
build through ``socket://127.0.0.1:PORT``), speaking the protocol of ``protocol.py``.

Robustness (docs/protocol.md): every request carries a fresh sequence number and only a reply
with that number is accepted, so an output is never attributed to the wrong sample. Requests
are idempotent, so on a timeout, a damaged frame or a framing error reply the request is sent
again, a bounded number of times. The input is loaded in chunks and INFER carries its CRC; the
device refuses to run on anything else (a reset board has lost its input: the link re-syncs
with ``info``, checks the model hash again and reloads). The output read back is checked
against the CRC the device computed before it was sent.

A noisy line is not a dead one: a damaged reply (or the device reporting our request damaged)
triggers an immediate resend, and up to ``retries + noise_retries`` attempts are made, but only
``retries`` attempts that got no byte back at all. The input goes out in ``chunk``-byte LOAD
requests, each acknowledged and retried on its own, so a 1 % byte error rate still gets through.
After any silence the device may have been reset, re-flashed or swapped: its identity (model hash
and firmware build id, ``info``) is checked again before an output is accepted.

May import tinyprune.errors, tinyprune.validate.protocol and tinyprune.validate.serialport only
(plus pyserial, numpy).
"""
from __future__ import annotations

import os
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


DEFAULT_CHUNK = 64        # LOAD/READ bytes per request: at 1 % byte errors ~1 in 3 attempts gets through
DEFAULT_NOISE_RETRIES = 40
DEFAULT_INFER_TIMEOUT = 20.0
RX_SAMPLE = 48            # bytes of unusable input kept to say what came back instead of a reply


class Link:
    """A protocol client over any pyserial-like object (``read(n)``, ``write(b)``, ``close()``).

    ``expected_hash`` / ``expected_build``: the model hash and firmware build id the device must
    report (None: not checked); ``build_label`` names the build in the wrong-firmware message."""

    def __init__(self, port, *, name: str = "device", timeout: float = 2.0, retries: int = 6,
                 noise_retries: int = DEFAULT_NOISE_RETRIES, chunk: int = DEFAULT_CHUNK,
                 expected_hash: str | None = None, expected_build: str | None = None,
                 build_label: str | None = None, poll: float = 0.01, infer_timeout: float = DEFAULT_INFER_TIMEOUT):
        self.port = port
        self.infer_timeout = infer_timeout
        self.name = name
        self.timeout = timeout
        self.retries = retries
        self.noise_retries = noise_retries
        self.chunk = max(1, int(chunk))
        self.expected_hash = expected_hash
        self.expected_build = expected_build
        self.build_label = build_label
        self.poll = poll
        self.stats = LinkStats()
        self.device_info: P.DeviceInfo | None = None
        self.reported_info: P.DeviceInfo | None = None
        # a random start: two processes on one line (should the port lock not hold) do not share numbers
        self._seq = int.from_bytes(os.urandom(2), "little")
        self._suspect = False     # silence seen since the last identity check: re-check before trusting
        self._rx_sample = bytearray()   # bytes of the current attempt, to say what came back
        self._rx_frames = 0
        self._decoder = P.FrameDecoder(check_version=False)  # another version gets a clear error
        self._pending: list[P.Frame] = []
        try:
            port.timeout = poll
        except Exception:  # noqa: BLE001 - plain file-like objects have no timeout
            pass

    # -------------------------------------------------------------- opening
    @classmethod
    def open_url(cls, url: str, baud: int = 115200, *, connect_timeout: float | None = None, **kw) -> "Link":
        """Open a serial port (exclusively locked, see serialport.py) or a ``socket://host:port``
        URL. Sockets are retried for ``connect_timeout`` seconds (default 10: QEMU and the host
        build need a moment to listen); a serial port that cannot be opened fails at once."""
        from tinyprune.validate.serialport import open_port

        port = open_port(url, baud, poll=kw.get("poll", 0.01), connect_timeout=connect_timeout)
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
                if len(self._rx_sample) < RX_SAMPLE:
                    self._rx_sample += data[:RX_SAMPLE - len(self._rx_sample)]
                before = self._decoder.errors
                frames = self._decoder.feed(data)
                self.stats.bad_frames += self._decoder.errors - before
                if frames or self._decoder.errors != before:  # a damaged frame: the caller resends now
                    return frames
            if time.monotonic() > deadline:
                return []

    def request(self, cmd: int, payload: bytes = b"", *, timeout: float | None = None) -> P.Frame:
        """Send one request and return its reply frame (type cmd|0x80), resending on timeouts and
        damaged frames; DeviceError for an error reply that resending cannot fix, ToolError when
        no valid reply came: after ``retries`` silent attempts, or ``retries + noise_retries`` in all."""
        timeout = self.timeout if timeout is None else timeout
        self._seq = (self._seq + 1) & 0xFFFF or 1  # 0 is the device's "header unreadable"
        seq = self._seq
        # a delimiter before (flushes a partial frame) and an extra one after (if the frame's own
        # delimiter is damaged, the frame still ends: a damaged frame is answered, not waited out)
        wire = P.DELIMITER + P.Frame(cmd, seq, payload).encode() + P.DELIMITER
        what = P.COMMAND_NAMES.get(cmd, hex(cmd))
        self.stats.requests += 1
        last, attempts, silent = "no reply", 0, 0
        while True:
            if silent > self.retries or attempts > self.retries + self.noise_retries:
                raise ToolError(f"no valid reply from {self.name} to '{what}' after {attempts} attempts ({last})",
                                hint="check the serial connection, the baud rate and that the board runs tinyprune "
                                     "firmware (reset it and retry)")
            if attempts:
                self.stats.retries += 1
                self.stats.log.append(f"retry {what} seq {seq}: {last}")
            attempts += 1
            self._rx_sample.clear()
            self._rx_frames = 0
            try:
                self.port.write(wire)
                if hasattr(self.port, "flush"):
                    self.port.flush()
            except Exception as e:  # noqa: BLE001 - pyserial raises several types
                raise ToolError(f"cannot write to {self.name}: {e}") from None
            reply, last = self._await(seq, cmd, what, timeout, wire)
            if reply is not None:
                return reply
            if last.startswith("timed out") and not self._rx_sample:
                silent += 1
                self._suspect = True  # the device went quiet: it may come back as something else

    def _await(self, seq: int, cmd: int, what: str, timeout: float, wire: bytes) -> tuple[P.Frame | None, str]:
        """Wait for the reply to attempt ``seq``: (frame, "") or (None, why to resend)."""
        deadline = time.monotonic() + timeout
        while True:
            errors = self._decoder.errors
            frames = self._read_frames(deadline)
            if not frames and self._decoder.errors == errors:
                return None, f"timed out after {timeout:g} s; {self._describe_rx(wire)}"
            resend = None if self._decoder.errors == errors else "a damaged frame came back"
            self._rx_frames += len(frames)
            for i, f in enumerate(frames):
                if f.version != P.PROTO_VERSION:
                    raise ValidationFailed(f"{self.name} runs firmware speaking protocol version {f.version}, this "
                                           f"tinyprune speaks {P.PROTO_VERSION}",
                                           hint="rebuild the firmware with this tinyprune (tinyprune build or "
                                                "tinyprune firmware) and flash it")
                if f.type == P.ERROR and len(f.payload) >= 1:
                    code = f.payload[0]
                    if code in RETRYABLE:
                        # our request arrived damaged (its seq may be damaged too, or 0 when the header
                        # was unreadable): resend now; a late report about an earlier frame costs at
                        # most one extra, harmless resend (requests are idempotent)
                        resend = f"device reported {P.ERROR_NAMES.get(code, code)}"
                        continue
                    if f.seq == seq:
                        self._pending = list(frames[i + 1:])
                        raise DeviceError(f"{self.name} answered {what} with error "
                                          f"{code} ({P.ERROR_NAMES.get(code, 'unknown')})", code)
                    self.stats.stray_frames += 1
                    continue
                if f.seq == seq and f.type == (cmd | P.REPLY):
                    self._pending = list(frames[i + 1:])
                    return f, ""
                self.stats.stray_frames += 1  # a late reply to an earlier attempt: never used
            if resend:
                return None, resend

    def _describe_rx(self, wire: bytes) -> str:
        """What came back during the last attempt instead of a reply (for the no-reply error)."""
        rx = bytes(self._rx_sample)
        if not rx:
            return "nothing came back"
        if rx.strip(b"\x00") and rx.strip(b"\x00") in wire:
            return (f"the line echoed the request back ({len(rx)} bytes): a loopback, or a terminal program "
                    "attached to the port?")
        if self._rx_frames:
            return f"only {self._rx_frames} stale frame(s), replies to earlier requests, came back"
        shown = rx[:RX_SAMPLE]
        printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in shown)
        if printable >= 0.8 * len(shown):
            return (f"text came back instead of tinyprune frames: {shown.decode('ascii', 'replace')!r} (another "
                    "program on the board, or a wrong baud rate?)")
        return (f"bytes came back that are not tinyprune frames: {shown.hex(' ')} (wrong baud rate, or not "
                "tinyprune firmware?)")

    # -------------------------------------------------------------- commands
    def info(self) -> P.DeviceInfo:
        f = self.request(P.CMD_INFO)
        try:
            info = P.parse_info(f.payload)
        except P.FrameError as e:
            raise ToolError(f"{self.name}: {e}") from None
        if info.protocol_version != P.PROTO_VERSION:
            raise ValidationFailed(f"{self.name} runs firmware speaking protocol version {info.protocol_version}, "
                                   f"this tinyprune speaks {P.PROTO_VERSION}",
                                   hint="rebuild the firmware with this tinyprune and flash it")
        self.check_identity(info)
        self.device_info = info
        self._suspect = False
        return info

    def check_identity(self, info: P.DeviceInfo) -> None:
        """ValidationFailed unless the device runs the expected model and firmware build."""
        self.reported_info = info  # what the device said it is, kept even when it is refused
        hint = "flash this build's firmware (tinyprune flash BUILD_DIR) and retry"
        if self.expected_hash and info.model_hash != self.expected_hash:
            raise ValidationFailed(f"wrong firmware on the board: device runs model {info.model_hash}, "
                                   f"build is {self.expected_hash}", hint=hint)
        if self.expected_build and info.build_id != self.expected_build:
            label = f" ({self.build_label})" if self.build_label else ""
            raise ValidationFailed(f"wrong firmware on the board: device runs firmware build {info.build_id} (board "
                                   f"{info.board}, kernels {info.kernel_backend}), the build folder's firmware is "
                                   f"{self.expected_build}{label}; same model, but another board, kernel set or "
                                   f"build option", hint=hint)

    check_hash = check_identity  # the name before build ids were checked

    def _recheck(self) -> None:
        """After silence (a reset, a re-flash, another device behind the port), ask the device who
        it is before one of its outputs is accepted: a swapped firmware is wrong firmware, not a
        kernel bug."""
        if self._suspect:
            self.stats.resyncs += 1
            self.stats.log.append("silence on the line: identity checked again")
            self.info()

    def _ensure_info(self) -> P.DeviceInfo:
        return self.device_info or self.info()

    def _load(self, data: bytes) -> None:
        info = self._ensure_info()
        chunk = max(1, min(self.chunk, info.max_payload - 4))
        for off in range(0, len(data), chunk):
            part = data[off:off + chunk]
            f = self.request(P.CMD_LOAD, struct.pack("<I", off) + part)
            if f.payload != struct.pack("<II", off, len(part)):
                raise ToolError(f"{self.name}: load acknowledged the wrong chunk")

    def _read(self, region: int, size: int) -> bytes:
        info = self._ensure_info()
        chunk = max(1, min(self.chunk, info.max_payload - 5))
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
            self._recheck()
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
        self._recheck()
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
