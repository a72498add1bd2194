/*
 * libae - train and run autoencoders from C.
 *
 * This is the one header users include. It declares the core of the API:
 * status codes, the names of layer kinds and activations, the allocator
 * hook, the configuration builder (input size or shape, dense layers and
 * the layers every kind of model uses: flatten, unflatten, activation),
 * the model (training, inference, shapes, the train/infer mode and the
 * statistics); and it includes the topic headers: datasets and corruption
 * (data.h), image layers (conv.h), tying and stacking (stack.h), the
 * training loop (train.h), sparse (sparse.h) and variational (vae.h)
 * models, metrics (metrics.h), files (io.h), architecture descriptions
 * as text (arch.h).
 *
 * Principles that hold for every call:
 * - Handles are opaque. Every *_create has a *_destroy that accepts NULL.
 * - Every call that can fail returns ae_status; AE_OK is 0. A failed call
 *   changes nothing: the handle stays as it was and usable. The detailed
 *   message of the last failure on a handle is ae_*_last_error(handle).
 * - Thread safety: a handle is used by one thread at a time; separate
 *   handles are independent and may be used from different threads at once.
 * - Data crosses the API as caller-owned float arrays, row-major, batch
 *   first (images NCHW). The library never keeps a pointer it was handed
 *   beyond the call unless the call's documentation says so.
 * - Same seed, same data, same thread count: bitwise the same results.
 */
#ifndef LIBAE_AE_H
#define LIBAE_AE_H

#include <stddef.h>
#include <stdint.h>

#include <libae/version.h>

#if defined(_WIN32) && defined(AE_BUILDING_LIBRARY)
#define AE_API __declspec(dllexport)
#elif defined(__GNUC__) && __GNUC__ >= 4
#define AE_API __attribute__((visibility("default")))
#else
#define AE_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Status codes
 * ------------------------------------------------------------------------ */

/*
 * X(name, value, description). The numbers are frozen: a code keeps its
 * number in every later release, and new codes get new numbers.
 */
#define AE_STATUS_MAP(X)                                                       \
    X(AE_OK, 0, "success")                                                     \
    X(AE_ERR_INVALID_ARG, 1, "invalid argument")                               \
    X(AE_ERR_OUT_OF_MEMORY, 2, "out of memory")                                \
    X(AE_ERR_SHAPE, 3, "size or shape mismatch")                               \
    X(AE_ERR_RANGE, 4, "setting out of range")                                 \
    X(AE_ERR_STATE, 5, "call not allowed in the current state")                \
    X(AE_ERR_NUMERIC, 6, "NaN or infinity met")                                \
    X(AE_ERR_IO, 7, "input/output error")                                      \
    X(AE_ERR_FORMAT, 8, "malformed data or file")                              \
    X(AE_ERR_UNSUPPORTED, 9, "unsupported feature")                            \
    X(AE_ERR_VERSION, 10, "unsupported format version")                        \
    X(AE_ERR_CHECKSUM, 11, "checksum mismatch")

#define AE_STATUS_ENUM_ENTRY_(name, value, desc) name = value,
/** Result of every call that can fail. Since 0.1.0. */
typedef enum ae_status { AE_STATUS_MAP(AE_STATUS_ENUM_ENTRY_) } ae_status;
#undef AE_STATUS_ENUM_ENTRY_

/**
 * The name of a status code ("AE_ERR_SHAPE"), or "AE_UNKNOWN_STATUS" for a
 * number that is not a code. The string is static. Since 0.1.0.
 */
AE_API const char *ae_status_name(ae_status code);

/**
 * A short English description of a status code ("size or shape mismatch").
 * The string is static. Since 0.1.0.
 */
AE_API const char *ae_status_string(ae_status code);

/* ------------------------------------------------------------------------
 * Version
 * ------------------------------------------------------------------------ */

/** The library's version at run time, e.g. "0.1.0". Static. Since 0.1.0. */
AE_API const char *ae_version_string(void);

/** The library's version at run time as AE_VERSION_NUMBER encodes it. Since 0.1.0. */
AE_API uint32_t ae_version_number(void);

/* ------------------------------------------------------------------------
 * Memory
 * ------------------------------------------------------------------------ */

/**
 * An allocator hook. Pass one to ae_config_create or ae_dataset_create to
 * route every allocation of that handle (and of models created from the
 * config) through it. `struct_size` must be sizeof(ae_allocator).
 * `alloc` returns NULL on failure; `release` accepts NULL. Both receive
 * `user_data`. The library copies the struct; the functions and user_data
 * must stay valid while any handle created with them lives.
 * Since 0.1.0.
 */
typedef struct ae_allocator {
    size_t struct_size;
    void *(*alloc)(void *user_data, size_t size);
    void (*release)(void *user_data, void *ptr);
    void *user_data;
} ae_allocator;

/* ------------------------------------------------------------------------
 * Enumerations (numbers frozen)
 * ------------------------------------------------------------------------ */

