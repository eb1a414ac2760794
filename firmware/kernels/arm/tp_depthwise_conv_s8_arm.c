/* DEPTHWISE_CONV_2D int8, Cortex-M4/M7 DSP variant: bit-exact with tp_depthwise_conv_s8_ref.
 *
 * Applies when ch_mult == 1 and channels % 4 == 0 (every depthwise layer of MobileNet/DS-CNN style
 * models) and the scratch holds tp_depthwise_conv_s8_arm_get_buffer_size() bytes; anything else
 * runs the reference. Channels are taken 4 at a time (a "group": one word of input per tap).
 *
 * Once per call, per group, scratch receives (TP_DW_GROUP_WORDS words, read in this order):
 *   - the folded biases  bias[c] + input_offset * sum_taps w[tap][c]  (so that a tap inside the
 *     input accumulates x * w only, and a padded tap, whose x + input_offset is 0 in the
 *     reference, contributes w * (-input_offset));
 *   - the weights as int16 pairs (c0, c2), (c1, c3) per tap -- the halves SXTB16 / SXTB16-ROR8
 *     unpack from a word of 4 input bytes -- so a tap is LDR + 2 SXTB16 + LDRD + 4 SMLAxy;
 *   - the requantisation table {m, e, hb} per channel (see below);
 * then a padding row of c bytes of -input_offset.
 *
 * Doubled accumulators: |acc| <= taps * 255 * 128 + max|bias|; when that is below 2^30 and every
 * shift is negative, weights and biases are stored times 2 (exact in int16 / int32) so that
 * TFLite's SaturatingRoundingDoublingHighMul(acc, m) is SMMULR(2 acc, m) (tp_arm_support.h).
 * The rounding right shift by e = -shift folds the output offset into its constant,
 * hb = 2^(e-1) + output_offset * 2^e, exact for e <= 22; out = SSAT8((SMMLAR(2 acc, m, hb) +
 * (acc >> 31)) >> e) -- the reference's "- 1 when v < 0" (v = SMMULR(2 acc, m), m >= 0) may test
 * acc instead of v: they differ only when v == 0, where (hb - 1) >> e == hb >> e (hb is an odd
 * multiple of 2^(e-1)).
 *
 * 3x3, dilation 1, every e in 1..22, -input_offset an int8 (all of KWS DS-CNN's depthwise
 * layers; an activation range narrower than int8 is applied afterwards to the pixels just written,
 * 4 bytes per SSUB8/SEL pair): assembly, pixel by pixel in raster order, all groups of a pixel
 * in one loop (the table pointer walks the groups; bit 8 of the last e of a group flags "more
 * groups", ASR by register ignoring it):
 *   - interior runs of a row (tp_dw3x3_run): 3 row pointers + the channel count address the 9
 *     taps with no loads of pointers: 99 instructions per group of 36 MACs;
 *   - border windows keeping 6 or 4 taps (one function per shape, weight offsets immediate, the
 *     inside taps from row pointers as in the runs): the padded taps are skipped and their term
 *     w * (-input_offset) is added once from the SADD16 sum of their weights: 88 / 78
 *     instructions per group;
 *   - other windows (inputs smaller than the filter, padding >= 2, tp_dw3x3_groups): 9 tap
 *     pointers, the padded ones to the padding row: 104 per group.
 * -DTP_ARM_DW_SMALL drops the 8 border-shape functions (about 2.9 KB of flash; every border pixel
 * then takes tp_dw3x3_groups: KWS DS-CNN's depthwise layers 201.6 k -> 219.3 k instructions).
 * Everything else: C with the same scratch (interior pixels from the folded bias, border pixels
 * from the plain bias with the offset added to x), requantisation by tp_arm_requant.
 *
 * Overlap (tp_nn_arm.h): pixels in raster order; a group's 4 output bytes are written after that
 * group's 9 taps were read and before the next group's, so at most 1 output pixel is in flight.
 * Accumulators are exact in int32 (kh*kw <= 65,000 terms). */
#include "../tp_nn.h"

#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_DEPTHWISE_CONV_S8)
#include "tp_arm_support.h"

/* Scratch words per group of 4 channels: 4 folded biases, 2 weight words per tap, 12 words of
 * requantisation table ({m, e, hb} per channel). */
#define TP_DW_GROUP_WORDS(taps) (16 + 2 * (taps))

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
    /* per group of 4 channels TP_DW_GROUP_WORDS(taps) words, then the padding row of c bytes */
    return TP_ARM_ALIGN_SLACK + filter_dims->h * filter_dims->w * filter_dims->c * 2 + filter_dims->c * 16 +
           filter_dims->c;
}

