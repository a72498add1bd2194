/*
 * libae - saving and loading models and checkpoints.
 *
 * <libae/ae.h> includes it. The file format is described byte by byte in
 * docs/file-format.md: a little-endian binary file with a magic, a format
 * version, the architecture and every setting, the parameters and layer
 * state, the model's metadata and, for a checkpoint, the optimizer state,
 * the RNG state and the step count, all covered by a CRC-32.
 *
 * Compatibility: a file of format version 1.x loads in every later release
 * whose AE_FORMAT_VERSION_MAJOR is 1. A file with a larger minor version
 * loads when it uses nothing this release does not know; otherwise the
 * load fails with AE_ERR_VERSION.
 */
#ifndef LIBAE_IO_H
#define LIBAE_IO_H

#include <libae/ae.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The format version this release writes. Since 0.1.0. */
#define AE_FORMAT_VERSION_MAJOR 1
#define AE_FORMAT_VERSION_MINOR 1

/** What a save writes. Since 0.1.0. */
typedef enum ae_save_flags {
    AE_SAVE_MODEL = 0,     /* architecture, settings, parameters, metadata */
    AE_SAVE_CHECKPOINT = 1 /* also optimizer state, RNG state(s), step count: resumes bitwise */
} ae_save_flags;

/**
 * Saves a model to `path` atomically: the file is written to a temporary
 * file in the same directory, flushed to disk (fsync), renamed over `path`,
 * and the directory is flushed. A failed save leaves no temporary file and
 * leaves a file already at `path` as it was. A symbolic link at `path` is
 * followed: the file it names is replaced (created for a dangling link)
 * in its own directory and the link stays. Only a regular file is
 * replaced: a directory, device, FIFO or socket at `path` is refused with
 * AE_ERR_IO, untouched (docs/files.md). The model is not changed
 * (only its message buffer, ae_model_last_error, on failure).
 * `flags` is AE_SAVE_MODEL or AE_SAVE_CHECKPOINT.
 * Errors (message in ae_model_last_error(m)): AE_ERR_INVALID_ARG (NULL,
 * unknown flags), AE_ERR_OUT_OF_MEMORY, AE_ERR_IO (the message names the
 * step and the system's reason), AE_ERR_NUMERIC (a value to save is not
 * finite, which ae_model_load would refuse: nothing is written; no call
 * of the library leaves one). Since 0.1.0.
 */
AE_API ae_status ae_model_save(const ae_model *m, const char *path, unsigned flags);

/**
 * Saves a model into memory, as ae_model_save would write the file: the
 * model, where to write, then `flags`, as ae_model_save takes them.
 * snprintf-style: *size always receives the full size in bytes (size may
 * not be NULL); when it exceeds `capacity`, nothing is written and the call
 * returns AE_ERR_RANGE. `buf` may be NULL when capacity is 0 (to ask for
 * the size). The model is not changed. Errors (message in
 * ae_model_last_error(m)): AE_ERR_INVALID_ARG, AE_ERR_RANGE, AE_ERR_NUMERIC
 * (as ae_model_save). Since 0.1.0.
 */
AE_API ae_status ae_model_save_buffer(const ae_model *m, void *buf, size_t capacity,
                                      size_t *size, unsigned flags);

/**
 * Loads a model (or a checkpoint: then training resumes bitwise as if it
 * had not stopped) from `path`. The model is rebuilt through the config
 * builder, so every check of ae_config_* and ae_model_create applies.
 * `cfg` plays the part it plays in ae_model_create, the handle of the
 * call: the model allocates through the allocator `cfg` was created with,
 * computes on the backend chosen on it (ae_config_set_backend; model files
 * do not keep one), and a failure's message (naming `path`) is in
 * ae_config_last_error(cfg). Nothing else of `cfg` is read or changed (its
 * layers and settings are not used: the file holds the architecture), so
 * any config, even an empty one, serves, and it may be destroyed or reused
 * afterwards. `cfg` may be NULL: then malloc, the AUTO backend, and no
 * message.
 * Errors: AE_ERR_INVALID_ARG (out or path NULL), AE_ERR_IO (cannot read
 * the file), AE_ERR_FORMAT (not a model file, truncated, malformed, an
 * unknown layer kind or setting), AE_ERR_VERSION (a newer major format
 * version, or a newer minor version using something this release lacks),
 * AE_ERR_CHECKSUM (damaged), AE_ERR_OUT_OF_MEMORY. On failure *out is NULL.
 * Since 0.1.0.
 */
AE_API ae_status ae_model_load(ae_model **out, const char *path, const ae_config *cfg);

/**
 * As ae_model_load, from `size` bytes at `buf` (not kept; NULL only when
 * size is 0). Errors as ae_model_load (AE_ERR_INVALID_ARG for out NULL or
 * buf NULL), message in ae_config_last_error(cfg). Since 0.1.0.
 */
AE_API ae_status ae_model_load_buffer(ae_model **out, const void *buf, size_t size,
                                      const ae_config *cfg);

/**
 * Metadata: UTF-8 key/value strings kept with the model (through its
 * allocator) and saved in its file. Sets `key` to a copy of `value`, or
 * removes it when `value` is NULL (removing an absent key is AE_OK).
 * Keys are 1 to 255 bytes, values at most 1 MiB (1048576 bytes), both valid
 * UTF-8 without NUL. Errors: AE_ERR_INVALID_ARG (NULL, bad length, invalid
 * UTF-8), AE_ERR_OUT_OF_MEMORY. Since 0.1.0.
 */
AE_API ae_status ae_model_set_meta(ae_model *m, const char *key, const char *value);

/**
 * Reads a metadata value: *value points to the model's copy, valid until
 * the key is set or removed or the model destroyed; an absent key gives
 * AE_OK with *value = NULL. Errors: AE_ERR_INVALID_ARG. Since 0.1.0.
 */
AE_API ae_status ae_model_get_meta(const ae_model *m, const char *key, const char **value);

/** Number of metadata keys; 0 for NULL. Since 0.1.0. */
AE_API size_t ae_model_meta_count(const ae_model *m);

/**
 * The key and value at `index` (0 to count-1, in the order the keys were
 * first set; removing a key moves the later ones down). Either out pointer
 * may be NULL. Pointers as ae_model_get_meta. Errors: AE_ERR_INVALID_ARG,
 * AE_ERR_RANGE. Since 0.1.0.
 */
AE_API ae_status ae_model_meta_at(const ae_model *m, size_t index, const char **key,
                                  const char **value);

#ifdef __cplusplus
}
#endif

#endif /* LIBAE_IO_H */