/** Element-wise activations. Since 0.1.0. */
typedef enum ae_activation {
    AE_ACT_IDENTITY = 0,
    AE_ACT_RELU = 1,
    AE_ACT_LEAKY_RELU = 2, /* slope: AE_LAYER_LEAKY_SLOPE, default 0.01 */
    AE_ACT_SIGMOID = 3,
    AE_ACT_TANH = 4,
    AE_ACT_GELU = 5, /* exact (erf) form, as PyTorch's default */
    AE_ACT_SOFTPLUS = 6,
    AE_ACT_ELU = 7 /* alpha 1 */
} ae_activation;

/** Reconstruction losses. Since 0.1.0. */
typedef enum ae_loss {
    AE_LOSS_MSE = 0,
    /* Binary cross-entropy. When the output activation is sigmoid it is
       computed from the logits (stable form); otherwise log is clamped at
       -100 as PyTorch does, and the outputs must lie in [0, 1]. */
    AE_LOSS_BCE = 1
} ae_loss;

/** How a loss is reduced over elements. Since 0.1.0. */
typedef enum ae_reduction {
    AE_REDUCE_MEAN = 0, /* mean over all elements of the batch */
    AE_REDUCE_SUM = 1   /* sum over all elements of the batch */
} ae_reduction;

/** Optimizers, with PyTorch's update rules. Since 0.1.0. */
typedef enum ae_optimizer {
    AE_OPT_SGD = 0,  /* momentum, Nesterov, weight decay (L2 on the gradient) */
    AE_OPT_ADAM = 1, /* weight decay is L2 added to the gradient */
    AE_OPT_ADAMW = 2 /* weight decay is decoupled */
} ae_optimizer;

/** Layer kinds, as reported by ae_model_layer_info. Since 0.1.0. */
typedef enum ae_layer_kind {
    AE_LAYER_DENSE = 0,
    /* Image layers (<libae/conv.h>) and the generic flatten, unflatten and
       activation layers. Since 0.1.0. */
    AE_LAYER_CONV2D = 10,
    AE_LAYER_CONV_TRANSPOSE2D = 11,
    AE_LAYER_MAXPOOL2D = 12,
    AE_LAYER_UPSAMPLE = 13,
    AE_LAYER_BATCHNORM = 14,
    AE_LAYER_AVGPOOL_1X1 = 15,
    AE_LAYER_FLATTEN = 16,
    AE_LAYER_UNFLATTEN = 17,
    AE_LAYER_ACTIVATION = 18,
    AE_LAYER_TOPK = 20,          /* per-sample top-k (sparse.h) */
    AE_LAYER_LIFETIME_TOPK = 21, /* top-k per feature across the batch (sparse.h) */
    AE_LAYER_BATCH_TOPK = 22,    /* top batch·k of the whole batch (sparse.h) */
    AE_LAYER_GAUSSIAN = 30       /* the latent of a VAE: heads for mu, log sigma² (vae.h) */
} ae_layer_kind;

/* ------------------------------------------------------------------------
 * Names of layer kinds and activations
 * ------------------------------------------------------------------------ */

/**
 * The text name of a layer kind, lower case and PyTorch-like: "dense",
 * "conv2d", "conv_transpose2d", "maxpool2d", "upsample", "batchnorm" (1d or
 * 2d by the shape it meets), "avgpool_1x1", "flatten", "unflatten",
 * "activation", "topk", "lifetime_topk", "batch_topk", "gaussian". Text
 * descriptions of models and the ae tool spell kinds so. The string is
 * static; NULL for a number that is no kind. Since 0.1.0.
 */
AE_API const char *ae_layer_kind_name(ae_layer_kind kind);

/**
 * The layer kind whose ae_layer_kind_name is `name` (exactly, case
 * included) into *kind. Errors: AE_ERR_INVALID_ARG (NULL, or no kind of
 * that name; *kind is not changed). Since 0.1.0.
 */
AE_API ae_status ae_layer_kind_from_name(const char *name, ae_layer_kind *kind);

/**
 * The name of an activation as torch.nn.functional spells it: "identity",
 * "relu", "leaky_relu", "sigmoid", "tanh", "gelu", "softplus", "elu".
 * Static; NULL for a number that is no activation. Since 0.1.0.
 */
AE_API const char *ae_activation_name(ae_activation act);

/**
 * The activation whose ae_activation_name is `name` (exactly) into *act.
 * Errors: AE_ERR_INVALID_ARG (NULL, or no activation of that name; *act is
 * not changed). Since 0.1.0.
 */
AE_API ae_status ae_activation_from_name(const char *name, ae_activation *act);

/**
 * Model settings. Each has a type (int or float), bounds, a default, and
 * says whether it may change after the model is created. Set them on a
 * config with ae_config_set_int / ae_config_set_float, and (where allowed)
 * on a model with ae_model_set_int / ae_model_set_float. ae_param_bounds
 * gives the bounds at run time. Float settings are stored as doubles and
 * used as floats: a value must be within its bounds both as given and
 * rounded to float (a beta of 1 - 1e-10 is 1 as a float and is refused),
 * and -0.0 is stored as 0. Since 0.1.0 unless noted.
 */
