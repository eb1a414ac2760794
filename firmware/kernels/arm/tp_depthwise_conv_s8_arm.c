/* DEPTHWISE_CONV_2D int8, Cortex-M4/M7 DSP variant: bit-exact with tp_depthwise_conv_s8_ref.
 *
 * Fast path: ch_mult == 1 and channels % 4 == 0 (every depthwise layer of MobileNet/DS-CNN style
 * models); anything else, or scratch smaller than tp_depthwise_conv_s8_arm_get_buffer_size(), runs
 * the reference. Once per call the filter is expanded to int16 pairs in scratch, laid out
 * [channel group of 4][tap] x {(c0, c2), (c1, c3)}, and every channel gets a folded bias
 *   bias[c] + input_offset * sum_taps w[tap][c],
 * so that a pixel whose window lies entirely inside the input accumulates x * w only:
 * per tap and 4 channels 1 LDR + 2 SXTB16 + 1 LDRD + 4 SMLAxy. Pixels whose window touches the
 * padding add the offset to x with SADD16 and start from the plain bias (exactly the reference's
 * sum over the valid taps). Accumulators are exact in int32 (kh*kw <= 65,000 terms). */
#include "../tp_nn.h"

#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_DEPTHWISE_CONV_S8)
#include "tp_arm_support.h"

static int tp_dw_fast_ok(const tp_dw_conv_params *p, const tp_dims *in)
{
    return p->ch_mult == 1 && (in->c & 3) == 0;
}

int32_t tp_depthwise_conv_s8_arm_get_buffer_size(const tp_dims *input_dims, const tp_dims *filter_dims,
                                                 const tp_dims *output_dims)
{
    (void)output_dims;
    if (!input_dims || !filter_dims || (filter_dims->c & 3) != 0 || filter_dims->c != input_dims->c) {
        return 0;   /* ch_mult != 1 or channels % 4 != 0: the reference, no scratch */
    }
    return TP_ARM_ALIGN_SLACK + filter_dims->h * filter_dims->w * filter_dims->c * 2 + filter_dims->c * 4;
}

