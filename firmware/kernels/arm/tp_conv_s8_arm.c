/* CONV_2D int8, Cortex-M4/M7 DSP variant: bit-exact with tp_conv_s8_ref.
 *
 * Scheme: output pixels are taken TP_CONV_PIX (8) at a time (over batch, row and column). Their
 * receptive fields are copied ("im2col") into scratch as int16 values x + input_offset (0 where
 * the window lies in the padding), interleaved so that one group of 4 consecutive filter elements
 * of one pixel is two adjacent words in the order (k0, k2 | k1, k3) -- the order in which SXTB16 /
 * SXTB16-ROR8 unpack 4 int8 filter bytes -- and the 8 pixels' groups are adjacent:
 *   col[g * 16 + 2 * pixel + {0: (k0,k2), 1: (k1,k3)}].
 * Output channels are then taken one at a time against the 8 pixels (register block 1 x 8, 8
 * accumulators): per group of 4 filter elements 1 LDR + 2 SXTB16 for the weights, then per pixel
 * one LDRD of its two column words and 2 SMLAD (32 MACs in 27 instructions; the 2-channel x
 * 3-pixel block of round 2 needed 32 for 32 MACs: with two weight rows no register was left for
 * LDRD). The
 * im2col is done once per block and reused by every channel. Interior window rows (dilation.w 1)
 * are copied as one contiguous run. Accumulators are exact in int32 (see tp_nn.h: K <= 65,000
 * terms of |x| <= 255, |w| <= 127). Requantisation straight from the registers with SMMULR
 * (tp_arm_mbqm_rshift) + SSAT when the per-call bound |acc| < 2^30 holds, the channel's shift is
 * < 0 and the activation range is the full int8; otherwise tp_mbqm and the clamp.
 * Overlap (see tp_nn_arm.h): the whole block's windows are copied before any output of the
 * block is written, so 0 output pixels are in flight. */
#include "../tp_nn.h"

#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_CONV_S8)
#include "tp_arm_support.h"

#define TP_CONV_PIX 8                    /* output pixels per block */
#define TP_CONV_GW (2 * TP_CONV_PIX)     /* scratch words per group of 4 filter elements */
#define TP_CONV_GATHER_MAX 252           /* windows up to this many elements are gathered on the stack */

/* Per output channel, prepared once per call in scratch after the columns: the bias and the
 * requantisation in the form the block needs. e > 0: fast path, out = SSAT8((SMMULR(2 acc, m) +
 * hb + sign) >> e) with hb = 2^(e-1) + output_offset * 2^e (the output offset folded into the
 * rounding constant: exact, see tp_conv_s8_arm); e == 0: the general path (tp_store_channel). */
typedef struct {
    int32_t bias, m, e, hb;
} tp_conv_chan;

/* Largest right shift for which hb and the sum in the fast requantisation fit in int32
 * (|SMMULR| < 2^30, 2^(e-1) + 128 * 2^e < 2^30). */
#define TP_CONV_MAX_FAST_E 22

/* Largest K whose filter rows are summed with 16-bit SIMD halves (K / 4 * 2 * 128 < 2^15). */
#define TP_CONV_FOLD_MAX_K 1020

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
    return TP_ARM_ALIGN_SLACK + 4 * TP_CONV_GW * ((k + 3) / 4) + (int32_t)sizeof(tp_conv_chan) * filter_dims->n;
}

/* Two words to dst[0], dst[1] in one STRD. */
static inline void tp_arm_store2(int32_t *dst, int32_t a, int32_t b)
{
    __asm__ volatile("strd %1, %2, [%0]" : : "r"(dst), "r"(a), "r"(b) : "memory");
}

