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
/** The samples, [count, dim], or NULL when empty or file-backed
 *  (ae_dataset_file_backed; read those with ae_dataset_rows). Since 0.1.0. */
AE_API const float *ae_dataset_data(const ae_dataset *ds);
/** The labels, [count], or NULL when the dataset has none. Since 0.1.0. */
AE_API const int32_t *ae_dataset_labels(const ae_dataset *ds);

/**
 * Attaches `count` labels (copied) to a dataset of any origin (loaded from
 * a file, file-backed, from memory, a subset), replacing its labels;
 * `labels` NULL removes them. A borrowed dataset (AE_DATA_BORROW) copies
 * its samples first, as a call that changes values does. Errors:
 * AE_ERR_INVALID_ARG (NULL ds), AE_ERR_STATE (an empty dataset),
 * AE_ERR_SHAPE (count differs from the sample count),
 * AE_ERR_OUT_OF_MEMORY; on failure nothing changes. Since 0.1.0.
 */
AE_API ae_status ae_dataset_set_labels(ae_dataset *ds, const int32_t *labels, size_t count);

/**
 * Reads labels from a file and attaches them (ae_dataset_set_labels), the
 * format told by the content: a NumPy .npy of shape [N] or [N, 1] of any
 * integer dtype (int8 to int64, uint8 to uint64, either byte order) or of
 * floats holding whole numbers (float32, float64, either byte order); an
 * IDX labels file (unsigned bytes, gzipped or plain); or a CSV of one
 * integer a line. Every label must fit int32. Use it after
 * ae_dataset_load_npy, ae_dataset_open_npy, ae_dataset_load_csv or
 * ae_dataset_from_memory. Errors (the message names the file; for a bad
 * label its index and value): AE_ERR_INVALID_ARG, AE_ERR_STATE (an empty
 * dataset), AE_ERR_IO, AE_ERR_FORMAT (malformed, more than one value per
 * sample, a label that is not a whole number or outside int32, a count
 * other than the sample count), AE_ERR_UNSUPPORTED (another dtype),
 * AE_ERR_OUT_OF_MEMORY; on failure nothing changes. Since 0.1.0.
 */
AE_API ae_status ae_dataset_load_labels(ae_dataset *ds, const char *path);

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

/**
 * Number of batches of `batch_size` samples over the dataset's rows in
 * their current order (ae_dataset_shuffle reorders them in place):
 * ceil(count / batch_size), or floor(count / batch_size) when `drop_last`
 * is nonzero (the last partial batch is skipped, as ae_fit's drop_last).
 * 0 for an empty dataset, or with drop_last when count < batch_size.
 * Allocates nothing. Errors: AE_ERR_INVALID_ARG (NULL, batch_size 0);
 * *count is unchanged on failure. Since 0.1.0.
 */
AE_API ae_status ae_dataset_batch_count(const ae_dataset *ds, size_t batch_size, int drop_last,
                                        size_t *count);

/**
 * Copies batch `index` (0-based) of those ae_dataset_batch_count counts,
 * the rows [index * batch_size, index * batch_size + *rows), into `dst`
 * ([*rows, dim]), and their labels into `labels` when it is not NULL and
 * the dataset has labels (otherwise `labels` is left untouched, as by
 * ae_dataset_gather; ae_dataset_labels tells which). *rows receives the
 * batch's sample count: batch_size, or fewer for the last partial batch
 * (never with drop_last); buffers of batch_size rows always suffice.
 * Allocates nothing. Errors: AE_ERR_INVALID_ARG (NULL ds, dst or rows;
 * batch_size 0), AE_ERR_RANGE (index >= the batch count, e.g. any index of
 * an empty dataset or, with drop_last, of one with fewer than batch_size
 * samples); on failure nothing is written. Since 0.1.0.
 */
AE_API ae_status ae_dataset_get_batch(const ae_dataset *ds, size_t index, size_t batch_size,
                                      int drop_last, float *dst, int32_t *labels, size_t *rows);

