/* Internal: broadcasting iteration shared by ADD and MUL (not part of the public API). */
#ifndef TP_ELEMENTWISE_S8_H
#define TP_ELEMENTWISE_S8_H

#include "tp_nn_types.h"

/* Calls op(params, a, b) for every output element in order; with bcast == NULL the inputs have
 * size elements each. Output element i is written after both of its inputs are read, so the
 * output may alias an input that has the output's shape. */
#define TP_ELEMENTWISE_LOOP(bcast, size, in1, in2, out, FUNC, params)                          \
    do {                                                                                      \
        if ((bcast) == NULL) {                                                                \
            int32_t i_;                                                                       \
            for (i_ = 0; i_ < (size); ++i_) {                                                 \
                (out)[i_] = FUNC((params), (in1)[i_], (in2)[i_]);                             \
            }                                                                                 \
        } else {                                                                              \
            int32_t idx_[TP_MAX_DIMS] = {0, 0, 0, 0, 0};                                      \
            int32_t total_ = 1, o_, d_;                                                       \
            for (d_ = 0; d_ < (bcast)->num_dims; ++d_) {                                      \
                total_ *= (bcast)->out_dims[d_];                                              \
            }                                                                                 \
            for (o_ = 0; o_ < total_; ++o_) {                                                 \
                int32_t a_ = 0, b_ = 0;                                                       \
                for (d_ = 0; d_ < (bcast)->num_dims; ++d_) {                                  \
                    a_ += idx_[d_] * (bcast)->in1_strides[d_];                                \
                    b_ += idx_[d_] * (bcast)->in2_strides[d_];                                \
                }                                                                             \
                (out)[o_] = FUNC((params), (in1)[a_], (in2)[b_]);                             \
                for (d_ = (bcast)->num_dims - 1; d_ >= 0; --d_) {                             \
                    if (++idx_[d_] < (bcast)->out_dims[d_]) {                                 \
                        break;                                                                \
                    }                                                                         \
                    idx_[d_] = 0;                                                             \
                }                                                                             \
            }                                                                                 \
        }                                                                                     \
    } while (0)

#endif
