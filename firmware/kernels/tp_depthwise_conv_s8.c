/* DEPTHWISE_CONV_2D int8 reference kernel (TFLite Micro reference_integer_ops::DepthwiseConvPerChannel). */
#include "tp_nn.h"
#include "tp_nn_support.h"

tp_status tp_depthwise_conv_s8_ref(const tp_context *ctx, const tp_dw_conv_params *p,
                                   const tp_quant_params *q,
                                   const tp_dims *in, const int8_t *input,
                                   const tp_dims *f, const int8_t *filter, const int32_t *bias,
                                   const tp_dims *out, int8_t *output)
{
    int32_t b, oy, ox, ic, m, ky, kx;
    (void)ctx;
    if (!p || !q || !q->multiplier || !q->shift || !in || !input || !f || !filter || !out || !output) {
        return TP_ERR_ARG;
    }
    if (in->n <= 0 || in->h <= 0 || in->w <= 0 || in->c <= 0 || p->ch_mult <= 0 || f->h <= 0 ||
        f->w <= 0 || out->h <= 0 || out->w <= 0 || p->stride.h <= 0 || p->stride.w <= 0 ||
        p->dilation.h <= 0 || p->dilation.w <= 0 || f->c != in->c * p->ch_mult || out->c != f->c ||
        out->n != in->n || f->h * f->w > TP_MAX_ACC_TERMS) {
        return TP_ERR_ARG;
    }
    for (b = 0; b < in->n; ++b) {
        for (oy = 0; oy < out->h; ++oy) {
            const int32_t iy0 = oy * p->stride.h - p->padding.h;
            for (ox = 0; ox < out->w; ++ox) {
                const int32_t ix0 = ox * p->stride.w - p->padding.w;
                for (ic = 0; ic < in->c; ++ic) {
                    for (m = 0; m < p->ch_mult; ++m) {
                        const int32_t oc = ic * p->ch_mult + m;
                        int32_t acc = 0;
                        for (ky = 0; ky < f->h; ++ky) {
                            const int32_t iy = iy0 + p->dilation.h * ky;
                            if (iy < 0 || iy >= in->h) {
                                continue;
                            }
                            for (kx = 0; kx < f->w; ++kx) {
                                const int32_t ix = ix0 + p->dilation.w * kx;
                                int32_t x;
                                int32_t w;
                                if (ix < 0 || ix >= in->w) {
                                    continue;
                                }
                                x = input[(((size_t)b * in->h + iy) * in->w + ix) * in->c + ic];
                                w = filter[((size_t)ky * f->w + kx) * f->c + oc];
                                acc += w * (x + p->input_offset);
                            }
                        }
                        output[(((size_t)b * out->h + oy) * out->w + ox) * out->c + oc] = tp_requant_channel(acc, bias, oc, q, p->output_offset, p->activation);
                    }
                }
            }
        }
    }
    return TP_OK;
}

int32_t tp_depthwise_conv_s8_get_buffer_size(const tp_dims *input_dims, const tp_dims *filter_dims,
                                             const tp_dims *output_dims)
{
#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_DEPTHWISE_CONV_S8)
    return tp_depthwise_conv_s8_arm_get_buffer_size(input_dims, filter_dims, output_dims);
#else
    (void)input_dims;
    (void)filter_dims;
    (void)output_dims;
    return 0;
#endif
}

tp_status tp_depthwise_conv_s8(const tp_context *ctx, const tp_dw_conv_params *params,
                               const tp_quant_params *quant,
                               const tp_dims *input_dims, const int8_t *input,
                               const tp_dims *filter_dims, const int8_t *filter, const int32_t *bias,
                               const tp_dims *output_dims, int8_t *output)
{
#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_DEPTHWISE_CONV_S8)
    return tp_depthwise_conv_s8_arm(ctx, params, quant, input_dims, input, filter_dims, filter, bias,
                                    output_dims, output);
#else
    return tp_depthwise_conv_s8_ref(ctx, params, quant, input_dims, input, filter_dims, filter, bias,
                                    output_dims, output);
#endif
}
