/* SOFTMAX int8 -> int8 reference kernel: TFLite Micro's reference_ops::Softmax (gemmlowp fixed-point
 * exp and reciprocal, kScaledDiffIntegerBits = 5, kAccumulationIntegerBits = 12). */
#include "tp_nn.h"
#include "tp_nn_support.h"

tp_status tp_softmax_s8_ref(const tp_softmax_params *p, int32_t rows, int32_t depth,
                            const int8_t *input, int8_t *output)
{
    int32_t r, c;
    if (!p || !input || !output || rows < 0 || depth <= 0 || p->input_left_shift < 0 ||
        p->input_left_shift > 31) {
        return TP_ERR_ARG;
    }
    for (r = 0; r < rows; ++r) {
        const int8_t *x = input + (size_t)r * depth;
        int8_t *y = output + (size_t)r * depth;
        int32_t max_in_row = -128;
        int32_t sum_of_exps = 0;   /* Q12.19 */
        int32_t shifted_scale;
        int num_bits_over_unit;
        int exponent;
        for (c = 0; c < depth; ++c) {
            max_in_row = TP_MAX(max_in_row, (int32_t)x[c]);
        }
        for (c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t scaled = tp_mbqm_gt1(diff, p->input_multiplier, p->input_left_shift);
                sum_of_exps += tp_rdbpot(tp_exp_on_negative_values(scaled, 5), 12);
            }
        }
        shifted_scale = tp_get_reciprocal(sum_of_exps, 12, &num_bits_over_unit);
        exponent = num_bits_over_unit + 31 - 8;
        if (exponent < 0 || exponent > 31) {
            return TP_ERR_ARG;
        }
        /* compute every output before writing, row by row, so output may not alias input: read x[c]
         * before y[c] is written for the same c only, which is safe for output == input too. */
        for (c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t scaled = tp_mbqm_gt1(diff, p->input_multiplier, p->input_left_shift);
                const int32_t e = tp_exp_on_negative_values(scaled, 5);
                const int32_t unsat = tp_rdbpot(tp_srdhm(shifted_scale, e), exponent);
                const int32_t out = unsat - 128;
                y[c] = (int8_t)TP_CLAMP(out, -128, 127);
            } else {
                y[c] = -128;
            }
        }
    }
    return TP_OK;
}

tp_status tp_softmax_s8(const tp_softmax_params *params, int32_t rows, int32_t depth,
                        const int8_t *input, int8_t *output)
{
#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_SOFTMAX_S8)
    return tp_softmax_s8_arm(params, rows, depth, input, output);
#else
    return tp_softmax_s8_ref(params, rows, depth, input, output);
#endif
}
