/* CONV_2D int8, Cortex-M4/M7 DSP variant: bit-exact with tp_conv_s8_ref.
 *
 * Scheme: output pixels are taken TP_CONV_PIX (6) at a time (over batch, row and column). Their
 * receptive fields are copied ("im2col") into scratch as int16 values 2 * (x + input_offset) (0
 * where the window lies in the padding), interleaved so that one group of 4 consecutive filter
 * elements of one pixel is two adjacent words in the order (k0, k2 | k1, k3) -- the order in which
 * SXTB16 / SXTB16-ROR8 unpack 4 int8 filter bytes -- and the 6 pixels' groups are adjacent:
 *   col[g * 12 + 2 * pixel + {0: (k0,k2), 1: (k1,k3)}].
 * Output channels are then taken one at a time against the 6 pixels (register block 1 x 6, six
 * accumulators): per group of 4 filter elements LDR + 2 SXTB16 for the weights, 3 LDM of two
 * pixels' column words each and 12 SMLAD (24 MACs in 18 instructions). The im2col is done once
 * per block and reused by every channel.
 *
 * The accumulators are kept doubled (columns and biases times 2) so that the requantisation is
 * SMMLAR + 3 instructions (see tp_conv_rq below); this needs |2 acc| < 2^31, which the kernel
 * checks once per call from K and the biases (|acc| <= K * 255 * 128 + max|bias| < 2^30; else the
 * whole call runs the reference). Accumulators are exact in int32 (see tp_nn.h: K <= 65,000 terms).
 *
 * The input offset is folded into the biases (bias + input_offset * sum(w)) when that saves more
 * than summing the filter costs: the columns then hold 2x and the padding -2 * input_offset.
 *
 * The channel loop of a whole block is one assembly function (tp_conv_rows6) when every channel
 * takes the fast requantisation (right shift 1..22, multiplier >= 0) and the activation range is
 * the full int8 range; otherwise, and when the call has fewer than 6 pixels, plain C
 * (tp_conv_block_c). The last, partial block of a call re-computes the previous block's last
 * pixels (their columns are moved, not re-read) so that it is a whole block too; the re-written
 * outputs get the values they already hold.
 *
 * Overlap (see tp_nn_arm.h): a block's windows are all copied before any output of the block is
 * written, and outputs are written in raster order, so 0 output pixels are in flight. */
#include "../tp_nn.h"

#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_CONV_S8)
#include "tp_arm_support.h"

#define TP_CONV_PIX 6                    /* output pixels per block */
#define TP_CONV_GW (2 * TP_CONV_PIX)     /* scratch words per group of 4 filter elements */
#define TP_CONV_GATHER_MAX 252           /* windows up to this many elements are gathered on the stack */

/* Per output channel, prepared once per call in scratch after the columns: the doubled bias and
 * the requantisation in the form the block needs. e > 0: fast path, out = SSAT8((SMMULR(2 acc, m)
 * + hb + sign(acc)) >> e) with hb = 2^(e-1) + output_offset * 2^e (the output offset folded into
 * the rounding constant: exact, see tp_conv_rq); e == 0: the general path (tp_conv_store_c). The
 * layout (4 words: bias, m, e, hb) is read by tp_conv_rows6 with one LDM. */
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
    (void)output_dims;
    if (!filter_dims || (input_dims && input_dims->c != filter_dims->c)) {
        return 0;   /* grouped convolutions run the reference (tp_conv_arm) */
    }
    k = filter_dims->h * filter_dims->w * filter_dims->c;
    /* columns, the per-channel table, and when k % 4 != 0 room for the last filter row padded */
    return TP_ARM_ALIGN_SLACK + 4 * TP_CONV_GW * ((k + 3) / 4) + (int32_t)sizeof(tp_conv_chan) * filter_dims->n +
           ((k & 3) ? 4 * ((k + 3) / 4) : 0);
}

/* Two words to dst[0], dst[1] in one STRD. */
static inline void tp_arm_store2(int32_t *dst, int32_t a, int32_t b)
{
    __asm__ volatile("strd %1, %2, [%0]" : : "r"(dst), "r"(a), "r"(b) : "memory");
}

/* 2 * (each int16 half of v): SADD16 of v with itself. */
static inline int32_t tp_dbl16(int32_t v)
{
    return __sadd16(v, v);
}

/* (x0 + off, x2 + off) and (x1 + off, x3 + off) of 4 int8, doubled, to dst[0], dst[1]. */
static inline void tp_col_word(int32_t *dst, int32_t x, int32_t offp)
{
    int32_t o;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(o) : "r"(offp), "r"(x));
    tp_arm_store2(dst, tp_dbl16(__sxtab16(offp, x)), tp_dbl16(o));
}

