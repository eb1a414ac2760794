/* Internal helpers of the Cortex-M DSP kernels: SIMD loads/unpacking and a fast requantisation
 * that is bit-exact with tp_mbqm() (TFLite Micro's double rounding) under stated preconditions.
 * Not part of the public API; included only by the sources in this folder. May include only
 * <arm_acle.h>, <stdint.h>, <string.h> and ../tp_nn_support.h. */
#ifndef TP_ARM_SUPPORT_H
#define TP_ARM_SUPPORT_H

#include <stdint.h>
#include <string.h>
#include <arm_acle.h>
#include "../tp_nn_support.h"

/* Bytes of scratch reserved so that the kernels can align their scratch pointer to 8 bytes
 * (LDRD/LDM need word alignment; the arena slice may be byte aligned). */
#define TP_ARM_ALIGN_SLACK 8

static inline void *tp_arm_align8(void *p)
{
    return (void *)(((uintptr_t)p + 7u) & ~(uintptr_t)7u);
}

/* Four int8 from a possibly unaligned address (LDR allows unaligned access on v7E-M). */
static inline int32_t tp_arm_read_s8x4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline void tp_arm_write_s8x4(int8_t *p, int32_t v)
{
    memcpy(p, &v, 4);
}

/* (b1, b3) of the bytes b0..b3 of x, sign-extended to two int16 halves: SXTB16 with ROR #8
 * (GCC 12's arm_acle.h has no __ror). */
static inline int32_t tp_arm_sxtb16_ror8(int32_t x)
{
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

/* Two int16 halves (lo, hi) packed into one word. */
static inline int32_t tp_arm_pack16(int32_t lo, int32_t hi)
{
    return (int32_t)(((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16));
}

/* round(a * b / 2^32), rounding half up: SMMULR. */
static inline int32_t tp_arm_smmulr(int32_t a, int32_t b)
{
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

/* Largest |x| accepted by tp_arm_mbqm_rshift: 2*x must not overflow SMMULR's operand. */
#define TP_ARM_FAST_RQ_LIMIT ((int32_t)1 << 30)

/* tp_mbqm(x, m, -e) for e >= 0, |x| < 2^30 and 0 <= m < 2^31, in a few instructions:
 *  - gemmlowp's SaturatingRoundingDoublingHighMul(x, m) = trunc((x*m + nudge) / 2^31) with a
 *    sign-dependent nudge equals floor((x*m + 2^30) / 2^31) (both round half up on x*m / 2^31; the
 *    saturation case needs x = m = INT32_MIN, excluded), which is SMMULR(2x, m);
 *  - RoundingDivideByPOT(v, e) rounds half away from zero: for e > 0 it equals
 *    (v + 2^(e-1) - (v < 0)) >> e with an arithmetic shift; the sum cannot overflow because
 *    |v| <= |x| < 2^30. */
static inline int32_t tp_arm_mbqm_rshift(int32_t x, int32_t m, int32_t e)
{
    int32_t v = tp_arm_smmulr(x * 2, m);
    if (e > 0) {
        v = (v + ((int32_t)1 << (e - 1)) + (v >> 31)) >> e;
    }
    return v;
}

/* Requantise x with per-channel (m, shift): the fast path when shift <= 0 and |x| is within the
 * limit the caller checked once per call (fast != 0), the reference tp_mbqm otherwise. */
static inline int32_t tp_arm_requant(int32_t x, int32_t m, int32_t shift, int fast)
{
    if (fast && shift <= 0) {
        return tp_arm_mbqm_rshift(x, m, -shift);
    }
    return tp_mbqm(x, m, shift);
}

static inline int32_t tp_arm_clamp(int32_t x, int32_t lo, int32_t hi)
{
    x = x < lo ? lo : x;
    return x > hi ? hi : x;
}

/* Clamps n bytes (n % 4 == 0) of int8 to [low, high] (each given in all 4 bytes of a word): SSUB8
 * sets the GE flag of each byte lane where the first operand is >= the second, SEL picks by lane.
 * Used after assembly that saturates to int8: clamp(SSAT8(v)) == clamp(v) for -128 <= low <= high
 * <= 127. */
static inline void tp_arm_clamp_bytes(int8_t *o, int32_t n, int32_t loww, int32_t highw)
{
    int32_t i;
    for (i = 0; i < n; i += 4) {
        int32_t v = tp_arm_read_s8x4(o + i), t;
        /* one block: the GE flags must not be disturbed between SSUB8 and SEL */
        __asm__("ssub8    %1, %0, %2\n\t"
                "sel      %0, %0, %2\n\t"
                "ssub8    %1, %3, %0\n\t"
                "sel      %0, %0, %3"
                : "+r"(v), "=&r"(t)
                : "r"(loww), "r"(highw));
        tp_arm_write_s8x4(o + i, v);
    }
}

/* v in all 4 bytes of a word. */
static inline int32_t tp_arm_bytes4(int32_t v)
{
    return (int32_t)((uint32_t)(uint8_t)(int8_t)v * 0x01010101u);
}

#endif /* TP_ARM_SUPPORT_H */
