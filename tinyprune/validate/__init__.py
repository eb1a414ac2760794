"""tinyprune.validate: run a build's firmware natively, in QEMU or on a board over the serial
protocol and compare it bit for bit with TFLite Micro.

Public API::

    validate(build_dir, target, *, port=None, baud=115200, data=None, random=None, samples=None,
             baseline=None, max_accuracy_drop=1.0, junit=None, out=None, layers=True, seed=0,
             board=None, link_kw=None) -> ValidationReport       # target: "host" | "sim" | "port"
    check(report)                       # raise ValidationFailed (exit 4) if the report failed
    resolve_build(build_dir) -> BuildLayout
    open_target(layout, target, ...)    # context manager yielding a connected Link
    Link (link.py): .info(), .run(x, layers=False), .infer(x) -> (y, counter), .selftest(), .exit()

Submodules: protocol (framing), link (client), serialport (opening and locking a port), host
(native build), qemu (simulator), reference (TFLite Micro, metrics), core (validate), results
(the report, validate.json and JUnit rendering), cli.
"""
from __future__ import annotations


def __getattr__(name):  # keep ``import tinyprune.validate`` cheap
    if name in ("validate", "ValidationReport", "resolve_build", "open_target", "check", "BuildLayout"):
        from tinyprune.validate import core
        return getattr(core, name)
    if name in ("Link", "DeviceError", "Inference"):
        from tinyprune.validate import link
        return getattr(link, name)
    raise AttributeError(f"module 'tinyprune.validate' has no attribute {name!r}")
