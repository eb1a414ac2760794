/* FULLY_CONNECTED int8, Cortex-M4/M7 DSP variant: bit-exact with tp_fully_connected_s8_ref.
 *
 * Per batch row the input is expanded once to int16 pairs x + input_offset in scratch, in the
 * (k0, k2 | k1, k3) order of SXTB16 / SXTB16-ROR8; then 4 output rows at a time share each input
 * load: per 4 inputs 1 LDRD + 4 x (1 LDR + 2 SXTB16 + 2 SMLAD) for 16 MACs, the loop in inline
 * assembly (tp_fc_rows4: 23 instructions per 16 MACs; GCC's code of the C loop spilled, 27). filter_offset != 0
 * (not produced by int8 TFLite) or too little scratch runs the reference. */
#include "../tp_nn.h"

#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_FULLY_CONNECTED_S8)
#include "tp_arm_support.h"

int32_t tp_fully_connected_s8_arm_get_buffer_size(int32_t accum_depth, int32_t out_depth)
{
    (void)out_depth;
    if (accum_depth <= 0) {
        return 0;
    }
    return TP_ARM_ALIGN_SLACK + 8 * ((accum_depth + 3) / 4);
}

/* What tp_fc_rows4 reads (offsets hard-coded there: keep the order). */
typedef struct {
    int32_t *acc;            /* [0]  4 accumulators, added to */
    const int32_t *xp;       /* [4]  expanded input pairs (k0,k2 | k1,k3) per group of 4 */
    const int32_t *xend;     /* [8]  xp + 2 * ng (ng >= 1) */
    const int8_t *w;         /* [12] row 0; rows 1-3 follow at a stride of d bytes */
    int32_t d;               /* [16] row stride (accum_depth) */
} tp_fc_job;

/* One weight word (loaded by `load` into r0) against the input pair (r11, r12) into acc. */
#define TP_FC_ROW(load, acc)                     \
    load "\n\t"                                  \
    "sxtb16   r1, r0, ror #8\n\t"                \
    "sxtb16   r0, r0\n\t"                        \
    "smlad    " acc ", r11, r0, " acc "\n\t"     \
    "smlad    " acc ", r12, r1, " acc "\n\t"

/* 4 rows against the whole expanded input: per group of 4 inputs one LDRD of the input pair and
 * 4 x (LDR + 2 SXTB16 + 2 SMLAD): 23 instructions per 16 MACs with the loop (GCC's code for the same
 * C loop spilled registers: 27). Naked: 14 registers are needed, more than inline assembly gets at -O0. */
__attribute__((naked, noinline)) static void tp_fc_rows4(__attribute__((unused)) const tp_fc_job *j)
{
    __asm__ volatile(
        "push     {r4, r5, r6, r7, r8, r9, r10, r11, lr}\n\t"
        "ldmia.w  r0, {r1, r2, r3, r4, r5}\n\t"
        "push     {r1}\n\t"
        "ldmia.w  r1, {r6, r7, r8, r9}\n\t"
        "add.w    r10, r4, r5, lsl #1\n\t"      /* rows 2 and 3 */
        "1:\n\t"
        "ldrd     r11, r12, [r2], #8\n\t"
        TP_FC_ROW("ldr.w    r0, [r4, r5]", "r7")
        TP_FC_ROW("ldr.w    r0, [r10, r5]", "r9")
        TP_FC_ROW("ldr.w    r0, [r10], #4", "r8")
        TP_FC_ROW("ldr.w    r0, [r4], #4", "r6")
        "cmp      r2, r3\n\t"
        "bne      1b\n\t"
        "pop      {r1}\n\t"
        "stmia.w  r1, {r6, r7, r8, r9}\n\t"
        "pop      {r4, r5, r6, r7, r8, r9, r10, r11, pc}\n\t");
}

static inline int32_t tp_fc_w4(const int8_t *w, int32_t n)
{
    int32_t v = 0, r;
    for (r = 0; r < n; ++r) {
        v |= (int32_t)((uint32_t)(uint8_t)w[r] << (8 * r));
    }
    return v;
}

