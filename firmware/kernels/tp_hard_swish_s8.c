/* HARD_SWISH int8 reference kernel: TFLite's reference_ops::HardSwish (int16 fixed point). In place allowed. */
#include "tp_nn.h"
#include "tp_nn_support.h"

static int16_t tp_srdhm16(int16_t a, int16_t b)
{
    int32_t ab;
    int32_t nudge;
    if (a == b && a == INT16_MIN) {
        return INT16_MAX;
    }
    ab = (int32_t)a * (int32_t)b;
    nudge = ab >= 0 ? (1 << 14) : (1 - (1 << 14));
    return (int16_t)((ab + nudge) / (1 << 15));
}

static int16_t tp_sdhm16(int16_t a, int16_t b)  /* SaturatingDoublingHighMul (truncating) */
{
    if (a == b && a == INT16_MIN) {
        return INT16_MAX;
    }
    return (int16_t)(((int32_t)a * (int32_t)b) / (1 << 15));
}

static int16_t tp_rdbpot16(int16_t x, int exponent)
{
    const int16_t mask = (int16_t)((1 << exponent) - 1);
    const int16_t remainder = (int16_t)(x & mask);
    const int16_t threshold = (int16_t)((mask >> 1) + (x < 0 ? 1 : 0));
    return (int16_t)((x >> exponent) + (remainder > threshold ? 1 : 0));
}

static int16_t tp_sat_lshift16(int16_t v, int amount)
{
    int64_t r = (int64_t)v * ((int64_t)1 << amount);
    r = TP_CLAMP(r, INT16_MIN, INT16_MAX);
    return (int16_t)r;
}

tp_status tp_hard_swish_s8_ref(const tp_hard_swish_params *p, int32_t size, const int8_t *input, int8_t *output)
{
    int32_t i;
    if (!p || !input || !output || size < 0 || p->output_multiplier_exponent > 0 ||
        p->output_multiplier_exponent < -15 || p->reluish_multiplier_exponent < -15 ||
        p->reluish_multiplier_exponent > 16) {
        return TP_ERR_ARG;
    }
    for (i = 0; i < size; ++i) {
        const int16_t in_value = (int16_t)((int32_t)input[i] - p->input_zero_point);
        const int16_t hires = (int16_t)(in_value * (1 << 7));
        const int16_t preshift = tp_srdhm16(hires, p->output_multiplier_fixedpoint_int16);
        int16_t reluish = hires;
        int16_t pre_out;
        int32_t out;
        if (p->reluish_multiplier_exponent > 0) {
            reluish = tp_sat_lshift16(reluish, p->reluish_multiplier_exponent - 1);
        }
        reluish = tp_srdhm16(reluish, p->reluish_multiplier_fixedpoint_int16);
        if (p->reluish_multiplier_exponent > 0) {
            reluish = tp_sat_lshift16(reluish, 1);
        }
        if (p->reluish_multiplier_exponent < 0) {
            reluish = tp_rdbpot16(reluish, -p->reluish_multiplier_exponent);
        }
        reluish = (int16_t)(((int32_t)reluish + (1 << 15)) >> 1);
        pre_out = tp_sdhm16(reluish, preshift);
        out = tp_rdbpot16(pre_out, -p->output_multiplier_exponent);
        out = (int16_t)(out + p->output_zero_point);
        out = TP_CLAMP(out, -128, 127);
        output[i] = (int8_t)out;
    }
    return TP_OK;
}

tp_status tp_hard_swish_s8(const tp_hard_swish_params *params, int32_t size, const int8_t *input, int8_t *output)
{
#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_HARD_SWISH_S8)
    return tp_hard_swish_s8_arm(params, size, input, output);
#else
    return tp_hard_swish_s8_ref(params, size, input, output);
#endif
}
