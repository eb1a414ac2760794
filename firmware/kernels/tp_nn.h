/* tinyprune int8 kernels: public API (C99, no heap, no libm on the integer path).
 *
 * Every op has
 *   tp_<op>_s8(...)      the public entry: dispatches to tp_<op>_s8_arm(...) (same arguments) when
 *                        compiled with TP_USE_ARM_DSP and arm/tp_nn_arm.h defines TP_ARM_HAS_<OP>_S8
 *                        (e.g. TP_ARM_HAS_CONV_S8), else to the reference, so DSP variants can be
 *                        added one op at a time;
 *   tp_<op>_s8_ref(...)  the plain-C reference, always callable by name (the oracle for
 *                        optimised variants);
 *   tp_<op>_s8_get_buffer_size(...)   for kernels that may need scratch (0 for the references);
 *                        the Python twin is tinyprune/codegen/scratch.py and must agree exactly.
 * All kernels return TP_OK (0) or a tp_status error; they never allocate memory.
 *
 * Numerics are TFLite Micro's, bit for bit (double-rounding MultiplyByQuantizedMultiplier).
 * Layouts: activations NHWC int8; CONV_2D filter [out_c][kh][kw][in_c]; DEPTHWISE_CONV_2D filter
 * [kh][kw][in_c*ch_mult]; FULLY_CONNECTED filter [out][in]; bias int32 per output channel or NULL.
 *
 * Accumulator bounds: conv/depthwise/FC accumulate (x + input_offset) * w with |x + input_offset|
 * <= 255 and |w| <= 127 (TFLite int8 weights are symmetric), so an int32 accumulator is exact for
 * up to 2^31 / (255*127) = 66,311 terms plus the bias: kh*kw*in_c (conv) and in (FC) must stay
 * below 65,000, which tp_*_s8 check (TP_ERR_ARG otherwise).
 *
 * In-place: the elementwise kernels (add, mul, requantize/relu/quantize, logistic, tanh, hard_swish,
 * leaky_relu, prelu)
 * are correct when the output pointer equals an input pointer of the same shape. The others
 * need distinct buffers. */
#ifndef TP_NN_H
#define TP_NN_H

#include "tp_nn_types.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TP_MAX_ACC_TERMS 65000

/* CONV_2D. input [n][h][w][c]; filter_dims {out_c, kh, kw, fc} with c a multiple of fc (TFLite's
 * grouped convolution: groups = c / fc, out_c a multiple of groups, output channel oc reads input
 * channels [g * fc, (g + 1) * fc) with g = oc / (out_c / groups); fc == c is the plain conv);
 * output [n][oh][ow][out_c]; quant per output channel (per_channel = 0 broadcasts element 0).
 * The DSP variant runs grouped convolutions (groups > 1) with the reference, scratch 0. */
tp_status tp_conv_s8(const tp_context *ctx, const tp_conv_params *params, const tp_quant_params *quant,
                     const tp_dims *input_dims, const int8_t *input,
                     const tp_dims *filter_dims, const int8_t *filter, const int32_t *bias,
                     const tp_dims *output_dims, int8_t *output);
tp_status tp_conv_s8_ref(const tp_context *ctx, const tp_conv_params *params, const tp_quant_params *quant,
                         const tp_dims *input_dims, const int8_t *input,
                         const tp_dims *filter_dims, const int8_t *filter, const int32_t *bias,
                         const tp_dims *output_dims, int8_t *output);
int32_t tp_conv_s8_get_buffer_size(const tp_dims *input_dims, const tp_dims *filter_dims,
                                   const tp_dims *output_dims);
/* CONV_2D with the filter pre-expanded to int16 at code-generation time ("fast weights": twice the
 * flash of the int8 filter, fewer instructions in the DSP kernel's inner loop). Row oc of filter16
 * holds the K = kh*kw*in_c elements of filter row oc (the int8 layout's order) in groups of 4,
 * zero-padded to 4 * ceil(K / 4), each group stored as (k0, k2, k1, k3):
 *   filter16[oc * 4G + 4 (j / 4) + {0, 2, 1, 3}[j % 4]] = filter[oc][j],  G = ceil(K / 4).
 * tinyprune/codegen/relayout.py makes it. Same results as tp_conv_s8 on the int8 filter. The DSP
 * variant needs filter16 word-aligned (generated arrays are); otherwise it runs the reference. */
tp_status tp_conv_s8_x16(const tp_context *ctx, const tp_conv_params *params, const tp_quant_params *quant,
                         const tp_dims *input_dims, const int8_t *input,
                         const tp_dims *filter_dims, const int16_t *filter16, const int32_t *bias,
                         const tp_dims *output_dims, int8_t *output);