typedef enum ae_param {
    /* int, ae_loss, default AE_LOSS_MSE. Fixed at creation. */
    AE_P_LOSS = 1,
    /* int, ae_reduction, default AE_REDUCE_MEAN. Fixed at creation. */
    AE_P_REDUCTION = 2,
    /* int, ae_optimizer, default AE_OPT_ADAM. Fixed at creation. */
    AE_P_OPTIMIZER = 3,
    /* int, any int64 value, default 0: seeds the model's RNG (initialisation,
       and every random draw the model makes) with its 64 bits, so every
       value is a distinct seed; a uint64_t seed s is set as the int64 of
       the same bits ((int64_t)s, or memcpy). Fixed at creation. */
    AE_P_SEED = 4,
    /* float, [0, 1e6], default 1e-3. Changeable between steps. */
    AE_P_LEARNING_RATE = 10,
    /* float, [0, 1), default 0 (SGD only); 0 or a normal float (at least
       FLT_MIN = 1.17549e-38). Changeable. */
    AE_P_MOMENTUM = 11,
    /* int, 0 or 1, default 0 (SGD only; needs momentum > 0). Changeable. */
    AE_P_NESTEROV = 12,
    /* float, [0, 1e6]; default as PyTorch's: 1e-2 with AdamW, 0 with SGD and
       Adam (choosing the optimizer sets it until it is set explicitly).
       Changeable. */
    AE_P_WEIGHT_DECAY = 13,
    /* float, [0, 1), default 0.9 (Adam, AdamW). Changeable. */
    AE_P_BETA1 = 14,
    /* float, [0, 1), default 0.999 (Adam, AdamW). Changeable. */
    AE_P_BETA2 = 15,
    /* float, [FLT_MIN = 1.17549e-38, 1], default 1e-8 (Adam, AdamW): a
       positive normal float, as Adam divides by it in float. Changeable. */
    AE_P_EPSILON = 16,
    /* float, [0, 1e12], default 0 = off: clip the gradient by its global
       L2 norm before the update. Changeable. */
    AE_P_GRAD_CLIP_NORM = 17,
    /* float, [0, 1e6], default 0: SGD dampening (PyTorch's meaning). Changeable. */
    AE_P_DAMPENING = 18,
    /* Denoising (SPEC.md "Corruption"; see ae_noise_kind in <libae/data.h>).
       When AE_P_NOISE_KIND is not AE_NOISE_NONE, every ae_train_step corrupts
       a private copy of its input afresh from the model's RNG and trains to
       reconstruct the clean input (or the given target). ae_evaluate,
       ae_encode and ae_reconstruct never corrupt. All changeable; the
       level's range depends on the kind and is checked at the step.
       Since 0.1.0. */
    /* int, ae_noise_kind, default AE_NOISE_NONE. */
    AE_P_NOISE_KIND = 40,
    /* float, [0, 1e6], default 0: the standard deviation sigma (Gaussian:
       x + sigma * N(0, 1), as PyTorch's x + sigma * randn), the masked
       fraction (masking), or the probability p (Bernoulli, dropout: [0, 1),
       salt and pepper). */
    AE_P_NOISE_LEVEL = 41,
    /* float, [-1e6, 1e6], default 0: mean added by Gaussian noise. */
    AE_P_NOISE_MEAN = 42,
    /* int, 0 or 1, default 0: clip the corrupted input to [LO, HI]. */
    AE_P_NOISE_CLIP = 43,
    /* float, [-1e30, 1e30], default 0. */
    AE_P_NOISE_CLIP_LO = 44,
    /* float, [-1e30, 1e30], default 1. */
    AE_P_NOISE_CLIP_HI = 45,
    /* float, [-1e30, 1e30], default 0: the constant masked entries take. */
    AE_P_NOISE_VALUE = 46,
    /* Variational autoencoders (<libae/vae.h>); no effect on a model without
       a Gaussian layer. Since 0.1.0. */
    /* float, [0, 1e6], default 1: the weight beta of the KL term. Changeable. */
    AE_P_VAE_BETA = 50,
    /* int, [0, 2^63-1], default 0 = off: KL warm-up. A step taken when the
       model has taken t steps weights the KL term with
       beta · min(1, t / AE_P_VAE_BETA_WARMUP_STEPS): 0 at the first step,
       the full beta from step count AE_P_VAE_BETA_WARMUP_STEPS on.
       ae_evaluate uses the weight of the next step. Changeable. */
    AE_P_VAE_BETA_WARMUP_STEPS = 51,
    /* int, [1, 2^31-1], default 1000: the window, in training steps, of
       AE_STAT_DEAD_LATENTS (below). Changeable. */
    AE_P_DEAD_WINDOW = 60
} ae_param;

/**
 * Per-layer settings of a config, applied with ae_config_layer_set_* to a
 * layer already added. Since 0.1.0.
 */
typedef enum ae_layer_param {
    /* int, 0 or 1, default 1: the layer has a bias. */
    AE_LAYER_BIAS = 1,
    /* float, [0, 1e3], default 0.01: negative slope of AE_ACT_LEAKY_RELU. */
    AE_LAYER_LEAKY_SLOPE = 2,
    /* float, [0, 1], default 0.1: BatchNorm running-statistics momentum
       (PyTorch's meaning: running = (1 - momentum) running + momentum batch). */
    AE_LAYER_BN_MOMENTUM = 20,
    /* float, [FLT_MIN = 1.17549e-38, 1], default 1e-5: BatchNorm epsilon
       added to the variance (a positive normal float). */
    AE_LAYER_BN_EPS = 21
} ae_layer_param;