/* The same without the offset (folded into the biases). */
static inline void tp_col_word_raw(int32_t *dst, int32_t x)
{
    tp_arm_store2(dst, tp_dbl16(__sxtb16(x)), tp_dbl16(tp_arm_sxtb16_ror8(x)));
}

/* n bytes of the word v's bytes at d (word stores; up to 3 bytes past d + n are written too: the
 * caller's buffer has room). Returns d + n. */
static inline int8_t *tp_fill_bytes(int8_t *d, int32_t n, int32_t v)
{
    int32_t i;
    for (i = 0; i < n; i += 4) {
        __asm__("" : "+r"(i));   /* keeps GCC from turning the loop into a memset call */
        tp_arm_write_s8x4(d + i, v);
    }
    return d + n;
}

/* n bytes from s to d: words while 4 remain (never reading past s + n), then bytes. Returns d + n. */
static inline int8_t *tp_copy_bytes(int8_t *d, const int8_t *s, int32_t n)
{
    int32_t i;
    for (i = 0; i + 4 <= n; i += 4) {
        __asm__("" : "+r"(i));   /* keeps GCC from turning the loops into memcpy calls */
        tp_arm_write_s8x4(d + i, tp_arm_read_s8x4(s + i));
    }
    for (; i < n; ++i) {
        __asm__("" : "+r"(i));
        d[i] = s[i];
    }
    return d + n;
}

/* im2col of one pixel whose channel count is not a multiple of 4, into groups starting at dst
 * (words), dst advancing TP_CONV_GW per group. */