/* im2col of one pixel into groups starting at dst (words), dst advancing TP_CONV_GW per group. */
static void tp_im2col_pixel(int32_t *dst, const tp_conv_params *p, const tp_dims *in, const int8_t *input,
                            const tp_dims *f, int32_t b, int32_t oy, int32_t ox, int32_t k, int fold)
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
            const int row_ok = iy >= 0 && iy < in->h;
            for (kx = 0; kx < f->w; ++kx) {
                const int32_t ix = ix0 + kx * p->dilation.w;
                if (!row_ok || ix < 0 || ix >= in->w) {
                    for (i = 0; i < c; i += 4) {
                        dst[0] = 0;
                        dst[1] = 0;
                        dst += TP_CONV_GW;
                    }
                } else {
                    const int8_t *src = base + ((size_t)iy * in->w + ix) * c;
                    for (i = 0; i < c; i += 4) {
                        const int32_t x = tp_arm_read_s8x4(src + i);
                        dst[0] = __sadd16(__sxtb16(x), offp);
                        dst[1] = __sadd16(tp_arm_sxtb16_ror8(x), offp);
                        dst += TP_CONV_GW;
                    }
                }
            }
        }
    } else if (k <= TP_CONV_GATHER_MAX) {
        /* any channel count (first layers: c = 1 or 3): gather the window's bytes into a linear
         * buffer, the padding as -input_offset (so that x + input_offset is exactly 0; it is an
         * int8 because input_offset = -zero_point), rows of the window copied as one segment when
         * they lie inside the input, then unpack 4 at a time like the c % 4 == 0 path */
        int8_t lin[TP_CONV_GATHER_MAX + 4];
        const int8_t pad = (int8_t)(-off);
        const int32_t offp = tp_arm_pack16(off, off);
        int8_t *d = lin;
        for (ky = 0; ky < f->h; ++ky) {
            const int32_t iy = iy0 + ky * p->dilation.h;
            const int row_ok = iy >= 0 && iy < in->h;
            if (row_ok && p->dilation.w == 1 && ix0 >= 0 && ix0 + f->w <= in->w) {
                const int8_t *src = base + ((size_t)iy * in->w + ix0) * c;
                const int8_t *se = src + f->w * c;
                while (src != se) {
                    *d++ = *src++;
                }
                continue;
            }
            for (kx = 0; kx < f->w; ++kx) {
                const int32_t ix = ix0 + kx * p->dilation.w;
                if (row_ok && ix >= 0 && ix < in->w) {
                    const int8_t *src = base + ((size_t)iy * in->w + ix) * c;
                    for (i = 0; i < c; ++i) {
                        *d++ = src[i];
                    }
                } else {
                    for (i = 0; i < c; ++i) {
                        *d++ = pad;
                    }
                }
            }
        }
        if (fold) {
            /* offset in the biases: columns = x, padding -offset, beyond k 0 (the weights there
             * are not part of the row) */
            d[0] = 0;
            d[1] = 0;
            d[2] = 0;
            for (i = 0; i < k; i += 4) {
                const int32_t x = tp_arm_read_s8x4(lin + i);
                tp_arm_store2(dst, __sxtb16(x), tp_arm_sxtb16_ror8(x));
                dst += TP_CONV_GW;
            }
            return;
        }
        d[0] = pad;
        d[1] = pad;
        d[2] = pad;
        for (i = 0; i < k; i += 4) {
            const int32_t x = tp_arm_read_s8x4(lin + i);
            dst[0] = __sadd16(__sxtb16(x), offp);
            dst[1] = __sadd16(tp_arm_sxtb16_ror8(x), offp);
            dst += TP_CONV_GW;
        }
    } else {
        /* large windows of any channel count: element j of the window goes to halfword
         * 2 * (g * GW + (r & 1)) + (r >> 1) of the pixel's groups, g = j / 4, r = j % 4 */
        int16_t *h = (int16_t *)dst;
        int32_t r = 0;
        static const uint8_t pos[4] = { 0, 2, 1, 3 };
        for (ky = 0; ky < f->h; ++ky) {
            const int32_t iy = iy0 + ky * p->dilation.h;
            const int row_ok = iy >= 0 && iy < in->h;
            for (kx = 0; kx < f->w; ++kx) {
                const int32_t ix = ix0 + kx * p->dilation.w;
                const int8_t *src = base + ((size_t)iy * in->w + ix) * c;
                const int valid = row_ok && ix >= 0 && ix < in->w;
                for (i = 0; i < c; ++i) {
                    h[pos[r]] = (int16_t)(valid ? (int32_t)src[i] + off : 0);
                    if (++r == 4) {
                        r = 0;
                        h += 2 * TP_CONV_GW;
                    }
                }
            }
        }
        for (; r && r < 4; ++r) {
            h[pos[r]] = 0;
        }
    }
    (void)k;
}