/** Refers to the layer added last, where a layer index is expected. */
#define AE_LAST_LAYER ((size_t)-1)

/**
 * The bounds of a setting: whether it is an int (*is_int = 1) or a float,
 * its smallest and largest allowed values, and whether it may change after
 * creation. Any out pointer may be NULL. Returns AE_ERR_INVALID_ARG for an
 * unknown setting. Since 0.1.0.
 */
AE_API ae_status ae_param_bounds(ae_param param, int *is_int, double *min_value,
                                 double *max_value, int *changeable);

/* ------------------------------------------------------------------------
 * Configuration builder
 * ------------------------------------------------------------------------ */

/** Describes a model before it is created. Since 0.1.0. */
typedef struct ae_config ae_config;

/**
 * Creates an empty configuration. `alloc` may be NULL (the C library's
 * malloc/free); otherwise it is copied and used for this config and for
 * every model created from it. Errors: AE_ERR_INVALID_ARG (out NULL, or
 * alloc with a wrong struct_size or NULL functions), AE_ERR_OUT_OF_MEMORY.
 * On failure *out is set to NULL. Since 0.1.0.
 */
AE_API ae_status ae_config_create(ae_config **out, const ae_allocator *alloc);

/** Frees a configuration. Accepts NULL. Since 0.1.0. */
AE_API void ae_config_destroy(ae_config *cfg);

/**
 * The message of the last failed call on `cfg`, or "" if none; also of a
 * failed ae_model_create(…, cfg) or ae_model_load*(…, cfg). Owned by the
 * config, valid until its next call. Returns a static message for cfg NULL.
 * Since 0.1.0.
 */
AE_API const char *ae_config_last_error(const ae_config *cfg);

/**
 * Sets the number of input features of a dense model (1 to 2^24).
 * Must be called before any layer is added. Errors: AE_ERR_INVALID_ARG,
 * AE_ERR_RANGE, AE_ERR_STATE (layers already added). Since 0.1.0.
 */
AE_API ae_status ae_config_set_input_size(ae_config *cfg, size_t features);

/**
 * Sets the shape of one input sample: `channels` x `height` x `width`
 * (each at least 1, their product at most 2^24). ae_config_set_input_size(n)
 * is the shape n x 1 x 1. Must be called before any layer is added.
 * Errors: AE_ERR_INVALID_ARG (cfg NULL), AE_ERR_RANGE, AE_ERR_STATE (layers
 * already added). Since 0.1.0.
 */
AE_API ae_status ae_config_set_input_shape(ae_config *cfg, size_t channels, size_t height,
                                           size_t width);

/**
 * Appends a dense layer y = act(x Wᵀ + b) with `units` outputs
 * (1 to 2^24), W of shape [units, inputs] as PyTorch's nn.Linear.
 * Layers added before ae_config_mark_code form the encoder; layers after it
 * the decoder. Errors: AE_ERR_INVALID_ARG (unknown activation),
 * AE_ERR_RANGE, AE_ERR_STATE (no input size set, or a mirrored decoder was
 * already added). Since 0.1.0.
 */
AE_API ae_status ae_config_add_dense(ae_config *cfg, size_t units, ae_activation act);

/**
 * Appends nn.Flatten: c x h x w becomes (c·h·w) x 1 x 1. The data are not
 * changed. Errors: AE_ERR_INVALID_ARG, AE_ERR_STATE. Since 0.1.0.
 */
AE_API ae_status ae_config_add_flatten(ae_config *cfg);

/**
 * Appends nn.Unflatten: the current sample (of any shape) is read as
 * `channels` x `height` x `width`, whose product must equal its size.
 * Errors: AE_ERR_INVALID_ARG, AE_ERR_RANGE (a zero dimension), AE_ERR_SHAPE
 * (the product differs from the current size), AE_ERR_STATE. Since 0.1.0.
 */
AE_API ae_status ae_config_add_unflatten(ae_config *cfg, size_t channels, size_t height,
                                         size_t width);

/**
 * Appends a standalone element-wise activation (e.g. after a BatchNorm),
 * keeping the shape. Errors: AE_ERR_INVALID_ARG (unknown activation),
 * AE_ERR_STATE. Since 0.1.0.
 */
AE_API ae_status ae_config_add_activation(ae_config *cfg, ae_activation act);

/**
 * Sets a per-layer setting of layer `layer` (0-based, counting every layer
 * added, or AE_LAST_LAYER). Errors: AE_ERR_INVALID_ARG (unknown setting or
 * a setting the layer does not have), AE_ERR_RANGE (bad value or index).
 * Since 0.1.0.
 */
AE_API ae_status ae_config_layer_set_int(ae_config *cfg, size_t layer, ae_layer_param param,
                                         int64_t value);
/** As ae_config_layer_set_int, for float settings. Since 0.1.0. */
AE_API ae_status ae_config_layer_set_float(ae_config *cfg, size_t layer, ae_layer_param param,
                                           double value);

/**
 * Marks the output of the layers added so far as the code (bottleneck).
 * ae_encode runs the layers up to here, ae_decode the rest. Errors:
 * AE_ERR_STATE (no layer yet, or the code is already marked; right after
 * ae_config_add_gaussian, which marks it, the call does nothing). Since 0.1.0.
 */