/** How ae_dataset_from_memory treats the caller's arrays. Since 0.1.0. */
typedef enum ae_data_mode {
    /* The dataset copies the arrays; the caller may free them at once. */
    AE_DATA_COPY = 0,
    /* The dataset keeps the caller's pointers and never writes through
       them: the arrays must stay valid and unchanged while the dataset
       holds them. A call that changes values (scale, standardize,
       shuffle) first makes a private copy. */
    AE_DATA_BORROW = 1
} ae_data_mode;

/**
 * Sets the dataset to `count` samples of shape channels x height x width
 * (floats, row-major [count, c*h*w]) from `data`, with optional `labels`
 * ([count] int32, may be NULL). `mode` is AE_DATA_COPY or AE_DATA_BORROW.
 * Replaces what the dataset held only on success.
 * Errors: AE_ERR_INVALID_ARG (NULL data, unknown mode), AE_ERR_RANGE (a
 * zero size or sizes whose product overflows), AE_ERR_NUMERIC (a
 * non-finite value; the message gives its index), AE_ERR_OUT_OF_MEMORY.
 * Since 0.1.0.
 */
AE_API ae_status ae_dataset_from_memory(ae_dataset *ds, const float *data, const int32_t *labels,
                                        size_t count, size_t channels, size_t height,
                                        size_t width, ae_data_mode mode);

/**
 * Changes the sample shape to channels x height x width without moving
 * data; the product must equal ae_dataset_dim (e.g. 784 CSV columns into
 * 1 x 28 x 28). Errors: AE_ERR_INVALID_ARG, AE_ERR_STATE (empty),
 * AE_ERR_SHAPE (the product differs). Since 0.1.0.
 */
AE_API ae_status ae_dataset_reshape(ae_dataset *ds, size_t channels, size_t height, size_t width);

/**
 * Loads a NumPy .npy file (format versions 1.0, 2.0 and 3.0): dtype
 * little-endian float32 ('<f4'), float64 ('<f8', converted to float) or
 * uint8 ('|u1', values 0..255), C order. Shape [N] gives N samples of 1
 * value; [N, D] vectors of D; [N, H, W] images 1 x H x W; [N, C, H, W]
 * images C x H x W. The dataset has no labels afterwards. Replaces what
 * the dataset held only on success.
 * Errors (the message names the file and the problem): AE_ERR_INVALID_ARG,
 * AE_ERR_IO, AE_ERR_FORMAT (bad magic, malformed header, truncated data,
 * trailing bytes, a NaN or infinity, a float64 outside float's range),
 * AE_ERR_UNSUPPORTED (another dtype, big-endian, Fortran order, 0 or more
 * than 4 dimensions), AE_ERR_VERSION (an unknown format version),
 * AE_ERR_OUT_OF_MEMORY. Since 0.1.0.
 */
AE_API ae_status ae_dataset_load_npy(ae_dataset *ds, const char *path);

/**
 * Writes the samples to a .npy file (version 1.0, '<f4', C order) readable
 * by numpy.load and torch.from_numpy: shape [N] for one value a sample
 * (1 x 1 x 1, e.g. scores), [N, D] for vectors (height and width 1),
 * [N, C, H, W] otherwise. Labels are not written. The file is
 * written as model files are (ae_model_save): under a temporary name next
 * to `path`, flushed to disk and renamed, so a failure leaves no partial
 * file at `path` and an existing file there as it was; a replaced file
 * keeps its permission bits; a symbolic link is written through and a
 * path that is not a regular file is refused (docs/files.md). Errors:
 * AE_ERR_INVALID_ARG, AE_ERR_STATE (empty dataset), AE_ERR_OUT_OF_MEMORY,
 * AE_ERR_IO (the message names the file).
 * Since 0.1.0.
 */
AE_API ae_status ae_dataset_save_npy(ae_dataset *ds, const char *path);

/** Flags of ae_dataset_load_csv, or-ed together. Since 0.1.0. */
enum {
    /* The first non-blank line is a header and is skipped. */
    AE_CSV_HEADER = 1,
    /* The first field of each row is an integer label (as in Kaggle's
       Fashion-MNIST CSV files); the rest are the sample. */
    AE_CSV_LABEL_FIRST = 2
};

