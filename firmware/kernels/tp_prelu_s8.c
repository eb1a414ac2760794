/* LEAKY_RELU and PRELU int8 reference kernels (TFLite Micro's reference_ops::QuantizeLeakyRelu and
 * BroadcastPrelu4DSlow). Both are piecewise linear with one requantisation per side of zero:
 *
 *   LEAKY_RELU: x = in - in_zp;  out = out_zp + (x >= 0 ? MBQM(x, identity) : sign(alpha) * MBQM(x, |alpha|))
 *               identity = in_scale / out_scale, alpha = in_scale * alpha / out_scale (float32, then
 *               QuantizeMultiplier; a negative alpha keeps its sign outside the multiplier).
 *   PRELU:      x = in - in_zp;  out = out_zp + (x >= 0 ? MBQM(x, m1) : MBQM(x * (a - a_zp), m2))
 *               m1 = in_scale / out_scale, m2 = in_scale * alpha_scale / out_scale (double), a the
 *               int8 slope broadcast onto the input (one per tensor, per channel or per element).
 * |x * (a - a_zp)| <= 255 * 255: no overflow. Results are clamped to int8. Both allow in place
 * (each output element depends on the input element at the same position only). */
#include "tp_nn.h"
#include "tp_nn_support.h"

tp_status tp_leaky_relu_s8_ref(const tp_leaky_relu_params *p, int32_t size, const int8_t *input, int8_t *output)
{
    int32_t i;
    if (!p || !input || !output || size < 0 || p->alpha_multiplier < 0) {
        return TP_ERR_ARG;
    }
    for (i = 0; i < size; ++i) {
        const int32_t x = (int32_t)input[i] - p->input_zero_point;
        int32_t out;
        if (x >= 0) {
            out = tp_mbqm(x, p->identity_multiplier, p->identity_shift);
        } else {
            const int32_t v = tp_mbqm(x, p->alpha_multiplier, p->alpha_shift);
            out = p->alpha_negative ? -v : v;
        }
        out += p->output_zero_point;
        output[i] = (int8_t)TP_CLAMP(out, -128, 127);
    }
    return TP_OK;
}

tp_status tp_leaky_relu_s8(const tp_leaky_relu_params *params, int32_t size, const int8_t *input, int8_t *output)
{
#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_LEAKY_RELU_S8)
    return tp_leaky_relu_s8_arm(params, size, input, output);
#else
    return tp_leaky_relu_s8_ref(params, size, input, output);
#endif
}

tp_status tp_prelu_s8_ref(const tp_prelu_params *p, const int32_t dims[4], const int8_t *input,
                          const int8_t *alpha, int8_t *output)
{
    int32_t d, i0, i1, i2, i3;
    int32_t astride[4], acc = 1;
    size_t o = 0;
    if (!p || !dims || !input || !alpha || !output) {
        return TP_ERR_ARG;
    }
    /* element strides of the alpha tensor in the output's index space (0 along a broadcast axis) */
    for (d = 3; d >= 0; --d) {
        if (dims[d] <= 0 || (p->alpha_dims[d] != 1 && p->alpha_dims[d] != dims[d])) {
            return TP_ERR_ARG;
        }
        astride[d] = p->alpha_dims[d] == 1 ? 0 : acc;
        acc *= p->alpha_dims[d];
    }
    for (i0 = 0; i0 < dims[0]; ++i0) {
        for (i1 = 0; i1 < dims[1]; ++i1) {
            for (i2 = 0; i2 < dims[2]; ++i2) {
                const int8_t *arow = alpha + i0 * astride[0] + i1 * astride[1] + i2 * astride[2];
                for (i3 = 0; i3 < dims[3]; ++i3, ++o) {
                    const int32_t x = (int32_t)input[o] - p->input_zero_point;
                    int32_t out;
                    if (x >= 0) {
                        out = tp_mbqm(x, p->identity_multiplier, p->identity_shift);
                    } else {
                        const int32_t a = (int32_t)arow[i3 * astride[3]] - p->alpha_zero_point;
                        out = tp_mbqm(x * a, p->alpha_multiplier, p->alpha_shift);
                    }
                    out += p->output_zero_point;
                    output[o] = (int8_t)TP_CLAMP(out, -128, 127);
                }
            }
        }
    }
    return TP_OK;
}

tp_status tp_prelu_s8(const tp_prelu_params *params, const int32_t dims[4], const int8_t *input,
                      const int8_t *alpha, int8_t *output)
{
#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_PRELU_S8)
    return tp_prelu_s8_arm(params, dims, input, alpha, output);
#else
    return tp_prelu_s8_ref(params, dims, input, alpha, output);
#endif
}
