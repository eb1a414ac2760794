/* FULLY_CONNECTED int8, Cortex-M4/M7 DSP variant: bit-exact with tp_fully_connected_s8_ref.
 *
 * Per batch row the input is expanded once to int16 pairs x + input_offset in scratch, in the
 * (k0, k2 | k1, k3) order of SXTB16 / SXTB16-ROR8; then 4 output rows at a time share each input
 * load: per 4 inputs 1 LDRD + 4 x (1 LDR + 2 SXTB16 + 2 SMLAD) for 16 MACs. filter_offset != 0
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
        return tp_fully_connected_s8_ref(ctx, p, q, batches, depth, out_depth, input, filter, bias, output);
    }
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
                int32_t a0 = bias ? bias[o] : 0, a1 = bias ? bias[o + 1] : 0;
                int32_t a2 = bias ? bias[o + 2] : 0, a3 = bias ? bias[o + 3] : 0;
                const int32_t *xp = xv;
                for (i = 0; i < ng; ++i, xp += 2) {
                    const int32_t xe = xp[0], xo = xp[1];
                    int32_t wv = tp_arm_read_s8x4(w0 + 4 * i);
                    a0 = __smlad(xe, __sxtb16(wv), a0);
                    a0 = __smlad(xo, tp_arm_sxtb16_ror8(wv), a0);
                    wv = tp_arm_read_s8x4(w1 + 4 * i);
                    a1 = __smlad(xe, __sxtb16(wv), a1);
                    a1 = __smlad(xo, tp_arm_sxtb16_ror8(wv), a1);
                    wv = tp_arm_read_s8x4(w2 + 4 * i);
                    a2 = __smlad(xe, __sxtb16(wv), a2);
                    a2 = __smlad(xo, tp_arm_sxtb16_ror8(wv), a2);
                    wv = tp_arm_read_s8x4(w3 + 4 * i);
                    a3 = __smlad(xe, __sxtb16(wv), a3);
                    a3 = __smlad(xo, tp_arm_sxtb16_ror8(wv), a3);
                }
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
