/*
 * libae datasets. Included by <libae/ae.h>; do not include it alone.
 *
 * A dataset holds samples as float32 rows (row-major, [count, dim]; images
 * as C x H x W per row) and optionally one int32 label per sample. It owns
 * its memory; pointers it returns stay valid until the next call that
 * changes the dataset, or its destruction.
 */
#ifndef LIBAE_DATA_H
#define LIBAE_DATA_H

#include <libae/ae.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A set of samples (and optional labels). Since 0.1.0. */
typedef struct ae_dataset ae_dataset;

/**
 * Creates an empty dataset. `alloc` may be NULL (malloc/free). Errors:
 * AE_ERR_INVALID_ARG, AE_ERR_OUT_OF_MEMORY; *out is NULL on failure.
 * Since 0.1.0.
 */
AE_API ae_status ae_dataset_create(ae_dataset **out, const ae_allocator *alloc);

/** Frees a dataset. Accepts NULL. Since 0.1.0. */
AE_API void ae_dataset_destroy(ae_dataset *ds);

/** The message of the last failed call on `ds`, or "". Since 0.1.0. */
AE_API const char *ae_dataset_last_error(const ae_dataset *ds);

/**
 * Loads an IDX file of unsigned bytes (gzipped or plain, told apart by the
 * content): images (3 dimensions: count, rows, cols; shape 1 x rows x
 * cols) or vectors (2 dimensions). Values are stored as floats 0..255;
 * scale them with ae_dataset_scale. `labels_path` (may be NULL) is an IDX
 * file of 1 dimension with one unsigned byte per sample; its count must
 * match. Replaces what the dataset held only on success.
 * Errors (the message names the file and the problem): AE_ERR_INVALID_ARG,
 * AE_ERR_IO (cannot open or read), AE_ERR_FORMAT (bad magic, unknown
 * element type, sizes that overflow or do not match, truncated data,
 * trailing bytes, corrupt gzip stream), AE_ERR_UNSUPPORTED (a valid IDX
 * element type other than unsigned bytes), AE_ERR_OUT_OF_MEMORY.
 * Since 0.1.0.
 */
AE_API ae_status ae_dataset_load_idx(ae_dataset *ds, const char *images_path,
                                     const char *labels_path);

/** Number of samples. 0 for NULL. Since 0.1.0. */
AE_API size_t ae_dataset_count(const ae_dataset *ds);
/** Floats per sample. 0 for NULL. Since 0.1.0. */
AE_API size_t ae_dataset_dim(const ae_dataset *ds);
/**
 * The sample shape as channels, height, width (a vector of n features is
 * n x 1 x 1). Any pointer may be NULL. Errors: AE_ERR_INVALID_ARG.
 * Since 0.1.0.
 */
AE_API ae_status ae_dataset_shape(const ae_dataset *ds, size_t *channels, size_t *height,
                                  size_t *width);
/** The samples, [count, dim], or NULL when empty. Since 0.1.0. */
AE_API const float *ae_dataset_data(const ae_dataset *ds);
/** The labels, [count], or NULL when the dataset has none. Since 0.1.0. */
AE_API const int32_t *ae_dataset_labels(const ae_dataset *ds);

/**
 * Applies x = x * mul + add to every value (e.g. mul = 1/255 to get [0, 1]).
 * Errors: AE_ERR_INVALID_ARG (NULL, non-finite mul or add), AE_ERR_STATE
 * (empty dataset). Since 0.1.0.
 */
AE_API ae_status ae_dataset_scale(ae_dataset *ds, float mul, float add);

/**
 * Copies the samples with indices `idx[0..n)` into `dst` ([n, dim]),
 * and their labels into `labels` when it is not NULL and the dataset has
 * labels. Errors: AE_ERR_INVALID_ARG, AE_ERR_RANGE (an index out of range;
 * nothing is written). Since 0.1.0.
 */
AE_API ae_status ae_dataset_gather(ae_dataset *ds, const size_t *idx, size_t n, float *dst,
                                   int32_t *labels);

#ifdef __cplusplus
}
#endif

#endif /* LIBAE_DATA_H */
