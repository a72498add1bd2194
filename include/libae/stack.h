/*
 * libae weight tying, freezing and stacking. Included by <libae/ae.h>; do
 * not include it alone.
 *
 * These calls train deep autoencoders the way Hinton and Salakhutdinov
 * (2006) did: tie the decoder to the encoder, train a shallow model, grow
 * it, freeze what is trained, then untie and fine-tune.
 *
 * Pairs. The layers with a weight pair up from the outside in: the first
 * of the encoder with the last of the decoder, the second with the one
 * before it, and so on (in a dense model of n layers, layer i with layer
 * n-1-i). Layers without weights (such as a top-k layer) are skipped. A
 * model is symmetric when its encoder and decoder have as many layers with
 * weights and each decoder layer maps its partner's output width back to
 * its input width.
 *
 * Tying. A tied decoder layer uses its partner's weight transposed
 * (W_dec = W_encᵀ) and keeps its own bias. Both uses add into one gradient
 * and the shared weight has one optimizer state (PyTorch's semantics for a
 * decoder written as F.linear(h, enc.weight.t(), dec_bias)); it is counted
 * once by ae_model_param_count. Through a tied decoder layer,
 * ae_model_get_weights returns its effective weight [out, in] (the
 * partner's, transposed) and ae_model_set_weights writes through: it sets
 * the shared weight, so the encoder partner's weight changes too.
 *
 * Freezing. A frozen layer's parameters receive no update and its optimizer
 * state is left as it is (as a PyTorch parameter with requires_grad False),
 * while the gradient still flows through the layer to the layers before it.
 * A tied weight is frozen when either of its two layers is frozen; each
 * layer's bias follows its own layer. Frozen parameters still count in
 * ae_model_param_count. A frozen layer's non-trainable state (BatchNorm's
 * running statistics) still updates in training steps, as in PyTorch.
 * Work that no trainable parameter needs is skipped:
 * when every layer up to layer i is frozen, a step computes no gradient
 * below layer i.
 *
 * None of these calls allocates memory, and a failed call changes nothing.
 * The calls that take a range of layers check the range first: a range
 * that does not exist is AE_ERR_RANGE whatever the state of the model.
 */
#ifndef LIBAE_STACK_H
#define LIBAE_STACK_H

#include <libae/ae.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Makes models created from `cfg` tied: every encoder-decoder pair shares
 * its weight from the start (the decoder layers draw no initial weight).
 * The symmetry is checked by ae_model_create, which fails with
 * AE_ERR_SHAPE (the message names the layers that do not mirror each
 * other) or AE_ERR_UNSUPPORTED (a layer that is not dense).
 * Errors: AE_ERR_INVALID_ARG (cfg NULL), AE_ERR_STATE (already tied).
 * Since 0.1.0.
 */
AE_API ae_status ae_config_tie(ae_config *cfg);

/**
 * Ties every encoder-decoder pair of a created model. The encoder layer's
 * weight (and its optimizer state) becomes the shared weight; the decoder
 * layer's own weight and its optimizer state are discarded. Biases are
 * untouched.
 * Errors: AE_ERR_INVALID_ARG (m NULL), AE_ERR_SHAPE (the model is not
 * symmetric, e.g. an encoder without weights: the message names the layers
 * that do not match), AE_ERR_UNSUPPORTED (a layer that is not dense),
 * AE_ERR_STATE (a pair is already tied). Since 0.1.0.
 */
AE_API ae_status ae_model_tie(ae_model *m);

/**
 * As ae_model_tie, for the encoder layers `first` to `last` (inclusive,
 * 0-based, both below ae_model_code_layer) and their partners only; e.g.
 * the inner pair of a model whose outer layers were copied from a shallower
 * one. Errors, in the order they are checked: AE_ERR_INVALID_ARG (m NULL),
 * AE_ERR_RANGE (first > last, or last not an encoder layer), AE_ERR_SHAPE
 * (the model is not symmetric, or a pair in the range does not mirror),
 * AE_ERR_INVALID_ARG (no layer in the range has a weight, e.g. only a top-k
 * layer), AE_ERR_UNSUPPORTED (a layer in the range or its partner is not
 * dense), AE_ERR_STATE (a pair in the range is already tied). Since 0.1.0.
 */
AE_API ae_status ae_model_tie_layers(ae_model *m, size_t first, size_t last);