/**
 * Loads a CSV file of numbers: one sample per line, fields separated by
 * commas, optional spaces around fields, optional double quotes around a
 * field, LF or CRLF line ends; blank lines are skipped. Numbers are read
 * in the C locale whatever the program's locale. Every row must have as
 * many fields as the first; the sample shape is D x 1 x 1 (see
 * ae_dataset_reshape). `flags`: AE_CSV_HEADER, AE_CSV_LABEL_FIRST.
 * Replaces what the dataset held only on success.
 * Errors (the message names the file, the line and the field):
 * AE_ERR_INVALID_ARG (NULL, unknown flag), AE_ERR_IO, AE_ERR_FORMAT (no
 * data rows, a row of the wrong length, a field that is not a number, a
 * NaN or infinity, a value outside float's range, a label that is not an
 * int32), AE_ERR_OUT_OF_MEMORY. Since 0.1.0.
 */
AE_API ae_status ae_dataset_load_csv(ae_dataset *ds, const char *path, unsigned flags);

/**
 * Standardises the samples: x = (x - mean) / std. `n` says how the
 * statistics are shared: 1 (one mean and std for every value), the channel
 * count (per channel, as torchvision's Normalize), or ae_dataset_dim (per
 * feature). When `mean` and `std` are both NULL they are computed from
 * this dataset (population standard deviation; a std of 0 becomes 1);
 * otherwise both are given, `n` values each (std > 0, all finite), e.g.
 * those of the training set applied to the test set. The values applied
 * are stored and readable with ae_dataset_standardization. A dataset is
 * standardised once (AE_ERR_STATE the second time); loading new data
 * clears the stored values. Errors: AE_ERR_INVALID_ARG (only one of mean
 * and std given, a non-finite value or std <= 0), AE_ERR_SHAPE (n fits
 * none of the three), AE_ERR_STATE (empty, or already standardised),
 * AE_ERR_OUT_OF_MEMORY. Since 0.1.0.
 */
AE_API ae_status ae_dataset_standardize(ae_dataset *ds, const float *mean, const float *std,
                                        size_t n);

/**
 * Reads the statistics ae_dataset_standardize applied: `n` must be the
 * count used then (ae_dataset_standardization_count). `mean` and `std`
 * receive n values each (either may be NULL). Errors: AE_ERR_INVALID_ARG,
 * AE_ERR_STATE (not standardised), AE_ERR_SHAPE (n differs). Since 0.1.0.
 */
AE_API ae_status ae_dataset_standardization(const ae_dataset *ds, float *mean, float *std,
                                            size_t n);
/** Number of stored mean/std values; 0 when not standardised. Since 0.1.0. */
AE_API size_t ae_dataset_standardization_count(const ae_dataset *ds);

/**
 * Shuffles the samples (and labels with them) in place, Fisher-Yates from
 * an RNG seeded with `seed`: the same seed gives the same order. Errors:
 * AE_ERR_INVALID_ARG, AE_ERR_OUT_OF_MEMORY (a borrowed dataset is copied
 * first). Since 0.1.0.
 */
AE_API ae_status ae_dataset_shuffle(ae_dataset *ds, uint64_t seed);

/**
 * Splits a dataset into two new ones: `*val` gets ceil(val_fraction *
 * count) samples chosen at random (seeded by `seed`), `*train` the rest,
 * each in a random order; labels, shape, standardisation values and
 * allocator go with them. `ds` is unchanged. The caller destroys both.
 * Errors (message in ae_dataset_last_error(ds)): AE_ERR_INVALID_ARG (NULL,
 * val_fraction not in (0, 1)), AE_ERR_STATE (either part would be empty),
 * AE_ERR_OUT_OF_MEMORY. On failure both are NULL. Since 0.1.0.
 */
AE_API ae_status ae_dataset_split(const ae_dataset *ds, double val_fraction, uint64_t seed,
                                  ae_dataset **train, ae_dataset **val);

/* ------------------------------------------------------------------------
 * File-backed data, subsets and image folders (docs/data.md)
 * ------------------------------------------------------------------------ */