/* n groups of 4 int8 from src (contiguous) to the column layout at dst (stride TP_CONV_GW words):
 * LDR, 2 SXTB16, 2 SADD16 and one doubleword store per group. Returns the advanced dst. */
static inline int32_t *tp_im2col_run(int32_t *dst, const int8_t *src, int32_t n, int32_t offp)
{
    while (n >= 2) {
        const int32_t x0 = tp_arm_read_s8x4(src), x1 = tp_arm_read_s8x4(src + 4);
        dst[0] = __sadd16(__sxtb16(x0), offp);
        dst[1] = __sadd16(tp_arm_sxtb16_ror8(x0), offp);
        dst[TP_CONV_GW] = __sadd16(__sxtb16(x1), offp);
        dst[TP_CONV_GW + 1] = __sadd16(tp_arm_sxtb16_ror8(x1), offp);
        dst += 2 * TP_CONV_GW;
        src += 8;
        n -= 2;
    }
    if (n) {
        const int32_t x0 = tp_arm_read_s8x4(src);
        dst[0] = __sadd16(__sxtb16(x0), offp);
        dst[1] = __sadd16(tp_arm_sxtb16_ror8(x0), offp);
        dst += TP_CONV_GW;
    }
    return dst;
}

/* As tp_im2col_run without the input offset (folded into the biases): LDR, 2 SXTB16, STRD. */
static inline int32_t *tp_im2col_run_raw(int32_t *dst, const int8_t *src, int32_t n)
{
    while (n >= 2) {
        const int32_t x0 = tp_arm_read_s8x4(src), x1 = tp_arm_read_s8x4(src + 4);
        tp_arm_store2(dst, __sxtb16(x0), tp_arm_sxtb16_ror8(x0));
        tp_arm_store2(dst + TP_CONV_GW, __sxtb16(x1), tp_arm_sxtb16_ror8(x1));
        dst += 2 * TP_CONV_GW;
        src += 8;
        n -= 2;
    }
    if (n) {
        const int32_t x0 = tp_arm_read_s8x4(src);
        tp_arm_store2(dst, __sxtb16(x0), tp_arm_sxtb16_ror8(x0));
        dst += TP_CONV_GW;
    }
    return dst;
}

/* n groups of padding: the word v in both halves-pairs (0 when the offset is added to x, so that
 * x + input_offset is 0; -input_offset in each half when the offset is folded into the biases). */
static inline int32_t *tp_im2col_fill(int32_t *dst, int32_t n, int32_t v)
{
    while (n--) {
        dst[0] = v;
        dst[1] = v;
        dst += TP_CONV_GW;
    }
    return dst;
}

/* im2col of one pixel when in_c % 4 == 0: window rows that lie inside the input with dilation.w 1
 * are one contiguous run of kw * c bytes. fold: the input offset is in the biases (see
 * tp_conv_s8_arm), so the columns hold x itself and the padding -input_offset. */
static void tp_im2col_c4(int32_t *dst, const tp_conv_params *p, const tp_dims *in, const int8_t *base,
                         const tp_dims *f, int32_t iy0, int32_t ix0, int fold)
{
    const int32_t c = in->c, cg = c >> 2;
    const int32_t offp = tp_arm_pack16(p->input_offset, p->input_offset);
    const int32_t padw = fold ? tp_arm_pack16(-p->input_offset, -p->input_offset) : 0;
    const int32_t dh = p->dilation.h, dw = p->dilation.w;
    const int row_inside = dw == 1 && ix0 >= 0 && ix0 + f->w <= in->w;
    int32_t ky, kx;
    for (ky = 0; ky < f->h; ++ky) {
        const int32_t iy = iy0 + ky * dh;
        if (iy < 0 || iy >= in->h) {
            dst = tp_im2col_fill(dst, cg * f->w, padw);
        } else if (row_inside) {
            const int8_t *src = base + ((size_t)iy * in->w + ix0) * c;
            dst = fold ? tp_im2col_run_raw(dst, src, cg * f->w) : tp_im2col_run(dst, src, cg * f->w, offp);
        } else {
            for (kx = 0; kx < f->w; ++kx) {
                const int32_t ix = ix0 + kx * dw;
                if (ix < 0 || ix >= in->w) {
                    dst = tp_im2col_fill(dst, cg, padw);
                } else {
                    const int8_t *src = base + ((size_t)iy * in->w + ix) * c;
                    dst = fold ? tp_im2col_run_raw(dst, src, cg) : tp_im2col_run(dst, src, cg, offp);
                }
            }
        }
    }
}

