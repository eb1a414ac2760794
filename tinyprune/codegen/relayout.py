"""Weights re-laid-out at code-generation time for the DSP kernels ("fast weights").

``conv_filter_x16(w)`` turns a CONV_2D filter [out_c, kh, kw, in_c] (int8) into the int16 layout of
``tp_conv_s8_x16`` (firmware/kernels/tp_nn.h): each filter row of K = kh*kw*in_c elements, zero-
padded to 4 * ceil(K / 4), in groups of 4 stored as (k0, k2, k1, k3) -- the halfword order that
SXTB16 / SXTB16-ROR8 would produce from 4 int8, so the kernel loads a group's two SMLAD operands
with one LDRD instead of LDR + 2 SXTB16. Twice the flash of the int8 filter (plus the padding).

This module may import only numpy and tinyprune.codegen (ir, accounting).
"""
from __future__ import annotations

import numpy as np

GROUP_ORDER = (0, 2, 1, 3)     # stored position p holds element GROUP_ORDER[p] of the group


def conv_filter_x16(w: np.ndarray) -> np.ndarray:
    """[out_c, kh, kw, in_c] int8 -> flat int16 array of out_c * 4 * ceil(K / 4) elements."""
    w = np.asarray(w)
    if w.ndim != 4:
        raise ValueError(f"a CONV_2D filter is [out_c, kh, kw, in_c], got shape {w.shape}")
    rows = w.reshape(w.shape[0], -1).astype(np.int16)
    k = rows.shape[1]
    padded = np.zeros((rows.shape[0], -(-k // 4) * 4), np.int16)
    padded[:, :k] = rows
    return padded.reshape(rows.shape[0], -1, 4)[:, :, list(GROUP_ORDER)].ravel()
