/* Requantisation int8 -> int8: QUANTIZE (reference_ops::Requantize), RELU (ReluQuantized) and
 * RELU6 (a clamp: multiplier 1<<30, shift 1 is the identity). In place allowed. */
#include "tp_nn.h"
#include "tp_nn_support.h"

tp_status tp_requantize_s8_ref(const tp_requant_params *p, int32_t size, const int8_t *input, int8_t *output)
{
    int32_t i;
    if (!p || !input || !output || size < 0) {
        return TP_ERR_ARG;
    }
    if (p->multiplier == (1 << 30) && p->shift == 1 && p->input_offset == 0 && p->output_offset == 0) {
        for (i = 0; i < size; ++i) {
            output[i] = (int8_t)TP_CLAMP((int32_t)input[i], p->activation.min, p->activation.max);
        }
        return TP_OK;
    }
    for (i = 0; i < size; ++i) {
        int32_t out = tp_mbqm((int32_t)input[i] + p->input_offset, p->multiplier, p->shift) + p->output_offset;
        output[i] = (int8_t)TP_CLAMP(out, p->activation.min, p->activation.max);
    }
    return TP_OK;
}

tp_status tp_requantize_s8(const tp_requant_params *params, int32_t size, const int8_t *input, int8_t *output)
{
#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_REQUANTIZE_S8)
    return tp_requantize_s8_arm(params, size, input, output);
#else
    return tp_requantize_s8_ref(params, size, input, output);
#endif
}
