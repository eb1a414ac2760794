"""tinyprune.pipeline: ``tinyprune build`` and its Python twin ``tinyprune.build(...)``.

    build(model="example", board="nucleo-f746", **BuildConfig fields) -> BuildResult
"""
from tinyprune.pipeline.build import BuildConfig, BuildResult, build

__all__ = ["build", "BuildConfig", "BuildResult"]