AE_API ae_status ae_config_mark_code(ae_config *cfg);

/**
 * Appends a decoder that mirrors the encoder: for encoder widths
 * in-h1-…-code it adds code-…-h1-in, each hidden layer with the activation
 * of the encoder layer of the same width, each layer with the bias setting
 * of its encoder partner, and `output_act` on the last layer. Marks the
 * code first if it is not marked. The encoder must be dense layers,
 * optionally ending in a Gaussian code (<libae/vae.h>), which mirrors as a
 * dense layer from its dim, with selection layers (<libae/sparse.h>)
 * anywhere among them. Only the layers with parameters are mirrored:
 * selection layers act on the encoder's side and are skipped, so
 * 784-64-[top-16] mirrors to 64-784 and the code is the top-k's output;
 * ae_config_tie pairs the resulting dense layers. Penalties stay on the
 * encoder layers they were attached to. Errors: AE_ERR_STATE (no encoder
 * layer, no dense or Gaussian layer among them, another kind of layer, or
 * decoder layers were already added), AE_ERR_INVALID_ARG. Since 0.1.0.
 */
AE_API ae_status ae_config_mirror_decoder(ae_config *cfg, ae_activation output_act);

/**
 * Sets a model setting (see ae_param) on the config. Errors:
 * AE_ERR_INVALID_ARG (unknown setting, or a float setting given as int or
 * the reverse), AE_ERR_RANGE (out of bounds; the message names the setting
 * and its range). Since 0.1.0.
 */
AE_API ae_status ae_config_set_int(ae_config *cfg, ae_param param, int64_t value);
/** As ae_config_set_int, for float settings. Since 0.1.0. */
AE_API ae_status ae_config_set_float(ae_config *cfg, ae_param param, double value);
/** Reads a setting of the config. Errors as ae_config_set_int. Since 0.1.0. */
AE_API ae_status ae_config_get_int(const ae_config *cfg, ae_param param, int64_t *value);
/** Reads a float setting of the config. Since 0.1.0. */
AE_API ae_status ae_config_get_float(const ae_config *cfg, ae_param param, double *value);

/* ------------------------------------------------------------------------
 * Model
 * ------------------------------------------------------------------------ */

/** A model: its layers, parameters, optimizer state and RNG. Since 0.1.0. */
typedef struct ae_model ae_model;

/**
 * Creates a model from a config: checks the architecture, allocates the
 * parameters, and initialises them as PyTorch's nn.Linear (U(-1/√in, 1/√in)
 * for W and b) from the model's RNG seeded with AE_P_SEED. The model does
 * not keep `cfg`; the config may be destroyed or reused afterwards.
 * Errors (message in ae_config_last_error(cfg)): AE_ERR_INVALID_ARG,
 * AE_ERR_STATE (no input size, no layers, no code marked, an empty
 * decoder), AE_ERR_SHAPE (the decoder's output size differs from the input
 * size), AE_ERR_OUT_OF_MEMORY. On failure *out is NULL. Since 0.1.0.
 */
AE_API ae_status ae_model_create(ae_model **out, const ae_config *cfg);

/** Frees a model. Accepts NULL. Since 0.1.0. */
AE_API void ae_model_destroy(ae_model *m);

/**
 * The message of the last failed call on `m`, or "" if none. Owned by the
 * model; valid until the next call on it. Static message for NULL. Since 0.1.0.
 */
AE_API const char *ae_model_last_error(const ae_model *m);

/**
 * One training step on a batch: forward, loss, backward, optimizer update.
 * `x` is [batch, input_size]; `target` is [batch, output_size], or NULL to
 * reconstruct `x`. `loss` (may be NULL) receives the loss of the batch
 * before the update. Neither array is modified or kept. With denoising on
 * (AE_P_NOISE_KIND), a private copy of `x` is corrupted afresh from the
 * model's RNG and fed forward, and the target stays the clean `x` (or
 * `target`); a noise level out of its kind's range is AE_ERR_RANGE.
 * The first step at a new largest batch size allocates the workspace; later
 * steps at that size or smaller allocate nothing, except that on the oneDNN
 * backend a model with convolutions makes their oneDNN primitives at the
 * first pass of each batch size (keeping those of the last four sizes).
 * After a successful step every parameter, optimizer state and layer
 * state value is finite.
 * Errors: AE_ERR_INVALID_ARG (NULL, batch 0), AE_ERR_RANGE (batch over
 * 2^24; with AE_LOSS_BCE a target outside [0, 1], the message naming the
 * first such element), AE_ERR_NUMERIC (NaN or infinity in the data, the
 * loss or the gradients, or an update or running statistic that would
 * overflow float: the parameters, optimizer state and layer state stay
 * exactly as before), AE_ERR_OUT_OF_MEMORY. A failed step also leaves the
 * model's RNG as it was.
 * Since 0.1.0.
 */
AE_API ae_status ae_train_step(ae_model *m, const float *x, const float *target, size_t batch,
                               float *loss);

