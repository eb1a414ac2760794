/* MUL int8 reference kernel (TFLite Micro reference_integer_ops::MulElementwise, with broadcasting). */
#include "tp_nn.h"
#include "tp_nn_support.h"
#include "tp_elementwise_s8.h"

static int8_t tp_mul_one(const tp_mul_params *p, int8_t x, int8_t y)
{
    const int32_t in1 = (int32_t)x + p->input1_offset;
    const int32_t in2 = (int32_t)y + p->input2_offset;
    int32_t out = p->output_offset + tp_mbqm(in1 * in2, p->output_multiplier, p->output_shift);
    out = TP_CLAMP(out, p->activation.min, p->activation.max);
    return (int8_t)out;
}

tp_status tp_mul_s8_ref(const tp_mul_params *params, const tp_broadcast *bcast, int32_t size,
                        const int8_t *input1, const int8_t *input2, int8_t *output)
{
    if (!params || !input1 || !input2 || !output || size < 0 ||
        (bcast && (bcast->num_dims < 1 || bcast->num_dims > TP_MAX_DIMS))) {
        return TP_ERR_ARG;
    }
    TP_ELEMENTWISE_LOOP(bcast, size, input1, input2, output, tp_mul_one, params);
    return TP_OK;
}

tp_status tp_mul_s8(const tp_mul_params *params, const tp_broadcast *bcast, int32_t size,
                    const int8_t *input1, const int8_t *input2, int8_t *output)
{
#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_MUL_S8)
    return tp_mul_s8_arm(params, bcast, size, input1, input2, output);
#else
    return tp_mul_s8_ref(params, bcast, size, input1, input2, output);
#endif
}
