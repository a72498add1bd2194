/* Internal data module: the IDX reader that dataset.c (and the fuzz target)
 * call. The parser reads through one byte source (memory or file, plain or
 * gzipped), so the same code checks files and in-memory buffers. */
#ifndef AE_DATA_H
#define AE_DATA_H

#include "core/core.h"

/* Where a reader reports: the message buffer and the file name as shown
 * (its tail, after "...", when it is long, so the message keeps its point). */
typedef struct ae_src_name {
    ae_errbuf *e;
    const char *ellipsis, *name;
} ae_src_name;

void ae_src_name_init(ae_src_name *s, ae_errbuf *e, const char *name);
/* Formats "<name>: <message>" into s->e and returns code. */
ae_status ae_src_fail(const ae_src_name *s, ae_status code, const char *fmt, ...) AE_PRINTF(3, 4);

/* Largest number of elements an IDX file may declare: 2^31 keeps every
 * byte count (x 4 for floats) within 64-bit size_t and refuses absurd
 * headers before anything sized by them is allocated. */
#define AE_IDX_MAX_ELEMS ((size_t)1 << 31)

/* What the caller expects the file to hold. */
typedef enum ae_idx_role {
    AE_IDX_SAMPLES = 0, /* images (3 dims) or vectors (2 dims), as floats */
    AE_IDX_LABELS = 1   /* 1 dim, one label per sample, as int32 */
} ae_idx_role;

/* One parsed IDX file. Exactly one of values / labels is set on success. */
typedef struct ae_idx {
    size_t count;    /* first dimension: number of samples */
    size_t shape[3]; /* per-sample shape C, H, W (1, 1, 1 for labels) */
    size_t dim;      /* shape[0] * shape[1] * shape[2] */
    float *values;   /* [count, dim], AE_IDX_SAMPLES */
    int32_t *labels; /* [count], AE_IDX_LABELS */
    ae_elem_type elem; /* what the values were stored as */
} ae_idx;

/* Parses an IDX file held in memory, gzipped or plain. `name` appears at
 * the start of every error message. On success *out owns buffers from `a`
 * (free with ae_idx_free); on failure *out is zeroed, nothing stays
 * allocated, and the message is in `e`. */
ae_status ae_idx_parse_mem(const ae_allocator *a, ae_errbuf *e, const char *name, const void *buf,
                           size_t len, ae_idx_role role, ae_idx *out);

/* The same for a file: AE_ERR_IO when it cannot be opened or read. */
ae_status ae_idx_read_file(const ae_allocator *a, ae_errbuf *e, const char *path, ae_idx_role role,
                           ae_idx *out);

/* Frees what a successful parse allocated and zeroes *x. Accepts NULL. */
void ae_idx_free(const ae_allocator *a, ae_idx *x);

/* The .npy and CSV readers fill the same struct (ae_idx: count, shape,
 * values, and labels for a CSV with a label column). Each parses from
 * memory; `name` starts every message; on failure *out is zeroed and
 * nothing stays allocated. */
ae_status ae_npy_parse_mem(const ae_allocator *a, ae_errbuf *e, const char *name, const void *buf,
                           size_t len, ae_idx *out);

/* Bits of `flags` are AE_CSV_HEADER and AE_CSV_LABEL_FIRST. */
ae_status ae_csv_parse_mem(const ae_allocator *a, ae_errbuf *e, const char *name, const void *buf,
                           size_t len, unsigned flags, ae_idx *out);

/* Writes count samples of shape c x h x w as a version 1.0 '<f4' .npy
 * file, through a temporary file renamed into place. */
ae_status ae_npy_write_file(const ae_allocator *a, ae_errbuf *e, const char *path,
                            const float *data, size_t count, const size_t shape[3]);

/* Element types of a .npy file: those of samples, and AE_NPY_OTHER for
 * the other integer and float dtypes labels may have. */
