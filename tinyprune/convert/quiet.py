"""Silence TensorFlow / onnx2tf chatter (C++ logs on fd 2, coloured prints on stdout) unless --debug.

May import only the standard library and tinyprune.errors.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")


@contextlib.contextmanager
def quiet(debug: bool = False):
    """Redirect fds 1/2 and sys.stdout/sys.stderr into a buffer; yields a callable returning what was
    captured (to put in an error message). With ``debug`` nothing is redirected."""
    if debug:
        yield lambda: ""
        return
    sys.stdout.flush()
    sys.stderr.flush()
    log = tempfile.TemporaryFile(mode="w+b")
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    py_out, py_err = sys.stdout, sys.stderr
    text = io.StringIO()
    try:
        for fd in (1, 2):
            os.dup2(log.fileno(), fd)
        sys.stdout = sys.stderr = text

        def captured() -> str:
            log.flush()
            log.seek(0)
            return log.read().decode("utf-8", "replace") + text.getvalue()
        yield captured
    finally:
        try:
            sys.stdout.flush()
        except Exception:  # noqa: BLE001
            pass
        sys.stdout, sys.stderr = py_out, py_err
        for fd, dup in saved.items():
            os.dup2(dup, fd)
            os.close(dup)
        log.close()


def import_tensorflow(debug: bool = False):
    """Import TensorFlow with its start-up logging silenced; returns the module."""
    with quiet(debug):
        import tensorflow as tf
        try:
            import absl.logging
            absl.logging.set_verbosity(absl.logging.ERROR)
        except ImportError:  # pragma: no cover
            pass
        tf.get_logger().setLevel("ERROR")
        tf.autograph.set_verbosity(0)
    return tf
