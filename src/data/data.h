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

/* strerror_r's text (the POSIX form: handles may be used from several threads). */
typedef struct ae_errtext {
    char s[96];
} ae_errtext;
ae_errtext ae_sys_error(int err);

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

/* Reads a whole file into memory from `a` (*buf owned by the caller; a
 * 1-byte block for an empty file). Messages name the path. */
ae_status ae_read_whole_file(const ae_allocator *a, ae_errbuf *e, const char *path, uint8_t **buf,
                             size_t *len);

#endif