tp_status tp_conv_s8_x16_ref(const tp_context *ctx, const tp_conv_params *params, const tp_quant_params *quant,
                             const tp_dims *input_dims, const int8_t *input,
                             const tp_dims *filter_dims, const int16_t *filter16, const int32_t *bias,
                             const tp_dims *output_dims, int8_t *output);

/* DEPTHWISE_CONV_2D. filter_dims {1, kh, kw, in_c * ch_mult}; output c == in_c * ch_mult. */
tp_status tp_depthwise_conv_s8(const tp_context *ctx, const tp_dw_conv_params *params,
                               const tp_quant_params *quant,
                               const tp_dims *input_dims, const int8_t *input,
                               const tp_dims *filter_dims, const int8_t *filter, const int32_t *bias,
                               const tp_dims *output_dims, int8_t *output);
tp_status tp_depthwise_conv_s8_ref(const tp_context *ctx, const tp_dw_conv_params *params,
                                   const tp_quant_params *quant,
                                   const tp_dims *input_dims, const int8_t *input,
                                   const tp_dims *filter_dims, const int8_t *filter, const int32_t *bias,
                                   const tp_dims *output_dims, int8_t *output);
int32_t tp_depthwise_conv_s8_get_buffer_size(const tp_dims *input_dims, const tp_dims *filter_dims,
                                             const tp_dims *output_dims);

/* FULLY_CONNECTED. input [batches][accum_depth]; filter [out][accum_depth]; output [batches][out]. */
tp_status tp_fully_connected_s8(const tp_context *ctx, const tp_fc_params *params, const tp_quant_params *quant,
                                int32_t batches, int32_t accum_depth, int32_t out_depth,
                                const int8_t *input, const int8_t *filter, const int32_t *bias,
                                int8_t *output);
tp_status tp_fully_connected_s8_ref(const tp_context *ctx, const tp_fc_params *params, const tp_quant_params *quant,
                                    int32_t batches, int32_t accum_depth, int32_t out_depth,
                                    const int8_t *input, const int8_t *filter, const int32_t *bias,
                                    int8_t *output);
int32_t tp_fully_connected_s8_get_buffer_size(int32_t accum_depth, int32_t out_depth);

/* ADD / MUL: size elements when bcast is NULL (same shapes), else broadcast per bcast. */
tp_status tp_add_s8(const tp_add_params *params, const tp_broadcast *bcast, int32_t size,
                    const int8_t *input1, const int8_t *input2, int8_t *output);
tp_status tp_add_s8_ref(const tp_add_params *params, const tp_broadcast *bcast, int32_t size,
                        const int8_t *input1, const int8_t *input2, int8_t *output);
tp_status tp_mul_s8(const tp_mul_params *params, const tp_broadcast *bcast, int32_t size,
                    const int8_t *input1, const int8_t *input2, int8_t *output);
tp_status tp_mul_s8_ref(const tp_mul_params *params, const tp_broadcast *bcast, int32_t size,
                        const int8_t *input1, const int8_t *input2, int8_t *output);

/* AVERAGE_POOL_2D / MAX_POOL_2D over NHWC; the window is clipped to the input (TFLite). */
tp_status tp_avgpool_s8(const tp_pool_params *params, const tp_dims *input_dims, const int8_t *input,
                        const tp_dims *output_dims, int8_t *output);
tp_status tp_avgpool_s8_ref(const tp_pool_params *params, const tp_dims *input_dims, const int8_t *input,
                            const tp_dims *output_dims, int8_t *output);
tp_status tp_maxpool_s8(const tp_pool_params *params, const tp_dims *input_dims, const int8_t *input,
                        const tp_dims *output_dims, int8_t *output);
tp_status tp_maxpool_s8_ref(const tp_pool_params *params, const tp_dims *input_dims, const int8_t *input,
                            const tp_dims *output_dims, int8_t *output);

/* MEAN (see tp_mean_params). */
tp_status tp_mean_s8(const tp_mean_params *params, const int8_t *input, int8_t *output);
tp_status tp_mean_s8_ref(const tp_mean_params *params, const int8_t *input, int8_t *output);

/* SOFTMAX over the last dimension: rows x depth. */
tp_status tp_softmax_s8(const tp_softmax_params *params, int32_t rows, int32_t depth,
                        const int8_t *input, int8_t *output);
tp_status tp_softmax_s8_ref(const tp_softmax_params *params, int32_t rows, int32_t depth,
                            const int8_t *input, int8_t *output);

