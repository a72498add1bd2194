/*
 * libae - ONNX export and import.
 *
 * <libae/ae.h> includes it. ONNX (onnx.ai) is the interchange format of
 * deployment runtimes (ONNX Runtime and others) and of PyTorch's
 * torch.onnx.export. docs/interop.md lists what each layer kind becomes and
 * which graphs the importer reads.
 *
 * Export writes an ONNX model (IR version 8, opset 17, float32) of a whole
 * autoencoder or of its encoder or decoder, in inference mode: BatchNorm
 * with its running statistics, a lifetime top-k passing its input through,
 * a batch top-k keeping what exceeds its threshold, a VAE's code being the
 * mean. Import reads the sequential graphs torch.onnx.export writes for
 * autoencoders (and the graphs export writes) into a model ready to use and
 * to train.
 *
 * A libae built without protobuf-c (meson option -Donnx=disabled) keeps
 * these calls; they return AE_ERR_UNSUPPORTED.
 */
#ifndef LIBAE_ONNX_H
#define LIBAE_ONNX_H

#include <libae/ae.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The ONNX opset version export writes. Since 0.1.0. */
#define AE_ONNX_OPSET 17

/** Which part of a model an ONNX export holds. Since 0.1.0. */
typedef enum ae_onnx_part {
    /* input -> reconstruction, with the code as a second graph output
       (and a VAE's log-variance as a third) */
    AE_ONNX_FULL = 0,
    /* input -> code (a VAE: the mean, and its log-variance as "logvar") */
    AE_ONNX_ENCODER = 1,
    /* code -> reconstruction */
    AE_ONNX_DECODER = 2
} ae_onnx_part;

/**
 * Writes `part` of model `m` as an ONNX model to `path`, atomically as
 * ae_model_save writes. The graph's inputs and outputs are named "input",
 * "code", "logvar" and "reconstruction"; the batch dimension is symbolic
 * ("batch"); image tensors are NCHW, vectors [batch, features]. Weights
 * are initializers named after their layer ("layer3.weight"). The model is
 * not changed. Errors (message in ae_model_last_error(m)):
 * AE_ERR_INVALID_ARG (NULL, empty path, unknown part), AE_ERR_UNSUPPORTED
 * (a layer that has no faithful ONNX form: the message names it; or libae
 * built without ONNX), AE_ERR_OUT_OF_MEMORY, AE_ERR_IO. Since 0.1.0.
 */
AE_API ae_status ae_model_export_onnx(const ae_model *m, const char *path, ae_onnx_part part);

/**
 * As ae_model_export_onnx, into memory, snprintf-style as
 * ae_model_save_buffer: *size always receives the full size in bytes; when
 * it exceeds `capacity` nothing is written and the call returns
 * AE_ERR_RANGE. `buf` may be NULL when capacity is 0. Since 0.1.0.
 */
AE_API ae_status ae_model_export_onnx_buffer(const ae_model *m, void *buf, size_t capacity,
                                             size_t *size, ae_onnx_part part);

/**
 * Options of ae_model_import_onnx. Initialise with
 * ae_onnx_import_options_init, then change fields. Since 0.1.0.
 */
typedef struct ae_onnx_import_options {
    size_t struct_size; /* sizeof(ae_onnx_import_options), set by the init call */
    /* The name of the graph tensor that is the code (the output of the
       encoder). NULL (default): the graph's second output when it has one,
       else the narrowest tensor of the chain (the first of equals). */
    const char *code;
    /* Settings for the model (loss, optimizer, learning rate, seed, ...):
       every ae_param setting of this config is copied, and its backend
       (ae_config_set_backend); its layers are ignored. NULL (default): the
       defaults (MSE, Adam, lr 1e-3, AE_BACKEND_AUTO). */
    const ae_config *settings;
    /* The allocator of the model, as ae_config_create takes it; NULL:
       malloc. */
    const ae_allocator *alloc;
} ae_onnx_import_options;

/** Sets every option to its default. Since 0.1.0. */
AE_API void ae_onnx_import_options_init(ae_onnx_import_options *opts);

/**
 * Reads an ONNX model from `path` into a new model *out, built through the
 * config builder (so every check of ae_config_* and ae_model_create
 * applies), with the graph's weights and BatchNorm statistics, in
 * inference mode. The graph must be a chain from one input to the
 * reconstruction: Gemm or MatMul (+ Add), Conv, ConvTranspose,
 * BatchNormalization, MaxPool, AveragePool and GlobalAveragePool (to 1x1),
 * Resize/Upsample (nearest, or linear with align_corners), Flatten,
 * Reshape, Relu, LeakyRelu, Sigmoid, Tanh, Gelu (or its Erf form),
 * Softplus, Elu, Identity, Dropout, and the subgraphs ae_model_export_onnx
 * writes (top-k, batch top-k, a VAE's Split into mean and log-variance);
 * shape arithmetic (Shape, Gather, Unsqueeze, Concat, ...) feeding a
 * Reshape is evaluated. `opts` may be NULL (the defaults). `err` may be
 * NULL (err_size 0); on failure a one-line message is written there.
 * Errors: AE_ERR_INVALID_ARG, AE_ERR_IO (cannot read the file),
 * AE_ERR_FORMAT (not an ONNX model, or malformed), AE_ERR_UNSUPPORTED (a
 * node libae cannot represent: the message names the node and its op
 * type; or libae built without ONNX), AE_ERR_SHAPE, AE_ERR_OUT_OF_MEMORY.
 * On failure *out is NULL. Since 0.1.0.
 */
AE_API ae_status ae_model_import_onnx(ae_model **out, const char *path,
                                      const ae_onnx_import_options *opts, char *err,
                                      size_t err_size);

/** As ae_model_import_onnx, from `size` bytes at `buf` (not kept). Since 0.1.0. */
AE_API ae_status ae_model_import_onnx_buffer(ae_model **out, const void *buf, size_t size,
                                             const ae_onnx_import_options *opts, char *err,
                                             size_t err_size);

#ifdef __cplusplus
}
#endif

#endif /* LIBAE_ONNX_H */
