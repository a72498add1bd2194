/*
 * libae - convolutional autoencoders.
 *
 * Included by <libae/ae.h>; do not include it alone.
 *
 * Layers for images, with PyTorch's shapes, semantics and parameter layouts:
 * Conv2d, ConvTranspose2d, MaxPool2d, Upsample, BatchNorm (1d and 2d),
 * AdaptiveAvgPool2d to 1x1. The input shape (ae_config_set_input_shape),
 * Flatten, Unflatten, the standalone activation and ae_model_layer_shape
 * are in <libae/ae.h>: every kind of model uses them. Image layers mix
 * freely with dense layers: a dense layer takes any input shape (flattened,
 * as nn.Flatten then nn.Linear would) and produces a vector of shape
 * units x 1 x 1.
 *
 * Data are NCHW: a batch of images is [batch, channels, height, width],
 * row-major, each sample channels*height*width floats.
 *
 * Shapes: a convolution maps H to floor((H + 2 padding - kernel) / stride) + 1;
 * a transposed convolution maps H to (H - 1) stride - 2 padding + kernel +
 * output_padding. Kernels are square, dilation is 1, groups 1.
 *
 * Parameter layouts are PyTorch's, so ae_model_set_weights takes a PyTorch
 * tensor's data as it is: Conv2d weight [out, in, k, k], ConvTranspose2d
 * weight [in, out, k, k], both with a bias of out_channels (AE_LAYER_BIAS
 * turns it off); BatchNorm weight (gamma) and bias (beta) of channels.
 * Initialisation is PyTorch's: U(-1/√fan_in, 1/√fan_in) for weight and bias,
 * fan_in = in_channels·k·k for Conv2d and out_channels·k·k for
 * ConvTranspose2d (PyTorch computes it from the weight's dimension 1);
 * BatchNorm starts with gamma 1, beta 0, running mean 0, running variance 1.
 *
 * BatchNorm uses the statistics of the batch in ae_train_step (and updates
 * its running statistics with momentum AE_LAYER_BN_MOMENTUM, the variance
 * unbiased, as PyTorch does), and the running statistics in ae_evaluate,
 * ae_encode, ae_decode and ae_reconstruct.
 */
#ifndef LIBAE_CONV_H
#define LIBAE_CONV_H

#include <libae/ae.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Upsampling modes. Since 0.1.0. */
typedef enum ae_upsample_mode {
    AE_UPSAMPLE_NEAREST = 0, /* nn.Upsample(mode="nearest") */
    AE_UPSAMPLE_BILINEAR = 1 /* nn.Upsample(mode="bilinear", align_corners=True) */
} ae_upsample_mode;

/**
 * Appends a 2-D convolution (nn.Conv2d) with `out_channels` outputs
 * (1 to 2^24), a square `kernel` (1 to 64), `stride` (1 to 64) and zero
 * `padding` (0 to 64) on each side, followed by `act`. The input channels
 * are those of the previous layer's output (or of the input shape).
 * Errors: AE_ERR_INVALID_ARG (cfg NULL, unknown activation), AE_ERR_RANGE
 * (a value out of bounds), AE_ERR_SHAPE (the kernel does not fit the padded
 * input, or the output has more than 2^24 values per sample), AE_ERR_STATE
 * (no input shape set, or a mirrored decoder was added). Since 0.1.0.
 */
AE_API ae_status ae_config_add_conv2d(ae_config *cfg, size_t out_channels, size_t kernel,
                                      size_t stride, size_t padding, ae_activation act);

/**
 * Appends a transposed 2-D convolution (nn.ConvTranspose2d) with
 * `out_channels` outputs, a square `kernel`, `stride`, `padding` and
 * `output_padding` (smaller than the stride, as PyTorch requires), followed
 * by `act`. Bounds and errors as ae_config_add_conv2d; AE_ERR_RANGE also
 * for output_padding >= stride. Since 0.1.0.
 */
AE_API ae_status ae_config_add_conv_transpose2d(ae_config *cfg, size_t out_channels, size_t kernel,
                                                size_t stride, size_t padding,
                                                size_t output_padding, ae_activation act);

/**
 * Appends 2-D max pooling (nn.MaxPool2d, floor mode, padding with -inf):
 * a square window `kernel` (1 to 64), `stride` (0 means equal to the
 * kernel, PyTorch's default; else 1 to 64) and `padding` (at most half the
 * kernel, as PyTorch requires). The gradient goes to the first maximum of
 * each window. Errors: AE_ERR_INVALID_ARG, AE_ERR_RANGE, AE_ERR_SHAPE,
 * AE_ERR_STATE as ae_config_add_conv2d. Since 0.1.0.
 */
AE_API ae_status ae_config_add_maxpool2d(ae_config *cfg, size_t kernel, size_t stride,
                                         size_t padding);

/**
 * Appends upsampling by the integer factor `scale` (1 to 64) in height and
 * width (nn.Upsample(scale_factor=scale, mode=...)). Errors:
 * AE_ERR_INVALID_ARG (unknown mode), AE_ERR_RANGE, AE_ERR_SHAPE (output over
 * 2^24 values per sample), AE_ERR_STATE. Since 0.1.0.
 */
AE_API ae_status ae_config_add_upsample(ae_config *cfg, size_t scale, ae_upsample_mode mode);

/**
 * Appends batch normalisation with learnable gamma and beta over the
 * channels of the current shape: nn.BatchNorm1d when the shape is n x 1 x 1
 * (a vector of n features), nn.BatchNorm2d otherwise. Settings
 * AE_LAYER_BN_MOMENTUM and AE_LAYER_BN_EPS. BatchNorm1d in training needs
 * at least 2 samples per batch (ae_train_step returns AE_ERR_SHAPE
 * otherwise, as PyTorch raises). Errors: AE_ERR_INVALID_ARG, AE_ERR_STATE.
 * Since 0.1.0.
 */
AE_API ae_status ae_config_add_batchnorm(ae_config *cfg);

/**
 * Appends global average pooling to 1x1 (nn.AdaptiveAvgPool2d(1)): c x h x w
 * becomes c x 1 x 1. Errors: AE_ERR_INVALID_ARG, AE_ERR_STATE. Since 0.1.0.
 */
AE_API ae_status ae_config_add_avgpool_1x1(ae_config *cfg);

#ifdef __cplusplus
}
#endif

#endif /* LIBAE_CONV_H */
