"""Quantisation arithmetic of TFLite Micro, precomputed in Python so the C kernels do integer work only.

Every function reproduces the Prepare() step of the corresponding TFLite Micro kernel bit for bit,
including where TFLM computes in float32 rather than double (noted per function):

  * ``quantize_multiplier``: TFLite's QuantizeMultiplier (frexp, round half away from zero, Q31).
  * conv / depthwise / per-channel FC: effective scale = double(in) * double(w_c) / double(out).
  * per-tensor FC: double(float32(in * w)) / double(out)  (GetQuantizedConvolutionMultipler).
  * activation range: round(f / scale) in float32 + zero point (CalculateActivationRangeQuantized).
  * ADD: left_shift 20, twice the max input scale, QuantizeMultiplierSmallerThanOneExp (double).
  * MUL: double(in1) * double(in2) / double(out).   * MEAN: double(in) / double(out), count folded in.
  * SOFTMAX: PreprocessSoftmaxScaling(beta, in_scale, 5) and diff_min = -CalculateInputRadius(5, shift).
  * LOGISTIC, TANH: in_scale * 2^27 in double, frexp directly, radius CalculateInputRadius(4, shift).
  * LEAKY_RELU: float32(in * alpha / out) and float32(in / out); a negative alpha keeps its sign apart.
  * PRELU: double(in) / double(out) and double(in) * double(alpha) / double(out).
  * HARD_SWISH: float32 scales, int16 multipliers (DownScaleInt32ToInt16Multiplier).
  * RELU: double(float32(in / out)); RELU6: clamp to [zp, quantize(6)]; QUANTIZE: double(in) / double(out).

This module may import only numpy and the standard library (no other tinyprune modules).
"""
from __future__ import annotations

import math

import numpy as np

INT8_MIN, INT8_MAX = -128, 127
MAX_LEFT_SHIFT = 30   # x * 2^shift of an int32 in the kernels (and TFLite's single-rounding limit)


def _round_half_away(x: float) -> int:
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: real = q * 2^shift with q a Q31 significand in [2^30, 2^31)."""
    real = float(real)
    if not math.isfinite(real) or real < 0:
        raise ValueError(f"effective scale {real} is not a finite non-negative number")
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = _round_half_away(q * (1 << 31))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift > MAX_LEFT_SHIFT:
        raise ValueError(f"effective scale {real} needs a left shift of {shift} (> {MAX_LEFT_SHIFT}): "
                         "the scales of this operator's tensors are inconsistent")
    if shift < -31:
        shift, q_fixed = 0, 0
    return int(q_fixed), int(shift)


def _f32(x) -> np.float32:
    return np.float32(x)


def per_channel_multipliers(input_scale: float, filter_scales, output_scale: float, channels: int):
    """CONV_2D / DEPTHWISE_CONV_2D / per-channel FULLY_CONNECTED (PopulateConvolutionQuantizationParams)."""
    fs = [float(_f32(s)) for s in filter_scales]
    mults, shifts = [], []
    for c in range(channels):
        s = fs[c] if len(fs) > 1 else fs[0]
        eff = float(_f32(input_scale)) * s / float(_f32(output_scale))
        m, sh = quantize_multiplier(eff)
        mults.append(m)
        shifts.append(sh)
    return mults, shifts


def fc_per_tensor_multiplier(input_scale: float, filter_scale: float, output_scale: float) -> tuple[int, int]:
    """Per-tensor FULLY_CONNECTED: the product of the scales is taken in float32."""
    prod = float(_f32(input_scale) * _f32(filter_scale))
    return quantize_multiplier(prod / float(_f32(output_scale)))


def _quantize_f32(value: float, scale: float, zero_point: int) -> int:
    tmp = np.float32(value) / np.float32(scale)
    return int(zero_point) + _round_half_away(float(tmp))


def activation_range(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for an int8 output."""
    if activation == "RELU":
        return max(INT8_MIN, _quantize_f32(0.0, scale, zero_point)), INT8_MAX
    if activation == "RELU6":
        return (max(INT8_MIN, _quantize_f32(0.0, scale, zero_point)),
                min(INT8_MAX, _quantize_f32(6.0, scale, zero_point)))
    if activation == "RELU_N1_TO_1":
        return (max(INT8_MIN, _quantize_f32(-1.0, scale, zero_point)),
                min(INT8_MAX, _quantize_f32(1.0, scale, zero_point)))
    if activation == "NONE":
        return INT8_MIN, INT8_MAX
    raise ValueError(f"unsupported fused activation {activation}")