/* Sum of the k int8 of w (k <= TP_CONV_FOLD_MAX_K: the 16-bit partial sums cannot overflow). */
static int32_t tp_row_sum(const int8_t *w, int32_t k)
{
    int32_t se = 0, so = 0, i, r = 0;
    for (i = 0; i + 4 <= k; i += 4) {
        const int32_t x = tp_arm_read_s8x4(w + i);
        int32_t t;
        se = __sxtab16(se, x);
        __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(t) : "r"(so), "r"(x));
        so = t;
    }
    for (; i < k; ++i) {
        r += w[i];
    }
    return r + (int16_t)se + (se >> 16) + (int16_t)so + (so >> 16);
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
        dst += TP_CONV_GW;
    }
    if (i < c) {
        int32_t v[4];
        int32_t n;
        for (n = 0; n < 4; ++n, ++i) {
            v[n] = i < c ? (int32_t)src[i] + off : 0;
        }
        dst[0] = tp_arm_pack16(v[0], v[2]);
        dst[1] = tp_arm_pack16(v[1], v[3]);
    }
}

/* The last, partial group of a filter row (k % 4 elements): the missing bytes are 0, never read. */
static inline int32_t tp_tail_word(const int8_t *w, int32_t n)
{
    int32_t wv = 0;
    int32_t r;
    for (r = 0; r < n; ++r) {
        wv |= (int32_t)((uint32_t)(uint8_t)w[r] << (8 * r));
    }
    return wv;
}

/* One group (4 filter elements) of one filter row against the 8 pixels' columns, in assembly:
 * LDR + 2 SXTB16 for the weights, then per pixel one LDRD of its (k0,k2 | k1,k3) column words and
 * 2 SMLAD: 27 instructions per 32 MACs (the previous 2-channel x 3-pixel block needed 24 per 24,
 * because two weight rows left no register for LDRD). The column pointer advances one group
 * (64 bytes) with the first load. Registers: 8 accumulators, w, col, e, o, c0, c1 (14; the loop
 * end stays in memory). */
#define TP_RN_GROUP_ASM                                           \
    "ldr    %[e], [%[w]], #4\n\t"                                 \
    "ldrd   %[c0], %[c1], [%[col]], #64\n\t"                      \
    "sxtb16 %[o], %[e], ror #8\n\t"                               \
    "sxtb16 %[e], %[e]\n\t"                                       \
    "smlad  %[a0], %[c0], %[e], %[a0]\n\t"                        \
    "smlad  %[a0], %[c1], %[o], %[a0]\n\t"                        \
    "ldrd   %[c0], %[c1], [%[col], #-56]\n\t"                     \
    "smlad  %[a1], %[c0], %[e], %[a1]\n\t"                        \
    "smlad  %[a1], %[c1], %[o], %[a1]\n\t"                        \
    "ldrd   %[c0], %[c1], [%[col], #-48]\n\t"                     \
    "smlad  %[a2], %[c0], %[e], %[a2]\n\t"                        \
    "smlad  %[a2], %[c1], %[o], %[a2]\n\t"                        \
    "ldrd   %[c0], %[c1], [%[col], #-40]\n\t"                     \
    "smlad  %[a3], %[c0], %[e], %[a3]\n\t"                        \
    "smlad  %[a3], %[c1], %[o], %[a3]\n\t"                        \
    "ldrd   %[c0], %[c1], [%[col], #-32]\n\t"                     \
    "smlad  %[a4], %[c0], %[e], %[a4]\n\t"                        \
    "smlad  %[a4], %[c1], %[o], %[a4]\n\t"                        \
    "ldrd   %[c0], %[c1], [%[col], #-24]\n\t"                     \
    "smlad  %[a5], %[c0], %[e], %[a5]\n\t"                        \
    "smlad  %[a5], %[c1], %[o], %[a5]\n\t"                        \
    "ldrd   %[c0], %[c1], [%[col], #-16]\n\t"                     \
    "smlad  %[a6], %[c0], %[e], %[a6]\n\t"                        \
    "smlad  %[a6], %[c1], %[o], %[a6]\n\t"                        \
    "ldrd   %[c0], %[c1], [%[col], #-8]\n\t"                     \
    "smlad  %[a7], %[c0], %[e], %[a7]\n\t"                        \
    "smlad  %[a7], %[c1], %[o], %[a7]\n\t"

