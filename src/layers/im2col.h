/* Helpers shared by the convolution layers: im2col/col2im over a whole batch
 * and the reorders between [batch, channels, pixels] and
 * [channels, batch * pixels]. Internal to src/layers. */
#ifndef AE_IM2COL_H
#define AE_IM2COL_H

#include <stddef.h>

#include <libae/ae.h>

/* The geometry of a convolution from an image [C, H, W] to [.., Ho, Wo]. */
typedef struct ae_conv_geom {
    size_t C, H, W;  /* image */
    size_t k, s, p;  /* square kernel, stride, zero padding */
    size_t Ho, Wo;   /* convolution output */
} ae_conv_geom;

/* col [C*k*k, B*Ho*Wo] (column b*Ho*Wo + oh*Wo + ow) from the images
 * img [B, C, H, W]; padding reads as zero. Both split the samples over
 * `threads` (core/pool.h), with the same bits on any count. */
void ae_im2col(const ae_conv_geom *g, size_t B, const float *img, float *col, int threads);

/* The adjoint of ae_im2col: img [B, C, H, W] += the columns scattered back.
 * The caller zeroes img first when it wants the sum alone. */
void ae_col2im(const ae_conv_geom *g, size_t B, const float *col, float *img, int threads);

/* The sum of s[0..n), in 16 lanes added in a fixed order (a bias
 * gradient's plane: one chain of n dependent adds was 4 cycles an add). */
float ae_plane_sum(const float *s, size_t n);

/* db[c] = the sum of d [B, C, P] over samples and pixels: each channel's
 * planes summed in sample order, the channels split over `threads`. */
void ae_bias_grad_planes(const float *d, size_t B, size_t C, size_t P, float *db, int threads);

/* dst [C, B*P] from src [B, C, P], and back. */
void ae_bcp_to_cbp(const float *src, size_t B, size_t C, size_t P, float *dst);
void ae_cbp_to_bcp(const float *src, size_t B, size_t C, size_t P, float *dst);

/* pre [B, C, P] = src(b, c) + bias[c] (bias NULL: none), then y = act(pre)
 * over each sample at once (one call on C*P values, not C calls on P); the
 * P values of (b, c) are at src + b*sb + c*sc, and src may be pre. The
 * samples split over `threads` (core/pool.h). */
void ae_bias_act_planes(ae_activation act, float slope, const float *bias, const float *src,
                        size_t sb, size_t sc, float *pre, float *y, size_t B, size_t C, size_t P,
                        int threads);

#endif