/**
 * Opens a NumPy .npy file (the dtypes and shapes of ae_dataset_load_npy)
 * without loading it: the rows stay on disk, in their own dtype (a uint8
 * file stays uint8), and are read and converted to float as they are
 * needed, by ae_dataset_rows, ae_dataset_get_batch, ae_dataset_gather and
 * ae_fit, so a set larger than memory trains in the memory of one batch.
 * The dataset keeps the file open until it is destroyed or loaded anew;
 * the file must not change meanwhile. ae_dataset_data returns NULL for
 * such a dataset (ae_dataset_file_backed tells); ae_dataset_scale and
 * ae_dataset_standardize record their transform and apply it as rows are
 * read; ae_dataset_shuffle reorders a row map, not the file; a NaN or
 * infinity is reported when its row is read (AE_ERR_FORMAT; AE_ERR_NUMERIC
 * when the recorded scale overflows a value), and an I/O error then as
 * AE_ERR_IO: on these errors the buffer being filled (of ae_dataset_rows,
 * ae_dataset_get_batch, ae_dataset_gather) is left unspecified.
 * Replaces what the dataset held only on success. Errors: as
 * ae_dataset_load_npy (AE_ERR_IO also for a FIFO, device or directory).
 * Since 0.1.0.
 */
AE_API ae_status ae_dataset_open_npy(ae_dataset *ds, const char *path);

/** Nonzero when the rows are read from a file (ae_dataset_open_npy, an
 *  image-folder cache). 0 for NULL. Since 0.1.0. */
AE_API int ae_dataset_file_backed(const ae_dataset *ds);

/**
 * Copies samples [start, start + n) as floats into `dst` ([n, dim]) and
 * their labels into `labels` when it is not NULL and the dataset has
 * labels: the way to read any dataset, in memory or file-backed. Errors:
 * AE_ERR_INVALID_ARG (NULL ds or dst), AE_ERR_RANGE (the range exceeds the
 * count; nothing written), and for file-backed rows AE_ERR_IO and
 * AE_ERR_FORMAT. Since 0.1.0.
 */
AE_API ae_status ae_dataset_rows(const ae_dataset *ds, size_t start, size_t n, float *dst,
                                 int32_t *labels);

/**
 * A new dataset of the samples idx[0..n) of `ds`, in that order (an index
 * may repeat), with their labels, shape, scale and standardisation. For a
 * file-backed dataset no row is copied: the new one reads the same file
 * through a map of n row numbers (labels are copied). Data in memory is
 * copied. `ds` is unchanged; the caller destroys *out, in any order with
 * `ds`. Class names stay with `ds`. Errors: AE_ERR_INVALID_ARG (NULL),
 * AE_ERR_RANGE (n is 0, an index out of range), AE_ERR_OUT_OF_MEMORY;
 * *out is NULL on failure. Since 0.1.0.
 */
AE_API ae_status ae_dataset_subset(const ae_dataset *ds, const size_t *idx, size_t n,
                                   ae_dataset **out);

/**
 * As ae_dataset_subset for the samples [start, start + n); for a
 * file-backed dataset in file order, not even a row map is made.
 * Errors: AE_ERR_INVALID_ARG, AE_ERR_RANGE (an empty range or one past
 * the count), AE_ERR_OUT_OF_MEMORY. Since 0.1.0.
 */
AE_API ae_status ae_dataset_subset_range(const ae_dataset *ds, size_t start, size_t n,
                                         ae_dataset **out);

/** How ae_dataset_load_images sizes images (numbers frozen). Since 0.1.0. */
typedef enum ae_resize_mode {
    /* Every image must already be height x width (0 x 0: the first
       image's size). */
    AE_RESIZE_NONE = 0,
    /* Bilinear to height x width, aspect ratio not kept
       (torchvision Resize((h, w))). */
    AE_RESIZE_STRETCH = 1,
    /* Shorter side to `shorter` (bilinear, aspect kept), then the centre
       height x width (torchvision Resize(shorter) + CenterCrop((h, w))). */
    AE_RESIZE_SHORTER_CROP = 2
} ae_resize_mode;

