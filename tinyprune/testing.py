"""pytest plugin: fixtures for on-device regression tests (filled in by the validate stage)."""


def pytest_addoption(parser):
    group = parser.getgroup("tinyprune")
    group.addoption("--tinyprune-port", default=None, help="serial port of a board running tinyprune firmware")
    group.addoption("--tinyprune-baud", default=115200, type=int, help="baud rate for --tinyprune-port")
    group.addoption("--tinyprune-sim", default=None, metavar="BUILD_DIR",
                    help="build directory whose firmware to run in QEMU")
