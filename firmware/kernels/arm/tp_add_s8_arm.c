/* ADD int8, Cortex-M4/M7 DSP variant: bit-exact with tp_add_s8_ref.
 *
 * Same-shape inputs (bcast == NULL) with TFLite's parameters (left_shift <= 20, all shifts <= 0):
 * each of the three MultiplyByQuantizedMultiplierSmallerThanOneExp is one SMMULR plus the rounding
 * shift (tp_arm_mbqm_rshift); its |x| < 2^30 precondition holds because |x + offset| <= 255, so
 * |(x + offset) << 20| < 2^28, each scaled input is no larger, and their sum < 2^29.
 * Broadcasting or other parameters run the reference. Output may alias either input. */
#include "../tp_nn.h"

#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_ADD_S8)
#include "tp_arm_support.h"

tp_status tp_add_s8_arm(const tp_add_params *p, const tp_broadcast *bcast, int32_t size,
                        const int8_t *input1, const int8_t *input2, int8_t *output)
{
    int32_t i;
    if (!p || !input1 || !input2 || !output || size < 0 || p->left_shift < 0 || p->left_shift > 20 ||
        bcast != NULL || p->input1_shift > 0 || p->input2_shift > 0 || p->output_shift > 0) {
        return tp_add_s8_ref(p, bcast, size, input1, input2, output);
    }
    {
        const int32_t off1 = p->input1_offset, off2 = p->input2_offset, ooff = p->output_offset;
        const int32_t m1 = p->input1_multiplier, m2 = p->input2_multiplier, mo = p->output_multiplier;
        const int32_t e1 = -p->input1_shift, e2 = -p->input2_shift, eo = -p->output_shift;
        const int32_t ls = p->left_shift;
        const int32_t amin = p->activation.min, amax = p->activation.max;
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