tp_status tp_depthwise_conv_s8_arm(const tp_context *ctx, const tp_dw_conv_params *p,
                                   const tp_quant_params *q,
                                   const tp_dims *in, const int8_t *input,
                                   const tp_dims *f, const int8_t *filter, const int32_t *bias,
                                   const tp_dims *out, int8_t *output)
{
    int32_t c, ng, taps, g, t, b, oy, ox, fast;
    int32_t *wexp;
    int32_t *fbias;
    int32_t offp;
    int32_t need;
    if (!p || !q || !q->multiplier || !q->shift || !in || !input || !f || !filter || !out || !output ||
        in->n <= 0 || in->h <= 0 || in->w <= 0 || in->c <= 0 || p->ch_mult <= 0 || f->h <= 0 ||
        f->w <= 0 || out->h <= 0 || out->w <= 0 || p->stride.h <= 0 || p->stride.w <= 0 ||
        p->dilation.h <= 0 || p->dilation.w <= 0 || f->c != in->c * p->ch_mult || out->c != f->c ||
        out->n != in->n || f->h * f->w > TP_MAX_ACC_TERMS) {
        return TP_ERR_ARG;
    }
    need = tp_depthwise_conv_s8_arm_get_buffer_size(in, f, out);
    if (!tp_dw_fast_ok(p, in) || need == 0 || !ctx || !ctx->buf || ctx->size < need) {
        return tp_depthwise_conv_s8_ref(ctx, p, q, in, input, f, filter, bias, out, output);
    }
    c = in->c;
    ng = c >> 2;
    taps = f->h * f->w;
    wexp = (int32_t *)tp_arm_align8(ctx->buf);
    fbias = wexp + 2 * taps * ng;
    offp = tp_arm_pack16(p->input_offset, p->input_offset);

    /* expand the filter; fold the input offset into the bias of interior pixels */
    {
        int64_t wmax = 0;
        for (g = 0; g < ng; ++g) {
            int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (t = 0; t < taps; ++t) {
                const int8_t *w = filter + (size_t)t * c + 4 * g;
                wexp[2 * (g * taps + t)] = tp_arm_pack16(w[0], w[2]);
                wexp[2 * (g * taps + t) + 1] = tp_arm_pack16(w[1], w[3]);
                s0 += w[0];
                s1 += w[1];
                s2 += w[2];
                s3 += w[3];
            }
            fbias[4 * g] = (bias ? bias[4 * g] : 0) + p->input_offset * s0;
            fbias[4 * g + 1] = (bias ? bias[4 * g + 1] : 0) + p->input_offset * s1;
            fbias[4 * g + 2] = (bias ? bias[4 * g + 2] : 0) + p->input_offset * s2;
            fbias[4 * g + 3] = (bias ? bias[4 * g + 3] : 0) + p->input_offset * s3;
        }
        /* |acc| <= taps * 255 * 128 + max|bias| (the folded form sums the same terms) */
        if (bias) {
            for (g = 0; g < c; ++g) {
                const int64_t a = bias[g] < 0 ? -(int64_t)bias[g] : (int64_t)bias[g];
                wmax = a > wmax ? a : wmax;
            }
        }
        fast = (int64_t)taps * 255 * 128 + wmax < (int64_t)TP_ARM_FAST_RQ_LIMIT;
    }

    for (b = 0; b < in->n; ++b) {
        const int8_t *inb = input + (size_t)b * in->h * in->w * c;
        int8_t *o = output + (size_t)b * out->h * out->w * c;
        for (oy = 0; oy < out->h; ++oy) {
            const int32_t iy0 = oy * p->stride.h - p->padding.h;
            int32_t ky0 = 0, ky1 = f->h;
            while (ky0 < f->h && iy0 + ky0 * p->dilation.h < 0) {
                ++ky0;
            }
            while (ky1 > ky0 && iy0 + (ky1 - 1) * p->dilation.h >= in->h) {
                --ky1;
            }
            for (ox = 0; ox < out->w; ++ox, o += c) {
                const int32_t ix0 = ox * p->stride.w - p->padding.w;
                int32_t kx0 = 0, kx1 = f->w;
                int interior;
                while (kx0 < f->w && ix0 + kx0 * p->dilation.w < 0) {
                    ++kx0;
                }
                while (kx1 > kx0 && ix0 + (kx1 - 1) * p->dilation.w >= in->w) {
                    --kx1;
                }
                interior = ky0 == 0 && ky1 == f->h && kx0 == 0 && kx1 == f->w;
                for (g = 0; g < ng; ++g) {
                    int32_t a0, a1, a2, a3, ky, kx;
                    const int32_t *wg = wexp + 2 * g * taps;
                    const int8_t *src = inb + 4 * g;
                    if (interior) {
                        const int32_t *wp = wg;
                        a0 = fbias[4 * g];
                        a1 = fbias[4 * g + 1];
                        a2 = fbias[4 * g + 2];
                        a3 = fbias[4 * g + 3];
                        for (ky = 0; ky < f->h; ++ky) {
                            const int8_t *row = src + ((size_t)(iy0 + ky * p->dilation.h) * in->w + ix0) * c;
                            const int32_t step = p->dilation.w * c;
                            for (kx = 0; kx < f->w; ++kx, row += step, wp += 2) {
                                const int32_t x = tp_arm_read_s8x4(row);
                                const int32_t xe = __sxtb16(x);
                                const int32_t xo = tp_arm_sxtb16_ror8(x);
                                a0 = __smlabb(xe, wp[0], a0);
                                a2 = __smlatt(xe, wp[0], a2);
                                a1 = __smlabb(xo, wp[1], a1);
                                a3 = __smlatt(xo, wp[1], a3);
                            }
                        }
                    } else {
                        a0 = bias ? bias[4 * g] : 0;
                        a1 = bias ? bias[4 * g + 1] : 0;
                        a2 = bias ? bias[4 * g + 2] : 0;
                        a3 = bias ? bias[4 * g + 3] : 0;
                        for (ky = ky0; ky < ky1; ++ky) {
                            const int8_t *row = src + ((size_t)(iy0 + ky * p->dilation.h) * in->w +
                                                       ix0 + kx0 * p->dilation.w) * c;
                            const int32_t *wp = wg + 2 * (ky * f->w + kx0);
                            const int32_t step = p->dilation.w * c;
                            for (kx = kx0; kx < kx1; ++kx, row += step, wp += 2) {
                                const int32_t x = tp_arm_read_s8x4(row);
                                const int32_t xe = __sadd16(__sxtb16(x), offp);
                                const int32_t xo = __sadd16(tp_arm_sxtb16_ror8(x), offp);
                                a0 = __smlabb(xe, wp[0], a0);
                                a2 = __smlatt(xe, wp[0], a2);
                                a1 = __smlabb(xo, wp[1], a1);
                                a3 = __smlatt(xo, wp[1], a3);
                            }
                        }
                    }
                    {
                        const int32_t amin = p->activation.min, amax = p->activation.max;
                        const int32_t ooff = p->output_offset;
                        const int32_t ch = 4 * g;
                        int32_t r0, r1, r2, r3;
                        if (q->per_channel) {
                            r0 = tp_arm_requant(a0, q->multiplier[ch], q->shift[ch], fast);
                            r1 = tp_arm_requant(a1, q->multiplier[ch + 1], q->shift[ch + 1], fast);
                            r2 = tp_arm_requant(a2, q->multiplier[ch + 2], q->shift[ch + 2], fast);
                            r3 = tp_arm_requant(a3, q->multiplier[ch + 3], q->shift[ch + 3], fast);
                        } else {
                            r0 = tp_arm_requant(a0, q->multiplier[0], q->shift[0], fast);
                            r1 = tp_arm_requant(a1, q->multiplier[0], q->shift[0], fast);
                            r2 = tp_arm_requant(a2, q->multiplier[0], q->shift[0], fast);
                            r3 = tp_arm_requant(a3, q->multiplier[0], q->shift[0], fast);
                        }
                        r0 = tp_arm_clamp(r0 + ooff, amin, amax);
                        r1 = tp_arm_clamp(r1 + ooff, amin, amax);
                        r2 = tp_arm_clamp(r2 + ooff, amin, amax);
                        r3 = tp_arm_clamp(r3 + ooff, amin, amax);
                        tp_arm_write_s8x4(o + ch, (int32_t)((uint32_t)(r0 & 0xFF) | ((uint32_t)(r1 & 0xFF) << 8) |
                                                           ((uint32_t)(r2 & 0xFF) << 16) | ((uint32_t)r3 << 24)));
                    }
                }
            }
        }
    }
    return TP_OK;
}

#endif /* TP_USE_ARM_DSP && TP_ARM_HAS_DEPTHWISE_CONV_S8 */