def _smaller_than_one_exp(real: float) -> tuple[int, int]:
    if not 0.0 < real < 1.0:
        raise ValueError(f"multiplier {real} outside (0, 1)")
    m, s = quantize_multiplier(real)
    if s > 0:
        raise ValueError(f"multiplier {real} gives a positive shift")
    return m, s


def add_params(s1: float, zp1: int, s2: float, zp2: int, so: float, zpo: int, activation: str) -> dict:
    left_shift = 20
    twice_max = 2 * float(max(_f32(s1), _f32(s2)))
    m1, sh1 = _smaller_than_one_exp(float(_f32(s1)) / twice_max)
    m2, sh2 = _smaller_than_one_exp(float(_f32(s2)) / twice_max)
    mo, sho = _smaller_than_one_exp(twice_max / ((1 << left_shift) * float(_f32(so))))
    lo, hi = activation_range(activation, so, zpo)
    return dict(input1_offset=-zp1, input2_offset=-zp2, output_offset=zpo, input1_multiplier=m1,
                input1_shift=sh1, input2_multiplier=m2, input2_shift=sh2, output_multiplier=mo,
                output_shift=sho, left_shift=left_shift, act_min=lo, act_max=hi)


def mul_params(s1: float, zp1: int, s2: float, zp2: int, so: float, zpo: int, activation: str) -> dict:
    m, sh = quantize_multiplier(float(_f32(s1)) * float(_f32(s2)) / float(_f32(so)))
    lo, hi = activation_range(activation, so, zpo)
    return dict(input1_offset=-zp1, input2_offset=-zp2, output_offset=zpo, output_multiplier=m,
                output_shift=sh, act_min=lo, act_max=hi)


def calculate_input_radius(input_integer_bits: int, input_left_shift: int, total_signed_bits: int = 31) -> int:
    max_input_rescaled = (1.0 * ((1 << input_integer_bits) - 1) * (1 << (total_signed_bits - input_integer_bits))
                          / (1 << input_left_shift))
    return int(math.floor(max_input_rescaled))


def softmax_params(beta: float, input_scale: float) -> dict:
    """SOFTMAX int8 -> int8 (CalculateSoftmaxParams, double rounding)."""
    k_scaled_diff_integer_bits = 5
    max_real = float((1 << 31) - 1)
    real = min(float(_f32(beta)) * float(_f32(input_scale)) * (1 << (31 - k_scaled_diff_integer_bits)), max_real)
    if not real > 1.0:
        raise ValueError("softmax beta * input scale too small (TFLite requires a multiplier > 1)")
    m, shift = quantize_multiplier(real)
    if shift < 0:
        raise ValueError("softmax: negative left shift")
    diff_min = -calculate_input_radius(k_scaled_diff_integer_bits, shift)
    return dict(input_multiplier=m, input_left_shift=shift, diff_min=diff_min)


def logistic_params(input_scale: float, input_zero_point: int) -> dict:
    k_input_integer_bits = 4
    real = float(_f32(input_scale)) * float(1 << (31 - k_input_integer_bits))
    q, shift = math.frexp(real)
    mult = _round_half_away(q * (1 << 31))
    radius = calculate_input_radius(k_input_integer_bits, shift, 31)
    return dict(input_zero_point=input_zero_point, input_range_radius=radius, input_multiplier=mult,
                input_left_shift=shift)


def _signed_multiplier(real: float) -> tuple[int, int, int]:
    """QuantizeMultiplier of a possibly negative real: (multiplier of |real|, shift, 1 if negative)."""
    m, sh = quantize_multiplier(abs(real))
    return m, sh, int(real < 0)


def leaky_relu_params(in_scale: float, in_zp: int, alpha: float, out_scale: float, out_zp: int) -> dict:
    """LEAKY_RELU int8 (CalculateOpDataLeakyRelu: the scales and alpha multiplied in float32)."""
    a_m, a_s, neg = _signed_multiplier(float(_f32(_f32(in_scale) * _f32(alpha)) / _f32(out_scale)))
    i_m, i_s = quantize_multiplier(float(_f32(in_scale) / _f32(out_scale)))
    return dict(input_zero_point=int(in_zp), output_zero_point=int(out_zp), identity_multiplier=i_m,
                identity_shift=i_s, alpha_multiplier=a_m, alpha_shift=a_s, alpha_negative=neg)


