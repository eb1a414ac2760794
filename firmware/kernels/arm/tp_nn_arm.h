/* tinyprune int8 kernels: Cortex-M4/M7 DSP-extension variants (SXTB16/SMLAD/SMMULR, ACLE).
 *
 * Included by ../tp_nn.h when the build defines TP_USE_ARM_DSP. For every op implemented here the
 * header defines TP_ARM_HAS_<OP>_S8, and the public entry tp_<op>_s8() calls tp_<op>_s8_arm() with
 * the same arguments; the scratch size of the DSP variant is tp_<op>_s8_arm_get_buffer_size()
 * (returned by the public tp_<op>_s8_get_buffer_size(); Python twin: tinyprune/codegen/scratch.py,
 * kernels "dsp", checked against these by tests/test_scratch_sizes.py).
 *
 * Contract of every variant: output identical bit for bit to tp_<op>_s8_ref() (TFLite Micro's
 * double-rounding requantisation) for every argument the reference accepts. Where a variant's fast
 * path does not apply (shapes, options, scratch smaller than its _get_buffer_size), it calls the
 * reference, so a variant is never less correct than the reference, only sometimes not faster.
 *
 * Built only for cores with the DSP extension (__ARM_FEATURE_DSP: Cortex-M4, M7, M33, M55); on other
 * cores (Cortex-M0+), or with -DTP_NO_ARM_DSP (to measure the references on a DSP core), this header
 * declares nothing and the references are used.
 *
 * Memory overlap (planner overlap=True, docs/memory-planning.md): every variant writes its output
 * pixels in raster order (N, H, W) and, once it has written any byte of output pixel q, reads input
 * only inside the windows of pixels >= q ("pixels in flight" = output pixels written before all of
 * their own input reads are done):
 *   CONV_2D            0 -- a block of 6 pixels is copied (im2col) to scratch before any of its
 *                         outputs is written; the 1x1 path likewise;
 *   DEPTHWISE_CONV_2D  1 -- pixel by pixel, 4 channels at a time (channels 0-3 of pixel q are
 *                         written before channels 4.. of q's window are read);
 *   AVERAGE_POOL_2D    1 -- as depthwise;
 *   (FULLY_CONNECTED and ADD are not overlap ops; ADD may run in place.)
 * So overlap_distance(op, graph, pixels_in_flight=1) -- and the planner's default 2 -- is safe;
 * tests/test_kernels_arm.py runs each variant in one shared buffer at that distance in QEMU.
 * The sources in this folder may include only ../tp_nn.h, ../tp_nn_support.h, tp_arm_support.h,
 * <arm_acle.h>, <stdint.h> and <string.h>. */
#ifndef TP_NN_ARM_H
#define TP_NN_ARM_H

#include "../tp_nn_types.h"

#if defined(TP_USE_ARM_DSP) && defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(TP_NO_ARM_DSP)

#define TP_ARM_HAS_CONV_S8 1
#define TP_ARM_HAS_DEPTHWISE_CONV_S8 1
#define TP_ARM_HAS_FULLY_CONNECTED_S8 1
#define TP_ARM_HAS_ADD_S8 1
#define TP_ARM_HAS_AVGPOOL_S8 1

#ifdef __cplusplus
extern "C" {
#endif

/* CONV_2D: im2col of 6 output pixels at a time into doubled int16, then a 1-channel x 6-pixel
 * SMLAD register block (assembly: LDM of the columns, the whole channel loop with its
 * requantisation); 1x1/stride-1 convolutions skip the window arithmetic. A grouped convolution
 * (filter in_c < input c) runs the reference, scratch 0. Otherwise scratch: 48 bytes per 4
 * filter taps*channels (rounded up), 16 per output channel (bias + requantisation constants) + 8
 * (alignment), and when K = kh*kw*in_c is not a multiple of 4 the last filter row zero-padded:
 *   8 + 48 * ceil(K / 4) + 16 * out_c + (K % 4 ? 4 * ceil(K / 4) : 0). */
tp_status tp_conv_s8_arm(const tp_context *ctx, const tp_conv_params *params, const tp_quant_params *quant,
                         const tp_dims *input_dims, const int8_t *input,
                         const tp_dims *filter_dims, const int8_t *filter, const int32_t *bias,
                         const tp_dims *output_dims, int8_t *output);
int32_t tp_conv_s8_arm_get_buffer_size(const tp_dims *input_dims, const tp_dims *filter_dims,
                                       const tp_dims *output_dims);
/* The same with the fast-weights filter layout of tp_conv_s8_x16 (tp_nn.h): one LDRD per group of
 * 4 weights instead of LDR + 2 SXTB16. Same scratch. */
tp_status tp_conv_s8_arm_x16(const tp_context *ctx, const tp_conv_params *params, const tp_quant_params *quant,
                             const tp_dims *input_dims, const int8_t *input,
                             const tp_dims *filter_dims, const int16_t *filter16, const int32_t *bias,
                             const tp_dims *output_dims, int8_t *output);

/* DEPTHWISE_CONV_2D with ch_mult == 1 and channels % 4 == 0 (else the reference): 4 channels per
 * SIMD word, weights expanded once per call to int16 pairs, the input offset folded into the
 * biases; 3x3 layers in assembly (padding by pointer to a padding row, or padded taps skipped).
 * Scratch: 8 + kh*kw*c*2 (weights) + c*4 (folded biases) + c*12 (requantisation table: multiplier,
 * shift, rounding constant with the output offset) + c (the padding row); 0 when the fast path
 * does not apply. */
tp_status tp_depthwise_conv_s8_arm(const tp_context *ctx, const tp_dw_conv_params *params,
                                   const tp_quant_params *quant,
                                   const tp_dims *input_dims, const int8_t *input,
                                   const tp_dims *filter_dims, const int8_t *filter, const int32_t *bias,
                                   const tp_dims *output_dims, int8_t *output);
int32_t tp_depthwise_conv_s8_arm_get_buffer_size(const tp_dims *input_dims, const tp_dims *filter_dims,
                                                 const tp_dims *output_dims);

/* FULLY_CONNECTED (filter_offset == 0, else the reference): the input row is expanded to int16 once
 * per batch, then 4 output rows at a time with SMLAD. Scratch: 8 + 8 * ceil(accum_depth / 4). */
tp_status tp_fully_connected_s8_arm(const tp_context *ctx, const tp_fc_params *params, const tp_quant_params *quant,
                                    int32_t batches, int32_t accum_depth, int32_t out_depth,
                                    const int8_t *input, const int8_t *filter, const int32_t *bias,
                                    int8_t *output);
int32_t tp_fully_connected_s8_arm_get_buffer_size(int32_t accum_depth, int32_t out_depth);

/* ADD without broadcasting (else the reference): requantisation by SMMULR; in place allowed. From
 * 512 elements on, each input's scaled value comes from a 256-entry table built per call on the
 * stack (2 x 1 KB of stack, no scratch). */
tp_status tp_add_s8_arm(const tp_add_params *params, const tp_broadcast *bcast, int32_t size,
                        const int8_t *input1, const int8_t *input2, int8_t *output);

/* AVERAGE_POOL_2D: 4 channels per word with 16-bit SIMD sums (windows of at most 256 elements,
 * channels % 4 == 0; else the reference). No scratch. */
tp_status tp_avgpool_s8_arm(const tp_pool_params *params, const tp_dims *input_dims, const int8_t *input,
                            const tp_dims *output_dims, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* TP_USE_ARM_DSP && __ARM_FEATURE_DSP */
#endif /* TP_NN_ARM_H */
