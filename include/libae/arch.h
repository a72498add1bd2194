/*
 * libae - architecture descriptions. Included by <libae/ae.h>; do not
 * include it alone.
 *
 * A model's layer stack as text, one layer or statement a line, with
 * PyTorch-like names and keyword arguments; '#' starts a comment:
 *
 *     input 1 28 28
 *     conv2d 16 3 stride=2 padding=1 activation=relu
 *     batchnorm momentum=0.1 eps=1e-05
 *     flatten
 *     dense 32
 *     code
 *     dense 3136 activation=relu
 *     unflatten 16 14 14
 *     conv_transpose2d 1 3 stride=2 padding=1 output_padding=1 activation=sigmoid
 *     set loss=bce seed=42
 *
 * Every layer kind and every option of the config builder can be written
 * so: layer kinds by their ae_layer_kind_name (with PyTorch's spellings as
 * aliases: linear, convtranspose2d, batchnorm1d, batchnorm2d,
 * adaptive_avgpool2d), their attributes with their bounds and defaults,
 * activations (a line of its own, or activation=NAME on a layer), biases,
 * the code, tying, a mirrored decoder, sparsity penalties and every model
 * setting (ae_param). The format, with every kind and its attributes, is
 * docs/arch.md.
 */
#ifndef LIBAE_ARCH_H
#define LIBAE_ARCH_H

#include <libae/ae.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Applies the architecture description `text` (NUL-terminated UTF-8 or
 * ASCII, lines ending in LF or CRLF) to `cfg`, line by line, through the
 * builder calls: each layer line as the ae_config_add_* call of its kind,
 * `code` as ae_config_mark_code, `tied` as ae_config_tie, `mirror` as
 * ae_config_mirror_decoder, `set` as ae_config_set_int / _float. An
 * `input` line sets the input shape (and may replace one set before the
 * call, while the config has no layer); without one the config's input
 * must already be set. A failed call changes nothing in `cfg`.
 * Errors (message "line L, column C: ..." in ae_config_last_error(cfg),
 * columns counting bytes from 1): AE_ERR_INVALID_ARG (NULL),
 * AE_ERR_FORMAT (an unknown word, a malformed or missing value, a NUL
 * byte), AE_ERR_RANGE (a value outside its bounds), or the error of the
 * builder call a line makes (AE_ERR_SHAPE, AE_ERR_STATE, ...),
 * AE_ERR_UNSUPPORTED (an option PyTorch has and libae lacks, e.g.
 * align_corners=false), AE_ERR_OUT_OF_MEMORY. Since 0.1.0.
 */
AE_API ae_status ae_config_from_arch(ae_config *cfg, const char *text);

/**
 * Describes a model in the format ae_config_from_arch reads: its input
 * shape, every layer with every attribute (kernel, stride, padding, k,
 * momentum, eps, activation and slope, ...), its penalties, the code, the
 * tying, and the settings that differ from their defaults. A config
 * built from the text gives a model of the same architecture and settings
 * (with the same seed, the same initial parameters). What a description
 * cannot say (layers frozen, or only some pairs tied, by the model calls
 * of <libae/stack.h>) is told in '#' comments. snprintf-style: *size
 * always receives the length of the text (without the terminating NUL);
 * when capacity is at most that length nothing is written and the call
 * returns AE_ERR_RANGE (so ask with buf NULL and capacity 0, then pass
 * *size + 1). The model is not changed. Errors (message in
 * ae_model_last_error(m)): AE_ERR_INVALID_ARG (m or size NULL, buf NULL
 * with capacity > 0), AE_ERR_RANGE, AE_ERR_OUT_OF_MEMORY. Since 0.1.0.
 */
AE_API ae_status ae_model_describe(const ae_model *m, char *buf, size_t capacity, size_t *size);

#ifdef __cplusplus
}
#endif

#endif /* LIBAE_ARCH_H */
