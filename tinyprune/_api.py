"""Callable stage packages: ``tinyprune.prune(...)`` and ``tinyprune.convert(...)`` are the stages' main
functions, but once ``tinyprune.prune`` (the subpackage) has been imported, Python binds that name on
the ``tinyprune`` package to the subpackage itself. ``callable_package`` makes such a subpackage callable
as its main function, so the public API works whatever was imported first.

May import nothing from tinyprune.
"""
from __future__ import annotations

import sys
import types


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return getattr(self, self._main)(*args, **kwargs)


def callable_package(name: str, main: str) -> None:
    """Make the module ``name`` (already in sys.modules) call its attribute ``main`` when called."""
    module = sys.modules[name]
    module.__class__ = _CallablePackage
    module._main = main