/**
 * The bytes of the workspace that a call on `batch` samples allocates
 * (every layer's outputs and scratch, the gradient buffers), so that a
 * caller can choose a batch that fits a memory budget; it grows about
 * linearly with the batch. Errors (by code only): AE_ERR_INVALID_ARG
 * (NULL), AE_ERR_RANGE (batch 0 or over 2^24). Since 0.1.0.
 */
AE_API ae_status ae_model_workspace_size(const ae_model *m, size_t batch, size_t *bytes);

/**
 * The loss of a batch without any update (inference mode). Arguments and
 * errors as ae_train_step. Since 0.1.0.
 */
AE_API ae_status ae_evaluate(ae_model *m, const float *x, const float *target, size_t batch,
                             float *loss);

/**
 * Runs the encoder: `x` [batch, input_size] to `code` [batch, code_size].
 * Errors: AE_ERR_INVALID_ARG, AE_ERR_RANGE, AE_ERR_OUT_OF_MEMORY,
 * AE_ERR_NUMERIC (a non-finite input; in AE_MODE_TRAIN, running statistics
 * that would overflow float: they stay as before; the same for
 * ae_evaluate, ae_decode and ae_reconstruct). Since 0.1.0.
 */
AE_API ae_status ae_encode(ae_model *m, const float *x, size_t batch, float *code);

/** Runs the decoder: `code` [batch, code_size] to `out` [batch, output_size]. Since 0.1.0. */
AE_API ae_status ae_decode(ae_model *m, const float *code, size_t batch, float *out);

/** Encodes and decodes: `x` [batch, input_size] to `out` [batch, output_size]. Since 0.1.0. */
AE_API ae_status ae_reconstruct(ae_model *m, const float *x, size_t batch, float *out);

/** Number of input features. 0 for NULL. Since 0.1.0. */
AE_API size_t ae_model_input_size(const ae_model *m);
/** Width of the code. 0 for NULL. Since 0.1.0. */
AE_API size_t ae_model_code_size(const ae_model *m);
/** Number of output features (equals the input size). 0 for NULL. Since 0.1.0. */
AE_API size_t ae_model_output_size(const ae_model *m);
/** Number of layers, encoder and decoder. 0 for NULL. Since 0.1.0. */
AE_API size_t ae_model_layer_count(const ae_model *m);
/** Index of the first decoder layer (= number of encoder layers). Since 0.1.0. */
AE_API size_t ae_model_code_layer(const ae_model *m);
/**
 * Number of trainable parameters: a tied weight counts once, frozen
 * parameters count (see <libae/stack.h>). Since 0.1.0.
 */
AE_API size_t ae_model_param_count(const ae_model *m);
/** Number of training steps taken. Since 0.1.0. */
AE_API uint64_t ae_model_step_count(const ae_model *m);

/**
 * What ae_model_layer_info reports. The caller sets struct_size to
 * sizeof(ae_layer_info); fields added in later versions go at the end.
 * Since 0.1.0.
 */
typedef struct ae_layer_info {
    size_t struct_size;
    ae_layer_kind kind;
    ae_activation activation;
    size_t in_size;      /* input features per sample */
    size_t out_size;     /* output features per sample */
    size_t weight_count; /* elements of W ([out, in] for dense); 0 if none */
    size_t bias_count;   /* elements of b; 0 if none */
    /* Since 0.1.0, after bias_count: elements of the layer's non-trainable
       state (ae_model_get_state); 0 if none. */
    size_t state_count;
} ae_layer_info;

/**
 * Describes layer `layer`. Errors: AE_ERR_INVALID_ARG (NULL, or a
 * struct_size smaller than the 0.1.0 struct), AE_ERR_RANGE. Since 0.1.0.
 */
AE_API ae_status ae_model_layer_info(const ae_model *m, size_t layer, ae_layer_info *info);

/**
 * The sample shapes of layer `layer`'s input and output: `in` and `out`
 * (either may be NULL) receive channels, height, width. Errors:
 * AE_ERR_INVALID_ARG (m NULL), AE_ERR_RANGE (no such layer). Since 0.1.0.
 */
AE_API ae_status ae_model_layer_shape(const ae_model *m, size_t layer, size_t in[3],
                                      size_t out[3]);

/**
 * The shape of a sample, channels x height x width: the input shape
 * (ae_config_set_input_shape), or, when the input is a vector of n
 * features (n x 1 x 1) and the first layer an unflatten, that layer's
 * output shape. It is saved with the model (the input shape of the file's
 * architecture), so pictures of the model's inputs and outputs need
 * nothing else. Any out pointer may be NULL. Errors: AE_ERR_INVALID_ARG
 * (m NULL). Since 0.1.0.
 */
AE_API ae_status ae_model_sample_shape(const ae_model *m, size_t *channels, size_t *height,
                                       size_t *width);

/**
 * Copies a layer's weight (row-major, [out, in] for dense) into `dst`, which
 * holds `count` floats; `count` must equal the layer's weight_count. For a
 * tied decoder layer this is its partner's weight, transposed, and
 * ae_model_set_weights writes through to it (see <libae/stack.h>).
 * Errors: AE_ERR_INVALID_ARG, AE_ERR_RANGE (layer), AE_ERR_SHAPE (count).
 * Since 0.1.0.
 */
