/* CONV_2D int8, Cortex-M4/M7 DSP variant: bit-exact with tp_conv_s8_ref.
 *
 * Scheme: output pixels are taken 4 at a time (over batch, row and column). Their receptive fields
 * are copied ("im2col") into scratch as int16 values x + input_offset (0 where the window lies in
 * the padding), interleaved so that one 8-byte group holds 4 consecutive filter elements of one
 * pixel in the order (k0, k2 | k1, k3) -- the order in which SXTB16 / SXTB16-ROR8 unpack 4 int8
 * filter bytes -- and the 4 pixels' groups are adjacent. Each output channel then reads its filter
 * row once per 4 pixels: per 4 filter elements 1 LDR + 2 SXTB16 + 8 SMLAD for 16 MACs.
 * Accumulators are exact in int32 (see tp_nn.h: K <= 65,000 terms of |x| <= 255, |w| <= 127).
 * Requantisation uses tp_arm_mbqm_rshift when the per-call bound |acc| < 2^30 holds. */
#include "../tp_nn.h"

#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_CONV_S8)
#include "tp_arm_support.h"

#define TP_CONV_PIX 4   /* output pixels per block */

int32_t tp_conv_s8_arm_get_buffer_size(const tp_dims *input_dims, const tp_dims *filter_dims,
                                       const tp_dims *output_dims)
{
    int32_t k;
    (void)input_dims;
    (void)output_dims;
    if (!filter_dims) {
        return 0;
    }
    k = filter_dims->h * filter_dims->w * filter_dims->c;
    return TP_ARM_ALIGN_SLACK + 8 * TP_CONV_PIX * ((k + 3) / 4);
}

/* Writes the 4 int16 values v[0..3] of one group for one pixel (order k0,k2 | k1,k3). */
static inline void tp_put_group(int32_t *dst, const int32_t v[4])
{
    dst[0] = tp_arm_pack16(v[0], v[2]);
    dst[1] = tp_arm_pack16(v[1], v[3]);
}

/* im2col of one pixel into groups dst[0], dst[8], dst[16], ... (words; 4 pixels interleaved). */
static void tp_im2col_pixel(int32_t *dst, const tp_conv_params *p, const tp_dims *in, const int8_t *input,
                            const tp_dims *f, int32_t b, int32_t oy, int32_t ox)
{
    const int32_t c = in->c;
    const int32_t iy0 = oy * p->stride.h - p->padding.h;
    const int32_t ix0 = ox * p->stride.w - p->padding.w;
    const int32_t off = p->input_offset;
    const int8_t *base = input + (size_t)b * in->h * in->w * c;
    int32_t ky, kx, i;
    if ((c & 3) == 0) {
        const int32_t offp = tp_arm_pack16(off, off);
        for (ky = 0; ky < f->h; ++ky) {
            const int32_t iy = iy0 + ky * p->dilation.h;
            for (kx = 0; kx < f->w; ++kx) {
                const int32_t ix = ix0 + kx * p->dilation.w;
                if (iy < 0 || iy >= in->h || ix < 0 || ix >= in->w) {
                    for (i = 0; i < c; i += 4) {
                        dst[0] = 0;
                        dst[1] = 0;
                        dst += 2 * TP_CONV_PIX;
                    }
                } else {
                    const int8_t *src = base + ((size_t)iy * in->w + ix) * c;
                    for (i = 0; i < c; i += 4) {
                        const int32_t x = tp_arm_read_s8x4(src + i);
                        dst[0] = __sadd16(__sxtb16(x), offp);
                        dst[1] = __sadd16(tp_arm_sxtb16_ror8(x), offp);
                        dst += 2 * TP_CONV_PIX;
                    }
                }
            }
        }
    } else {
        int32_t v[4];
        int32_t n = 0;
        for (ky = 0; ky < f->h; ++ky) {
            const int32_t iy = iy0 + ky * p->dilation.h;
            for (kx = 0; kx < f->w; ++kx) {
                const int32_t ix = ix0 + kx * p->dilation.w;
                const int valid = !(iy < 0 || iy >= in->h || ix < 0 || ix >= in->w);
                const int8_t *src = base + ((size_t)iy * in->w + ix) * c;
                for (i = 0; i < c; ++i) {
                    v[n++] = valid ? (int32_t)src[i] + off : 0;
                    if (n == 4) {
                        tp_put_group(dst, v);
                        dst += 2 * TP_CONV_PIX;
                        n = 0;
                    }
                }
            }
        }
        if (n) {
            for (; n < 4; ++n) {
                v[n] = 0;
            }
            tp_put_group(dst, v);
        }
    }
}