typedef enum ae_npy_type { AE_NPY_F4 = 0, AE_NPY_F8 = 1, AE_NPY_U1 = 2, AE_NPY_OTHER = 3 } ae_npy_type;

/* A parsed .npy header: the data starts at `offset` and holds `elems`
 * values of `item` bytes, `count` samples of shape[0..3). The caller sets
 * max_elems (the largest element count accepted) and any_dtype before the
 * call: 0 accepts the sample dtypes only, 1 also every integer dtype and
 * big-endian floats (AE_NPY_OTHER, described by kind 'i', 'u' or 'f',
 * item and big). */
typedef struct ae_npy_info {
    size_t max_elems;
    int any_dtype;
    ae_npy_type type;
    char kind;
    int big;
    size_t item, offset, elems, count, ndim;
    size_t shape[3];
} ae_npy_info;

/* Parses a .npy file of labels held in memory: shape [N] or [N, 1], any
 * integer dtype of either byte order, or floats holding whole numbers;
 * every value must fit int32 (the message gives the index of one that
 * does not). On success out->labels ([count]) is from `a`. */
ae_status ae_npy_parse_labels(const ae_allocator *a, ae_errbuf *e, const char *name,
                              const void *buf, size_t len, ae_idx *out);

/* Parses the header of a .npy file whose first `len` bytes are in buf
 * (the data need not be present). */
ae_status ae_npy_parse_header(ae_errbuf *e, const char *name, const void *buf, size_t len,
                              ae_npy_info *out);

/* As ae_npy_write_file for data of `type` (uint8 image caches). */
ae_status ae_npy_write_typed(const ae_allocator *a, ae_errbuf *e, const char *path,
                             ae_npy_type type, const void *data, size_t count,
                             const size_t shape[3]);

/* ---- file-backed rows (source.c) ----
 * A .npy file kept on disk and read row by row with pread, converted to
 * float on the way; shared (reference counted) by a dataset and its
 * subsets, so a subset copies no rows. */
typedef struct ae_rowfile ae_rowfile;

/* Opens `path` (a regular file) and checks its header and size. */
ae_status ae_rowfile_open(const ae_allocator *a, ae_errbuf *e, const char *path, ae_rowfile **out);
ae_rowfile *ae_rowfile_ref(ae_rowfile *f);
void ae_rowfile_unref(ae_rowfile *f); /* accepts NULL */
size_t ae_rowfile_count(const ae_rowfile *f);
const size_t *ae_rowfile_shape(const ae_rowfile *f);
ae_npy_type ae_rowfile_type(const ae_rowfile *f);
/* Reads rows rows[0..n) (or start..start+n when rows is NULL) as floats
 * into dst ([n, dim]), x * mul + add. AE_ERR_IO on a read error or a file
 * that shrank, AE_ERR_FORMAT on a non-finite value; messages name the
 * file and the row. */
ae_status ae_rowfile_read(ae_rowfile *f, ae_errbuf *e, const size_t *rows, size_t start, size_t n,
                          float mul, float add, float *dst);

/* Opens a file for reading, as every data loader does: a regular file only
 * (a FIFO or device is refused without blocking; ae_file_open_read).
 * Returns the descriptor or -1 with the message, naming the file, in e. */
int ae_open_regular(ae_errbuf *e, const char *path, size_t *size);

/* ---- image decoding (image.c) ----
 * Decodes a PNG or JPEG held in memory to 8-bit pixels, interleaved
 * (H x W x channels), converted to `channels` (1 gray, 3 RGB, 4 RGBA):
 * gray <- RGB by ITU-R 601 luma as PIL's convert("L"), alpha dropped (or
 * 255 added), palettes expanded, 16-bit samples reduced to their high
 * byte. *pix is from `a` (owned by the caller). `name` starts messages.
 * AE_ERR_FORMAT for a corrupt, truncated or non-image input,
 * AE_ERR_UNSUPPORTED for an image format not built in. */
