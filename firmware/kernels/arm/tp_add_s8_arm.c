/* ADD int8, Cortex-M4/M7 DSP variant: bit-exact with tp_add_s8_ref.
 *
 * Same-shape inputs (bcast == NULL) with TFLite's parameters (left_shift <= 20, all shifts <= 0):
 * each of the three MultiplyByQuantizedMultiplierSmallerThanOneExp is one SMMULR plus the rounding
 * shift (tp_arm_mbqm_rshift); its |x| < 2^30 precondition holds because |x + offset| <= 255, so
 * |(x + offset) << 20| < 2^28, each scaled input is no larger, and their sum < 2^29.
 * With at least TP_ADD_TABLE_MIN elements the two scaled inputs are looked up in tables of their
 * 256 possible values (2 KB of stack). Broadcasting or other parameters run the reference. Output
 * may alias either input (element i is read before it is written). */
#include "../tp_nn.h"

#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_ADD_S8)
#include "tp_arm_support.h"

/* From this many elements on, the inputs' scaled values come from two 256-entry tables (built
 * once per call, 2 KB of stack). */
#define TP_ADD_TABLE_MIN 512

tp_status tp_add_s8_arm(const tp_add_params *p, const tp_broadcast *bcast, int32_t size,
                        const int8_t *input1, const int8_t *input2, int8_t *output)
{
    int32_t i;
    if (!p || !input1 || !input2 || !output || size < 0 || p->left_shift < 0 || p->left_shift > 20 ||
        bcast != NULL || p->input1_shift > 0 || p->input2_shift > 0 || p->output_shift > 0) {
        TP_ARM_VARIANT(bcast != NULL ? TP_VAR_REF_SHAPE : TP_VAR_REF_QUANT);
        return tp_add_s8_ref(p, bcast, size, input1, input2, output);
    }
    TP_ARM_VARIANT(TP_VAR_ADD_DSP);
    {
        const int32_t off1 = p->input1_offset, off2 = p->input2_offset, ooff = p->output_offset;
        const int32_t m1 = p->input1_multiplier, m2 = p->input2_multiplier, mo = p->output_multiplier;
        const int32_t e1 = -p->input1_shift, e2 = -p->input2_shift, eo = -p->output_shift;
        const int32_t ls = p->left_shift;
        const int32_t amin = p->activation.min, amax = p->activation.max;
        if (eo > 0 && size >= TP_ADD_TABLE_MIN) {
            /* each input's scaled value depends on its int8 value only: two 256-entry tables on
             * the stack (2 KB), built with the exact per-element formula, then per element two
             * table loads and the output requantisation (SMMULR + rounding shift + SSAT) */
            int32_t t1[256], t2[256];
            const int32_t ho = (int32_t)1 << (eo - 1);
            const int32_t *const t1c = t1 + 128, *const t2c = t2 + 128;
            int32_t x;
            for (x = -128; x < 128; ++x) {
                t1[x + 128] = tp_arm_mbqm_rshift((x + off1) * (1 << ls), m1, e1);
                t2[x + 128] = tp_arm_mbqm_rshift((x + off2) * (1 << ls), m2, e2);
            }
            if (amin == -128 && amax == 127) {
                for (i = 0; i < size; ++i) {
                    int32_t v = tp_arm_smmulr((t1c[input1[i]] + t2c[input2[i]]) * 2, mo);
                    v = ((v + ho + (v >> 31)) >> eo) + ooff;
                    output[i] = (int8_t)__ssat(v, 8);
                }
            } else {
                for (i = 0; i < size; ++i) {
                    int32_t v = tp_arm_smmulr((t1c[input1[i]] + t2c[input2[i]]) * 2, mo);
                    v = ((v + ho + (v >> 31)) >> eo) + ooff;
                    v = __ssat(v, 8);
                    v = v < amin ? amin : v;
                    output[i] = (int8_t)(v > amax ? amax : v);
                }
            }
            return TP_OK;
        }
        for (i = 0; i < size; ++i) {
            const int32_t a = tp_arm_mbqm_rshift(((int32_t)input1[i] + off1) * (1 << ls), m1, e1);
            const int32_t b = tp_arm_mbqm_rshift(((int32_t)input2[i] + off2) * (1 << ls), m2, e2);
            const int32_t s = tp_arm_mbqm_rshift(a + b, mo, eo) + ooff;
            output[i] = (int8_t)tp_arm_clamp(s, amin, amax);
        }
    }
    return TP_OK;
}

#endif /* TP_USE_ARM_DSP && TP_ARM_HAS_ADD_S8 */