AE_API ae_status ae_model_get_weights(const ae_model *m, size_t layer, float *dst, size_t count);
/**
 * Overwrites a layer's weight from `src` (`count` floats, all finite).
 * Optimizer state is kept. Errors as ae_model_get_weights, and
 * AE_ERR_NUMERIC for a non-finite value (nothing is written). Since 0.1.0.
 */
AE_API ae_status ae_model_set_weights(ae_model *m, size_t layer, const float *src, size_t count);
/** Copies a layer's bias; as ae_model_get_weights. Since 0.1.0. */
AE_API ae_status ae_model_get_bias(const ae_model *m, size_t layer, float *dst, size_t count);
/** Overwrites a layer's bias; as ae_model_set_weights. Since 0.1.0. */
AE_API ae_status ae_model_set_bias(ae_model *m, size_t layer, const float *src, size_t count);

/**
 * Copies a layer's non-trainable state into `dst`, which holds `count`
 * floats; `count` must equal the layer's state_count (ae_layer_info).
 * BatchNorm (C channels): the running mean [C] then the running variance
 * [C], PyTorch's running_mean and running_var. Batch top-k: the inference
 * threshold θ, then 1 once θ is set (0 before its first training forward,
 * when inference selects as training does). Other kinds have none.
 * Errors: AE_ERR_INVALID_ARG (NULL), AE_ERR_RANGE (layer), AE_ERR_SHAPE
 * (count). Since 0.1.0.
 */
AE_API ae_status ae_model_get_state(const ae_model *m, size_t layer, float *dst, size_t count);
/**
 * Overwrites a layer's non-trainable state from `src` (`count` floats, as
 * ae_model_get_state lays them out), e.g. a PyTorch BatchNorm's running
 * statistics. Errors as ae_model_get_state, and AE_ERR_NUMERIC for a
 * non-finite value, AE_ERR_RANGE for a value the state cannot hold (a
 * negative BatchNorm variance, a batch top-k flag other than 0 or 1);
 * nothing is written then. Since 0.1.0.
 */
AE_API ae_status ae_model_set_state(ae_model *m, size_t layer, const float *src, size_t count);

/**
 * Changes a setting of a created model. Only settings marked changeable
 * may change (AE_ERR_STATE otherwise, e.g. the loss or the optimizer);
 * the rest as ae_config_set_int. Since 0.1.0.
 */
AE_API ae_status ae_model_set_int(ae_model *m, ae_param param, int64_t value);
/** As ae_model_set_int, for float settings (e.g. the learning rate). Since 0.1.0. */
AE_API ae_status ae_model_set_float(ae_model *m, ae_param param, double value);
/** Reads a setting of the model. Since 0.1.0. */
AE_API ae_status ae_model_get_int(const ae_model *m, ae_param param, int64_t *value);
/** Reads a float setting of the model. Since 0.1.0. */
AE_API ae_status ae_model_get_float(const ae_model *m, ae_param param, double *value);

/* ------------------------------------------------------------------------
 * Mode
 * ------------------------------------------------------------------------ */

/** Training or inference behaviour of the layers. Since 0.1.0. */
typedef enum ae_mode {
    AE_MODE_INFER = 0, /* default: lifetime top-k passes through, batch top-k uses θ */
    AE_MODE_TRAIN = 1  /* every forward behaves as in training (and updates θ) */
} ae_mode;

/**
 * Sets the mode used by ae_evaluate, ae_encode, ae_decode and
 * ae_reconstruct (PyTorch's model.train() / model.eval()). ae_train_step
 * always runs in training mode whatever the setting. A model starts in
 * AE_MODE_INFER. Errors: AE_ERR_INVALID_ARG (m NULL, unknown mode).
 * Since 0.1.0.
 */
AE_API ae_status ae_model_set_mode(ae_model *m, ae_mode mode);

/** The model's mode; AE_MODE_INFER for NULL. Since 0.1.0. */
AE_API ae_mode ae_model_get_mode(const ae_model *m);

/* ------------------------------------------------------------------------
 * Compute backend
 * ------------------------------------------------------------------------ */

/**
 * The library that computes a model's matrix products (dense layers, the
 * GEMMs of convolutions). A model takes its backend when it is created or
 * loaded, from the config's choice (ae_config_set_backend), and keeps it
 * for its whole life. AE_BACKEND_AUTO, the default, is the rule: oneDNN
 * when this libae was built with it (meson option -Donednn), OpenBLAS
 * otherwise (docs/performance.md has the measurements behind the rule).
 * Same backend, same thread count, same seed and data: bitwise the same
 * run; two backends round differently, so their runs agree to float
 * rounding only. OpenBLAS runs OPENBLAS_NUM_THREADS threads, oneDNN
 * OpenMP's (OMP_NUM_THREADS). Numbers frozen. Since 0.1.0.
 */
typedef enum ae_backend {
    AE_BACKEND_AUTO = 0,
    AE_BACKEND_OPENBLAS = 1,
    AE_BACKEND_ONEDNN = 2
} ae_backend;

/** "auto", "openblas" or "onednn"; NULL for a number that is no backend. Since 0.1.0. */
AE_API const char *ae_backend_name(ae_backend backend);