/* 1x1, stride 1, no padding: the window is the pixel itself (c % 4 == 0 not required). */
static void tp_im2col_1x1(int32_t *dst, const int8_t *src, int32_t c, int32_t off)
{
    const int32_t offp = tp_arm_pack16(off, off);
    int32_t i;
    for (i = 0; i + 4 <= c; i += 4) {
        const int32_t x = tp_arm_read_s8x4(src + i);
        dst[0] = __sadd16(__sxtb16(x), offp);
        dst[1] = __sadd16(tp_arm_sxtb16_ror8(x), offp);
        dst += 2 * TP_CONV_PIX;
    }
    if (i < c) {
        int32_t v[4];
        int32_t n;
        for (n = 0; n < 4; ++n, ++i) {
            v[n] = i < c ? (int32_t)src[i] + off : 0;
        }
        tp_put_group(dst, v);
    }
}

/* Dot products of one filter row (k int8) with the 4 interleaved im2col columns. */
static inline void tp_row_x4(const int8_t *w, const int32_t *col, int32_t k, int32_t acc[4])
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    int32_t g = k >> 2;
    while (g >= 2) {
        int32_t wv = tp_arm_read_s8x4(w);
        int32_t we = __sxtb16(wv);
        int32_t wo = tp_arm_sxtb16_ror8(wv);
        a0 = __smlad(col[0], we, a0);
        a0 = __smlad(col[1], wo, a0);
        a1 = __smlad(col[2], we, a1);
        a1 = __smlad(col[3], wo, a1);
        a2 = __smlad(col[4], we, a2);
        a2 = __smlad(col[5], wo, a2);
        a3 = __smlad(col[6], we, a3);
        a3 = __smlad(col[7], wo, a3);
        wv = tp_arm_read_s8x4(w + 4);
        we = __sxtb16(wv);
        wo = tp_arm_sxtb16_ror8(wv);
        a0 = __smlad(col[8], we, a0);
        a0 = __smlad(col[9], wo, a0);
        a1 = __smlad(col[10], we, a1);
        a1 = __smlad(col[11], wo, a1);
        a2 = __smlad(col[12], we, a2);
        a2 = __smlad(col[13], wo, a2);
        a3 = __smlad(col[14], we, a3);
        a3 = __smlad(col[15], wo, a3);
        w += 8;
        col += 16;
        g -= 2;
    }
    if (g) {
        const int32_t wv = tp_arm_read_s8x4(w);
        const int32_t we = __sxtb16(wv);
        const int32_t wo = tp_arm_sxtb16_ror8(wv);
        a0 = __smlad(col[0], we, a0);
        a0 = __smlad(col[1], wo, a0);
        a1 = __smlad(col[2], we, a1);
        a1 = __smlad(col[3], wo, a1);
        a2 = __smlad(col[4], we, a2);
        a2 = __smlad(col[5], wo, a2);
        a3 = __smlad(col[6], we, a3);
        a3 = __smlad(col[7], wo, a3);
        w += 4;
        col += 8;
    }
    if (k & 3) {
        /* last partial group: filter bytes beyond the row are taken as 0 (never read) */
        int32_t wv = 0;
        int32_t r;
        for (r = 0; r < (k & 3); ++r) {
            wv |= (int32_t)((uint32_t)(uint8_t)w[r] << (8 * r));
        }
        {
            const int32_t we = __sxtb16(wv);
            const int32_t wo = tp_arm_sxtb16_ror8(wv);
            a0 = __smlad(col[0], we, a0);
            a0 = __smlad(col[1], wo, a0);
            a1 = __smlad(col[2], we, a1);
            a1 = __smlad(col[3], wo, a1);
            a2 = __smlad(col[4], we, a2);
            a2 = __smlad(col[5], wo, a2);
            a3 = __smlad(col[6], we, a3);
            a3 = __smlad(col[7], wo, a3);
        }
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

tp_status tp_conv_s8_arm(const tp_context *ctx, const tp_conv_params *p, const tp_quant_params *q,
                         const tp_dims *in, const int8_t *input,
                         const tp_dims *f, const int8_t *filter, const int32_t *bias,
                         const tp_dims *out, int8_t *output)
{
    int32_t k, npix, pix0, oc, i, fast;
    int32_t *col;
    int is_1x1;
    if (!p || !q || !q->multiplier || !q->shift || !in || !input || !f || !filter || !out || !output ||
        in->n <= 0 || in->h <= 0 || in->w <= 0 || in->c <= 0 || f->n <= 0 || f->h <= 0 || f->w <= 0 ||
        out->h <= 0 || out->w <= 0 || p->stride.h <= 0 || p->stride.w <= 0 || p->dilation.h <= 0 ||
        p->dilation.w <= 0 || f->c != in->c || out->c != f->n || out->n != in->n ||
        f->h * f->w * f->c > TP_MAX_ACC_TERMS) {
        return TP_ERR_ARG;
    }
    k = f->h * f->w * f->c;
    if (!ctx || !ctx->buf || ctx->size < tp_conv_s8_arm_get_buffer_size(in, f, out)) {
        return tp_conv_s8_ref(ctx, p, q, in, input, f, filter, bias, out, output);
    }
    col = (int32_t *)tp_arm_align8(ctx->buf);

    /* |acc| <= k * 255 * 128 + max|bias|: decides once whether the SMMULR requantisation applies. */
    {
        int64_t bound = (int64_t)k * 255 * 128;
        int64_t bmax = 0;
        if (bias) {
            for (oc = 0; oc < out->c; ++oc) {
                const int64_t a = bias[oc] < 0 ? -(int64_t)bias[oc] : (int64_t)bias[oc];
                bmax = a > bmax ? a : bmax;
            }
        }
        fast = bound + bmax < (int64_t)TP_ARM_FAST_RQ_LIMIT;
    }
    is_1x1 = f->h == 1 && f->w == 1 && p->stride.h == 1 && p->stride.w == 1 && p->padding.h == 0 &&
             p->padding.w == 0 && out->h == in->h && out->w == in->w;

    npix = out->n * out->h * out->w;
    for (pix0 = 0; pix0 < npix; pix0 += TP_CONV_PIX) {
        const int32_t nvalid = npix - pix0 < TP_CONV_PIX ? npix - pix0 : TP_CONV_PIX;
        for (i = 0; i < TP_CONV_PIX; ++i) {
            int32_t *dst = col + 2 * i;
            if (i >= nvalid) {
                int32_t g;
                for (g = 0; g < (k + 3) / 4; ++g) {
                    dst[8 * g] = 0;
                    dst[8 * g + 1] = 0;
                }
            } else if (is_1x1) {
                tp_im2col_1x1(dst, input + (size_t)(pix0 + i) * in->c, in->c, p->input_offset);
            } else {
                const int32_t pix = pix0 + i;
                const int32_t b = pix / (out->h * out->w);
                const int32_t r = pix - b * out->h * out->w;
                tp_im2col_pixel(dst, p, in, input, f, b, r / out->w, r % out->w);
            }
        }
        {
            const int8_t *w = filter;
            int8_t *o = output + (size_t)pix0 * out->c;
            const int32_t amin = p->activation.min, amax = p->activation.max, ooff = p->output_offset;
            for (oc = 0; oc < out->c; ++oc, w += k) {
                const int32_t qi = q->per_channel ? oc : 0;
                const int32_t m = q->multiplier[qi], sh = q->shift[qi];
                const int32_t b0 = bias ? bias[oc] : 0;
                int32_t acc[4];
                acc[0] = b0;
                acc[1] = b0;
                acc[2] = b0;
                acc[3] = b0;
                tp_row_x4(w, col, k, acc);
                if (fast && sh < 0 && nvalid == TP_CONV_PIX) {
                    /* common case, unrolled: SMMULR + rounding shift (tp_arm_mbqm_rshift, e > 0) */
                    const int32_t e = -sh, half = (int32_t)1 << (e - 1);
                    const int32_t stride = out->c;
                    int32_t v0 = tp_arm_smmulr(acc[0] * 2, m), v1 = tp_arm_smmulr(acc[1] * 2, m);
                    int32_t v2 = tp_arm_smmulr(acc[2] * 2, m), v3 = tp_arm_smmulr(acc[3] * 2, m);
                    v0 = ((v0 + half + (v0 >> 31)) >> e) + ooff;
                    v1 = ((v1 + half + (v1 >> 31)) >> e) + ooff;
                    v2 = ((v2 + half + (v2 >> 31)) >> e) + ooff;
                    v3 = ((v3 + half + (v3 >> 31)) >> e) + ooff;
                    o[oc] = (int8_t)tp_arm_clamp(v0, amin, amax);
                    o[stride + oc] = (int8_t)tp_arm_clamp(v1, amin, amax);
                    o[2 * stride + oc] = (int8_t)tp_arm_clamp(v2, amin, amax);
                    o[3 * stride + oc] = (int8_t)tp_arm_clamp(v3, amin, amax);
                } else {
                    for (i = 0; i < nvalid; ++i) {
                        const int32_t v = tp_arm_requant(acc[i], m, sh, fast) + ooff;
                        o[(size_t)i * out->c + oc] = (int8_t)tp_arm_clamp(v, amin, amax);
                    }
                }
            }
        }
    }
    return TP_OK;
}

#endif /* TP_USE_ARM_DSP && TP_ARM_HAS_CONV_S8 */
