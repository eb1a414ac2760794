/* FULLY_CONNECTED int8 reference kernel (TFLite Micro reference_integer_ops::FullyConnected[PerChannel]). */
#include "tp_nn.h"
#include "tp_nn_support.h"

tp_status tp_fully_connected_s8_ref(const tp_context *ctx, const tp_fc_params *p, const tp_quant_params *q,
                                    int32_t batches, int32_t accum_depth, int32_t out_depth,
                                    const int8_t *input, const int8_t *filter, const int32_t *bias,
                                    int8_t *output)
{
    int32_t b, o, d;
    (void)ctx;
    if (!p || !q || !q->multiplier || !q->shift || !input || !filter || !output || batches <= 0 ||
        accum_depth <= 0 || out_depth <= 0 || accum_depth > TP_MAX_ACC_TERMS) {
        return TP_ERR_ARG;
    }
    for (b = 0; b < batches; ++b) {
        const int8_t *x = input + (size_t)b * accum_depth;
        for (o = 0; o < out_depth; ++o) {
            const int8_t *w = filter + (size_t)o * accum_depth;
            int32_t acc = 0;
            for (d = 0; d < accum_depth; ++d) {
                acc += ((int32_t)w[d] + p->filter_offset) * ((int32_t)x[d] + p->input_offset);
            }
            output[(size_t)b * out_depth + o] = tp_requant_channel(acc, bias, o, q, p->output_offset, p->activation);
        }
    }
    return TP_OK;
}

int32_t tp_fully_connected_s8_get_buffer_size(int32_t accum_depth, int32_t out_depth)
{
#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_FULLY_CONNECTED_S8)
    return tp_fully_connected_s8_arm_get_buffer_size(accum_depth, out_depth);
#else
    (void)accum_depth;
    (void)out_depth;
    return 0;
#endif
}

tp_status tp_fully_connected_s8(const tp_context *ctx, const tp_fc_params *params, const tp_quant_params *quant,
                                int32_t batches, int32_t accum_depth, int32_t out_depth,
                                const int8_t *input, const int8_t *filter, const int32_t *bias,
                                int8_t *output)
{
#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_FULLY_CONNECTED_S8)
    return tp_fully_connected_s8_arm(ctx, params, quant, batches, accum_depth, out_depth, input, filter,
                                     bias, output);
#else
    return tp_fully_connected_s8_ref(ctx, params, quant, batches, accum_depth, out_depth, input, filter,
                                     bias, output);
#endif
}
