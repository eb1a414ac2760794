"""pytest plugin (registered as the ``tinyprune`` pytest11 entry point): fixtures for on-device
regression tests over the tinyprune serial protocol (docs/validate.md).

Options::

    --tinyprune-port PORT [--tinyprune-baud N]   a board running tinyprune firmware (or a pyserial URL)
    --tinyprune-sim BUILD_DIR                    run BUILD_DIR's firmware in QEMU
    --tinyprune-host BUILD_DIR                   run BUILD_DIR's model natively (host C compiler)
    --tinyprune-build BUILD_DIR                  the build (with --tinyprune-port: the board must run it;
                                                 alone: tinyprune_build / tinyprune_reference without a device)
    --tinyprune-timeout SECONDS                  how long one inference may take (default 20)

Fixtures (session-scoped; tests that use them are skipped, with the reason, when no device is given)::

    tinyprune_device     a connected link: .info() -> DeviceInfo, .infer(x_int8) -> (y_int8, counter),
                         .run(x_int8, layers=True) -> Inference, .selftest()
    tinyprune_build      the BUILD_DIR given (Path)
    tinyprune_reference  TFLite Micro on BUILD_DIR/model_int8.tflite: .run(x_int8) -> y_int8,
                         .input / .output (shape, scale, zero_point)

Importing this module must stay cheap (pytest loads it in every run): heavy imports are inside
the fixtures. May import tinyprune.errors and tinyprune.validate.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("tinyprune")
    group.addoption("--tinyprune-port", default=None, help="serial port of a board running tinyprune firmware")
    group.addoption("--tinyprune-baud", default=115200, type=int, help="baud rate for --tinyprune-port")
    group.addoption("--tinyprune-sim", default=None, metavar="BUILD_DIR",
                    help="build directory whose firmware to run in QEMU")
    group.addoption("--tinyprune-host", default=None, metavar="BUILD_DIR",
                    help="build directory whose model to run natively (host C compiler)")
    group.addoption("--tinyprune-build", default=None, metavar="BUILD_DIR",
                    help="the build under test; with --tinyprune-port the board must run it (model hash and "
                         "firmware build id checked)")
    group.addoption("--tinyprune-timeout", default=None, type=float, metavar="SECONDS",
                    help="how long one inference may take on the device (default 20)")


def pytest_configure(config):
    _choice(config)  # conflicting options are a usage error before anything runs
    _link_kw(config)


NO_DEVICE = ("no tinyprune device: pass --tinyprune-port PORT (a board), --tinyprune-sim BUILD_DIR (QEMU) "
             "or --tinyprune-host BUILD_DIR (native)")


def _choice(config):
    port = config.getoption("--tinyprune-port")
    sim = config.getoption("--tinyprune-sim")
    host = config.getoption("--tinyprune-host")
    given = [name for name, v in (("--tinyprune-port", port), ("--tinyprune-sim", sim),
                                  ("--tinyprune-host", host)) if v]
    if len(given) > 1:
        raise pytest.UsageError(f"give only one of {', '.join(given)}")
    build = config.getoption("--tinyprune-build")
    if build and (sim or host) and Path(build).resolve() != Path(sim or host).resolve():
        raise pytest.UsageError(f"--tinyprune-build {build} and {given[0]} {sim or host} name different builds")
    if port:
        return "port", build
    if sim:
        return "sim", sim
    if host:
        return "host", host
    return None, build  # a build without a device: tinyprune_build and tinyprune_reference work


def _link_kw(config) -> dict:
    timeout = config.getoption("--tinyprune-timeout")
    if timeout is None:
        return {}
    if not timeout > 0:
        raise pytest.UsageError(f"--tinyprune-timeout {timeout:g}: give the seconds one inference may take (> 0)")
    return {"infer_timeout": timeout}


@pytest.fixture(scope="session")
def tinyprune_build(pytestconfig) -> Path:
    _, build = _choice(pytestconfig)
    if not build:
        pytest.skip("no tinyprune build: pass --tinyprune-sim/--tinyprune-host BUILD_DIR (or --tinyprune-build "
                    "with --tinyprune-port)")
    return Path(build)


@pytest.fixture(scope="session")
def tinyprune_reference(tinyprune_build):
    from tinyprune.validate.core import resolve_build
    from tinyprune.validate.reference import Reference

    return Reference(resolve_build(tinyprune_build).tflite)


@pytest.fixture(scope="session")
def tinyprune_device(pytestconfig):
    target, build = _choice(pytestconfig)
    if target is None:
        pytest.skip(NO_DEVICE)
    from tinyprune.validate.core import open_target, resolve_build
    from tinyprune.validate.link import Link

    link_kw = _link_kw(pytestconfig)
    with contextlib.ExitStack() as stack:
        if target == "port" and not build:
            link = stack.enter_context(Link.open_url(pytestconfig.getoption("--tinyprune-port"),
                                                     pytestconfig.getoption("--tinyprune-baud"), **link_kw))
        else:
            layout = resolve_build(build)
            link = stack.enter_context(open_target(layout, target, port=pytestconfig.getoption("--tinyprune-port"),
                                                   baud=pytestconfig.getoption("--tinyprune-baud"),
                                                   link_kw=link_kw))
        link.info()  # fails fast (wrong firmware, no answer) before any test runs
        yield link