/**
 * Options of ae_dataset_load_images. Fill with ae_image_options_init, then
 * change fields. Fields added later go at the end. Since 0.1.0.
 */
typedef struct ae_image_options {
    size_t struct_size;    /* sizeof(ae_image_options) */
    size_t channels;       /* 1 (gray), 3 (RGB, default) or 4 (RGBA) */
    size_t height, width;  /* the sample size, 1 .. 65536; default 64 x 64 */
    ae_resize_mode resize; /* default AE_RESIZE_STRETCH */
    size_t shorter;        /* AE_RESIZE_SHORTER_CROP: the shorter side,
                              0 (default) = max(height, width) */
    int skip_bad;          /* nonzero: skip unreadable files and count them
                              (ae_dataset_skipped); 0 (default): refuse */
    const float *mean, *std; /* `channels` values each, or both NULL
                              (default): per-channel normalisation after
                              the [0, 1] scaling, as torchvision's
                              Normalize, recorded as by ae_dataset_standardize */
    const char *cache;     /* NULL (default), or the path of a .npy cache
                              (uint8, N x C x H x W): made on the first load,
                              then read back file-backed without decoding */
} ae_image_options;

/** Fills `o` with the defaults. Accepts NULL. Since 0.1.0. */
AE_API void ae_image_options_init(ae_image_options *o);

/**
 * Loads a folder of PNG and JPEG images (by extension, case-insensitive:
 * .png, .jpg, .jpeg; hidden files and other extensions are ignored, but
 * the other image extensions torchvision reads (.bmp, .ppm, .pgm, .tif,
 * .tiff, .webp) count as unreadable files). When `dir` holds
 * subfolders, it is a torchvision ImageFolder: each subfolder is a class,
 * classes numbered in byte order of their names (ae_dataset_class_name),
 * the files directly inside each, in name order, labelled by class; files
 * beside the subfolders are ignored. Otherwise the files of `dir` are the
 * samples, without labels. Each image is converted to `channels` (gray,
 * RGB, RGBA, palette and 16-bit PNGs, gray, RGB and CMYK JPEGs; gray is
 * ITU-R 601 luma as PIL's convert("L"), alpha dropped or set opaque),
 * resized as opts->resize says, scaled to [0, 1] (x / 255, torchvision's
 * ToTensor) and stored C x H x W; then normalised by opts->mean/std.
 * Resizing is bilinear without antialiasing, equal to
 * torch.nn.functional.interpolate(align_corners=False) on the [0, 1]
 * values; torchvision's Resize on PIL images antialiases when shrinking
 * (docs/data.md). With opts->cache the decoded set is written once as a
 * uint8 .npy and the dataset reads it file-backed; a later call with the
 * same cache path reads it without decoding if the cache is newer than
 * the folder and its class folders and has the same shape and count.
 * opts may be NULL (the defaults). Replaces what the dataset held only on
 * success. Errors (the message names the file): AE_ERR_INVALID_ARG (NULL,
 * a wrong struct_size, an option out of its range, mean/std not finite or
 * std <= 0), AE_ERR_IO (the folder or a file cannot be read), AE_ERR_FORMAT
 * (a corrupt, truncated or non-image file, or an image of the wrong size
 * with AE_RESIZE_NONE, unless skip_bad; no images at all; an empty class
 * folder), AE_ERR_UNSUPPORTED (an image format not built into this libae,
 * unless skip_bad), AE_ERR_OUT_OF_MEMORY. Since 0.1.0.
 */
AE_API ae_status ae_dataset_load_images(ae_dataset *ds, const char *dir,
                                        const ae_image_options *opts);

/** Number of classes of an image folder; 0 otherwise. Since 0.1.0. */
AE_API size_t ae_dataset_class_count(const ae_dataset *ds);
/** The name of class i (its folder), or NULL. Since 0.1.0. */
AE_API const char *ae_dataset_class_name(const ae_dataset *ds, size_t i);
/** Files ae_dataset_load_images skipped (skip_bad); 0 otherwise. Since 0.1.0. */
AE_API size_t ae_dataset_skipped(const ae_dataset *ds);

