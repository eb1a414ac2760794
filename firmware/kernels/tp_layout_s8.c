/* Data-movement kernels: PAD, CONCATENATION (with requantisation when scales differ), TRANSPOSE and
 * STRIDED_SLICE. */
#include <string.h>
#include "tp_nn.h"
#include "tp_nn_support.h"

tp_status tp_pad_s8_ref(const int32_t in_dims[4], const int32_t before[4], const int32_t after[4],
                        int8_t pad_value, const int8_t *input, int8_t *output)
{
    int32_t od[4], i0, i1, i2, d;
    size_t o = 0;
    if (!in_dims || !before || !after || !input || !output) {
        return TP_ERR_ARG;
    }
    for (d = 0; d < 4; ++d) {
        if (in_dims[d] <= 0 || before[d] < 0 || after[d] < 0) {
            return TP_ERR_ARG;
        }
        od[d] = in_dims[d] + before[d] + after[d];
    }
    /* row by row along the innermost dimension: a row outside the input in dims 0-2 is all padding,
     * any other row is padding, one copied run of the input, padding */
    for (i0 = 0; i0 < od[0]; ++i0) {
        const int32_t a = i0 - before[0];
        for (i1 = 0; i1 < od[1]; ++i1) {
            const int32_t b = i1 - before[1];
            for (i2 = 0; i2 < od[2]; ++i2, o += (size_t)od[3]) {
                const int32_t c = i2 - before[2];
                if (a < 0 || a >= in_dims[0] || b < 0 || b >= in_dims[1] || c < 0 || c >= in_dims[2]) {
                    memset(output + o, pad_value, (size_t)od[3]);
                } else {
                    memset(output + o, pad_value, (size_t)before[3]);
                    memcpy(output + o + before[3],
                           input + (((size_t)a * in_dims[1] + b) * in_dims[2] + c) * in_dims[3], (size_t)in_dims[3]);
                    memset(output + o + before[3] + in_dims[3], pad_value, (size_t)after[3]);
                }
            }
        }
    }
    return TP_OK;
}

tp_status tp_concat_s8_ref(const tp_requant_params *params, int32_t outer, int32_t inner,
                           int32_t out_inner, int32_t offset, const int8_t *input, int8_t *output)
{
    int32_t r;
    if (!input || !output || outer < 0 || inner < 0 || offset < 0 || offset + inner > out_inner) {
        return TP_ERR_ARG;
    }
    for (r = 0; r < outer; ++r) {
        const int8_t *src = input + (size_t)r * inner;
        int8_t *dst = output + (size_t)r * out_inner + offset;
        if (params) {
            tp_status s = tp_requantize_s8_ref(params, inner, src, dst);
            if (s != TP_OK) {
                return s;
            }
        } else {
            memcpy(dst, src, (size_t)inner);
        }
    }
    return TP_OK;
}

tp_status tp_transpose_s8_ref(const int32_t in_dims[4], const int32_t perm[4], const int8_t *input, int8_t *output)
{
    int32_t od[4], stride[4], i0, i1, i2, i3, d;
    size_t o = 0;
    if (!in_dims || !perm || !input || !output) {
        return TP_ERR_ARG;
    }
    stride[3] = 1;
    for (d = 2; d >= 0; --d) {
        stride[d] = stride[d + 1] * in_dims[d + 1];
    }
    for (d = 0; d < 4; ++d) {
        if (perm[d] < 0 || perm[d] > 3 || in_dims[d] <= 0) {
            return TP_ERR_ARG;
        }
        od[d] = in_dims[perm[d]];
    }
    for (i0 = 0; i0 < od[0]; ++i0) {
        for (i1 = 0; i1 < od[1]; ++i1) {
            for (i2 = 0; i2 < od[2]; ++i2) {
                for (i3 = 0; i3 < od[3]; ++i3, ++o) {
                    output[o] = input[(size_t)i0 * stride[perm[0]] + (size_t)i1 * stride[perm[1]] +
                                      (size_t)i2 * stride[perm[2]] + (size_t)i3 * stride[perm[3]]];
                }
            }
        }
    }
    return TP_OK;
}

tp_status tp_pad_s8(const int32_t in_dims[4], const int32_t before[4], const int32_t after[4],
                    int8_t pad_value, const int8_t *input, int8_t *output)
{
#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_PAD_S8)
    return tp_pad_s8_arm(in_dims, before, after, pad_value, input, output);
#else
    return tp_pad_s8_ref(in_dims, before, after, pad_value, input, output);
#endif
}

tp_status tp_concat_s8(const tp_requant_params *params, int32_t outer, int32_t inner,
                       int32_t out_inner, int32_t offset, const int8_t *input, int8_t *output)
{
#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_CONCAT_S8)
    return tp_concat_s8_arm(params, outer, inner, out_inner, offset, input, output);
#else
    return tp_concat_s8_ref(params, outer, inner, out_inner, offset, input, output);
#endif
}

tp_status tp_transpose_s8(const int32_t in_dims[4], const int32_t perm[4], const int8_t *input, int8_t *output)
{
#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_TRANSPOSE_S8)
    return tp_transpose_s8_arm(in_dims, perm, input, output);
#else
    return tp_transpose_s8_ref(in_dims, perm, input, output);
#endif
}

tp_status tp_strided_slice_s8_ref(const tp_slice_params *p, const int8_t *input, int8_t *output)
{
    int32_t d, i0, i1, i2, i3, in_stride[4], acc = 1;
    const int8_t *b0, *b1, *b2;
    if (!p || !input || !output) {
        return TP_ERR_ARG;
    }
    /* every index begin + k * stride (0 <= k < out_dims) must lie in the input */
    for (d = 3; d >= 0; --d) {
        const int32_t last = p->begin[d] + (p->out_dims[d] - 1) * p->stride[d];
        if (p->in_dims[d] <= 0 || p->out_dims[d] <= 0 || p->stride[d] == 0 || p->begin[d] < 0 ||
            p->begin[d] >= p->in_dims[d] || last < 0 || last >= p->in_dims[d]) {
            return TP_ERR_ARG;
        }
        in_stride[d] = acc;
        acc *= p->in_dims[d];
    }
    for (i0 = 0; i0 < p->out_dims[0]; ++i0) {
        b0 = input + (p->begin[0] + i0 * p->stride[0]) * in_stride[0];
        for (i1 = 0; i1 < p->out_dims[1]; ++i1) {
            b1 = b0 + (p->begin[1] + i1 * p->stride[1]) * in_stride[1];
            for (i2 = 0; i2 < p->out_dims[2]; ++i2) {
                b2 = b1 + (p->begin[2] + i2 * p->stride[2]) * in_stride[2] + p->begin[3];
                for (i3 = 0; i3 < p->out_dims[3]; ++i3) {
                    *output++ = b2[i3 * p->stride[3]];
                }
            }
        }
    }
    return TP_OK;
}

tp_status tp_strided_slice_s8(const tp_slice_params *params, const int8_t *input, int8_t *output)
{
#if defined(TP_USE_ARM_DSP) && defined(TP_ARM_HAS_STRIDED_SLICE_S8)
    return tp_strided_slice_s8_arm(params, input, output);
#else
    return tp_strided_slice_s8_ref(params, input, output);
#endif
}