#define TP_RN_OPERANDS                                                                     \
    [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [a4] "+r"(a4), [a5] "+r"(a5), \
    [a6] "+r"(a6), [a7] "+r"(a7),                                                           \
    [w] "+r"(wq_), [col] "+r"(cq_), [e] "=&r"(e), [o] "=&r"(o), [c0] "=&r"(c0), [c1] "=&r"(c1)

/* The same group in C (builds without optimisation, where the asm cannot get its registers). */
static inline void tp_rn_group_c(int32_t x, const int32_t *cp, int32_t *a)
{
    const int32_t e = __sxtb16(x), o = tp_arm_sxtb16_ror8(x);
    int32_t i;
    for (i = 0; i < TP_CONV_PIX; ++i) {
        a[i] = __smlad(cp[2 * i + 1], o, __smlad(cp[2 * i], e, a[i]));
    }
}

/* Dot products of filter row w_ (k_ int8) with the 8 interleaved columns col_, added to the
 * scalars a0..a7 of the caller (a macro, not a function: an array or pointers would be forced to
 * memory around the asm's memory clobber). last_row_: w_ is the filter's last row (its partial
 * last group is then read byte by byte, so that nothing past the array is read; otherwise the next
 * row's bytes are read and meet zero columns). Uses the caller's e, o, c0, c1, tw. */
#if defined(__OPTIMIZE__)
#define TP_ROW1_XN(w_, col_, k_, last_row_)                                                     \
    do {                                                                                       \
        const int8_t *wq_ = (w_);                                                              \
        const int32_t *cq_ = (col_);                                                           \
        if ((k_) >> 3) {                                                                       \
            volatile const int32_t *end = cq_ + 2 * TP_CONV_GW * ((k_) >> 3);                  \
            __asm__ volatile("1:\n\t" TP_RN_GROUP_ASM TP_RN_GROUP_ASM                          \
                             "ldr    %[c0], %[end]\n\t"                                        \
                             "cmp    %[col], %[c0]\n\t"                                        \
                             "bne    1b\n\t"                                                   \
                             : TP_RN_OPERANDS                                                  \
                             : [end] "m"(end)                                                  \
                             : "cc", "memory");                                                \
        }                                                                                      \
        if ((k_) & 4) {                                                                        \
            __asm__ volatile(TP_RN_GROUP_ASM : TP_RN_OPERANDS : : "memory");                   \
        }                                                                                      \
        if ((k_) & 3) {                                                                        \
            tw = (last_row_) ? tp_tail_word(wq_, (k_) & 3) : tp_arm_read_s8x4(wq_);            \
            wq_ = (const int8_t *)&tw;                                                         \
            __asm__ volatile(TP_RN_GROUP_ASM : TP_RN_OPERANDS : : "memory");                   \
        }                                                                                      \
    } while (0)
#else
#define TP_ROW1_XN(w_, col_, k_, last_row_)                                                     \
    do {                                                                                       \
        int32_t acc_[TP_CONV_PIX] = { a0, a1, a2, a3, a4, a5, a6, a7 };                        \
        const int32_t *cq_ = (col_);                                                           \
        int32_t g;                                                                             \
        for (g = 0; g < ((k_) >> 2); ++g, cq_ += TP_CONV_GW) {                                 \
            tp_rn_group_c(tp_arm_read_s8x4((w_) + 4 * g), cq_, acc_);                          \
        }                                                                                      \
        if ((k_) & 3) {                                                                        \
            tw = tp_tail_word((w_) + 4 * g, (k_) & 3);                                         \
            tp_rn_group_c(tw, cq_, acc_);                                                      \
        }                                                                                      \
        a0 = acc_[0]; a1 = acc_[1]; a2 = acc_[2]; a3 = acc_[3]; a4 = acc_[4]; a5 = acc_[5];    \
        a6 = acc_[6]; a7 = acc_[7];                                                            \
        (void)e; (void)o; (void)c0; (void)c1; (void)(last_row_);                               \
    } while (0)
#endif

/* Requantises and stores acc[0..n-1] (pixels of one channel) to o[0], o[stride], ...
 * full != 0: the activation range is the whole int8 range (one SSAT instead of the clamp). */
static void tp_store_channel(int8_t *o, int32_t stride, const int32_t *acc, int32_t n,
                             int32_t m, int32_t sh, int fast, int32_t ooff, int32_t amin, int32_t amax)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int32_t v = tp_arm_requant(acc[i], m, sh, fast) + ooff;
        o[(size_t)i * stride] = (int8_t)tp_arm_clamp(v, amin, amax);
    }
}