tp_status tp_fully_connected_s8_arm(const tp_context *ctx, const tp_fc_params *p, const tp_quant_params *q,
                                    int32_t batches, int32_t depth, int32_t out_depth,
                                    const int8_t *input, const int8_t *filter, const int32_t *bias,
                                    int8_t *output)
{
    int32_t bt, o, i, fast;
    int32_t ng, tail;
    int32_t *xv;
    if (!p || !q || !q->multiplier || !q->shift || !input || !filter || !output || batches <= 0 ||
        depth <= 0 || out_depth <= 0 || depth > TP_MAX_ACC_TERMS) {
        return TP_ERR_ARG;
    }
    if (p->filter_offset != 0 || !ctx || !ctx->buf ||
        ctx->size < tp_fully_connected_s8_arm_get_buffer_size(depth, out_depth)) {
        TP_ARM_VARIANT(p->filter_offset != 0 ? TP_VAR_REF_QUANT : TP_VAR_REF_SCRATCH);
        return tp_fully_connected_s8_ref(ctx, p, q, batches, depth, out_depth, input, filter, bias, output);
    }
    TP_ARM_VARIANT(TP_VAR_FC_DSP);
    xv = (int32_t *)tp_arm_align8(ctx->buf);
    ng = depth >> 2;
    tail = depth & 3;
    {
        int64_t bmax = 0;
        if (bias) {
            for (o = 0; o < out_depth; ++o) {
                const int64_t a = bias[o] < 0 ? -(int64_t)bias[o] : (int64_t)bias[o];
                bmax = a > bmax ? a : bmax;
            }
        }
        fast = (int64_t)depth * 255 * 128 + bmax < (int64_t)TP_ARM_FAST_RQ_LIMIT;
    }
    for (bt = 0; bt < batches; ++bt) {
        const int8_t *x = input + (size_t)bt * depth;
        int8_t *y = output + (size_t)bt * out_depth;
        const int32_t offp = tp_arm_pack16(p->input_offset, p->input_offset);
        for (i = 0; i < ng; ++i) {
            const int32_t v = tp_arm_read_s8x4(x + 4 * i);
            xv[2 * i] = __sadd16(__sxtb16(v), offp);
            xv[2 * i + 1] = __sadd16(tp_arm_sxtb16_ror8(v), offp);
        }
        if (tail) {
            int32_t t[4] = {0, 0, 0, 0};
            for (i = 0; i < tail; ++i) {
                t[i] = (int32_t)x[4 * ng + i] + p->input_offset;
            }
            xv[2 * ng] = tp_arm_pack16(t[0], t[2]);
            xv[2 * ng + 1] = tp_arm_pack16(t[1], t[3]);
        }
        for (o = 0; o < out_depth;) {
            const int32_t nrows = out_depth - o >= 4 ? 4 : 1;
            int32_t acc[4] = {0, 0, 0, 0};
            int32_t r;
            const int8_t *w0 = filter + (size_t)o * depth;
            if (nrows == 4) {
                const int8_t *w1 = w0 + depth, *w2 = w1 + depth, *w3 = w2 + depth;
                int32_t a0, a1, a2, a3;
                const int32_t *xp = xv + 2 * ng;
                acc[0] = bias ? bias[o] : 0;
                acc[1] = bias ? bias[o + 1] : 0;
                acc[2] = bias ? bias[o + 2] : 0;
                acc[3] = bias ? bias[o + 3] : 0;
                if (ng > 0) {
                    tp_fc_job job;
                    job.acc = acc;
                    job.xp = xv;
                    job.xend = xv + 2 * ng;
                    job.w = w0;
                    job.d = depth;
                    tp_fc_rows4(&job);
                }
                a0 = acc[0];
                a1 = acc[1];
                a2 = acc[2];
                a3 = acc[3];
                if (tail) {
                    const int32_t xe = xp[0], xo = xp[1];
                    int32_t wv = tp_fc_w4(w0 + 4 * ng, tail);
                    a0 = __smlad(xe, __sxtb16(wv), a0);
                    a0 = __smlad(xo, tp_arm_sxtb16_ror8(wv), a0);
                    wv = tp_fc_w4(w1 + 4 * ng, tail);
                    a1 = __smlad(xe, __sxtb16(wv), a1);
                    a1 = __smlad(xo, tp_arm_sxtb16_ror8(wv), a1);
                    wv = tp_fc_w4(w2 + 4 * ng, tail);
                    a2 = __smlad(xe, __sxtb16(wv), a2);
                    a2 = __smlad(xo, tp_arm_sxtb16_ror8(wv), a2);
                    wv = tp_fc_w4(w3 + 4 * ng, tail);
                    a3 = __smlad(xe, __sxtb16(wv), a3);
                    a3 = __smlad(xo, tp_arm_sxtb16_ror8(wv), a3);
                }
                acc[0] = a0;
                acc[1] = a1;
                acc[2] = a2;
                acc[3] = a3;
            } else {
                int32_t a0 = bias ? bias[o] : 0;
                const int32_t *xp = xv;
                for (i = 0; i < ng; ++i, xp += 2) {
                    const int32_t wv = tp_arm_read_s8x4(w0 + 4 * i);
                    a0 = __smlad(xp[0], __sxtb16(wv), a0);
                    a0 = __smlad(xp[1], tp_arm_sxtb16_ror8(wv), a0);
                }
                if (tail) {
                    const int32_t wv = tp_fc_w4(w0 + 4 * ng, tail);
                    a0 = __smlad(xp[0], __sxtb16(wv), a0);
                    a0 = __smlad(xp[1], tp_arm_sxtb16_ror8(wv), a0);
                }
                acc[0] = a0;
            }
            for (r = 0; r < nrows; ++r, ++o) {
                const int32_t qi = q->per_channel ? o : 0;
                const int32_t v = tp_arm_requant(acc[r], q->multiplier[qi], q->shift[qi], fast) + p->output_offset;
                y[o] = (int8_t)tp_arm_clamp(v, p->activation.min, p->activation.max);
            }
        }
    }
    return TP_OK;
}

#endif /* TP_USE_ARM_DSP && TP_ARM_HAS_FULLY_CONNECTED_S8 */
