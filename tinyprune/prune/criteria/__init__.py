"""Importance criteria, one module each, behind ``base.Criterion``; importing this package
registers them all. ``get(name)`` -> instance, ``names()`` -> valid names."""
import importlib
import pkgutil

from tinyprune.prune.criteria.base import REGISTRY, Context, Criterion, get, names, register  # noqa: F401

for _m in pkgutil.iter_modules(__path__):
    if _m.name != "base":
        importlib.import_module(f"{__name__}.{_m.name}")
