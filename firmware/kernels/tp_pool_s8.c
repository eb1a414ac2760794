/* AVERAGE_POOL_2D and MAX_POOL_2D int8 reference kernels (TFLite Micro reference_integer_ops). */
#include "tp_nn.h"
#include "tp_nn_support.h"

static int tp_pool_args_ok(const tp_pool_params *p, const tp_dims *in, const int8_t *input,
                           const tp_dims *out, const int8_t *output)
{
    return p && in && input && out && output && in->n > 0 && in->h > 0 && in->w > 0 && in->c > 0 &&
           out->n == in->n && out->c == in->c && out->h > 0 && out->w > 0 && p->stride.h > 0 &&
           p->stride.w > 0 && p->filter.h > 0 && p->filter.w > 0;
}

static tp_status tp_pool(const tp_pool_params *p, const tp_dims *in, const int8_t *input,
                         const tp_dims *out, int8_t *output, int is_max)
{
    int32_t b, oy, ox, c, fy, fx;
    if (!tp_pool_args_ok(p, in, input, out, output)) {
        return TP_ERR_ARG;
    }
    for (b = 0; b < in->n; ++b) {
        for (oy = 0; oy < out->h; ++oy) {
            const int32_t iy0 = oy * p->stride.h - p->padding.h;
            const int32_t fy0 = TP_MAX(0, -iy0);
            const int32_t fy1 = TP_MIN(p->filter.h, in->h - iy0);
            for (ox = 0; ox < out->w; ++ox) {
                const int32_t ix0 = ox * p->stride.w - p->padding.w;
                const int32_t fx0 = TP_MAX(0, -ix0);
                const int32_t fx1 = TP_MIN(p->filter.w, in->w - ix0);
                for (c = 0; c < in->c; ++c) {
                    int32_t acc = is_max ? -128 : 0;
                    int32_t count = 0;
                    for (fy = fy0; fy < fy1; ++fy) {
                        for (fx = fx0; fx < fx1; ++fx) {
                            const int32_t v = input[(((size_t)b * in->h + iy0 + fy) * in->w + ix0 + fx) * in->c + c];
                            if (is_max) {
                                acc = TP_MAX(acc, v);
                            } else {
                                acc += v;
                            }
                            ++count;
                        }
                    }
                    if (count == 0) {
                        return TP_ERR_ARG;   /* TFLite fails the same way: a window outside the input */
                    }
                    if (!is_max) {
                        acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    }
                    acc = TP_CLAMP(acc, p->activation.min, p->activation.max);
                    output[(((size_t)b * out->h + oy) * out->w + ox) * out->c + c] = (int8_t)acc;
                }
            }
        }
    }
    return TP_OK;
}

tp_status tp_avgpool_s8_ref(const tp_pool_params *params, const tp_dims *input_dims, const int8_t *input,
                            const tp_dims *output_dims, int8_t *output)
{
    return tp_pool(params, input_dims, input, output_dims, output, 0);
}

tp_status tp_maxpool_s8_ref(const tp_pool_params *params, const tp_dims *input_dims, const int8_t *input,
                            const tp_dims *output_dims, int8_t *output)
{
    return tp_pool(params, input_dims, input, output_dims, output, 1);
}

tp_status tp_avgpool_s8(const tp_pool_params *params, const tp_dims *input_dims, const int8_t *input,
                        const tp_dims *output_dims, int8_t *output)
{
#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_AVGPOOL_S8)
    return tp_avgpool_s8_arm(params, input_dims, input, output_dims, output);
#else
    return tp_avgpool_s8_ref(params, input_dims, input, output_dims, output);
#endif
}

tp_status tp_maxpool_s8(const tp_pool_params *params, const tp_dims *input_dims, const int8_t *input,
                        const tp_dims *output_dims, int8_t *output)
{
#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_MAXPOOL_S8)
    return tp_maxpool_s8_arm(params, input_dims, input, output_dims, output);
#else
    return tp_maxpool_s8_ref(params, input_dims, input, output_dims, output);
#endif
}