/* Largest right shift of the table requantisation (hb and the sum fit in int32). */
#define TP_DW_MAX_FAST_E 22

/* One group's filter column (4 channels, taps rows of c bytes from w) to int16 pairs (c0, c2),
 * (c1, c3) per tap, doubled when dbl (SADD16: |2w| <= 256 fits the halves); sums[k] = sum of
 * channel k's weights (16-bit SIMD sums when taps <= 256: |sum| <= 256 * 128). */
static inline __attribute__((always_inline)) void tp_dw_expand(int32_t *dst, const int8_t *w, int32_t c,
                                                             int32_t taps, int dbl, int32_t *sums)
{
    int32_t t;
    if (taps <= 256) {
        int32_t s02 = 0, s13 = 0;
        int32_t *const end = dst + 2 * taps;
        for (; dst != end; w += c, dst += 2) {
            const int32_t x = tp_arm_read_s8x4(w);
            const int32_t xe = __sxtb16(x);
            const int32_t xo = tp_arm_sxtb16_ror8(x);
            s02 = __sadd16(s02, xe);
            s13 = __sadd16(s13, xo);
            dst[0] = dbl ? __sadd16(xe, xe) : xe;
            dst[1] = dbl ? __sadd16(xo, xo) : xo;
        }
        sums[0] = (int16_t)s02;
        sums[2] = s02 >> 16;
        sums[1] = (int16_t)s13;
        sums[3] = s13 >> 16;
        return;
    }
    sums[0] = sums[1] = sums[2] = sums[3] = 0;
    for (t = 0; t < taps; ++t, w += c, dst += 2) {
        const int32_t s = dbl ? 2 : 1;
        dst[0] = tp_arm_pack16(s * w[0], s * w[2]);
        dst[1] = tp_arm_pack16(s * w[1], s * w[3]);
        sums[0] += w[0];
        sums[1] += w[1];
        sums[2] += w[2];
        sums[3] += w[3];
    }
}

/* Fills the per-group scratch (see the top of this file): expanded weights (doubled when dbl),
 * folded biases and, when tab, the requantisation table with the loop flags. Out of line: its
 * loops get registers of their own. */
