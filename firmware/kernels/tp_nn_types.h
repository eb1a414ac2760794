/* tinyprune int8 kernels: parameter types shared by every kernel (C99, no heap, no libm).
 *
 * Layouts follow TensorFlow Lite: activations NHWC int8, conv filters [out_c][kh][kw][in_c],
 * depthwise filters [1][kh][kw][in_c*ch_mult], fully-connected weights [out][in], biases int32.
 * Quantised parameters (offsets, multipliers, shifts, activation ranges) are computed once by the
 * code generator (tinyprune/codegen/quant.py) exactly as TFLite Micro's Prepare() computes them;
 * kernels only do integer arithmetic. */
#ifndef TP_NN_TYPES_H
#define TP_NN_TYPES_H

#include <stdint.h>
#include <stddef.h>

/* Return codes of every kernel. */
typedef enum {
    TP_OK = 0,            /* success */
    TP_ERR_ARG = 1,       /* a NULL pointer, a non-positive dimension or inconsistent shapes */
    TP_ERR_SCRATCH = 2,   /* ctx->buf is NULL or ctx->size is smaller than _get_buffer_size() */
    TP_ERR_UNSUPPORTED = 3 /* a parameter combination this build does not implement */
} tp_status;

/* Scratch memory handed to a kernel by the caller (a slice of the static arena). */
typedef struct {
    void *buf;
    int32_t size;   /* bytes */
} tp_context;

/* Tensor dimensions (unused dimensions are 1). */
typedef struct {
    int32_t n, h, w, c;
} tp_dims;

typedef struct {
    int32_t h, w;
} tp_tile;

/* Fused activation as an output clamp in the quantised domain, -128 <= min <= max <= 127. */
typedef struct {
    int32_t min, max;
} tp_activation;

/* CONV_2D. input_offset = -input_zero_point (in [-127, 128]); output_offset = output zero point. */
typedef struct {
    int32_t input_offset;
    int32_t output_offset;
    tp_tile stride;
    tp_tile padding;      /* top/left padding (TFLite's padding_values), >= 0 */
    tp_tile dilation;
    tp_activation activation;
} tp_conv_params;

/* DEPTHWISE_CONV_2D: output channel = input channel * ch_mult + m. */
typedef struct {
    int32_t input_offset;
    int32_t output_offset;
    int32_t ch_mult;
    tp_tile stride;
    tp_tile padding;
    tp_tile dilation;
    tp_activation activation;
} tp_dw_conv_params;

/* FULLY_CONNECTED (filter_offset is 0 for int8 weights). */
typedef struct {
    int32_t input_offset;
    int32_t filter_offset;
    int32_t output_offset;
    tp_activation activation;
} tp_fc_params;

/* Requantisation multipliers: Q31 significands (>= 0) and power-of-two exponents
 * (TFLite's QuantizeMultiplier); per_channel = 0 means element 0 applies to every channel. */
typedef struct {
    const int32_t *multiplier;
    const int32_t *shift;
    int32_t per_channel;
} tp_quant_params;

/* AVERAGE_POOL_2D / MAX_POOL_2D. */
typedef struct {
    tp_tile stride;
    tp_tile padding;
    tp_tile filter;
    tp_activation activation;
} tp_pool_params;

/* RESIZE_NEAREST_NEIGHBOR: TFLite's ResizeNearestNeighborOptions (each 0 or 1). */
typedef struct {
    int32_t align_corners;
    int32_t half_pixel_centers;
} tp_resize_params;

/* ADD (TFLite int8: left_shift = 20, input multipliers < 1, output multiplier < 1). */
typedef struct {
    int32_t input1_offset, input2_offset, output_offset;
    int32_t input1_multiplier, input1_shift;
    int32_t input2_multiplier, input2_shift;
    int32_t output_multiplier, output_shift;
    int32_t left_shift;
    tp_activation activation;
} tp_add_params;

/* MUL. */
typedef struct {
    int32_t input1_offset, input2_offset, output_offset;
    int32_t output_multiplier, output_shift;
    tp_activation activation;
} tp_mul_params;

/* Broadcasting of two inputs onto an output of up to TP_MAX_DIMS dimensions: element strides
 * (0 along a broadcast dimension) of each input, outermost first. */
#define TP_MAX_DIMS 5
typedef struct {
    int32_t num_dims;
    int32_t out_dims[TP_MAX_DIMS];
    int32_t in1_strides[TP_MAX_DIMS];
    int32_t in2_strides[TP_MAX_DIMS];
} tp_broadcast;

/* QUANTIZE int8 -> int8, RELU, RELU6: out = clamp(MBQM(in - in_zp) + out_zp, min, max). */
typedef struct {
    int32_t input_offset;     /* -input zero point */
    int32_t output_offset;
    int32_t multiplier, shift;
    tp_activation activation;
} tp_requant_params;

/* SOFTMAX int8 -> int8 (output scale 1/256, zero point -128). */
typedef struct {
    int32_t input_multiplier;
    int32_t input_left_shift;
    int32_t diff_min;
} tp_softmax_params;

/* LOGISTIC int8 -> int8 (output scale 1/256, zero point -128). */
typedef struct {
    int32_t input_zero_point;
    int32_t input_range_radius;
    int32_t input_multiplier;
    int32_t input_left_shift;
} tp_logistic_params;

/* LEAKY_RELU int8: identity (x >= 0) and alpha (x < 0) requantisation; a negative alpha is applied
 * as alpha_negative with the multiplier of |alpha| (TFLite Micro's QuantizeLeakyRelu). */
typedef struct {
    int32_t input_zero_point;
    int32_t output_zero_point;
    int32_t identity_multiplier, identity_shift;
    int32_t alpha_multiplier, alpha_shift;
    int32_t alpha_negative;
} tp_leaky_relu_params;

/* PRELU int8: identity (x >= 0) and x * (alpha - alpha_zero_point) (x < 0) requantisation, the slope
 * tensor's dimensions (outermost first, padded with leading 1s; each 1 or the input's). */
typedef struct {
    int32_t input_zero_point;
    int32_t alpha_zero_point;
    int32_t output_zero_point;
    int32_t identity_multiplier, identity_shift;
    int32_t alpha_multiplier, alpha_shift;
    int32_t alpha_dims[4];
} tp_prelu_params;

/* STRIDED_SLICE of up to 4 dimensions, indices resolved (begin >= 0, stride != 0). */
typedef struct {
    int32_t in_dims[4];
    int32_t begin[4];
    int32_t stride[4];
    int32_t out_dims[4];
} tp_slice_params;

/* HARD_SWISH int8 (TFLite's HardSwishParams). */
typedef struct {
    int32_t input_zero_point;
    int32_t output_zero_point;
    int16_t reluish_multiplier_fixedpoint_int16;
    int32_t reluish_multiplier_exponent;
    int16_t output_multiplier_fixedpoint_int16;
    int32_t output_multiplier_exponent;
} tp_hard_swish_params;

/* MEAN over any axes of a tensor of up to 4 dimensions (keep_dims does not change the element
 * order). multiplier/shift already include the division by the number of reduced elements
 * (TFLite's QuantizedMeanOrSum adjustment, done in Python). */
typedef struct {
    int32_t input_zero_point;
    int32_t output_zero_point;
    int32_t multiplier, shift;
    int32_t dims[4];          /* input dimensions, outermost first, padded with leading 1s */
    int32_t reduce[4];        /* 1 where the axis is reduced */
} tp_mean_params;

#endif /* TP_NN_TYPES_H */