/**
 * Unties every tied pair: each decoder layer gets its own copy of its
 * partner's weight, transposed (so the model computes the same function),
 * with fresh optimizer state (zero moments, step count 0). The encoder
 * layer keeps the weight and its optimizer state. The parameter count
 * grows back. Errors: AE_ERR_INVALID_ARG (m NULL), AE_ERR_STATE (no pair is
 * tied). Since 0.1.0.
 */
AE_API ae_status ae_model_untie(ae_model *m);

/**
 * As ae_model_untie, for the encoder layers `first` to `last` (inclusive)
 * and their partners only. Errors, in the order they are checked:
 * AE_ERR_INVALID_ARG (m NULL), AE_ERR_RANGE (first > last, or last not an
 * encoder layer; also on a model with nothing tied), AE_ERR_INVALID_ARG (no
 * layer in the range has a weight), AE_ERR_STATE (no pair of the model is
 * tied, or a pair in the range is not tied). Since 0.1.0.
 */
AE_API ae_status ae_model_untie_layers(ae_model *m, size_t first, size_t last);

/**
 * 1 when layer `layer` (encoder or decoder) shares its weight with its
 * partner, else 0 (also for m NULL or a layer out of range). Since 0.1.0.
 */
AE_API int ae_model_is_tied(const ae_model *m, size_t layer);

/**
 * Freezes layers `first` to `last` (inclusive, 0-based over all layers;
 * either may be AE_LAST_LAYER for the last layer of the model). Freezing a
 * frozen layer is allowed and changes nothing.
 * Errors: AE_ERR_INVALID_ARG (m NULL), AE_ERR_RANGE (a layer that does not
 * exist, or first > last). Since 0.1.0.
 */
AE_API ae_status ae_model_freeze(ae_model *m, size_t first, size_t last);

/**
 * Unfreezes layers `first` to `last`, as ae_model_freeze. An unfrozen
 * parameter resumes from the optimizer state it had when it was frozen
 * (fresh state if it never trained). Unfreezing a layer that is not frozen
 * is allowed and changes nothing. Errors: AE_ERR_INVALID_ARG (m NULL),
 * AE_ERR_RANGE (a layer that does not exist, or first > last). Since 0.1.0.
 */
AE_API ae_status ae_model_unfreeze(ae_model *m, size_t first, size_t last);

/**
 * 1 when layer `layer` is frozen, else 0 (also for m NULL or a layer out of
 * range). Since 0.1.0.
 */
AE_API int ae_model_is_frozen(const ae_model *m, size_t layer);

/**
 * Copies the parameters (weight and bias) and non-trainable state (e.g.
 * BatchNorm's running statistics) of `count` consecutive layers of `src`,
 * from layer `src_first`, into the layers of `dst` from `dst_first`. Each
 * pair of layers must have the same kind, input and output shapes, and
 * numbers of weights, biases and state values; activations are not
 * compared. Layers without parameters may be copied (nothing is written). A
 * tied source layer gives its
 * effective weight. The destination keeps its optimizer state (as with
 * ae_model_set_weights), its frozen flags and its step count.
 * Errors (message in ae_model_last_error(dst)), in the order they are
 * checked: AE_ERR_INVALID_ARG (NULL, dst == src, count 0), AE_ERR_RANGE (a
 * layer that does not exist, in either model),
 * AE_ERR_SHAPE (layers that differ: the message names both and their
 * shapes), AE_ERR_STATE (a destination layer is tied: untie it first).
 * Since 0.1.0.
 */
AE_API ae_status ae_model_copy_layers(ae_model *dst, size_t dst_first, const ae_model *src,
                                      size_t src_first, size_t count);

/**
 * Copies the layers of a shallower (or equally deep) trained model into
 * the outer layers of `dst`, the first step of greedy layer-wise training:
 * the k encoder layers of `src` into the first k layers of `dst`, and the
 * j decoder layers of `src` into the last j layers of `dst`. E.g. from
 * 784-256-784 into 784-256-64-256-784: layer 0 to layer 0, layer 1 to
 * layer 3. Checks every layer before copying any; otherwise as
 * ae_model_copy_layers. Errors: AE_ERR_INVALID_ARG (NULL, dst == src),
 * AE_ERR_SHAPE (`src` has more encoder or decoder layers than `dst`, or
 * layers that differ), AE_ERR_STATE (a destination layer is tied). Since
 * 0.1.0.
 */
AE_API ae_status ae_model_copy_outer(ae_model *dst, const ae_model *src);

#ifdef __cplusplus
}
#endif

#endif /* LIBAE_STACK_H */