ae_status ae_png_decode(const ae_allocator *a, ae_errbuf *e, const char *name, const void *buf,
                        size_t len, int channels, uint8_t **pix, size_t *h, size_t *w);
ae_status ae_jpeg_decode(const ae_allocator *a, ae_errbuf *e, const char *name, const void *buf,
                         size_t len, int channels, uint8_t **pix, size_t *h, size_t *w);
/* Either, told by the magic bytes. */
ae_status ae_image_decode(const ae_allocator *a, ae_errbuf *e, const char *name, const void *buf,
                          size_t len, int channels, uint8_t **pix, size_t *h, size_t *w);

/* Resizes interleaved 8-bit pixels (sh x sw x c) to planar floats in
 * [0, 1] (c x dh x dw): the window at (oy, ox) of the image resized to
 * rh x rw (rh >= oy + dh, rw >= ox + dw), so a resize followed by a centre
 * crop is one pass. Bilinear with half-pixel centres and no antialiasing,
 * as torch.nn.functional.interpolate(mode="bilinear", align_corners=False)
 * on the values / 255. */
void ae_image_resize(const uint8_t *src, size_t sh, size_t sw, size_t c, size_t rh, size_t rw,
                     size_t oy, size_t ox, float *dst, size_t dh, size_t dw);

/* ---- the dataset's internal side ---- */
/* The handle, shared by dataset.c (loading, scaling, batching) and
 * convention.c (value conventions). */
struct ae_dataset {
    ae_allocator alloc;
    ae_errbuf err;
    size_t count, dim;
    size_t shape[3]; /* C, H, W */
    float *data;     /* [count, dim], NULL when empty */
    int32_t *labels; /* [count], NULL when there are none */
    int borrowed;    /* data and labels are the caller's: never written or freed */
    float *st_mean, *st_std; /* standardisation applied, st_n values each */
    size_t st_n;
    ae_rowfile *file; /* file-backed rows (data is NULL), shared with subsets */
    size_t *rows;     /* the file row of each sample, or NULL: row0 + i */
    size_t row0;
    float mul, add;   /* x * mul + add, applied to file rows as read */
    /* The value convention (convention.c): the stored element type, and
     * the scale and offset applied since loading (for file-backed rows
     * the same as mul and add, kept in double). */
    ae_elem_type elem;
    double t_scale, t_offset;
    char **classes;   /* class folder names (image folders), nclasses */
    size_t nclasses, skipped;
};

/* Rows [start, start + n) as floats, the one way the fit loop reads a
 * dataset: *out points into the dataset when its rows are in memory, else
 * the rows are read into buf ([n, dim]) and *out = buf. The range must be
 * valid. Errors (file-backed rows: AE_ERR_IO, AE_ERR_FORMAT) leave the
 * message in the dataset's last_error. */
ae_status ae_dataset_rows_view(const ae_dataset *ds, size_t start, size_t n, float *buf,
                               const float **out);

/* Before values of a borrowed dataset change: copies them into its own
 * storage (AE_ERR_OUT_OF_MEMORY, message naming `who`). */
ae_status ae_dataset_own(ae_dataset *ds, const char *who);

/* For the image-folder loader (folder.c). */
const ae_allocator *ae_dataset_allocator(const ae_dataset *ds);
ae_errbuf *ae_dataset_errbuf(ae_dataset *ds);
/* Replaces what ds held with x (values in memory, or file-backed rows from
 * `file` when it is not NULL, whose count and shape x repeats) and its
 * labels; takes over x, the file reference and `classes` (nclasses names
 * from the dataset's allocator). */
void ae_dataset_adopt_images(ae_dataset *ds, ae_idx *x, ae_rowfile *file, char **classes,
                             size_t nclasses, size_t skipped);

/* Reads a whole file into memory from `a` (*buf owned by the caller; a
 * 1-byte block for an empty file). Messages name the path. */
ae_status ae_read_whole_file(const ae_allocator *a, ae_errbuf *e, const char *path, uint8_t **buf,
                             size_t *len);

#endif