/* Everything one block of pixels needs besides its columns (constant over the call). */
typedef struct {
    const int8_t *filter;
    const int32_t *bias;
    const int32_t *mult;
    const int32_t *shift;
    const tp_conv_chan *chan;
    int32_t k, cout, per_channel, fast, full, ooff, amin, amax;
} tp_conv_job;

/* Requantises one accumulator, e = -shift >= 1, |acc| < 2^30 (see tp_arm_mbqm_rshift), and
 * saturates to int8 (full activation range). */
static inline int32_t tp_rq_sat(int32_t acc, int32_t m, int32_t e, int32_t hb)
{
    int32_t v = tp_arm_smmulr(acc * 2, m);
    return __ssat((v + hb + (v >> 31)) >> e, 8);
}

/* All output channels of one block of TP_CONV_PIX pixels (nvalid of them real), channel by
 * channel through the 1 x 8 register block; the accumulators are requantised straight from
 * registers in the common case (fast requantisation, right shift, full int8 range, a whole
 * block), else through tp_store_channel. */
static void __attribute__((noinline)) tp_conv_block(const tp_conv_job *j, const int32_t *col, int8_t *out,
                                                    int32_t nvalid)
{
    const int32_t k = j->k, cout = j->cout;
    const int whole = nvalid == TP_CONV_PIX;
    const int8_t *w = j->filter;
    const tp_conv_chan *ch = j->chan;
    int32_t oc;
    for (oc = 0; oc < cout; ++oc, w += k, ++ch) {
        const int32_t b = ch->bias;
        int32_t a0 = b, a1 = b, a2 = b, a3 = b, a4 = b, a5 = b, a6 = b, a7 = b;
        int32_t e, o, c0, c1, tw;
        TP_ROW1_XN(w, col, k, oc + 1 == cout);
        if (whole && ch->e) {
            const int32_t ee = ch->e, hb = ch->hb, m = ch->m;
            int8_t *op = out + oc;
            op[0] = (int8_t)tp_rq_sat(a0, m, ee, hb);
            op[cout] = (int8_t)tp_rq_sat(a1, m, ee, hb);
            op[2 * cout] = (int8_t)tp_rq_sat(a2, m, ee, hb);
            op[3 * cout] = (int8_t)tp_rq_sat(a3, m, ee, hb);
            op[4 * cout] = (int8_t)tp_rq_sat(a4, m, ee, hb);
            op[5 * cout] = (int8_t)tp_rq_sat(a5, m, ee, hb);
            op[6 * cout] = (int8_t)tp_rq_sat(a6, m, ee, hb);
            op[7 * cout] = (int8_t)tp_rq_sat(a7, m, ee, hb);
        } else {
            const int32_t copy[TP_CONV_PIX] = { a0, a1, a2, a3, a4, a5, a6, a7 };
            const int32_t sh = j->shift[j->per_channel ? oc : 0];
            tp_store_channel(out + oc, cout, copy, nvalid, ch->m, sh, j->fast, j->ooff, j->amin, j->amax);
        }
    }
}