static void __attribute__((noinline)) tp_dw_prepare(int32_t *scr, const int8_t *filter, const int32_t *bias,
                                                    int32_t c, int32_t taps, int32_t in_off, int dbl,
                                                    const tp_quant_params *q, int32_t ooff, int tab)
{
    const int32_t ng = c >> 2, gs = TP_DW_GROUP_WORDS(taps), scale = dbl ? 2 : 1;
    const int32_t ps = q->per_channel ? 1 : 0;
    int32_t g, k;
    for (g = 0; g < ng; ++g) {
        int32_t *gb = scr + g * gs;
        int32_t sums[4];
        if (dbl) {
            tp_dw_expand(gb + 4, filter + 4 * g, c, taps, 1, sums);
        } else {
            tp_dw_expand(gb + 4, filter + 4 * g, c, taps, 0, sums);
        }
        /* modulo 2^32: the folded bias and the partial sums may leave int32 by up to 128 * taps
         * near the accumulator limit, the complete (wrapping) sum does not */
        for (k = 0; k < 4; ++k) {
            const uint32_t b = bias ? (uint32_t)bias[4 * g + k] : 0u;
            gb[k] = (int32_t)((uint32_t)scale * (b + (uint32_t)in_off * (uint32_t)sums[k]));
        }
    }
    if (tab) {
        const int32_t *mp = q->multiplier, *sp = q->shift;
        const int32_t odd = 1 + 2 * ooff;
        int32_t *rq = scr + 4 + 2 * taps;
        for (g = 0; g < ng; ++g, rq += gs) {
            for (k = 0; k < 4; ++k, mp += ps, sp += ps) {
                const int32_t e = -*sp;
                rq[3 * k] = *mp;
                rq[3 * k + 1] = e;
                rq[3 * k + 2] = odd * ((int32_t)1 << (e - 1));   /* 2^(e-1) + ooff * 2^e */
            }
            if (g + 1 < ng) {
                rq[10] |= 0x100;   /* loop flag, see tp_dw3x3_groups */
            }
        }
    }
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

/* Requantises a doubled accumulator (2 * acc, see the top of this file) of the C path:
 * SMMULR(2 acc, m) + rounding shift by e = -shift > 0 (tp_arm_mbqm_rshift) + output offset. */
static inline int32_t tp_dw_rq(int32_t a2x, int32_t m, int32_t sh, int32_t ooff)
{
    int32_t v = tp_arm_smmulr(a2x, m);
    const int32_t e = -sh;
    v = ((v + ((int32_t)1 << (e - 1)) + (v >> 31)) >> e) + ooff;
    return v;
}

/* The 3x3 fast path: all channel groups of one output pixel in assembly.
 *
 * Scratch holds, per group of 4 channels, 34 words read in order by one walking pointer (r4):
 *   [0..3]   the 4 folded, doubled biases (one LDM starts the accumulators);
 *   [4..21]  the 9 taps' doubled weights, (c0, c2) and (c1, c3) int16 pairs (one LDRD per tap);
 *   [22..33] per channel {m, e, hb} (one LDM each), see the top of this file;
 * bit 8 of the last channel's e is set in every group but the last (ASR by register uses only
 * the low byte, so the flag costs nothing and ends the loop without a counter).
 * tap[k] is the address of tap k's input pixel (or of the padding row) MINUS the output pointer:
 * the output pointer r5 advances by 4 per group (STRB post-increment), so [tap, r5] reads the
 * group's 4 input bytes with no offset register. Taps 0-3 stay in registers, 4-8 on the stack.
 * Per group: 1 LDM + 9 x (LDR + 2 SXTB16 + LDRD + 4 SMLAxy) + 5 stack loads + 4 x 6 for the
 * requantisation and store + 2 = 104 instructions for 36 MACs. */
#define TP_DW3_MAC                                    \
    "sxtb16   r7, r6, ror #8\n\t"                     \
    "sxtb16   r6, r6\n\t"                             \
    "ldrd     r8, r9, [r4], #8\n\t"                   \
    "smlabb   r0, r6, r8, r0\n\t"                     \
    "smlatt   r2, r6, r8, r2\n\t"                     \
    "smlabb   r1, r7, r9, r1\n\t"                     \
    "smlatt   r3, r7, r9, r3\n\t"
#define TP_DW3_TAP_REG(rp)                            \
    "ldr      r6, [" rp ", r5]\n\t" TP_DW3_MAC
#define TP_DW3_TAP_STACK(off)                         \
    "ldr      r6, [sp, #" off "]\n\t"                 \
    "ldr      r6, [r6, r5]\n\t" TP_DW3_MAC
/* out = SSAT8((SMMLAR(a, m, hb) + (a >> 31)) >> e), stored with post-increment */
#define TP_DW3_RQ(a)                                  \
    "ldmia    r4!, {r6, r7, r8}\n\t"                  \
    "smmlar   r9, " a ", r6, r8\n\t"                  \
    "add.w    r9, r9, " a ", asr #31\n\t"             \
    "asr.w    r9, r9, r7\n\t"                         \
    "ssat     r9, #8, r9\n\t"                         \
    "strb     r9, [r5], #1\n\t"
/* The group's 4 channels requantised and stored, then on to the next group while the last e's
 * bit 8 says there is one (label 1 opens the group loop) */
#define TP_DW3_RQ4_NEXT                               \
    TP_DW3_RQ("r0") TP_DW3_RQ("r1") TP_DW3_RQ("r2") TP_DW3_RQ("r3") \
    "tst      r7, #256\n\t"                         \
    "bne      1b\n\t"

__attribute__((naked, noinline)) static void tp_dw3x3_groups(__attribute__((unused)) const int32_t *tap,
                                                            __attribute__((unused)) const int32_t *tab,
                                                            __attribute__((unused)) int8_t *o)
{
    __asm__ volatile(
        "push     {r4, r5, r6, r7, r8, r9, r10, r11, lr}\n\t"
        "mov      r4, r1\n\t"
        "mov      r5, r2\n\t"
        "ldmia    r0!, {r10, r11, r12, lr}\n\t"
        "ldmia    r0, {r3, r6, r7, r8, r9}\n\t"
        "push     {r3, r6, r7, r8, r9}\n\t"
        "1:\n\t"
        "ldmia    r4!, {r0, r1, r2, r3}\n\t"
        TP_DW3_TAP_REG("r10")
        TP_DW3_TAP_REG("r11")
        TP_DW3_TAP_REG("r12")
        TP_DW3_TAP_REG("lr")
        TP_DW3_TAP_STACK("0")
        TP_DW3_TAP_STACK("4")
        TP_DW3_TAP_STACK("8")
        TP_DW3_TAP_STACK("12")
        TP_DW3_TAP_STACK("16")
        TP_DW3_RQ4_NEXT
        "add      sp, sp, #20\n\t"
        "pop      {r4, r5, r6, r7, r8, r9, r10, r11, pc}\n\t");
}

/* Border pixels whose window has 6 or 4 taps inside the input (one padded row and/or column of a
 * 3x3 window). With the folded bias a padded tap adds w * (-input_offset); instead of reading it
 * from the padding row, the padded taps' doubled weights are summed with SADD16 (|sum| <= 5 * 256)
 * and multiplied once by -input_offset (a halfword pair, kept on the stack at [sp]). The inside
 * taps are addressed like tp_dw3x3_run's: r10-r12 point at the first inside column of each inside
 * row (post-incremented by the row's last load), lr holds c; the weights are read at immediate
 * offsets from the group's weights (one function per window shape), then the table pointer skips
 * the 9 taps' 72 bytes. What the functions read: */
typedef struct {
    int32_t negoff;          /* [0]  -input_offset in both halves */
    const int8_t *row[3];    /* [4]  first inside column of each inside row (group 0) */
    int32_t c;               /* [16] channels (bytes per input pixel) */
} tp_dw3_rows;

/* 6 taps: 88 instructions per group, 4 taps: 78 (the 9-pointer version: 104). */
#define TP_DW3_WTAP(addr, woff)                       \
    "ldr      r6, " addr "\n\t"                       \
    "sxtb16   r7, r6, ror #8\n\t"                     \
    "sxtb16   r6, r6\n\t"                             \
    "ldrd     r8, r9, [r4, #" woff "]\n\t"            \
    "smlabb   r0, r6, r8, r0\n\t"                     \
    "smlatt   r2, r6, r8, r2\n\t"                     \
    "smlabb   r1, r7, r9, r1\n\t"                     \
    "smlatt   r3, r7, r9, r3\n\t"
/* one inside row of 2 columns (weight offsets wa, wb) or 3 columns (wa, wb, wc) from row pointer R */
#define TP_DW3_ROW2(R, wa, wb)                        \
    TP_DW3_WTAP("[" R ", lr]", wb)                    \
    TP_DW3_WTAP("[" R "], #4", wa)
#define TP_DW3_ROW3(R, wa, wb, wc)                    \
    TP_DW3_WTAP("[" R ", lr]", wb)                    \
    TP_DW3_WTAP("[" R ", lr, lsl #1]", wc)            \
    TP_DW3_WTAP("[" R "], #4", wa)
/* r6, r7 = sum of the padded taps' weight pairs, then times -input_offset into the accumulators */
#define TP_DW3_WSUM_FIRST(w)                          \
    "ldrd     r6, r7, [r4, #" w "]\n\t"
#define TP_DW3_WSUM_ADD(w)                            \
    "ldrd     r8, r9, [r4, #" w "]\n\t"               \
    "sadd16   r6, r6, r8\n\t"                         \
    "sadd16   r7, r7, r9\n\t"
#define TP_DW3_WSUM_APPLY                             \
    "ldr      r8, [sp]\n\t"                           \
    "smlabb   r0, r6, r8, r0\n\t"                     \
    "smlatt   r2, r6, r8, r2\n\t"                     \
    "smlabb   r1, r7, r8, r1\n\t"                     \
    "smlatt   r3, r7, r8, r3\n\t"
#define TP_DW3_PAD3(p0, p1, p2)                       \
    TP_DW3_WSUM_FIRST(p0) TP_DW3_WSUM_ADD(p1) TP_DW3_WSUM_ADD(p2) TP_DW3_WSUM_APPLY
#define TP_DW3_PAD5(p0, p1, p2, p3, p4)               \
    TP_DW3_WSUM_FIRST(p0) TP_DW3_WSUM_ADD(p1) TP_DW3_WSUM_ADD(p2) TP_DW3_WSUM_ADD(p3) \
    TP_DW3_WSUM_ADD(p4) TP_DW3_WSUM_APPLY

/* name(rows, tab, o): PAD, the padded taps' term; TAPS, the inside rows */
#define TP_DW3_SUBSET(name, PAD, TAPS)                                                             \
    __attribute__((naked, noinline)) static void name(__attribute__((unused)) const tp_dw3_rows *r, \
                                                      __attribute__((unused)) const int32_t *tab,   \
                                                      __attribute__((unused)) int8_t *o)            \
    {                                                                                             \
        __asm__ volatile(                                                                         \
            "push     {r4, r5, r6, r7, r8, r9, r10, r11, lr}\n\t"                                 \
            "mov      r4, r1\n\t"                                                                 \
            "mov      r5, r2\n\t"                                                                 \
            "ldmia    r0, {r3, r10, r11, r12, lr}\n\t"                                            \
            "push     {r3}\n\t"                                                                   \
            "1:\n\t"                                                                              \
            "ldmia    r4!, {r0, r1, r2, r3}\n\t"                                                  \
            PAD                                                                                   \
            TAPS                                                                                  \
            "add      r4, r4, #72\n\t"                                                            \
            TP_DW3_RQ4_NEXT                                                                      \
            "add      sp, sp, #4\n\t"                                                             \
            "pop      {r4, r5, r6, r7, r8, r9, r10, r11, pc}\n\t");                               \
    }

#ifndef TP_ARM_DW_SMALL
/* named by the inside rows (r) and columns (c) of the window; weight offset of tap t: 8 t */
TP_DW3_SUBSET(tp_dw3_r012_c12, TP_DW3_PAD3("0", "24", "48"),
              TP_DW3_ROW2("r10", "8", "16") TP_DW3_ROW2("r11", "32", "40") TP_DW3_ROW2("r12", "56", "64"))
TP_DW3_SUBSET(tp_dw3_r012_c01, TP_DW3_PAD3("16", "40", "64"),
              TP_DW3_ROW2("r10", "0", "8") TP_DW3_ROW2("r11", "24", "32") TP_DW3_ROW2("r12", "48", "56"))
TP_DW3_SUBSET(tp_dw3_r12_c012, TP_DW3_PAD3("0", "8", "16"),
              TP_DW3_ROW3("r10", "24", "32", "40") TP_DW3_ROW3("r11", "48", "56", "64"))
TP_DW3_SUBSET(tp_dw3_r01_c012, TP_DW3_PAD3("48", "56", "64"),
              TP_DW3_ROW3("r10", "0", "8", "16") TP_DW3_ROW3("r11", "24", "32", "40"))
TP_DW3_SUBSET(tp_dw3_r12_c12, TP_DW3_PAD5("0", "8", "16", "24", "48"),
              TP_DW3_ROW2("r10", "32", "40") TP_DW3_ROW2("r11", "56", "64"))
TP_DW3_SUBSET(tp_dw3_r12_c01, TP_DW3_PAD5("0", "8", "16", "40", "64"),
              TP_DW3_ROW2("r10", "24", "32") TP_DW3_ROW2("r11", "48", "56"))
TP_DW3_SUBSET(tp_dw3_r01_c12, TP_DW3_PAD5("0", "24", "48", "56", "64"),
              TP_DW3_ROW2("r10", "8", "16") TP_DW3_ROW2("r11", "32", "40"))
TP_DW3_SUBSET(tp_dw3_r01_c01, TP_DW3_PAD5("16", "40", "48", "56", "64"),
              TP_DW3_ROW2("r10", "0", "8") TP_DW3_ROW2("r11", "24", "32"))

#endif /* TP_ARM_DW_SMALL */

typedef void (*tp_dw3_fn)(const tp_dw3_rows *r, const int32_t *tab, int8_t *o);

/* The subset function for the inside rows / columns of a window (bit k: row / column k), or NULL
 * (then tp_dw3x3_groups with padding taps). */
static tp_dw3_fn tp_dw3_subset(int32_t rows, int32_t cols)
{
#ifndef TP_ARM_DW_SMALL
    switch (rows * 8 + cols) {
    case 7 * 8 + 6: return tp_dw3_r012_c12;
    case 7 * 8 + 3: return tp_dw3_r012_c01;
    case 6 * 8 + 7: return tp_dw3_r12_c012;
    case 3 * 8 + 7: return tp_dw3_r01_c012;
    case 6 * 8 + 6: return tp_dw3_r12_c12;
    case 6 * 8 + 3: return tp_dw3_r12_c01;
    case 3 * 8 + 6: return tp_dw3_r01_c12;
    case 3 * 8 + 3: return tp_dw3_r01_c01;
    default: return 0;
    }
#else
    (void)rows;
    (void)cols;
    return 0;
#endif
}

/* A run of interior pixels of one output row (every tap inside the input, dilation 1): the same
 * table, but the taps are addressed from 3 row pointers r10-r12 (top-left tap of each window row)
 * and the channel count in lr: [row, c], [row, c, lsl #1] and [row], #4 (post-increment, so the
 * rows follow the groups) -- no tap pointer loads: 99 instructions per group. What it reads: */
typedef struct {
    const int8_t *in;      /* [0]  window top-left of the first pixel (group 0) */
    int8_t *out;           /* [4]  output of the first pixel */
    int32_t npix;          /* [8]  pixels in the run (> 0) */
    int32_t c;             /* [12] channels (bytes per input pixel) */
    int32_t rowb;          /* [16] bytes per input row */
    int32_t adv;           /* [20] stride_w * c - c: row pointer advance from pixel to pixel */
    const int32_t *tab;    /* [24] the per-group table */
} tp_dw3_run;

#define TP_DW3_TAP_ROW(row, addr, wld)                \
    "ldr      r6, " addr "\n\t"                       \
    "sxtb16   r7, r6, ror #8\n\t"                     \
    "sxtb16   r6, r6\n\t"                             \
    "ldrd     r8, r9, " wld "\n\t"                    \
    "smlabb   r0, r6, r8, r0\n\t"                     \
    "smlatt   r2, r6, r8, r2\n\t"                     \
    "smlabb   r1, r7, r9, r1\n\t"                     \
    "smlatt   r3, r7, r9, r3\n\t"
/* the three taps of one window row: kx = 1, 2, then 0 (whose loads post-increment) */
#define TP_DW3_ROW(row)                                                   \
    TP_DW3_TAP_ROW(row, "[" row ", lr]", "[r4, #8]")                      \
    TP_DW3_TAP_ROW(row, "[" row ", lr, lsl #1]", "[r4, #16]")             \
    TP_DW3_TAP_ROW(row, "[" row "], #4", "[r4], #24")

__attribute__((naked, noinline)) static void tp_dw3x3_run(__attribute__((unused)) const tp_dw3_run *r)
{
    __asm__ volatile(
        "push     {r4, r5, r6, r7, r8, r9, r10, r11, lr}\n\t"
        "ldmia    r0, {r1, r2, r3, r4, r5, r6, r7}\n\t"
        "mov      r10, r1\n\t"
        "mov      lr, r4\n\t"
        "push     {r3, r5, r6, r7}\n\t"          /* [sp] npix, rowb, adv, tab */
        "mov      r5, r2\n\t"
        "2:\n\t"
        "ldr      r4, [sp, #12]\n\t"
        "ldr      r6, [sp, #4]\n\t"
        "add      r11, r10, r6\n\t"
        "add      r12, r11, r6\n\t"
        "1:\n\t"
        "ldmia    r4!, {r0, r1, r2, r3}\n\t"
        TP_DW3_ROW("r10")
        TP_DW3_ROW("r11")
        TP_DW3_ROW("r12")
        TP_DW3_RQ4_NEXT
        "ldr      r6, [sp, #8]\n\t"
        "add      r10, r10, r6\n\t"
        "ldr      r6, [sp, #0]\n\t"
        "subs     r6, r6, #1\n\t"
        "str      r6, [sp, #0]\n\t"
        "bne      2b\n\t"
        "add      sp, sp, #16\n\t"
        "pop      {r4, r5, r6, r7, r8, r9, r10, r11, pc}\n\t");
}

/* The whole 3x3 / dilation 1 fast path (table requantisation, -input_offset an int8): pixel by
 * pixel in raster order, interior runs of a row through tp_dw3x3_run, border pixels whose window
 * keeps 6 or 4 taps through the tp_dw3_subset functions, any other window (an input smaller than
 * the filter) through tp_dw3x3_groups with the padding row. tab: the per-group table in scratch,
 * padrow: c bytes after it. */
static void tp_dw3x3_image(const tp_dw_conv_params *p, const tp_dims *in, const int8_t *input,
                           const tp_dims *out, int8_t *output, const int32_t *tab, int8_t *padrow)
{
    /* an activation range narrower than int8: the assembly saturates to int8, and each pixel (or
     * run) just written is then clamped 4 bytes at a time (clamp(SSAT8(v)) == clamp(v)) */
    const int clamp = p->activation.min != -128 || p->activation.max != 127;
    const int32_t loww = (int32_t)((uint32_t)(uint8_t)(int8_t)p->activation.min * 0x01010101u);
    const int32_t highw = (int32_t)((uint32_t)(uint8_t)(int8_t)p->activation.max * 0x01010101u);
    const int32_t c = in->c, rowb = in->w * c;
    const uint32_t hh = (uint32_t)in->h, ww = (uint32_t)in->w;
    /* interior columns: ix0 >= 0 and ix0 + 3 <= in->w */
    const int32_t oxa = (p->padding.w + p->stride.w - 1) / p->stride.w;
    const int32_t oxb = in->w + p->padding.w >= 3 ? (in->w - 3 + p->padding.w) / p->stride.w + 1 : 0;
    const int32_t ox_end = oxb < out->w ? oxb : out->w;
    /* -input_offset in both halves (the padded taps' term of the tp_dw3_subset functions) */
    const int32_t negoff = tp_arm_pack16(-p->input_offset, -p->input_offset);
    const int32_t padw = (int32_t)((uint32_t)(uint8_t)(int8_t)(-p->input_offset) * 0x01010101u);
    int32_t b, oy, ox, t, ky, toff[9];
    tp_dw3_run run;
    tp_dw3_rows rr;
    for (t = 0; t < c; t += 4) {
        tp_arm_write_s8x4(padrow + t, padw);
    }
    rr.negoff = negoff;
    rr.c = c;
    run.c = c;
    run.rowb = rowb;
    run.adv = (p->stride.w - 1) * c;
    run.tab = tab;
    for (b = 0; b < in->n; ++b) {
        const int8_t *inb = input + (size_t)b * in->h * in->w * c;
        int8_t *o = output + (size_t)b * out->h * out->w * c;
        for (oy = 0; oy < out->h; ++oy) {
            const int32_t iy0 = oy * p->stride.h - p->padding.h;
            const int32_t rows = ((uint32_t)iy0 < hh) | (((uint32_t)(iy0 + 1) < hh) << 1) |
                                 (((uint32_t)(iy0 + 2) < hh) << 2);
            for (ox = 0; ox < out->w; ++ox, o += c) {
                const int32_t ix0 = ox * p->stride.w - p->padding.w;
                const int32_t cols = ((uint32_t)ix0 < ww) | (((uint32_t)(ix0 + 1) < ww) << 1) |
                                     (((uint32_t)(ix0 + 2) < ww) << 2);
                tp_dw3_fn fn;
                if (rows == 7 && ox == oxa && oxa < ox_end) {
                    run.in = inb + (iy0 * in->w + ix0) * c;
                    run.out = o;
                    run.npix = ox_end - oxa;
                    tp_dw3x3_run(&run);
                    if (clamp) {
                        tp_arm_clamp_bytes(o, (ox_end - oxa) * c, loww, highw);
                    }
                    o += (ox_end - 1 - ox) * c;
                    ox = ox_end - 1;
                    continue;
                }
                fn = tp_dw3_subset(rows, cols);
                if (fn) {
                    /* the inside taps: 2 or 3 contiguous rows and columns from the first inside one */
                    const int8_t *first =
                        inb + ((iy0 + (rows & 1 ? 0 : 1)) * in->w + ix0 + (cols & 1 ? 0 : 1)) * c;
                    rr.row[0] = first;
                    rr.row[1] = first + rowb;
                    rr.row[2] = rows == 7 ? first + 2 * rowb : first;   /* unused by the 2-row shapes */
                    fn(&rr, tab, o);
                } else {
                    /* tap (ky, kx) at rb + ky * rowb + kx * c relative to the output pixel */
                    uintptr_t rb = (uintptr_t)inb - (uintptr_t)o + (uintptr_t)(iy0 * rowb + ix0 * c);
                    const int32_t padrel = (int32_t)((uintptr_t)padrow - (uintptr_t)o);
                    for (ky = 0; ky < 3; ++ky, rb += (uintptr_t)rowb) {
                        const int ok = (rows >> ky) & 1;
                        toff[3 * ky] = ok && (cols & 1) ? (int32_t)rb : padrel;
                        toff[3 * ky + 1] = ok && (cols & 2) ? (int32_t)(rb + (uintptr_t)c) : padrel;
                        toff[3 * ky + 2] = ok && (cols & 4) ? (int32_t)(rb + 2 * (uintptr_t)c) : padrel;
                    }
                    tp_dw3x3_groups(toff, tab, o);
                }
                if (clamp) {
                    tp_arm_clamp_bytes(o, c, loww, highw);
                }
            }
        }
    }
}

tp_status tp_depthwise_conv_s8_arm(const tp_context *ctx, const tp_dw_conv_params *p,
                                   const tp_quant_params *q,
                                   const tp_dims *in, const int8_t *input,
                                   const tp_dims *f, const int8_t *filter, const int32_t *bias,
                                   const tp_dims *out, int8_t *output)
{
    int32_t c, ng, taps, gs, g, b, oy, ox, fast, dbl, scale;
    int32_t *scr;
    int8_t *padrow;
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
        TP_ARM_VARIANT(!tp_dw_fast_ok(p, in) || need == 0 ? TP_VAR_REF_SHAPE : TP_VAR_REF_SCRATCH);
        return tp_depthwise_conv_s8_ref(ctx, p, q, in, input, f, filter, bias, out, output);
    }
    c = in->c;
    ng = c >> 2;
    taps = f->h * f->w;
    gs = TP_DW_GROUP_WORDS(taps);
    scr = (int32_t *)tp_arm_align8(ctx->buf);
    padrow = (int8_t *)(scr + ng * gs);
    offp = tp_arm_pack16(p->input_offset, p->input_offset);

    /* |acc| <= taps * 255 * 128 + max|bias| (the folded form sums the same terms): when below 2^30
     * and every shift is <= 0, the accumulators are kept doubled (weights and biases times 2, exact
     * in int16 / int32) so that the SMMULR requantisation needs no extra shift. */
    const int32_t amin = p->activation.min, amax = p->activation.max, ooff = p->output_offset;
    const int full_range = amin == -128 && amax == 127;
    const int32_t ps = q->per_channel ? 1 : 0;
    int tab;
    {
        uint32_t bmax = 0;
        int neg = 1, tab_ok = 1;
        const int32_t nq = q->per_channel ? c : 1;
        if (bias) {
            for (g = 0; g < c; ++g) {
                const int32_t v = bias[g];
                const uint32_t a = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
                bmax = a > bmax ? a : bmax;
            }
        }
        for (g = 0; g < nq; ++g) {
            const int32_t sh = q->shift[g];
            neg &= sh < 0;
            tab_ok &= (sh >= -TP_DW_MAX_FAST_E) & (q->multiplier[g] >= 0);
        }
        fast = (int64_t)taps * 255 * 128 + bmax < (int64_t)TP_ARM_FAST_RQ_LIMIT;
        dbl = fast && neg;
        scale = dbl ? 2 : 1;
        /* the requantisation table (see below): every channel doubled, e <= 22, m >= 0 */
        tab = dbl && tab_ok;
    }
    /* per group: expand the filter (times scale), fold the input offset into the biases, and the
     * requantisation table (m, e, hb) with e = -shift and hb = 2^(e-1) + output_offset * 2^e (the
     * output offset folded into the rounding constant, exact for e <= 22: |SMMULR| < 2^30). The
     * sign correction of the rounding may use the accumulator's sign instead of v = SMMULR's
     * (tp_dw3x3_groups does): they differ only when v == 0, and then (hb - 1) >> e == hb >> e
     * because hb is an odd multiple of 2^(e-1). */
    tp_dw_prepare(scr, filter, bias, c, taps, p->input_offset, dbl, q, ooff, tab);

    if (tab && f->h == 3 && f->w == 3 && p->dilation.h == 1 && p->dilation.w == 1 &&
        p->input_offset >= -127 && p->input_offset <= 128 && amin >= -128 && amin <= 127 && amax >= -128 &&
        amax <= 127) {
        TP_ARM_VARIANT(TP_VAR_DW_ASM3X3);
        tp_dw3x3_image(p, in, input, out, output, scr, padrow);
        return TP_OK;
    }
    TP_ARM_VARIANT(TP_VAR_DW_C);
    /* everything else in C: interior pixels from the folded bias, border pixels from the plain
     * bias with the input offset added to x (exactly the reference's sum over the valid taps) */
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
                    const int32_t *gb = scr + g * gs;
                    const int32_t *wg = gb + 4;
                    const int8_t *src = inb + 4 * g;
                    if (interior) {
                        const int32_t *wp = wg;
                        a0 = gb[0];
                        a1 = gb[1];
                        a2 = gb[2];
                        a3 = gb[3];
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
                        tp_arm_write_s8x4(o + ch, (int32_t)(((uint32_t)r0 & 0xFFu) | (((uint32_t)r1 & 0xFFu) << 8) |
                                                            (((uint32_t)r2 & 0xFFu) << 16) | ((uint32_t)r3 << 24)));
                    }
                }
            }
        }
    }
    return TP_OK;
}

#endif /* TP_USE_ARM_DSP && TP_ARM_HAS_DEPTHWISE_CONV_S8 */
