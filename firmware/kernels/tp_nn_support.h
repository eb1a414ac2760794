/* Internal integer helpers shared by the reference kernels: the fixed-point primitives of
 * gemmlowp/TFLite (double rounding, as TFLite Micro uses them), written for C99.
 * Not part of the public API; included only by kernel sources. */
#ifndef TP_NN_SUPPORT_H
#define TP_NN_SUPPORT_H

#include <stdint.h>
#include "tp_nn_types.h"

#define TP_MAX(a, b) ((a) > (b) ? (a) : (b))
#define TP_MIN(a, b) ((a) < (b) ? (a) : (b))
#define TP_CLAMP(x, lo, hi) TP_MIN(TP_MAX((x), (lo)), (hi))

/* gemmlowp SaturatingRoundingDoublingHighMul: round(a * b / 2^31), saturating the one overflow case. */
static inline int32_t tp_srdhm(int32_t a, int32_t b)
{
    int64_t ab;
    int64_t nudge;
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    ab = (int64_t)a * (int64_t)b;
    nudge = ab >= 0 ? (int64_t)(1 << 30) : (int64_t)(1 - (1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* gemmlowp RoundingDivideByPOT: x / 2^exponent rounded half away from zero, 0 <= exponent <= 31. */
static inline int32_t tp_rdbpot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    /* arithmetic shift of a negative value: implementation-defined in C99, arithmetic on every
     * compiler we target (gcc/clang/armcc); written as division-free shift like gemmlowp. */
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLite MultiplyByQuantizedMultiplier (double rounding): x * multiplier * 2^shift. The left shift
 * is done by multiplication like TFLite (callers guarantee it does not overflow). */
static inline int32_t tp_mbqm(int32_t x, int32_t multiplier, int32_t shift)
{
    const int left_shift = shift > 0 ? (int)shift : 0;
    const int right_shift = shift > 0 ? 0 : (int)-shift;
    return tp_rdbpot(tp_srdhm((int32_t)((uint32_t)x << left_shift), multiplier), right_shift);
}

/* Output channel ch of a CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED reference: the accumulator
 * plus the bias (if any), requantised with the channel's (or the broadcast) multiplier and shift,
 * plus the output offset, clamped to the fused activation. */
static inline int8_t tp_requant_channel(int32_t acc, const int32_t *bias, int32_t ch, const tp_quant_params *q,
                                        int32_t output_offset, tp_activation act)
{
    const int32_t qi = q->per_channel ? ch : 0;
    if (bias) {
        acc += bias[ch];
    }
    acc = tp_mbqm(acc, q->multiplier[qi], q->shift[qi]) + output_offset;
    return (int8_t)TP_CLAMP(acc, act.min, act.max);
}

/* MultiplyByQuantizedMultiplierSmallerThanOneExp (shift <= 0). */
static inline int32_t tp_mbqm_lt1(int32_t x, int32_t multiplier, int32_t shift)
{
    return tp_rdbpot(tp_srdhm(x, multiplier), (int)-shift);
}

/* MultiplyByQuantizedMultiplierGreaterThanOne (left_shift >= 0). */
static inline int32_t tp_mbqm_gt1(int32_t x, int32_t multiplier, int32_t left_shift)
{
    return tp_srdhm((int32_t)((uint32_t)x << left_shift), multiplier);
}

/* gemmlowp SaturatingRoundingMultiplyByPOT with a positive exponent (saturating left shift). */
static inline int32_t tp_sat_lshift(int32_t x, int exponent)
{
    const int32_t threshold = (int32_t)(((int64_t)1 << (31 - exponent)) - 1);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

/* Q0.31 fixed point exp(a) for a in [-1/4, 0). */
static inline int32_t tp_exp_on_interval_neg_quarter_0(int32_t a)
{
    const int32_t constant_term = 1895147668;     /* exp(-1/8) */
    const int32_t constant_1_over_3 = 715827883;  /* 1/3 */
    const int32_t x = a + (1 << 28);              /* a + 1/8 */
    const int32_t x2 = tp_srdhm(x, x);
    const int32_t x3 = tp_srdhm(x2, x);
    const int32_t x4 = tp_srdhm(x2, x2);
    const int32_t x4_over_4 = tp_rdbpot(x4, 2);
    const int32_t poly = tp_rdbpot(tp_srdhm(x4_over_4 + x3, constant_1_over_3) + x2, 1);
    return constant_term + tp_srdhm(constant_term, x + poly);
}

/* gemmlowp exp_on_negative_values for a FixedPoint<int32, integer_bits> a <= 0; result Q0.31. */
static inline int32_t tp_exp_on_negative_values(int32_t a, int integer_bits)
{
    static const int32_t multipliers[7] = {
        1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242
    };
    const int fractional_bits = 31 - integer_bits;
    const int32_t one_quarter = (int32_t)1 << (fractional_bits - 2);
    const int32_t mask = one_quarter - 1;
    const int32_t a_mod_quarter_minus_one_quarter = (a & mask) - one_quarter;
    int32_t result = tp_exp_on_interval_neg_quarter_0(
        tp_sat_lshift(a_mod_quarter_minus_one_quarter, integer_bits));
    const int32_t remainder = a_mod_quarter_minus_one_quarter - a;
    int exponent;
    for (exponent = -2; exponent <= 4; ++exponent) {
        if (integer_bits > exponent) {
            const int shift_amount = fractional_bits + exponent;
            if (remainder & ((int32_t)1 << shift_amount)) {
                result = tp_srdhm(result, multipliers[exponent + 2]);
            }
        }
    }
    if (integer_bits > 5) {
        const int32_t clamp = -((int32_t)1 << (36 - integer_bits)) ;
        if (a < clamp) {
            result = 0;
        }
    }
    if (a == 0) {
        result = INT32_MAX;
    }
    return result;
}

/* The Newton-Raphson step shared by gemmlowp's one_over_one_plus_x_for_x_in_0_1 and
 * one_minus_x_over_one_plus_x_for_x_in_0_1: a is Q0.31 in [0, 1); returns 2/(1+a) as Q2.29
 * (x ~ 1 / half_denominator after three iterations from 48/17 - 32/17 * half_denominator). */
static inline int32_t tp_nr_two_over_one_plus_x(int32_t a)
{
    const int64_t sum = (int64_t)a + (int64_t)INT32_MAX;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    const int32_t constant_48_over_17 = 1515870810;      /* Q2.29 */
    const int32_t constant_neg_32_over_17 = -1010580540; /* Q2.29 */
    int32_t x = constant_48_over_17 + tp_srdhm(half_denominator, constant_neg_32_over_17);
    int i;
    for (i = 0; i < 3; ++i) {
        const int32_t half_denominator_times_x = tp_srdhm(half_denominator, x);
        const int32_t one_minus = (1 << 29) - half_denominator_times_x;
        x = x + tp_sat_lshift(tp_srdhm(x, one_minus), 2);
    }
    return x;
}

/* gemmlowp one_over_one_plus_x_for_x_in_0_1: a is Q0.31 in [0, 1); result Q0.31 1/(1+a). */
static inline int32_t tp_one_over_one_plus_x(int32_t a)
{
    return tp_sat_lshift(tp_nr_two_over_one_plus_x(a), 1);
}

/* gemmlowp one_minus_x_over_one_plus_x_for_x_in_0_1: a is Q0.31 in [0, 1); result Q0.31
 * (1-a)/(1+a) = 2/(1+a) - 1, the Q2.29 one subtracted before rescaling to Q0.31. */
static inline int32_t tp_one_minus_x_over_one_plus_x(int32_t a)
{
    return tp_sat_lshift(tp_nr_two_over_one_plus_x(a) - (1 << 29), 2);
}

/* TFLite GetReciprocal: 1/x for a FixedPoint<int32, x_integer_digits> x > 0. */
static inline int32_t tp_get_reciprocal(int32_t x, int x_integer_digits, int *num_bits_over_unit)
{
    int headroom_plus_one = 0;
    uint32_t ux = (uint32_t)x;
    int32_t shifted_sum_minus_one;
    while (headroom_plus_one < 32 && !(ux & 0x80000000u)) {
        ux <<= 1;
        ++headroom_plus_one;
    }
    *num_bits_over_unit = x_integer_digits - headroom_plus_one;
    shifted_sum_minus_one = (int32_t)(((uint32_t)x << headroom_plus_one) - ((uint32_t)1 << 31));
    return tp_one_over_one_plus_x(shifted_sum_minus_one);
}

#endif /* TP_NN_SUPPORT_H */
