/* TANH int8 reference kernel: TFLite Micro's reference_integer_ops::Tanh (gemmlowp tanh on a Q4.27
 * input; output scale 1/128, zero point 0, which the code generator checks). In place allowed.
 *
 * x = input - input_zero_point; |x| >= input_range_radius saturates to -128 / 127; otherwise
 * x is rescaled to Q4.27 (input_multiplier, input_left_shift: in_scale * 2^27 as TFLite Micro's
 * Prepare computes it), tanh is evaluated in gemmlowp's fixed point as
 *     tanh(a) = sign(a) * (1 - e) / (1 + e),  e = exp(-2|a|)
 * (the Q4.27 raw value read as Q5.26 is 2|a|), and the Q0.31 result is divided by 2^24 with
 * rounding and clamped to int8. */
#include "tp_nn.h"
#include "tp_nn_support.h"

/* gemmlowp tanh(FixedPoint<int32, 4>) -> Q0.31 */
static int32_t tp_tanh_q4(int32_t a)
{
    int32_t t;
    if (a == 0) {
        return 0;
    }
    /* -|a| as Q5.26: exp(-2|a|) */
    t = tp_one_minus_x_over_one_plus_x(tp_exp_on_negative_values(a < 0 ? a : -a, 5));
    return a < 0 ? -t : t;
}

tp_status tp_tanh_s8_ref(const tp_logistic_params *p, int32_t size, const int8_t *input, int8_t *output)
{
    int32_t i;
    if (!p || !input || !output || size < 0) {
        return TP_ERR_ARG;
    }
    for (i = 0; i < size; ++i) {
        const int32_t x = (int32_t)input[i] - p->input_zero_point;
        if (x <= -p->input_range_radius) {
            output[i] = -128;
        } else if (x >= p->input_range_radius) {
            output[i] = 127;
        } else {
            const int32_t in_q4 = tp_mbqm(x, p->input_multiplier, p->input_left_shift);
            const int32_t out = tp_rdbpot(tp_tanh_q4(in_q4), 31 - 7);
            output[i] = (int8_t)TP_CLAMP(out, -128, 127);
        }
    }
    return TP_OK;
}

tp_status tp_tanh_s8(const tp_logistic_params *params, int32_t size, const int8_t *input, int8_t *output)
{
#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_TANH_S8)
    return tp_tanh_s8_arm(params, size, input, output);
#else
    return tp_tanh_s8_ref(params, size, input, output);
#endif
}
