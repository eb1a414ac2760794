/* CONV_2D int8 reference kernel (TFLite Micro reference_integer_ops::ConvPerChannel, bit-exact).
 *
 * Grouped convolution as TFLite expresses it: the filter's channel count f->c divides the input's,
 * groups = in->c / f->c, out->c a multiple of groups; output channel oc belongs to group
 * oc / (out->c / groups) and reads input channels [group * f->c, (group + 1) * f->c). groups == 1 is
 * the ordinary convolution. */
#include "tp_nn.h"
#include "tp_nn_support.h"

static int tp_conv_args_ok(const tp_conv_params *p, const tp_quant_params *q, const tp_dims *in,
                           const int8_t *input, const tp_dims *f, const int8_t *filter,
                           const tp_dims *out, const int8_t *output)
{
    if (!p || !q || !q->multiplier || !q->shift || !in || !input || !f || !filter || !out || !output) {
        return 0;
    }
    if (in->n <= 0 || in->h <= 0 || in->w <= 0 || in->c <= 0 || f->n <= 0 || f->h <= 0 || f->w <= 0 ||
        out->h <= 0 || out->w <= 0 || p->stride.h <= 0 || p->stride.w <= 0 || p->dilation.h <= 0 ||
        p->dilation.w <= 0) {
        return 0;
    }
    if (f->c <= 0 || in->c % f->c != 0 || out->c % (in->c / f->c) != 0 || out->c != f->n || out->n != in->n) {
        return 0;
    }
    return f->h * f->w * f->c <= TP_MAX_ACC_TERMS;
}

/* Filter element j of a row: from the int8 filter (rbase = oc * K), or (f16 != 0) from the fast-
 * weights layout (tp_nn.h: groups of 4 as (k0, k2, k1, k3); rbase = oc * ceil(K / 4)). */
static inline int32_t tp_conv_w(const int8_t *f8, const int16_t *f16, int32_t rbase, int32_t j)
{
    static const uint8_t pos[4] = { 0, 2, 1, 3 };
    if (f16) {
        return f16[(size_t)rbase * 4 + (size_t)(j & ~3) + pos[j & 3]];
    }
    return f8[(size_t)rbase + j];
}

/* The reference loop for both filter layouts; always inlined so that each caller gets its own
 * copy with the layout test folded away. */
static inline __attribute__((always_inline)) tp_status
tp_conv_ref_impl(const tp_conv_params *p, const tp_quant_params *q, const tp_dims *in, const int8_t *input,
                 const tp_dims *f, const int8_t *f8, const int16_t *f16, const int32_t *bias,
                 const tp_dims *out, int8_t *output)
{
    int32_t b, oy, ox, oc, ky, kx, ic;
    const int32_t k = f->h * f->w * f->c;
    const int32_t row = f16 ? (k + 3) >> 2 : k;     /* see tp_conv_w's rbase */
    const int32_t per_group = out->c / (in->c / f->c);  /* output channels per group */
    for (b = 0; b < in->n; ++b) {
        for (oy = 0; oy < out->h; ++oy) {
            const int32_t iy0 = oy * p->stride.h - p->padding.h;
            for (ox = 0; ox < out->w; ++ox) {
                const int32_t ix0 = ox * p->stride.w - p->padding.w;
                for (oc = 0; oc < out->c; ++oc) {
                    const int32_t c0 = (oc / per_group) * f->c;   /* the group's first input channel */
                    int32_t acc = 0;
                    for (ky = 0; ky < f->h; ++ky) {
                        const int32_t iy = iy0 + p->dilation.h * ky;
                        if (iy < 0 || iy >= in->h) {
                            continue;
                        }
                        for (kx = 0; kx < f->w; ++kx) {
                            const int32_t ix = ix0 + p->dilation.w * kx;
                            const int8_t *px;
                            const int32_t j0 = (ky * f->w + kx) * f->c;
                            if (ix < 0 || ix >= in->w) {
                                continue;
                            }
                            px = input + (((size_t)b * in->h + iy) * in->w + ix) * in->c + c0;
                            for (ic = 0; ic < f->c; ++ic) {
                                acc += tp_conv_w(f8, f16, oc * row, j0 + ic) * ((int32_t)px[ic] + p->input_offset);
                            }
                        }
                    }
                    output[(((size_t)b * out->h + oy) * out->w + ox) * out->c + oc] = tp_requant_channel(acc, bias, oc, q, p->output_offset, p->activation);
                }
            }
        }
    }
    return TP_OK;
}

tp_status tp_conv_s8_ref(const tp_context *ctx, const tp_conv_params *p, const tp_quant_params *q,
                         const tp_dims *in, const int8_t *input,
                         const tp_dims *f, const int8_t *filter, const int32_t *bias,
                         const tp_dims *out, int8_t *output)
{
    (void)ctx;
    if (!tp_conv_args_ok(p, q, in, input, f, filter, out, output)) {
        return TP_ERR_ARG;
    }
    return tp_conv_ref_impl(p, q, in, input, f, filter, 0, bias, out, output);
}

tp_status tp_conv_s8_x16_ref(const tp_context *ctx, const tp_conv_params *p, const tp_quant_params *q,
                             const tp_dims *in, const int8_t *input,
                             const tp_dims *f, const int16_t *filter16, const int32_t *bias,
                             const tp_dims *out, int8_t *output)
{
    (void)ctx;
    if (!tp_conv_args_ok(p, q, in, input, f, (const int8_t *)filter16, out, output)) {
        return TP_ERR_ARG;
    }
    return tp_conv_ref_impl(p, q, in, input, f, 0, filter16, bias, out, output);
}

int32_t tp_conv_s8_get_buffer_size(const tp_dims *input_dims, const tp_dims *filter_dims,
                                   const tp_dims *output_dims)
{
#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_CONV_S8)
    return tp_conv_s8_arm_get_buffer_size(input_dims, filter_dims, output_dims);
#else
    (void)input_dims;
    (void)filter_dims;
    (void)output_dims;
    return 0;
#endif
}

tp_status tp_conv_s8(const tp_context *ctx, const tp_conv_params *params, const tp_quant_params *quant,
                     const tp_dims *input_dims, const int8_t *input,
                     const tp_dims *filter_dims, const int8_t *filter, const int32_t *bias,
                     const tp_dims *output_dims, int8_t *output)
{
#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_CONV_S8)
    return tp_conv_s8_arm(ctx, params, quant, input_dims, input, filter_dims, filter, bias, output_dims, output);
#else
    return tp_conv_s8_ref(ctx, params, quant, input_dims, input, filter_dims, filter, bias, output_dims, output);
#endif
}

tp_status tp_conv_s8_x16(const tp_context *ctx, const tp_conv_params *params, const tp_quant_params *quant,
                         const tp_dims *input_dims, const int8_t *input,
                         const tp_dims *filter_dims, const int16_t *filter16, const int32_t *bias,
                         const tp_dims *output_dims, int8_t *output)
{
#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_CONV_S8)
    return tp_conv_s8_arm_x16(ctx, params, quant, input_dims, input, filter_dims, filter16, bias, output_dims,
                              output);
#else
    return tp_conv_s8_x16_ref(ctx, params, quant, input_dims, input, filter_dims, filter16, bias, output_dims,
                              output);
#endif
}
