/* RESIZE_NEAREST_NEIGHBOR int8 reference kernel (TFLite Micro's reference_ops::ResizeNearestNeighbor).
 *
 * Layout: input [n][in_h][in_w][c], output [n][out_h][out_w][c] (NHWC, same n and c). Each output
 * pixel is a copy of the c bytes of one input pixel: no arithmetic on the values, so input and output
 * share one quantisation (the code generator refuses a model where they differ, as TFLite Micro would
 * copy the bytes unchanged).
 *
 * Source row of output row y (columns alike), in float32 as TFLite Micro computes it:
 *     scale = align_corners && out > 1 ? (in - 1) / (float)(out - 1) : in / (float)out
 *     v     = (y + (half_pixel_centers ? 0.5f : 0.0f)) * scale            (v >= 0)
 *     src   = min(align_corners ? round(v) : floor(v), in - 1)             (round: halves up)
 * v is never negative, so floor is the conversion to int32 and round adds one when the fraction is
 * at least one half; no libm, and no expression GCC may contract into a fused multiply-add, so the
 * indices are the same on a host and on a Cortex-M with an FPU. */
#include "tp_nn.h"
#include "tp_nn_support.h"

static int32_t tp_resize_source(int32_t y, int32_t in_size, int32_t out_size, int32_t align_corners,
                                int32_t half_pixel_centers)
{
    const float scale = (align_corners && out_size > 1) ? (float)(in_size - 1) / (float)(out_size - 1)
                                                        : (float)in_size / (float)out_size;
    const float v = ((float)y + (half_pixel_centers ? 0.5f : 0.0f)) * scale;
    int32_t src = (int32_t)v;          /* floor: v >= 0 */
    if (align_corners && (float)src + 0.5f <= v) {
        ++src;                         /* round half away from zero */
    }
    return TP_MIN(src, in_size - 1);
}

tp_status tp_resize_nearest_s8_ref(const tp_resize_params *params, const tp_dims *input_dims,
                                   const int8_t *input, const tp_dims *output_dims, int8_t *output)
{
    int32_t b, y, x, c;
    if (!params || !input_dims || !output_dims || !input || !output || input_dims->n <= 0 ||
        input_dims->h <= 0 || input_dims->w <= 0 || input_dims->c <= 0 || output_dims->n != input_dims->n ||
        output_dims->c != input_dims->c || output_dims->h <= 0 || output_dims->w <= 0) {
        return TP_ERR_ARG;
    }
    for (b = 0; b < input_dims->n; ++b) {
        for (y = 0; y < output_dims->h; ++y) {
            const int32_t iy = tp_resize_source(y, input_dims->h, output_dims->h, params->align_corners,
                                                params->half_pixel_centers);
            const int8_t *row = input + ((size_t)b * input_dims->h + (size_t)iy) * input_dims->w * input_dims->c;
            int8_t *dst = output + ((size_t)b * output_dims->h + (size_t)y) * output_dims->w * output_dims->c;
            for (x = 0; x < output_dims->w; ++x) {
                const int32_t ix = tp_resize_source(x, input_dims->w, output_dims->w, params->align_corners,
                                                    params->half_pixel_centers);
                const int8_t *src = row + (size_t)ix * input_dims->c;
                for (c = 0; c < input_dims->c; ++c) {
                    dst[c] = src[c];
                }
                dst += input_dims->c;
            }
        }
    }
    return TP_OK;
}

tp_status tp_resize_nearest_s8(const tp_resize_params *params, const tp_dims *input_dims, const int8_t *input,
                               const tp_dims *output_dims, int8_t *output)
{
    /* a copy of whole pixels: no DSP variant (the reference is bound by the copy) */
    return tp_resize_nearest_s8_ref(params, input_dims, input, output_dims, output);
}