/** 1 when `backend` is built into this libae (AUTO and OPENBLAS always are), else 0. Since 0.1.0. */
AE_API int ae_backend_available(ae_backend backend);

/**
 * Chooses the backend of the models created from `cfg` (and of the models
 * ae_model_load gives with `cfg` as its config). Errors: AE_ERR_INVALID_ARG
 * (cfg NULL, a number that is no backend), AE_ERR_UNSUPPORTED (not built
 * into this libae; the message says so). Errors change nothing. Since 0.1.0.
 */
AE_API ae_status ae_config_set_backend(ae_config *cfg, ae_backend backend);

/** The backend chosen on `cfg` (AE_BACKEND_AUTO unless set); AUTO for NULL. Since 0.1.0. */
AE_API ae_backend ae_config_get_backend(const ae_config *cfg);

/**
 * The backend `m` computes with: AE_BACKEND_OPENBLAS or AE_BACKEND_ONEDNN,
 * never AUTO (the rule was applied at creation); AE_BACKEND_AUTO for NULL.
 * Since 0.1.0.
 */
AE_API ae_backend ae_model_backend(const ae_model *m);

/** The most threads ae_model_set_threads takes. Since 0.1.0. */
#define AE_MAX_THREADS 256

/**
 * How many threads libae's own loops of `m` use (the activations, the
 * loss, the bias sums, the optimizer update: what the backend's threaded
 * matrix products do not cover), from the next call on. 0, the default,
 * is OpenMP's thread count (OMP_NUM_THREADS, else the cores) on the
 * oneDNN backend, so one variable sets both oneDNN's threads and these,
 * and 1 on OpenBLAS (whose own threads would share the cores with
 * OpenMP's spinning ones: measured 2.2x slower steps); 1 keeps them on the
 * calling thread. They are OpenMP's threads, the team oneDNN's products
 * already use, and exist only in a libae built with oneDNN and OpenMP;
 * otherwise every count means the calling thread. Every count gives the
 * same bits (each value is computed from the same inputs in the same
 * order; reductions split by length only). Not saved in model files.
 * Errors: AE_ERR_INVALID_ARG (m NULL), AE_ERR_RANGE (outside [0,
 * AE_MAX_THREADS]; nothing changes). Since 0.1.0.
 */
AE_API ae_status ae_model_set_threads(ae_model *m, int threads);

/**
 * The threads libae's own loops of `m` use now (ae_model_set_threads
 * resolved: 1 in a libae without OpenMP); 0 for NULL. Since 0.1.0.
 */
AE_API int ae_model_threads(const ae_model *m);

/* ------------------------------------------------------------------------
 * Statistics
 * ------------------------------------------------------------------------ */

/** Statistics read with ae_model_get_stat (numbers frozen). Since 0.1.0. */
typedef enum ae_stat {
    /* The loss of the last ae_train_step or ae_evaluate: reconstruction
       plus every penalty (and a VAE's beta-weighted KL term). */
    AE_STAT_LOSS = 1,
    /* Its reconstruction term. */
    AE_STAT_LOSS_RECON = 2,
    /* The sum of its KL sparsity penalties (λ included). */
    AE_STAT_LOSS_KL = 3,
    /* The sum of its L1 penalties (λ included). */
    AE_STAT_LOSS_L1 = 4,
    /* Mean over the samples of the last ae_train_step or ae_evaluate of
       the number of nonzero code entries. */
    AE_STAT_CODE_L0 = 5,
    /* Code units not active (nonzero for any sample) in any of the last
       AE_P_DEAD_WINDOW training steps (or, before that many steps, in any
       step so far). Needs one training step. */
    AE_STAT_DEAD_LATENTS = 6,
    /* Lifetime top-k layers that kept every value in the last training
       step because the batch was no larger than their k. */
    AE_STAT_LIFETIME_KEPT_ALL = 7,
    /* The inference threshold θ of the first batch top-k layer. Needs a
       batch top-k layer that has seen a training forward. */
    AE_STAT_BATCH_TOPK_THRESHOLD = 8,
    /* The KL term of a VAE's last ae_train_step or ae_evaluate, reduced over
       the batch as the reconstruction (mean: divided by the batch size; sum:
       summed), without the weight beta (<libae/vae.h>). Needs a Gaussian
       layer. Since 0.1.0. */
    AE_STAT_LOSS_VAE_KL = 9
} ae_stat;

/**
 * Reads a statistic into *value. Errors: AE_ERR_INVALID_ARG (NULL, unknown
 * statistic), AE_ERR_STATE (no step or evaluation yet for the loss and L0
 * statistics; no training step yet for the training ones; no batch top-k
 * layer, or one that has not trained, for the threshold; no Gaussian layer
 * for AE_STAT_LOSS_VAE_KL). Since 0.1.0.
 */
AE_API ae_status ae_model_get_stat(const ae_model *m, ae_stat stat, double *value);

#ifdef __cplusplus
}
#endif

#include <libae/data.h>
#include <libae/conv.h>
#include <libae/stack.h>
#include <libae/train.h>
#include <libae/sparse.h>
#include <libae/vae.h>
#include <libae/metrics.h>
#include <libae/io.h>
#include <libae/arch.h>
#include <libae/onnx.h>

#endif /* LIBAE_AE_H */
