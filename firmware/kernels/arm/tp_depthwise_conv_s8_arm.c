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
    return TP_ARM_ALIGN_SLACK + filter_dims->h * filter_dims->w * filter_dims->c * 2 + filter_dims->c * 16;
}

/* One tap of 4 channels: x = 4 int8 inputs, wp = their (c0,c2),(c1,c3) int16 weight pairs. */
#define TP_DW_TAP(xv, wp)                                 \
    do {                                                  \
        const int32_t x_ = (xv);                          \
        const int32_t xe_ = __sxtb16(x_);                 \
        const int32_t xo_ = tp_arm_sxtb16_ror8(x_);       \
        a0 = __smlabb(xe_, (wp)[0], a0);                  \
        a2 = __smlatt(xe_, (wp)[0], a2);                  \
        a1 = __smlabb(xo_, (wp)[1], a1);                  \
        a3 = __smlatt(xo_, (wp)[1], a3);                  \
    } while (0)

/* Requantises 4 doubled accumulators (2 * acc, see below) of channels ch..ch+3 and stores them:
 * SMMULR(2 acc, m) + rounding shift by e = -shift > 0 (tp_arm_mbqm_rshift), SSAT for the full
 * int8 range, else the clamp. */
static inline int32_t tp_dw_rq(int32_t a2x, int32_t m, int32_t sh, int32_t ooff)
{
    int32_t v = tp_arm_smmulr(a2x, m);
    const int32_t e = -sh;
    v = ((v + ((int32_t)1 << (e - 1)) + (v >> 31)) >> e) + ooff;
    return v;
}

/* One table-requantised channel: SSAT8((SMMULR(a, m) + hb + sign) >> e), t = {m, e, hb}. */
static inline int32_t tp_dw_rq_tab(int32_t a, const int32_t *t)
{
    const int32_t v = tp_arm_smmulr(a, t[0]);
    return __ssat((v + t[2] + (v >> 31)) >> t[1], 8);
}

/* All channel groups of one 3x3 pixel whose 9 input words of group 0 are at src + tap[t] (the
 * group g words 4g bytes further; tap[t] < 0: the padding word padw), with the requantisation
 * table (see tp_depthwise_conv_s8_arm). Out of line so that its few live values stay in
 * registers. */
static void __attribute__((noinline)) tp_dw3x3_pixel(const int8_t *src, const int32_t *tap, int32_t padw,
                                                     const int32_t *wg, const int32_t *fb, const int32_t *rqt,
                                                     int8_t *o, int32_t ng)
{
    int32_t g;
    const int32_t t0 = tap[0], t1 = tap[1], t2 = tap[2], t3 = tap[3], t4 = tap[4], t5 = tap[5], t6 = tap[6],
                  t7 = tap[7], t8 = tap[8];
    for (g = 0; g < ng; ++g, src += 4, wg += 18, fb += 4, rqt += 12, o += 4) {
        int32_t a0 = fb[0], a1 = fb[1], a2 = fb[2], a3 = fb[3];
        TP_DW_TAP(t0 >= 0 ? tp_arm_read_s8x4(src + t0) : padw, wg);
        TP_DW_TAP(t1 >= 0 ? tp_arm_read_s8x4(src + t1) : padw, wg + 2);
        TP_DW_TAP(t2 >= 0 ? tp_arm_read_s8x4(src + t2) : padw, wg + 4);
        TP_DW_TAP(t3 >= 0 ? tp_arm_read_s8x4(src + t3) : padw, wg + 6);
        TP_DW_TAP(t4 >= 0 ? tp_arm_read_s8x4(src + t4) : padw, wg + 8);
        TP_DW_TAP(t5 >= 0 ? tp_arm_read_s8x4(src + t5) : padw, wg + 10);
        TP_DW_TAP(t6 >= 0 ? tp_arm_read_s8x4(src + t6) : padw, wg + 12);
        TP_DW_TAP(t7 >= 0 ? tp_arm_read_s8x4(src + t7) : padw, wg + 14);
        TP_DW_TAP(t8 >= 0 ? tp_arm_read_s8x4(src + t8) : padw, wg + 16);
        o[0] = (int8_t)tp_dw_rq_tab(a0, rqt);
        o[1] = (int8_t)tp_dw_rq_tab(a1, rqt + 3);
        o[2] = (int8_t)tp_dw_rq_tab(a2, rqt + 6);
        o[3] = (int8_t)tp_dw_rq_tab(a3, rqt + 9);
    }
}

