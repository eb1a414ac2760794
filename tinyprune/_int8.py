"""TFLite's int8 rounding rule, in one place.

TFLite's QUANTIZE (reference ``AffineQuantize``) computes ``round(x / scale) + zero_point`` in
float32 with ``std::round`` -- ties go away from zero, not to even as ``np.round`` does -- and
saturates to [-128, 127]. Every stage that turns float data into the model's int8 input (the convert
stage's evaluation, ``codegen --check --data``, ``validate``) calls this, so they agree on ties.

May import numpy only.
"""
from __future__ import annotations

import numpy as np


def round_half_away(v: np.ndarray) -> np.ndarray:
    """float32 values rounded half away from zero (``std::round``), still float32."""
    v = np.asarray(v, dtype=np.float32)
    return np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))


def quantize_int8(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """float -> int8 as TFLite's QUANTIZE does: float32 x / scale, rounded half away from zero,
    plus the zero point, saturated to [-128, 127]."""
    r = round_half_away(np.asarray(x, dtype=np.float32) / np.float32(scale))
    return np.clip(r.astype(np.int64) + int(zero_point), -128, 127).astype(np.int8)