tp_status tp_conv_s8_arm(const tp_context *ctx, const tp_conv_params *p, const tp_quant_params *q,
                         const tp_dims *in, const int8_t *input,
                         const tp_dims *f, const int8_t *filter, const int32_t *bias,
                         const tp_dims *out, int8_t *output)
{
    int32_t k, ng, npix, pix0, oc, i, fast, cb, cy, cx;
    int32_t *col;
    int is_1x1, fold;
    tp_conv_job job;
    if (!p || !q || !q->multiplier || !q->shift || !in || !input || !f || !filter || !out || !output ||
        in->n <= 0 || in->h <= 0 || in->w <= 0 || in->c <= 0 || f->n <= 0 || f->h <= 0 || f->w <= 0 ||
        out->h <= 0 || out->w <= 0 || p->stride.h <= 0 || p->stride.w <= 0 || p->dilation.h <= 0 ||
        p->dilation.w <= 0 || f->c != in->c || out->c != f->n || out->n != in->n ||
        f->h * f->w * f->c > TP_MAX_ACC_TERMS) {
        return TP_ERR_ARG;
    }
    k = f->h * f->w * f->c;
    ng = (k + 3) >> 2;
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

    /* fold the input offset into the biases (bias + input_offset * sum(w) per channel: the
     * columns then need no SADD16, 2 instructions per group and pixel) when that saves more than
     * summing the filter costs (about 3 instructions per group and channel) */
    fold = !is_1x1 && ((in->c & 3) == 0 || k <= TP_CONV_GATHER_MAX) && k <= TP_CONV_FOLD_MAX_K &&
           2 * (int64_t)out->n * out->h * out->w > 3 * (int64_t)out->c;
    {
        /* per-channel table (see tp_conv_chan) after the columns */
        tp_conv_chan *chan = (tp_conv_chan *)(col + TP_CONV_GW * ng);
        const int full = p->activation.min == -128 && p->activation.max == 127;
        for (oc = 0; oc < out->c; ++oc) {
            const int32_t qi = q->per_channel ? oc : 0;
            const int32_t sh = q->shift[qi];
            chan[oc].bias = (bias ? bias[oc] : 0) +
                            (fold ? p->input_offset * tp_row_sum(filter + (size_t)oc * k, k) : 0);
            chan[oc].m = q->multiplier[qi];
            if (fast && full && sh < 0 && -sh <= TP_CONV_MAX_FAST_E) {
                chan[oc].e = -sh;
                chan[oc].hb = ((int32_t)1 << (-sh - 1)) + p->output_offset * ((int32_t)1 << -sh);
            } else {
                chan[oc].e = 0;
                chan[oc].hb = 0;
            }
        }
        job.chan = chan;
    }
    job.filter = filter;
    job.bias = bias;
    job.mult = q->multiplier;
    job.shift = q->shift;
    job.k = k;
    job.cout = out->c;
    job.per_channel = q->per_channel;
    job.fast = fast;
    job.full = p->activation.min == -128 && p->activation.max == 127;
    job.ooff = p->output_offset;
    job.amin = p->activation.min;
    job.amax = p->activation.max;

    npix = out->n * out->h * out->w;
    /* (cb, cy, cx): batch, row and column of the next pixel, advanced in raster order */
    cb = 0;
    cy = 0;
    cx = 0;
    for (pix0 = 0; pix0 < npix; pix0 += TP_CONV_PIX) {
        const int32_t nvalid = npix - pix0 < TP_CONV_PIX ? npix - pix0 : TP_CONV_PIX;
        for (i = 0; i < TP_CONV_PIX; ++i) {
            int32_t *dst = col + 2 * i;
            if (i >= nvalid) {
                int32_t g;
                for (g = 0; g < ng; ++g) {
                    dst[TP_CONV_GW * g] = 0;
                    dst[TP_CONV_GW * g + 1] = 0;
                }
            } else if (is_1x1) {
                tp_im2col_1x1(dst, input + (size_t)(pix0 + i) * in->c, in->c, p->input_offset);
            } else {
                if ((in->c & 3) == 0) {
                    tp_im2col_c4(dst, p, in, input + (size_t)cb * in->h * in->w * in->c, f,
                                 cy * p->stride.h - p->padding.h, cx * p->stride.w - p->padding.w, fold);
                } else {
                    tp_im2col_pixel(dst, p, in, input, f, cb, cy, cx, k, fold);
                }
                if (++cx == out->w) {
                    cx = 0;
                    if (++cy == out->h) {
                        cy = 0;
                        ++cb;
                    }
                }
            }
        }
        tp_conv_block(&job, col, output + (size_t)pix0 * out->c, nvalid);
    }
    return TP_OK;
}

#endif /* TP_USE_ARM_DSP && TP_ARM_HAS_CONV_S8 */
