/* AVERAGE_POOL_2D int8, Cortex-M4/M7 DSP variant: bit-exact with tp_avgpool_s8_ref.
 *
 * Channels % 4 == 0 and windows of at most 255 elements: 4 channels per word, summed as two
 * int16 pairs with SXTB16 + SADD16 (|sum| <= 255 * 128 = 32,640 fits int16), then TFLite's
 * rounded division. Other shapes run the reference. */
#include "../tp_nn.h"

#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_AVGPOOL_S8)
#include "tp_arm_support.h"

static inline int32_t tp_pool_div(int32_t acc, int32_t count)
{
    return acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
}

tp_status tp_avgpool_s8_arm(const tp_pool_params *p, const tp_dims *in, const int8_t *input,
                            const tp_dims *out, int8_t *output)
{
    int32_t b, oy, ox, g, fy, fx;
    if (!p || !in || !input || !out || !output || in->n <= 0 || in->h <= 0 || in->w <= 0 ||
        in->c <= 0 || out->n != in->n || out->c != in->c || out->h <= 0 || out->w <= 0 ||
        p->stride.h <= 0 || p->stride.w <= 0 || p->filter.h <= 0 || p->filter.w <= 0 ||
        (in->c & 3) != 0 || p->filter.h * p->filter.w > 255) {
        TP_ARM_VARIANT(TP_VAR_REF_SHAPE);
        return tp_avgpool_s8_ref(p, in, input, out, output);
    }
    TP_ARM_VARIANT(TP_VAR_AVGPOOL_DSP);
    for (b = 0; b < in->n; ++b) {
        for (oy = 0; oy < out->h; ++oy) {
            const int32_t iy0 = oy * p->stride.h - p->padding.h;
            const int32_t fy0 = TP_MAX(0, -iy0);
            const int32_t fy1 = TP_MIN(p->filter.h, in->h - iy0);
            for (ox = 0; ox < out->w; ++ox) {
                const int32_t ix0 = ox * p->stride.w - p->padding.w;
                const int32_t fx0 = TP_MAX(0, -ix0);
                const int32_t fx1 = TP_MIN(p->filter.w, in->w - ix0);
                const int32_t count = (fy1 - fy0) * (fx1 - fx0);
                int8_t *o = output + (((size_t)b * out->h + oy) * out->w + ox) * out->c;
                if (fy1 <= fy0 || fx1 <= fx0) {
                    return TP_ERR_ARG;   /* as the reference: a window outside the input */
                }
                for (g = 0; g < in->c; g += 4) {
                    int32_t se = 0, so = 0;
                    int32_t r0, r1, r2, r3;
                    for (fy = fy0; fy < fy1; ++fy) {
                        const int8_t *src = input + (((size_t)b * in->h + iy0 + fy) * in->w + ix0 + fx0) * in->c + g;
                        for (fx = fx0; fx < fx1; ++fx, src += in->c) {
                            const int32_t x = tp_arm_read_s8x4(src);
                            se = __sadd16(se, __sxtb16(x));
                            so = __sadd16(so, tp_arm_sxtb16_ror8(x));
                        }
                    }
                    r0 = tp_pool_div((int16_t)(se & 0xFFFF), count);
                    r2 = tp_pool_div((int16_t)((uint32_t)se >> 16), count);
                    r1 = tp_pool_div((int16_t)(so & 0xFFFF), count);
                    r3 = tp_pool_div((int16_t)((uint32_t)so >> 16), count);
                    r0 = tp_arm_clamp(r0, p->activation.min, p->activation.max);
                    r1 = tp_arm_clamp(r1, p->activation.min, p->activation.max);
                    r2 = tp_arm_clamp(r2, p->activation.min, p->activation.max);
                    r3 = tp_arm_clamp(r3, p->activation.min, p->activation.max);
                    tp_arm_write_s8x4(o + g, (int32_t)((uint32_t)(r0 & 0xFF) | ((uint32_t)(r1 & 0xFF) << 8) |
                                                       ((uint32_t)(r2 & 0xFF) << 16) | ((uint32_t)r3 << 24)));
                }
            }
        }
    }
    return TP_OK;
}

#endif /* TP_USE_ARM_DSP && TP_ARM_HAS_AVGPOOL_S8 */