def prelu_params(in_scale: float, in_zp: int, alpha_scale: float, alpha_zp: int, out_scale: float,
                 out_zp: int) -> dict:
    """PRELU int8 (CalculatePreluParams, double)."""
    i_m, i_s = quantize_multiplier(float(_f32(in_scale)) / float(_f32(out_scale)))
    a_m, a_s = quantize_multiplier(float(_f32(in_scale)) * float(_f32(alpha_scale)) / float(_f32(out_scale)))
    return dict(input_zero_point=int(in_zp), alpha_zero_point=int(alpha_zp), output_zero_point=int(out_zp),
                identity_multiplier=i_m, identity_shift=i_s, alpha_multiplier=a_m, alpha_shift=a_s)


def _downscale_int16(m32: int) -> int:
    if m32 >= (2 ** 31 - 1) - (1 << 15):
        return 32767
    return (m32 + (1 << 15)) >> 16


def hard_swish_params(input_scale: float, input_zp: int, output_scale: float, output_zp: int) -> dict:
    hires = np.float32(1.0 / 128.0) * np.float32(input_scale)
    reluish_scale = np.float32(3.0) / np.float32(32768.0)
    out_m, out_e = quantize_multiplier(float(np.float32(hires / np.float32(output_scale))))
    rel_m, rel_e = quantize_multiplier(float(np.float32(hires / reluish_scale)))
    if out_e > 0:
        raise ValueError("hard_swish: output multiplier exponent > 0 (TFLite refuses this model too)")
    return dict(input_zero_point=input_zp, output_zero_point=output_zp,
                reluish_multiplier_fixedpoint_int16=_downscale_int16(rel_m), reluish_multiplier_exponent=rel_e,
                output_multiplier_fixedpoint_int16=_downscale_int16(out_m), output_multiplier_exponent=out_e)


def requantize_params(in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> dict:
    """QUANTIZE int8 -> int8 (reference_ops::Requantize)."""
    m, s = quantize_multiplier(float(_f32(in_scale)) / float(_f32(out_scale)))
    return dict(input_offset=-in_zp, output_offset=out_zp, multiplier=m, shift=s, act_min=INT8_MIN, act_max=INT8_MAX)


def relu_params(in_scale: float, in_zp: int, out_scale: float, out_zp: int, six: bool) -> dict:
    if six:  # TFLM Relu6: a clamp to [zero_point(in), quantize(6.0)] without requantisation
        six_q = int(in_zp) + _round_half_away(float(np.float32(6.0) / np.float32(in_scale)))
        six_q = max(INT8_MIN, min(INT8_MAX, six_q))
        return dict(input_offset=0, output_offset=0, multiplier=1 << 30, shift=1, act_min=int(in_zp), act_max=six_q)
    m, s = quantize_multiplier(float(np.float32(np.float32(in_scale) / np.float32(out_scale))))
    lo = max(INT8_MIN, int(out_zp) + _round_half_away(float(np.float32(0.0) / np.float32(out_scale))))
    return dict(input_offset=-in_zp, output_offset=out_zp, multiplier=m, shift=s, act_min=lo, act_max=INT8_MAX)


def mean_params(in_scale: float, in_zp: int, out_scale: float, out_zp: int, count: int) -> dict:
    """MEAN int8 (QuantizedMeanOrSum): the division by ``count`` folded into the multiplier."""
    m, s = quantize_multiplier(float(_f32(in_scale)) / float(_f32(out_scale)))
    shift = 63 - (64 - int(count).bit_length())  # 63 - clz64(count)
    shift = min(shift, 32, 31 + s)
    m = (m << shift) // count
    return dict(input_zero_point=in_zp, output_zero_point=out_zp, multiplier=int(m), shift=int(s - shift))


# ---- a Python model of the primitives (used by tests to cross-check the C helpers) ----

def srdhm(a: int, b: int) -> int:
    if a == b == -(1 << 31):
        return (1 << 31) - 1
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    v = ab + nudge
    q = abs(v) >> 31
    return q if v >= 0 else -q  # C division truncates toward zero


def rdbpot(x: int, exponent: int) -> int:
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def mbqm(x: int, multiplier: int, shift: int) -> int:
    left = shift if shift > 0 else 0
    right = 0 if shift > 0 else -shift
    return rdbpot(srdhm(x * (1 << left), multiplier), right)
