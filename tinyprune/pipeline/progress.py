"""Progress display for long stages: a live spinner with elapsed time on a terminal,
plain timestamped log lines otherwise (CI logs, pipes). May not import tinyprune stages."""
from __future__ import annotations

import contextlib
import sys
import threading
import time


class Progress:
    def __init__(self, total_stages: int, stream=None, enabled: bool = True, force_plain: bool | None = None):
        self.total = total_stages
        self.stream = stream or sys.stderr
        self.enabled = enabled
        isatty = getattr(self.stream, "isatty", lambda: False)()
        self.plain = (not isatty) if force_plain is None else force_plain
        self.index = 0
        self.timings: dict[str, float] = {}
        self.status: dict[str, str] = {}

    def _write(self, text: str) -> None:
        if self.enabled:
            self.stream.write(text)
            self.stream.flush()

    def log(self, message: str) -> None:
        self._write(("\r\033[K" if not self.plain else "") + f"    {message}\n")

    @contextlib.contextmanager
    def stage(self, name: str, description: str):
        """Run one stage; the body may call ``set_status('cached')`` through the yielded handle."""
        self.index += 1
        label = f"[{self.index}/{self.total}] {name}: {description}"
        handle = _StageHandle()
        start = time.monotonic()
        stop = threading.Event()
        spinner = None
        if self.plain:
            self._write(f"{time.strftime('%H:%M:%S')} {label} ...\n")
        elif self.enabled:
            spinner = threading.Thread(target=self._spin, args=(label, start, stop), daemon=True)
            spinner.start()
        outcome = "failed"
        try:
            yield handle
            outcome = handle.status or "done"
        finally:
            stop.set()
            if spinner:
                spinner.join()
            elapsed = time.monotonic() - start
            self.timings[name] = elapsed
            self.status[name] = outcome
            note = f" - {handle.note}" if handle.note else ""
            if self.plain:
                self._write(f"{time.strftime('%H:%M:%S')} {label}: {outcome} ({elapsed:.1f} s){note}\n")
            else:
                self._write(f"\r\033[K{label}: {outcome} ({elapsed:.1f} s){note}\n")

    def _spin(self, label, start, stop):
        frames = "|/-\\"
        i = 0
        while not stop.wait(0.2):
            self._write(f"\r\033[K{frames[i % 4]} {label} ({time.monotonic() - start:.0f} s)")
            i += 1


class _StageHandle:
    def __init__(self):
        self.status: str | None = None
        self.note: str = ""

    def set_status(self, status: str, note: str = "") -> None:
        self.status = status
        self.note = note