/**
 * Writes a picture as an 8-bit PNG file. `pixels` holds height x width
 * pixels, row by row from the top, each `channels` bytes: 1 gray, 2 gray
 * and alpha, 3 RGB, 4 RGBA (the layout ae_dataset_load_images decodes
 * from, interleaved, not planar). The file is written as every file of
 * libae is (docs/files.md): encoded in memory, then atomically under a
 * temporary name beside the target, flushed and renamed, so a failure
 * leaves an existing file as it was; a symbolic link is written through;
 * a path that is not a regular file is refused. `alloc` may be NULL
 * (malloc). On failure the message (naming the file) is copied into `err`
 * (err_size bytes, truncated; may be NULL). Errors: AE_ERR_INVALID_ARG
 * (NULL or empty path, NULL pixels, channels not 1..4, a side 0 or above
 * 1,000,000, libpng's limit), AE_ERR_UNSUPPORTED (libae built
 * without libpng), AE_ERR_OUT_OF_MEMORY, AE_ERR_IO. Since 0.1.0.
 */
AE_API ae_status ae_image_save_png(const char *path, const uint8_t *pixels, size_t height,
                                   size_t width, size_t channels, const ae_allocator *alloc,
                                   char *err, size_t err_size);

/* ------------------------------------------------------------------------
 * Value conventions (docs/data.md "Value conventions")
 * ------------------------------------------------------------------------ */

/** What the stored values of data are (numbers frozen). Since 0.1.0. */
typedef enum ae_elem_type {
    /* Not recorded: an empty dataset, or a model that was never trained
       by ae_fit nor given a convention (ae_model_set_data_convention). */
    AE_ELEM_UNKNOWN = 0,
    /* Real numbers: float32 and float64 .npy files, caller memory
       (ae_dataset_from_memory), CSV files other than those below. */
    AE_ELEM_FLOAT = 1,
    /* 8-bit values 0..255: IDX files, uint8 .npy files, image folders and
       their caches, and CSV files whose values are all whole numbers in
       0..255, not all 0 or 1 (pixel files such as Kaggle's MNIST CSVs). */
    AE_ELEM_UINT8 = 2
} ae_elem_type;

/**
 * A value convention: what the numbers a model sees mean. A stored value v
 * of element type `elem` becomes the model's input
 * x = (v * scale + offset - mean) / std, with std_count mean and std values
 * (0: no standardisation; else 1, the channel count or the sample size,
 * shared as ae_dataset_standardize shares them). Fill with
 * ae_data_convention_init, then change fields; fields added later go at
 * the end. Since 0.1.0.
 */
typedef struct ae_data_convention {
    size_t struct_size;   /* sizeof(ae_data_convention) */
    ae_elem_type elem;    /* default AE_ELEM_UNKNOWN */
    double scale, offset; /* default 1 and 0; scale finite and not 0, offset finite */
    size_t std_count;     /* default 0 */
    double lo, hi;        /* the range of the model's inputs x in training
                             (ae_fit records it), or both NaN (default):
                             unknown */
} ae_data_convention;

/** Fills `c` with struct_size and the defaults. Accepts NULL. Since 0.1.0. */
AE_API void ae_data_convention_init(ae_data_convention *c);

/**
 * The convention of a dataset's values: its element type (AE_ELEM_UNKNOWN
 * when empty), the scale and offset applied to the stored values since it
 * was loaded (ae_dataset_scale, ae_dataset_conform; 1/255 for image
 * folders), and its standardisation count (the values are read with
 * ae_dataset_standardization); lo and hi are NaN. Subsets and splits keep
 * the convention of their source. Errors: AE_ERR_INVALID_ARG (NULL, a
 * struct_size other than sizeof(ae_data_convention)). Since 0.1.0.
 */
AE_API ae_status ae_dataset_convention(const ae_dataset *ds, ae_data_convention *out);