tp_status tp_depthwise_conv_s8_arm(const tp_context *ctx, const tp_dw_conv_params *p,
                                   const tp_quant_params *q,
                                   const tp_dims *in, const int8_t *input,
                                   const tp_dims *f, const int8_t *filter, const int32_t *bias,
                                   const tp_dims *out, int8_t *output)
{
    int32_t c, ng, taps, g, t, b, oy, ox, fast, dbl, scale;
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

    /* |acc| <= taps * 255 * 128 + max|bias| (the folded form sums the same terms): when below 2^30
     * and every shift is <= 0, the accumulators are kept doubled (weights and biases times 2, exact
     * in int16 / int32) so that the SMMULR requantisation needs no extra shift. */
    {
        int64_t wmax = 0;
        if (bias) {
            for (g = 0; g < c; ++g) {
                const int64_t a = bias[g] < 0 ? -(int64_t)bias[g] : (int64_t)bias[g];
                wmax = a > wmax ? a : wmax;
            }
        }
        fast = (int64_t)taps * 255 * 128 + wmax < (int64_t)TP_ARM_FAST_RQ_LIMIT;
        dbl = fast;
        for (g = 0; g < (q->per_channel ? c : 1); ++g) {
            dbl = dbl && q->shift[g] < 0;
        }
        scale = dbl ? 2 : 1;
    }
    /* expand the filter (times scale); fold the input offset into the bias of interior pixels */
    for (g = 0; g < ng; ++g) {
        int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (t = 0; t < taps; ++t) {
            const int8_t *w = filter + (size_t)t * c + 4 * g;
            wexp[2 * (g * taps + t)] = tp_arm_pack16(scale * w[0], scale * w[2]);
            wexp[2 * (g * taps + t) + 1] = tp_arm_pack16(scale * w[1], scale * w[3]);
            s0 += w[0];
            s1 += w[1];
            s2 += w[2];
            s3 += w[3];
        }
        fbias[4 * g] = scale * ((bias ? bias[4 * g] : 0) + p->input_offset * s0);
        fbias[4 * g + 1] = scale * ((bias ? bias[4 * g + 1] : 0) + p->input_offset * s1);
        fbias[4 * g + 2] = scale * ((bias ? bias[4 * g + 2] : 0) + p->input_offset * s2);
        fbias[4 * g + 3] = scale * ((bias ? bias[4 * g + 3] : 0) + p->input_offset * s3);
    }

    {
    const int32_t amin = p->activation.min, amax = p->activation.max, ooff = p->output_offset;
    const int full_range = amin == -128 && amax == 127;
    const int32_t ps = q->per_channel ? 1 : 0;
    /* per-channel requantisation table after the folded biases: (m, e, hb) with e = -shift and
     * hb = 2^(e-1) + output_offset * 2^e (the output offset folded into the rounding constant,
     * exact for e <= 22: |SMMULR| < 2^30), used when every channel takes the doubled SMMULR path
     * and the activation range is the full int8 */
    int32_t *rqt = fbias + c;
    int tab = dbl && full_range;
    for (g = 0; g < c && tab; ++g) {
        const int32_t e = -q->shift[ps * g];
        tab = e <= 22;
        rqt[3 * g] = q->multiplier[ps * g];
        rqt[3 * g + 1] = e;
        rqt[3 * g + 2] = ((int32_t)1 << (e - 1)) + ooff * ((int32_t)1 << e);
    }
    const int unroll3 = f->h == 3 && f->w == 3 && p->dilation.h == 1 && p->dilation.w == 1;
    /* border pixels of a 3x3 filter through the unrolled taps when -input_offset is an int8 */
    const int pad3 = unroll3 && p->input_offset >= -127 && p->input_offset <= 128;
    const int32_t padw = (int32_t)((uint32_t)(uint8_t)(int8_t)(-p->input_offset) * 0x01010101u);
    int32_t toff[9];
    const int32_t rowb = in->w * c;
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
                if (pad3 && tab) {
                    /* the whole pixel out of line (interior: every tap inside) */
                    int32_t ky, kx;
                    for (ky = 0; ky < 3; ++ky) {
                        for (kx = 0; kx < 3; ++kx) {
                            toff[3 * ky + kx] = ky >= ky0 && ky < ky1 && kx >= kx0 && kx < kx1
                                                    ? ((iy0 + ky) * in->w + ix0 + kx) * c : -1;
                        }
                    }
                    tp_dw3x3_pixel(inb, toff, padw, wexp, fbias, rqt, o, ng);
                    continue;
                }
                if (!interior && pad3) {
                    /* 3x3 border pixel: byte offsets of the 9 taps in the input, -1 in the padding
                     * (the taps then read -input_offset, so the folded bias stays exact) */
                    int32_t ky, kx;
                    for (ky = 0; ky < 3; ++ky) {
                        for (kx = 0; kx < 3; ++kx) {
                            toff[3 * ky + kx] = ky >= ky0 && ky < ky1 && kx >= kx0 && kx < kx1
                                                    ? ((iy0 + ky) * in->w + ix0 + kx) * c : -1;
                        }
                    }
                }
                for (g = 0; g < ng; ++g) {
                    int32_t a0, a1, a2, a3, ky, kx;
                    const int32_t *wg = wexp + 2 * g * taps;
                    const int8_t *src = inb + 4 * g;
                    if (interior && unroll3) {
                        /* 3x3, dilation 1, whole window inside: 9 taps unrolled */
                        const int8_t *r0 = src + ((size_t)iy0 * in->w + ix0) * c;
                        const int8_t *r1 = r0 + rowb;
                        const int8_t *r2 = r1 + rowb;
                        a0 = fbias[4 * g];
                        a1 = fbias[4 * g + 1];
                        a2 = fbias[4 * g + 2];
                        a3 = fbias[4 * g + 3];
                        TP_DW_TAP(tp_arm_read_s8x4(r0), wg);
                        TP_DW_TAP(tp_arm_read_s8x4(r0 + c), wg + 2);
                        TP_DW_TAP(tp_arm_read_s8x4(r0 + 2 * c), wg + 4);
                        TP_DW_TAP(tp_arm_read_s8x4(r1), wg + 6);
                        TP_DW_TAP(tp_arm_read_s8x4(r1 + c), wg + 8);
                        TP_DW_TAP(tp_arm_read_s8x4(r1 + 2 * c), wg + 10);
                        TP_DW_TAP(tp_arm_read_s8x4(r2), wg + 12);
                        TP_DW_TAP(tp_arm_read_s8x4(r2 + c), wg + 14);
                        TP_DW_TAP(tp_arm_read_s8x4(r2 + 2 * c), wg + 16);
                    } else if (pad3) {
                        /* 3x3 border: the window's words gathered with padding words, then the
                         * interior's unrolled taps and folded bias */
                        int32_t win[9], t;
                        for (t = 0; t < 9; ++t) {
                            win[t] = toff[t] >= 0 ? tp_arm_read_s8x4(src + toff[t]) : padw;
                        }
                        a0 = fbias[4 * g];
                        a1 = fbias[4 * g + 1];
                        a2 = fbias[4 * g + 2];
                        a3 = fbias[4 * g + 3];
                        TP_DW_TAP(win[0], wg);
                        TP_DW_TAP(win[1], wg + 2);
                        TP_DW_TAP(win[2], wg + 4);
                        TP_DW_TAP(win[3], wg + 6);
                        TP_DW_TAP(win[4], wg + 8);
                        TP_DW_TAP(win[5], wg + 10);
                        TP_DW_TAP(win[6], wg + 12);
                        TP_DW_TAP(win[7], wg + 14);
                        TP_DW_TAP(win[8], wg + 16);
                    } else if (interior) {
                        const int32_t *wp = wg;
                        a0 = fbias[4 * g];
                        a1 = fbias[4 * g + 1];
                        a2 = fbias[4 * g + 2];
                        a3 = fbias[4 * g + 3];
                        for (ky = 0; ky < f->h; ++ky) {
                            const int8_t *row = src + ((size_t)(iy0 + ky * p->dilation.h) * in->w + ix0) * c;
                            const int32_t step = p->dilation.w * c;
                            for (kx = 0; kx < f->w; ++kx, row += step, wp += 2) {
                                TP_DW_TAP(tp_arm_read_s8x4(row), wp);
                            }
                        }
                    } else {
                        a0 = scale * (bias ? bias[4 * g] : 0);
                        a1 = scale * (bias ? bias[4 * g + 1] : 0);
                        a2 = scale * (bias ? bias[4 * g + 2] : 0);
                        a3 = scale * (bias ? bias[4 * g + 3] : 0);
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
                        const int32_t ch = 4 * g;
                        const int32_t *mp = q->multiplier + ps * ch;
                        const int32_t *sp = q->shift + ps * ch;
                        int32_t r0, r1, r2, r3;
                        if (tab) {
                            const int32_t *t = rqt + 3 * ch;
                            int32_t v;
                            v = tp_arm_smmulr(a0, t[0]);
                            r0 = __ssat((v + t[2] + (v >> 31)) >> t[1], 8);
                            v = tp_arm_smmulr(a1, t[3]);
                            r1 = __ssat((v + t[5] + (v >> 31)) >> t[4], 8);
                            v = tp_arm_smmulr(a2, t[6]);
                            r2 = __ssat((v + t[8] + (v >> 31)) >> t[7], 8);
                            v = tp_arm_smmulr(a3, t[9]);
                            r3 = __ssat((v + t[11] + (v >> 31)) >> t[10], 8);
                            o[ch] = (int8_t)r0;
                            o[ch + 1] = (int8_t)r1;
                            o[ch + 2] = (int8_t)r2;
                            o[ch + 3] = (int8_t)r3;
                            continue;
                        }
                        if (dbl) {
                            r0 = tp_dw_rq(a0, mp[0], sp[0], ooff);
                            r1 = tp_dw_rq(a1, mp[ps], sp[ps], ooff);
                            r2 = tp_dw_rq(a2, mp[2 * ps], sp[2 * ps], ooff);
                            r3 = tp_dw_rq(a3, mp[3 * ps], sp[3 * ps], ooff);
                        } else {
                            r0 = tp_arm_requant(a0, mp[0], sp[0], fast) + ooff;
                            r1 = tp_arm_requant(a1, mp[ps], sp[ps], fast) + ooff;
                            r2 = tp_arm_requant(a2, mp[2 * ps], sp[2 * ps], fast) + ooff;
                            r3 = tp_arm_requant(a3, mp[3 * ps], sp[3 * ps], fast) + ooff;
                        }
                        if (full_range) {
                            r0 = __ssat(r0, 8);
                            r1 = __ssat(r1, 8);
                            r2 = __ssat(r2, 8);
                            r3 = __ssat(r3, 8);
                        } else {
                            r0 = tp_arm_clamp(r0, amin, amax);
                            r1 = tp_arm_clamp(r1, amin, amax);
                            r2 = tp_arm_clamp(r2, amin, amax);
                            r3 = tp_arm_clamp(r3, amin, amax);
                        }
                        o[ch] = (int8_t)r0;
                        o[ch + 1] = (int8_t)r1;
                        o[ch + 2] = (int8_t)r2;
                        o[ch + 3] = (int8_t)r3;
                    }
                }
            }
        }
    }
    }
    return TP_OK;
}

#endif /* TP_USE_ARM_DSP && TP_ARM_HAS_DEPTHWISE_CONV_S8 */
