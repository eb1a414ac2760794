/* LOGISTIC int8 reference kernel: TFLite's reference_integer_ops::Logistic (gemmlowp logistic on
 * a Q4.27 input, output scale 1/256, zero point -128). In place allowed. */
#include "tp_nn.h"
#include "tp_nn_support.h"

/* gemmlowp logistic(FixedPoint<int32, 4>) -> Q0.31 */
static int32_t tp_logistic_q4(int32_t a)
{
    int32_t abs_a;
    int32_t pos;
    if (a == 0) {
        return 1 << 30;
    }
    abs_a = a > 0 ? a : -a;
    pos = tp_one_over_one_plus_x(tp_exp_on_negative_values(-abs_a, 4));
    return a > 0 ? pos : INT32_MAX - pos;
}

tp_status tp_logistic_s8_ref(const tp_logistic_params *p, int32_t size, const int8_t *input, int8_t *output)
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
            int32_t out = tp_rdbpot(tp_logistic_q4(in_q4), 31 - 8);
            out = TP_CLAMP(out - 128, -128, 127);
            output[i] = (int8_t)out;
        }
    }
    return TP_OK;
}

tp_status tp_logistic_s8(const tp_logistic_params *params, int32_t size, const int8_t *input, int8_t *output)
{
#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_LOGISTIC_S8)
    return tp_logistic_s8_arm(params, size, input, output);
#else
    return tp_logistic_s8_ref(params, size, input, output);
#endif
}