/**
 * Declares what a dataset's current values are, without changing them:
 * element type c->elem (not AE_ELEM_UNKNOWN), and that they are the
 * stored values times c->scale plus c->offset; c->std_count must be 0 and
 * lo, hi are ignored. For data made in memory from another source, e.g.
 * 8-bit pixels already divided by 255: elem AE_ELEM_UINT8, scale 1/255.
 * Errors: AE_ERR_INVALID_ARG (NULL, a wrong struct_size, an unknown or
 * unknown-type elem, a scale of 0 or a value that is not finite,
 * std_count not 0), AE_ERR_STATE (empty, or standardised). Since 0.1.0.
 */
AE_API ae_status ae_dataset_set_convention(ae_dataset *ds, const ae_data_convention *c);

/**
 * Gives a dataset the meaning of `target` (a model's convention, from
 * ae_model_data_convention): the one rule by which data reach a model.
 * The scale and offset applied are relative to the stored values, whatever
 * ae_dataset_scale did before:
 * - data of target's element type: target's scale and offset;
 * - 8-bit data for a convention of float data: v / 255 stands for a float
 *   value (torchvision's ToTensor), so the scale is target->scale / 255
 *   and the offset target->offset;
 * - float data for a convention of 8-bit data: taken as already in the
 *   model's range (scale 1, offset 0);
 * - target's element type unknown: 8-bit data get 1/255, float data stay
 *   as they are;
 * then standardisation with `mean` and `std` (target->std_count values
 * each; both NULL when it is 0). When the element types differ, a
 * meaning was taken for granted, and it is checked against the 8-bit
 * range: let R be [0, 255] as the model reads 8-bit values (mapped by the
 * scale, offset and statistics), widened by half its span on each side.
 * Float data must then lie within R (this reads every value once,
 * file-backed rows too); for 8-bit data the model's training range
 * target->lo .. hi, when known, must lie within R. Otherwise the call
 * fails with AE_ERR_RANGE and a message naming both conventions and the
 * ranges. A dataset standardised before is accepted only with target's
 * statistics and scale (then nothing changes). On failure nothing changes.
 * Errors (message in ae_dataset_last_error): AE_ERR_INVALID_ARG (NULL ds
 * or target, a wrong struct_size, an unknown element type, a scale of 0
 * or a value that is not finite, mean/std missing, not finite or
 * std <= 0), AE_ERR_STATE (empty; standardised with other statistics),
 * AE_ERR_SHAPE (std_count is none of 1, the channel count, the sample
 * size), AE_ERR_RANGE, AE_ERR_NUMERIC (a value overflows float),
 * AE_ERR_OUT_OF_MEMORY, and for file-backed rows AE_ERR_IO and
 * AE_ERR_FORMAT. Since 0.1.0.
 */
AE_API ae_status ae_dataset_conform(ae_dataset *ds, const ae_data_convention *target,
                                    const float *mean, const float *std);

/**
 * Sets the convention of the data a model is trained on (ae_fit sets it
 * from its training set): saved in the model file, read back by
 * ae_model_data_convention, applied to other data by ae_dataset_conform.
 * `c` NULL clears it (elem AE_ELEM_UNKNOWN). `mean` and `std` hold
 * c->std_count values each (NULL when it is 0); they are copied.
 * Errors (message in ae_model_last_error): AE_ERR_INVALID_ARG (NULL m, a
 * wrong struct_size, an unknown element type, a scale of 0 or a field that
 * is not finite, lo > hi or only one of them NaN, mean/std missing, not
 * finite or std <= 0), AE_ERR_SHAPE (std_count does not divide the
 * model's input size), AE_ERR_OUT_OF_MEMORY; on failure nothing changes.
 * Since 0.1.0.
 */
AE_API ae_status ae_model_set_data_convention(ae_model *m, const ae_data_convention *c,
                                              const float *mean, const float *std);

/**
 * Reads a model's convention into `out` (ae_data_convention_init's
 * defaults when it has none). `mean` and `std` (either may be NULL)
 * receive out->std_count values when `n` equals it. Errors:
 * AE_ERR_INVALID_ARG (NULL m or out, a wrong struct_size), AE_ERR_SHAPE
 * (mean or std given and n is not the count; *out is filled).
 * Since 0.1.0.
 */
AE_API ae_status ae_model_data_convention(const ae_model *m, ae_data_convention *out, float *mean,
                                          float *std, size_t n);