/* LOGISTIC, HARD_SWISH, requantize (QUANTIZE int8->int8, RELU, RELU6): size elements, in place allowed. */
tp_status tp_logistic_s8(const tp_logistic_params *params, int32_t size, const int8_t *input, int8_t *output);
tp_status tp_logistic_s8_ref(const tp_logistic_params *params, int32_t size, const int8_t *input, int8_t *output);
tp_status tp_hard_swish_s8(const tp_hard_swish_params *params, int32_t size, const int8_t *input, int8_t *output);
tp_status tp_hard_swish_s8_ref(const tp_hard_swish_params *params, int32_t size, const int8_t *input, int8_t *output);
tp_status tp_requantize_s8(const tp_requant_params *params, int32_t size, const int8_t *input, int8_t *output);
tp_status tp_requantize_s8_ref(const tp_requant_params *params, int32_t size, const int8_t *input, int8_t *output);

/* TANH int8 -> int8 (output scale 1/128, zero point 0; the parameters are LOGISTIC's, computed alike). */
tp_status tp_tanh_s8(const tp_logistic_params *params, int32_t size, const int8_t *input, int8_t *output);
tp_status tp_tanh_s8_ref(const tp_logistic_params *params, int32_t size, const int8_t *input, int8_t *output);
/* LEAKY_RELU: size elements, in place allowed. */
tp_status tp_leaky_relu_s8(const tp_leaky_relu_params *params, int32_t size, const int8_t *input, int8_t *output);
tp_status tp_leaky_relu_s8_ref(const tp_leaky_relu_params *params, int32_t size, const int8_t *input,
                               int8_t *output);
/* PRELU of a tensor of up to 4 dimensions (dims, padded with leading 1s) with an int8 slope tensor of
 * params->alpha_dims (each 1 or the input's: broadcast), in place allowed. */
tp_status tp_prelu_s8(const tp_prelu_params *params, const int32_t dims[4], const int8_t *input,
                      const int8_t *alpha, int8_t *output);
tp_status tp_prelu_s8_ref(const tp_prelu_params *params, const int32_t dims[4], const int8_t *input,
                          const int8_t *alpha, int8_t *output);

/* PAD (constant pad_value) of a 4-D tensor: before[i]/after[i] per dimension (outermost first). */
tp_status tp_pad_s8(const int32_t in_dims[4], const int32_t before[4], const int32_t after[4],
                    int8_t pad_value, const int8_t *input, int8_t *output);
tp_status tp_pad_s8_ref(const int32_t in_dims[4], const int32_t before[4], const int32_t after[4],
                        int8_t pad_value, const int8_t *input, int8_t *output);

/* CONCATENATION building block: copy (and requantize when params != NULL) an input viewed as
 * [outer][inner] into the output viewed as [outer][out_inner] at column offset. */
tp_status tp_concat_s8(const tp_requant_params *params, int32_t outer, int32_t inner,
                       int32_t out_inner, int32_t offset, const int8_t *input, int8_t *output);
tp_status tp_concat_s8_ref(const tp_requant_params *params, int32_t outer, int32_t inner,
                           int32_t out_inner, int32_t offset, const int8_t *input, int8_t *output);

/* TRANSPOSE of a tensor of up to 4 dimensions (padded with leading 1s): out dim i = in dim perm[i]. */
tp_status tp_transpose_s8(const int32_t in_dims[4], const int32_t perm[4], const int8_t *input, int8_t *output);
tp_status tp_transpose_s8_ref(const int32_t in_dims[4], const int32_t perm[4], const int8_t *input, int8_t *output);

/* STRIDED_SLICE of a tensor of up to 4 dimensions (padded with leading 1s): output element
 * (k0..k3) = input element (begin[d] + k_d * stride[d]); the indices, resolved from TFLite's begin/end/
 * strides and masks at code-generation time, must lie in the input (TP_ERR_ARG otherwise). Values are
 * copied unchanged (input and output share one quantization). */
tp_status tp_strided_slice_s8(const tp_slice_params *params, const int8_t *input, int8_t *output);
tp_status tp_strided_slice_s8_ref(const tp_slice_params *params, const int8_t *input, int8_t *output);

/* RESIZE_NEAREST_NEIGHBOR of an NHWC tensor to output_dims (same n and c): every output pixel copies
 * one input pixel, chosen as TFLite Micro does (tp_resize_s8.c documents the index formula). */
tp_status tp_resize_nearest_s8(const tp_resize_params *params, const tp_dims *input_dims, const int8_t *input,
                               const tp_dims *output_dims, int8_t *output);
tp_status tp_resize_nearest_s8_ref(const tp_resize_params *params, const tp_dims *input_dims, const int8_t *input,
                                   const tp_dims *output_dims, int8_t *output);

#ifdef __cplusplus
}
#endif

#if defined(TP_USE_ARM_DSP)
#include "arm/tp_nn_arm.h"
#endif

#endif /* TP_NN_H */
