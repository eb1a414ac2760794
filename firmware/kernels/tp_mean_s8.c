/* MEAN int8 reference kernel: TFLite's reference_ops::QuantizedMeanOrSum (sum, then one
 * MultiplyByQuantizedMultiplier with the count folded into the multiplier). */
#include "tp_nn.h"
#include "tp_nn_support.h"

tp_status tp_mean_s8_ref(const tp_mean_params *p, const int8_t *input, int8_t *output)
{
    int32_t od[4], count = 1, total_out = 1, o, d;
    if (!p || !input || !output) {
        return TP_ERR_ARG;
    }
    for (d = 0; d < 4; ++d) {
        if (p->dims[d] <= 0) {
            return TP_ERR_ARG;
        }
        od[d] = p->reduce[d] ? 1 : p->dims[d];
        count *= p->reduce[d] ? p->dims[d] : 1;
        total_out *= od[d];
    }
    if (!p->reduce[0] && p->reduce[1] && p->reduce[2] && !p->reduce[3]) {
        /* the usual case, a global average over H and W (NHWC): per batch and channel, a strided sum */
        const int32_t c = p->dims[3];
        for (o = 0; o < total_out; ++o) {
            const int8_t *x = input + (size_t)(o / c) * count * c + o % c;
            int32_t r, sum = 0, out;
            for (r = 0; r < count; ++r, x += c) {
                sum += *x;
            }
            out = tp_mbqm(sum - p->input_zero_point * count, p->multiplier, p->shift) + p->output_zero_point;
            output[o] = (int8_t)TP_CLAMP(out, -128, 127);
        }
        return TP_OK;
    }
    for (o = 0; o < total_out; ++o) {
        int32_t oi[4], rest = o, r, sum = 0, out;
        for (d = 3; d >= 0; --d) {
            oi[d] = rest % od[d];
            rest /= od[d];
        }
        for (r = 0; r < count; ++r) {
            int32_t ii[4], rr = r, off = 0;
            for (d = 3; d >= 0; --d) {
                if (p->reduce[d]) {
                    ii[d] = rr % p->dims[d];
                    rr /= p->dims[d];
                } else {
                    ii[d] = oi[d];
                }
            }
            for (d = 0; d < 4; ++d) {
                off = off * p->dims[d] + ii[d];
            }
            sum += input[off];
        }
        out = tp_mbqm(sum - p->input_zero_point * count, p->multiplier, p->shift) + p->output_zero_point;
        output[o] = (int8_t)TP_CLAMP(out, -128, 127);
    }
    return TP_OK;
}

tp_status tp_mean_s8(const tp_mean_params *params, const int8_t *input, int8_t *output)
{
#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_MEAN_S8)
    return tp_mean_s8_arm(params, input, output);
#else
    return tp_mean_s8_ref(params, input, output);
#endif
}