/**
 * ae_dataset_conform with the convention of `m`: prepares data for a
 * trained model. Errors as ae_dataset_conform (message in
 * ae_dataset_last_error(ds)); AE_ERR_SHAPE also when the sample size is
 * not the model's input size. Since 0.1.0.
 */
AE_API ae_status ae_model_prepare_data(const ae_model *m, ae_dataset *ds);

/* ------------------------------------------------------------------------
 * Corruption (denoising), SPEC.md "Corruption"
 * ------------------------------------------------------------------------ */

/** Corruption operators (numbers frozen). Since 0.1.0. */
typedef enum ae_noise_kind {
    AE_NOISE_NONE = 0,
    /* x + mean + level * N(0, 1): level is the standard deviation. */
    AE_NOISE_GAUSSIAN = 1,
    /* Exactly floor(dim * level) entries of each sample, chosen without
       replacement, set to `value` (default 0). */
    AE_NOISE_MASK = 2,
    /* Each entry set to 0 with probability level (no rescale). */
    AE_NOISE_BERNOULLI = 3,
    /* Each entry set to 0 with probability level < 1, survivors scaled
       by 1 / (1 - level). */
    AE_NOISE_DROPOUT = 4,
    /* Each entry set to 0 with probability level/2, to 1 with level/2. */
    AE_NOISE_SALT_PEPPER = 5
} ae_noise_kind;

/**
 * A corruption for ae_corrupt. Fill it with ae_noise_init, then change
 * fields. Its fields are a model's denoising settings one to one (kind
 * AE_P_NOISE_KIND, level AE_P_NOISE_LEVEL, mean AE_P_NOISE_MEAN, value
 * AE_P_NOISE_VALUE, clip, clip_lo and clip_hi AE_P_NOISE_CLIP, _LO and
 * _HI), with the same defaults, ranges and meaning. Fields added later go
 * at the end. Since 0.1.0.
 */
typedef struct ae_noise {
    size_t struct_size;  /* sizeof(ae_noise) */
    ae_noise_kind kind;
    double level;        /* as AE_P_NOISE_LEVEL */
    double mean;         /* Gaussian mean, default 0 */
    double value;        /* masking constant, default 0 */
    int clip;            /* 0 or 1: clip results to [clip_lo, clip_hi]; default 0 */
    double clip_lo, clip_hi; /* default 0 and 1 */
} ae_noise;

/** Fills `noise` with `kind`, `level` and the defaults. Accepts NULL. Since 0.1.0. */
AE_API void ae_noise_init(ae_noise *noise, ae_noise_kind kind, double level);

/**
 * Seeds a caller-held RNG state (4 words) for ae_corrupt_rng; the model's
 * RNG is the same generator (xoshiro256**). Accepts NULL. Since 0.1.0.
 */
AE_API void ae_rng_state_seed(uint64_t state[4], uint64_t seed);

/**
 * Writes a corrupted copy of `in` ([count, dim] floats) to `out`, drawing
 * from `state` and advancing it (successive calls give fresh noise). `in`
 * is only read; `out` may equal `in` (in place) but must not otherwise
 * overlap it. Errors (by code only: there is no handle): AE_ERR_INVALID_ARG
 * (NULL, a wrong struct_size, an unknown kind), AE_ERR_RANGE (a level,
 * mean, value or clip bound out of the kind's range, clip not 0 or 1;
 * count * dim overflowing), AE_ERR_NUMERIC (a NaN or infinity in `in`).
 * On failure nothing is written and `state` is unchanged.
 * Since 0.1.0.
 */
AE_API ae_status ae_corrupt_rng(const ae_noise *noise, uint64_t state[4], const float *in,
                                float *out, size_t count, size_t dim);

/** As ae_corrupt_rng with a fresh state seeded by `seed`. Since 0.1.0. */
AE_API ae_status ae_corrupt(const ae_noise *noise, const float *in, float *out, size_t count,
                            size_t dim, uint64_t seed);

#ifdef __cplusplus
}
#endif

#endif /* LIBAE_DATA_H */
