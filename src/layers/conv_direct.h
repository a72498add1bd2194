/* Conv2d of stride 1 computed directly on NCHW planes, for convolutions
 * with few output channels (conv2d.c's rule): there im2col's columns
 * [Ci*k*k, B*Ho*Wo] are large against a GEMM of at most 4 rows, and
 * oneDNN's kernels pad the channels to 16 and reorder every buffer. Each
 * sample's input is copied into zero-padded planes; every output row is a
 * sum of shifted input rows; the data gradient is the same correlation of
 * the padded output gradient with the flipped kernel. Fixed loop order:
 * bitwise the same result for the same shapes. Internal to src/layers. */
#ifndef AE_CONV_DIRECT_H
#define AE_CONV_DIRECT_H

#include <stddef.h>

#include "im2col.h"

/* Whether the direct path computes this convolution to Co channels. */
int ae_conv_direct_fits(const ae_conv_geom *g, size_t Co);
/* The scratch of either pass, in floats (nothing is kept between them). */
size_t ae_conv_direct_floats(const ae_conv_geom *g, size_t Co);
/* pre [B, Co, Ho, Wo] = conv(x, W) + bias (bias NULL: none). */
void ae_conv_direct_forward(const ae_conv_geom *g, size_t B, size_t Co, const float *x,
                            const float *W, const float *bias, float *pre, float *scratch,
                            int threads);
/* From d = dL/dpre: dW (NULL: not wanted; accumulate: added to what it
 * holds) and dx (NULL: not wanted). Samples are split over `threads`
 * (core/pool.h) in the forward pass and the data gradient; the weight
 * gradient sums them in order on the calling thread. */
void ae_conv_direct_backward(const ae_conv_geom *g, size_t B, size_t Co, const float *x,
                             const float *d, const float *W, float *dW, int accumulate, float *dx,
                             float *scratch, int threads);

#endif