static void tp_im2col_pixel(int32_t *dst, const tp_conv_params *p, const tp_dims *in, const int8_t *input,
                            const tp_dims *f, int32_t b, int32_t oy, int32_t ox, int32_t k, int fold)
{
    const int32_t c = in->c;
    const int32_t iy0 = oy * p->stride.h - p->padding.h;
    const int32_t ix0 = ox * p->stride.w - p->padding.w;
    const int32_t off = p->input_offset;
    const int8_t *base = input + (size_t)b * in->h * in->w * c;
    int32_t ky, kx, i;
    if (k <= TP_CONV_GATHER_MAX) {
        /* gather the window's bytes into a linear buffer, the padding as -input_offset (so that
         * x + input_offset is exactly 0; it is an int8 because input_offset = -zero_point): per
         * window row (dilation.w 1) the padding on the left, the inside as one segment, the
         * padding on the right; then unpack 4 at a time */
        int8_t lin[TP_CONV_GATHER_MAX + 4];
        const int8_t pad = (int8_t)(-off);
        const int32_t padw = (int32_t)((uint32_t)(uint8_t)pad * 0x01010101u);
        const int32_t offp = tp_arm_pack16(off, off);
        const int32_t rowb = f->w * c;
        int8_t *d = lin;
        const int32_t nw = (rowb + 3) >> 2;
        const int32_t rs = in->w * c;
        if (p->dilation.h == 1 && p->dilation.w == 1 && iy0 >= 0 && iy0 + f->h <= in->h && ix0 >= 0 &&
            ix0 + f->w <= in->w &&
            (iy0 + f->h - 1) * rs + ix0 * c + 4 * nw <= (in->n - b) * in->h * rs) {
            /* the whole window inside the input, and whole words from its rows stay inside the
             * input array too: each row as nw word copies (up to 3 bytes written past the row,
             * overwritten by the next row or the tail below; lin has the room) */
            const int8_t *src = base + ((size_t)iy0 * in->w + ix0) * c;
            for (ky = 0; ky < f->h; ++ky, src += rs, d += rowb) {
                for (i = 0; i < nw; ++i) {
                    __asm__("" : "+r"(i));   /* no memcpy call */
                    tp_arm_write_s8x4(d + 4 * i, tp_arm_read_s8x4(src + 4 * i));
                }
            }
        } else if (p->dilation.w == 1) {
            /* the window columns kx0..kx1-1 lie inside the input (the same for every row) */
            const int32_t kx0 = ix0 < 0 ? (-ix0 < f->w ? -ix0 : f->w) : 0;
            int32_t kx1 = in->w - ix0 < f->w ? in->w - ix0 : f->w;
            kx1 = kx1 < kx0 ? kx0 : kx1;
            {
                const int32_t lpad = kx0 * c, mid = (kx1 - kx0) * c, rpad = (f->w - kx1) * c;
                const int32_t step = p->dilation.h * in->w * c;
                int32_t soff = (iy0 * in->w + ix0 + kx0) * c;    /* of the row's first inside byte */
                for (ky = 0; ky < f->h; ++ky, soff += step) {
                    const int32_t iy = iy0 + ky * p->dilation.h;
                    if (iy < 0 || iy >= in->h) {
                        d = tp_fill_bytes(d, rowb, padw);
                    } else {
                        d = tp_fill_bytes(d, lpad, padw);
                        d = tp_copy_bytes(d, base + soff, mid);
                        d = tp_fill_bytes(d, rpad, padw);
                    }
                }
            }
        } else {
            for (ky = 0; ky < f->h; ++ky) {
                const int32_t iy = iy0 + ky * p->dilation.h;
                for (kx = 0; kx < f->w; ++kx) {
                    const int32_t ix = ix0 + kx * p->dilation.w;
                    d = iy >= 0 && iy < in->h && ix >= 0 && ix < in->w
                            ? tp_copy_bytes(d, base + ((size_t)iy * in->w + ix) * c, c)
                            : tp_fill_bytes(d, c, padw);
                }
            }
        }
        if (fold) {
            /* offset in the biases: columns = 2x, padding -2 offset, beyond k 0 (the weights
             * there are not part of the row) */
            d[0] = 0;
            d[1] = 0;
            d[2] = 0;
            for (i = 0; i < k; i += 4, dst += TP_CONV_GW) {
                tp_col_word_raw(dst, tp_arm_read_s8x4(lin + i));
            }
            return;
        }
        d[0] = pad;
        d[1] = pad;
        d[2] = pad;
        for (i = 0; i < k; i += 4, dst += TP_CONV_GW) {
            tp_col_word(dst, tp_arm_read_s8x4(lin + i), offp);
        }
    } else {
        /* large windows: element j of the window goes to halfword 2 * (g * GW + (r & 1)) + (r >> 1)
         * of the pixel's groups, g = j / 4, r = j % 4 */
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
                    h[pos[r]] = (int16_t)(valid ? 2 * ((int32_t)src[i] + off) : 0);
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
}

/* n groups of 4 int8 from src (contiguous) to the column layout at dst (stride TP_CONV_GW words).
 * Returns the advanced dst. */
static inline int32_t *tp_im2col_run(int32_t *dst, const int8_t *src, int32_t n, int32_t offp)
{
    for (; n > 0; --n, src += 4, dst += TP_CONV_GW) {
        tp_col_word(dst, tp_arm_read_s8x4(src), offp);
    }
    return dst;
}

/* As tp_im2col_run without the input offset (folded into the biases). */
static inline int32_t *tp_im2col_run_raw(int32_t *dst, const int8_t *src, int32_t n)
{
    for (; n > 0; --n, src += 4, dst += TP_CONV_GW) {
        tp_col_word_raw(dst, tp_arm_read_s8x4(src));
    }
    return dst;
}

/* n groups of padding: the word v in both words of each group. */
static inline int32_t *tp_im2col_fill(int32_t *dst, int32_t n, int32_t v)
{
    for (; n > 0; --n, dst += TP_CONV_GW) {
        tp_arm_store2(dst, v, v);
    }
    return dst;
}

/* im2col of one pixel when in_c % 4 == 0: window rows that lie inside the input with dilation.w 1
 * are one contiguous run of kw * c bytes. fold: the input offset is in the biases, so the columns
 * hold 2x and the padding -2 * input_offset; else 2 * (x + input_offset) and 0. */
static void tp_im2col_c4(int32_t *dst, const tp_conv_params *p, const tp_dims *in, const int8_t *base,
                         const tp_dims *f, int32_t iy0, int32_t ix0, int fold)
{
    const int32_t c = in->c, cg = c >> 2;
    const int32_t offp = tp_arm_pack16(p->input_offset, p->input_offset);
    const int32_t padw = fold ? tp_arm_pack16(-2 * p->input_offset, -2 * p->input_offset) : 0;
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

/* Sum of one fast-weights row (ng groups of 4 int16, zero-padded): SMLAD of each word with
 * (1, 1) adds its two halves. */
static int32_t tp_row_sum16(const int16_t *w16, int32_t ng)
{
    const int32_t *w = (const int32_t *)(const void *)w16;
    int32_t i, acc = 0;
    for (i = 0; i < 2 * ng; ++i) {
        acc = __smlad(w[i], 0x00010001, acc);
    }
    return acc;
}

/* 1x1, stride 1, no padding: the window is the pixel itself (c % 4 == 0 not required). */
static void tp_im2col_1x1(int32_t *dst, const int8_t *src, int32_t c, int32_t off)
{
    const int32_t offp = tp_arm_pack16(off, off);
    int32_t i;
    for (i = 0; i + 4 <= c; i += 4, dst += TP_CONV_GW) {
        tp_col_word(dst, tp_arm_read_s8x4(src + i), offp);
    }
    if (i < c) {
        int32_t v[4];
        int32_t n;
        for (n = 0; n < 4; ++n, ++i) {
            v[n] = i < c ? 2 * ((int32_t)src[i] + off) : 0;
        }
        tp_arm_store2(dst, tp_arm_pack16(v[0], v[2]), tp_arm_pack16(v[1], v[3]));
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

/* Fast requantisation of a doubled accumulator a2 = 2 acc (|a2| < 2^31) for e = -shift in 1..22,
 * 0 <= m < 2^31, full int8 range:
 *   SSAT8((SMMULR(a2, m) + hb + (a2 < 0 ? -1 : 0)) >> e),  hb = 2^(e-1) + output_offset * 2^e.
 * SMMULR(2 acc, m) is gemmlowp's SaturatingRoundingDoublingHighMul (tp_arm_support.h); the
 * rounding division by 2^e subtracts 1 for a negative product v, and using the sign of the
 * accumulator instead is the same: they differ only when v == 0 > acc, where
 * (hb - 1) >> e == hb >> e == output_offset. SMMLAR adds hb for free. */
static inline int32_t tp_conv_rq(int32_t a2, int32_t m, int32_t e, int32_t hb)
{
    int32_t v;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(v) : "r"(a2), "r"(m), "r"(hb));
    return __ssat((v + (a2 >> 31)) >> e, 8);
}

/* Everything one block of pixels needs besides its columns (constant over the call). */
typedef struct {
    const int8_t *filter;       /* int8 rows of k bytes, or NULL when filter16 is used */
    const int16_t *filter16;    /* fast-weights rows (tp_nn.h: 4 * ceil(k / 4) int16 each) or NULL */
    const int8_t *last_row;     /* k % 4 != 0 (int8): the last filter row zero-padded in scratch */
    const int32_t *shift;
    const tp_conv_chan *chan;
    int32_t k, cout, per_channel, ooff, amin, amax, full;
} tp_conv_job;

/* Channels [oc0, oc1) of one block of TP_CONV_PIX pixels (nvalid of them real), in C: the general
 * requantisation (any shift, any activation range) and blocks of fewer than 6 pixels. */
static void tp_conv_block_c(const tp_conv_job *j, const int32_t *col, int8_t *out, int32_t nvalid,
                            int32_t oc0, int32_t oc1)
{
    const int32_t k = j->k, ng = (k + 3) >> 2, cout = j->cout;
    int32_t oc, g, i;
    for (oc = oc0; oc < oc1; ++oc) {
        const int8_t *w = j->filter ? j->filter + (size_t)oc * k : 0;
        const int32_t *w16 = j->filter16 ? (const int32_t *)(const void *)(j->filter16 + (size_t)oc * 4 * ng) : 0;
        const tp_conv_chan *ch = j->chan + oc;
        int32_t acc[TP_CONV_PIX];
        for (i = 0; i < TP_CONV_PIX; ++i) {
            acc[i] = ch->bias;
        }
        for (g = 0; g < ng; ++g) {
            int32_t e, o;
            const int32_t *cp = col + TP_CONV_GW * g;
            if (w16) {
                e = w16[2 * g];
                o = w16[2 * g + 1];
            } else {
                const int32_t x = (g + 1 == ng && (k & 3)) ? tp_tail_word(w + 4 * g, k & 3)
                                                           : tp_arm_read_s8x4(w + 4 * g);
                e = __sxtb16(x);
                o = tp_arm_sxtb16_ror8(x);
            }
            for (i = 0; i < TP_CONV_PIX; ++i) {
                acc[i] = __smlad(cp[2 * i + 1], o, __smlad(cp[2 * i], e, acc[i]));
            }
        }
        for (i = 0; i < nvalid; ++i) {
            int32_t v;
            if (ch->e) {
                v = tp_conv_rq(acc[i], ch->m, ch->e, ch->hb);
            } else {
                /* acc[i] is even (doubled columns and bias) */
                v = tp_arm_requant(acc[i] >> 1, ch->m, j->shift[j->per_channel ? oc : 0], 1) + j->ooff;
                v = j->full ? __ssat(v, 8) : tp_arm_clamp(v, j->amin, j->amax);
            }
            out[(size_t)i * cout + oc] = (int8_t)v;
        }
    }
}

/* What tp_conv_rows6 / tp_conv_rows6_x16 read (their offsets are hard-coded there: keep the order). */
typedef struct {
    const int32_t *col;            /* [0]  columns of the block (8-byte aligned) */
    const int32_t *col_end;        /* [4]  col + TP_CONV_GW * ng */
    const void *w;                 /* [8]  filter row of the first channel (int8, or x16 rows) */
    const tp_conv_chan *chan;      /* [12] table entry of the first channel */
    const tp_conv_chan *chan_end;  /* [16] one past the last channel's entry */
    int8_t *out;                   /* [20] output byte of pixel 0, first channel */
    int32_t cout;                  /* [24] bytes from one pixel's output to the next */
    int32_t entry;                 /* [28] groups after the first: (-(ng - 1)) & 3 skipped in the first
                                    *      pass of the 4x loop; 4 when ng == 1 (no loop) */
    int32_t wpad;                  /* [32] bytes a row pointer over-advances (int8 rows: 4 * ng - k) */
} tp_conv_rows;

/* The weights of one group into r8 = (k0,k2), r9 = (k1,k3): from int8 (LDR, post-increment, and
 * SXTB16 / SXTB16-ROR8) or from the fast-weights rows (one LDRD). */
#define TP_CV6_W8                                     \
    "ldr.w    r8, [r6], #4\n\t"                       \
    "sxtb16   r9, r8, ror #8\n\t"                     \
    "sxtb16   r8, r8\n\t"
#define TP_CV6_W16                                    \
    "ldrd     r8, r9, [r6], #8\n\t"

/* One group of 4 filter elements against the 6 pixels after the weights: two pixels' column words
 * per LDM (r10, r11 | r12, lr); 12 SMLAD into r0-r5. All 32-bit encodings (the TBB table below
 * counts on fixed sizes). */
#define TP_CV6_MACS                                   \
    "ldmia.w  r7!, {r10, r11, r12, lr}\n\t"           \
    "smlad    r0, r10, r8, r0\n\t"                    \
    "smlad    r0, r11, r9, r0\n\t"                    \
    "smlad    r1, r12, r8, r1\n\t"                    \
    "smlad    r1, lr, r9, r1\n\t"                     \
    "ldmia.w  r7!, {r10, r11, r12, lr}\n\t"           \
    "smlad    r2, r10, r8, r2\n\t"                    \
    "smlad    r2, r11, r9, r2\n\t"                    \
    "smlad    r3, r12, r8, r3\n\t"                    \
    "smlad    r3, lr, r9, r3\n\t"                     \
    "ldmia.w  r7!, {r10, r11, r12, lr}\n\t"           \
    "smlad    r4, r10, r8, r4\n\t"                    \
    "smlad    r4, r11, r9, r4\n\t"                    \
    "smlad    r5, r12, r8, r5\n\t"                    \
    "smlad    r5, lr, r9, r5\n\t"

/* The first group of a channel: as TP_CV6_MACS, each pixel's first SMLAD adding the bias (in r5,
 * which is the last pixel's accumulator) instead of its accumulator. */
#define TP_CV6_MACS_FIRST                             \
    "ldmia.w  r7!, {r10, r11, r12, lr}\n\t"           \
    "smlad    r0, r10, r8, r5\n\t"                    \
    "smlad    r0, r11, r9, r0\n\t"                    \
    "smlad    r1, r12, r8, r5\n\t"                    \
    "smlad    r1, lr, r9, r1\n\t"                     \
    "ldmia.w  r7!, {r10, r11, r12, lr}\n\t"           \
    "smlad    r2, r10, r8, r5\n\t"                    \
    "smlad    r2, r11, r9, r2\n\t"                    \
    "smlad    r3, r12, r8, r5\n\t"                    \
    "smlad    r3, lr, r9, r3\n\t"                     \
    "ldmia.w  r7!, {r10, r11, r12, lr}\n\t"           \
    "smlad    r4, r10, r8, r5\n\t"                    \
    "smlad    r4, r11, r9, r4\n\t"                    \
    "smlad    r5, r12, r8, r5\n\t"                    \
    "smlad    r5, lr, r9, r5\n\t"

/* Requantises accumulator a (see tp_conv_rq; r9 = m, r10 = e, r11 = hb) into r8 and stores it. */
#define TP_CV6_RQ(a, store)                           \
    "smmlar   r8, " a ", r9, r11\n\t"                 \
    "add.w    r8, r8, " a ", asr #31\n\t"             \
    "asr.w    r8, r8, r10\n\t"                        \
    "ssat     r8, #8, r8\n\t"                         \
    store "\n\t"

/* Every channel of r->chan .. r->chan_end against one whole block of 6 pixels, fast
 * requantisation (every entry's e in 1..22): per channel the first group adds the doubled bias,
 * the others run through a 4x unrolled loop entered by TBB at group (1 - ng) & 3, then the 6
 * outputs are requantised from registers and stored (pixel stride cout). The descriptor is copied
 * to the stack (9 words) and read from there; r6 (filter row) runs through the rows. L: a label
 * prefix, W: the weights' instructions (TP_CV6_W8 / TP_CV6_W16). 18 (int8) or 16 (x16)
 * instructions per group of 24 MACs. */
#define TP_CONV_ROWS6(name, L, W)                                                             \
    __attribute__((naked, noinline)) static void name(__attribute__((unused)) const tp_conv_rows *r) \
    {                                                                                         \
        __asm__ volatile(                                                                     \
            "push     {r4, r5, r6, r7, r8, r9, r10, r11, lr}\n\t"                             \
            "ldmia.w  r0, {r1, r2, r3, r4, r5, r6, r7, r8, r9}\n\t"                           \
            "push     {r1, r2, r3, r4, r5, r6, r7, r8, r9}\n\t"                               \
            "mov      r6, r3\n\t"                      /* filter row */                      \
            "mov      r7, r4\n\t"                      /* channel entry */                   \
            L "chan:\n\t"                                                                     \
            "ldr      r5, [r7]\n\t"                                                           \
            "ldr      r7, [sp, #0]\n\t"                                                       \
            W TP_CV6_MACS_FIRST                                                               \
            "ldr      r8, [sp, #28]\n\t"                                                      \
            "tbb      [pc, r8]\n\t"                                                           \
            L "tab:\n\t"                                                                      \
            ".byte    (" L "g0 - " L "tab) / 2\n\t"                                           \
            ".byte    (" L "g1 - " L "tab) / 2\n\t"                                           \
            ".byte    (" L "g2 - " L "tab) / 2\n\t"                                           \
            ".byte    (" L "g3 - " L "tab) / 2\n\t"                                           \
            ".byte    (" L "done - " L "tab) / 2\n\t"                                         \
            ".p2align 1\n\t"                                                                  \
            L "g0:\n\t" W TP_CV6_MACS                                                         \
            L "g1:\n\t" W TP_CV6_MACS                                                         \
            L "g2:\n\t" W TP_CV6_MACS                                                         \
            L "g3:\n\t" W TP_CV6_MACS                                                         \
            "ldr      r8, [sp, #4]\n\t"                                                       \
            "cmp      r7, r8\n\t"                                                             \
            "bne      " L "g0\n\t"                                                            \
            L "done:\n\t"                                                                     \
            "ldr      r8, [sp, #32]\n\t"                                                      \
            "sub      r6, r6, r8\n\t"                                                         \
            "ldr      r7, [sp, #12]\n\t"                                                      \
            "ldmia.w  r7!, {r8, r9, r10, r11}\n\t"     /* bias (unused), m, e, hb */          \
            "str      r7, [sp, #12]\n\t"                                                      \
            "ldr      r12, [sp, #20]\n\t"                                                     \
            "ldr      lr, [sp, #24]\n\t"                                                      \
            TP_CV6_RQ("r0", "strb     r8, [r12]")                                             \
            TP_CV6_RQ("r1", "strb     r8, [r12, lr]")                                         \
            "add.w    r12, r12, lr, lsl #1\n\t"                                               \
            TP_CV6_RQ("r2", "strb     r8, [r12]")                                             \
            TP_CV6_RQ("r3", "strb     r8, [r12, lr]")                                         \
            "add.w    r12, r12, lr, lsl #1\n\t"                                               \
            TP_CV6_RQ("r4", "strb     r8, [r12]")                                             \
            TP_CV6_RQ("r5", "strb     r8, [r12, lr]")                                         \
            "ldr      r12, [sp, #20]\n\t"                                                     \
            "add      r12, r12, #1\n\t"                                                       \
            "str      r12, [sp, #20]\n\t"                                                     \
            "ldr      r8, [sp, #16]\n\t"                                                      \
            "cmp      r7, r8\n\t"                                                             \
            "bne      " L "chan\n\t"                                                          \
            "add      sp, sp, #36\n\t"                                                        \
            "pop      {r4, r5, r6, r7, r8, r9, r10, r11, pc}\n\t");                           \
    }

TP_CONV_ROWS6(tp_conv_rows6, ".Ltp_cv6_", TP_CV6_W8)
TP_CONV_ROWS6(tp_conv_rows6_x16, ".Ltp_cv6x_", TP_CV6_W16)

/* One whole block (6 pixels, columns at col, outputs from out), every channel through the
 * assembly loop. When k % 4 != 0 the int8 rows are read as they lie (each row's last word runs
 * into the next row, against zero columns) except the last row, whose last word would be read
 * past the filter array: it is read from its zero-padded copy in scratch (j->last_row). */
static void tp_conv_block_fast(const tp_conv_job *j, const int32_t *col, int8_t *out)
{
    const int32_t ng = (j->k + 3) >> 2;
    const int32_t nmain = j->last_row ? j->cout - 1 : j->cout;
    tp_conv_rows r;
    r.col = col;
    r.col_end = col + TP_CONV_GW * ng;
    r.w = j->filter16 ? (const void *)j->filter16 : (const void *)j->filter;
    r.chan = j->chan;
    r.chan_end = j->chan + nmain;
    r.out = out;
    r.cout = j->cout;
    r.entry = ng == 1 ? 4 : (1 - ng) & 3;
    r.wpad = j->filter16 ? 0 : 4 * ng - j->k;
    if (j->filter16) {
        tp_conv_rows6_x16(&r);
        return;
    }
    if (nmain > 0) {
        tp_conv_rows6(&r);
    }
    if (j->last_row) {
        r.w = j->last_row;
        r.chan = j->chan + nmain;
        r.chan_end = r.chan + 1;
        r.out = out + nmain;
        r.wpad = 0;
        tp_conv_rows6(&r);
    }
}

/* The reference for the filter layout at hand (fallback of tp_conv_arm). */
static tp_status tp_conv_fallback(const tp_context *ctx, const tp_conv_params *p, const tp_quant_params *q,
                                  const tp_dims *in, const int8_t *input, const tp_dims *f, const int8_t *filter,
                                  const int16_t *filter16, const int32_t *bias, const tp_dims *out, int8_t *output)
{
    return filter16 ? tp_conv_s8_x16_ref(ctx, p, q, in, input, f, filter16, bias, out, output)
                    : tp_conv_s8_ref(ctx, p, q, in, input, f, filter, bias, out, output);
}

/* The filter of either layout: exactly one of filter (int8 rows) and filter16 (fast weights) is
 * given. */
static inline __attribute__((always_inline)) tp_status
tp_conv_arm(const tp_context *ctx, const tp_conv_params *p, const tp_quant_params *q,
            const tp_dims *in, const int8_t *input, const tp_dims *f, const int8_t *filter,
            const int16_t *filter16, const int32_t *bias, const tp_dims *out, int8_t *output)
{
    int32_t k, ng, npix, pix0, oc, i, cb, cy, cx;
    int32_t *col;
    int is_1x1, fold, all_fast;
    tp_conv_job job;
    if (in && f && in->c != f->c) {
        /* grouped (in->c a multiple of f->c): the blocks below assume one group; the reference
         * checks the arguments and runs it */
        return tp_conv_fallback(ctx, p, q, in, input, f, filter, filter16, bias, out, output);
    }
    if (!p || !q || !q->multiplier || !q->shift || !in || !input || (!filter && !filter16) || !out || !output ||
        in->n <= 0 || in->h <= 0 || in->w <= 0 || in->c <= 0 || f->n <= 0 || f->h <= 0 || f->w <= 0 ||
        out->h <= 0 || out->w <= 0 || p->stride.h <= 0 || p->stride.w <= 0 || p->dilation.h <= 0 ||
        p->dilation.w <= 0 || f->c != in->c || out->c != f->n || out->n != in->n ||
        f->h * f->w * f->c > TP_MAX_ACC_TERMS) {
        return TP_ERR_ARG;
    }
    k = f->h * f->w * f->c;
    ng = (k + 3) >> 2;
    if (!ctx || !ctx->buf || ctx->size < tp_conv_s8_arm_get_buffer_size(in, f, out)) {
        return tp_conv_fallback(ctx, p, q, in, input, f, filter, filter16, bias, out, output);
    }
    /* |acc| <= k * 255 * 128 + max|bias| must be < 2^30 for the doubled accumulators (always so for
     * real models; biases near 2^30 run the reference) */
    {
        int64_t bmax = 0;
        if (bias) {
            for (oc = 0; oc < out->c; ++oc) {
                const int64_t a = bias[oc] < 0 ? -(int64_t)bias[oc] : (int64_t)bias[oc];
                bmax = a > bmax ? a : bmax;
            }
        }
        if ((int64_t)k * 255 * 128 + bmax >= (int64_t)TP_ARM_FAST_RQ_LIMIT) {
            return tp_conv_fallback(ctx, p, q, in, input, f, filter, filter16, bias, out, output);
        }
    }
    col = (int32_t *)tp_arm_align8(ctx->buf);
    is_1x1 = f->h == 1 && f->w == 1 && p->stride.h == 1 && p->stride.w == 1 && p->padding.h == 0 &&
             p->padding.w == 0 && out->h == in->h && out->w == in->w;

    /* fold the input offset into the biases (bias + input_offset * sum(w) per channel: the
     * columns then need no offset and the padding is -offset) when that saves more than summing
     * the filter costs (about 3 instructions per group and channel) */
    fold = !is_1x1 && ((in->c & 3) == 0 || k <= TP_CONV_GATHER_MAX) && k <= TP_CONV_FOLD_MAX_K &&
           2 * (int64_t)out->n * out->h * out->w > 3 * (int64_t)out->c;
    job.full = p->activation.min == -128 && p->activation.max == 127;
    all_fast = job.full;
    {
        /* per-channel table (see tp_conv_chan) after the columns */
        tp_conv_chan *chan = (tp_conv_chan *)(col + TP_CONV_GW * ng);
        for (oc = 0; oc < out->c; ++oc) {
            const int32_t qi = q->per_channel ? oc : 0;
            const int32_t sh = q->shift[qi];
            const int32_t rs = !fold ? 0 : filter16 ? tp_row_sum16(filter16 + (size_t)oc * 4 * ng, ng)
                                                    : tp_row_sum(filter + (size_t)oc * k, k);
            chan[oc].bias = 2 * ((bias ? bias[oc] : 0) + p->input_offset * rs);
            chan[oc].m = q->multiplier[qi];
            if (job.full && sh < 0 && -sh <= TP_CONV_MAX_FAST_E && q->multiplier[qi] >= 0) {
                chan[oc].e = -sh;
                chan[oc].hb = ((int32_t)1 << (-sh - 1)) + p->output_offset * ((int32_t)1 << -sh);
            } else {
                chan[oc].e = 0;
                chan[oc].hb = 0;
                all_fast = 0;
            }
        }
        job.chan = chan;
        job.last_row = 0;
        if ((k & 3) && !filter16) {
            int8_t *lr = (int8_t *)(chan + out->c);
            const int8_t *src = filter + (size_t)(out->c - 1) * k;
            for (i = 0; i < 4 * ng; ++i) {
                lr[i] = i < k ? src[i] : 0;
            }
            job.last_row = lr;
        }
    }
    job.filter = filter16 ? 0 : filter;
    job.filter16 = filter16;
    job.shift = q->shift;
    job.k = k;
    job.cout = out->c;
    job.per_channel = q->per_channel;
    job.ooff = p->output_offset;
    job.amin = p->activation.min;
    job.amax = p->activation.max;

    npix = out->n * out->h * out->w;
    all_fast = all_fast && npix >= TP_CONV_PIX;
    /* (cb, cy, cx): batch, row and column of the next pixel, advanced in raster order */
    cb = 0;
    cy = 0;
    cx = 0;
    for (pix0 = 0; pix0 < npix; pix0 += TP_CONV_PIX) {
        const int32_t nvalid = npix - pix0 < TP_CONV_PIX ? npix - pix0 : TP_CONV_PIX;
        /* slot of the first new pixel: a partial last block of the fast path keeps the previous
         * block's last 6 - nvalid pixels (moved to the front) and ends at the last pixel */
        const int32_t first = all_fast ? TP_CONV_PIX - nvalid : 0;
        int32_t g;
        for (i = 0; i < first; ++i) {
            for (g = 0; g < ng; ++g) {
                int32_t *gp = col + TP_CONV_GW * g;
                tp_arm_store2(gp + 2 * i, gp[2 * (i + nvalid)], gp[2 * (i + nvalid) + 1]);
            }
        }
        for (i = first; i < TP_CONV_PIX; ++i) {
            int32_t *dst = col + 2 * i;
            if (i - first >= nvalid) {
                tp_im2col_fill(dst, ng, 0);
            } else if (is_1x1) {
                tp_im2col_1x1(dst, input + (size_t)(pix0 + i - first) * in->c, in->c, p->input_offset);
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
        if (all_fast) {
            tp_conv_block_fast(&job, col, output + (size_t)(pix0 - first) * out->c);
        } else {
            tp_conv_block_c(&job, col, output + (size_t)pix0 * out->c, nvalid, 0, out->c);
        }
    }
    return TP_OK;
}

tp_status tp_conv_s8_arm(const tp_context *ctx, const tp_conv_params *p, const tp_quant_params *q,
                         const tp_dims *in, const int8_t *input,
                         const tp_dims *f, const int8_t *filter, const int32_t *bias,
                         const tp_dims *out, int8_t *output)
{
    return tp_conv_arm(ctx, p, q, in, input, f, filter, 0, bias, out, output);
}

tp_status tp_conv_s8_arm_x16(const tp_context *ctx, const tp_conv_params *p, const tp_quant_params *q,
                             const tp_dims *in, const int8_t *input,
                             const tp_dims *f, const int16_t *filter16, const int32_t *bias,
                             const tp_dims *out, int8_t *output)
{
    if (((uintptr_t)filter16 & 3u) != 0) {
        /* LDRD needs a word-aligned address (generated arrays are; a caller's may not be) */
        return tp_conv_fallback(ctx, p, q, in, input, f, 0, filter16, bias, out, output);
    }
    return tp_conv_arm(ctx, p, q, in, input, f, 0, filter16, bias, out, output);
}

#endif /* TP_USE_ARM_DSP && TP_ARM_HAS_CONV_S8 */
