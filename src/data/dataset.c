/* The dataset handle: float samples [count, dim] with optional int32 labels;
 * loading (IDX, .npy, CSV, caller memory), saving .npy, scaling,
 * standardisation, shuffling, splitting, gathering and batching.
 *
 * The rows live in one of two places: in memory (`data`, owned or
 * borrowed), or in a .npy file read on demand (`file`, source.c), where
 * sample i is the file's row rows[i] (or row0 + i when rows is NULL) and
 * the scale and standardisation are applied as rows are read. Every reader
 * of rows goes through ae_dataset_rows / gather / get_batch, so the fit
 * loop never knows where rows live. */
#include <math.h>
#include <string.h>

#include "data.h"


ae_status ae_dataset_create(ae_dataset **out, const ae_allocator *alloc) {
    if (!out) return AE_ERR_INVALID_ARG;
    *out = NULL;
    ae_allocator a;
    if (ae_allocator_init(&a, alloc) != AE_OK) return AE_ERR_INVALID_ARG;
    ae_dataset *ds = ae_alloc(&a, sizeof *ds);
    if (!ds) return AE_ERR_OUT_OF_MEMORY;
    memset(ds, 0, sizeof *ds);
    ds->alloc = a;
    ds->mul = 1.0f;
    ds->t_scale = 1.0;
    *out = ds;
    return AE_OK;
}

static void clear(ae_dataset *ds) {
    if (!ds->borrowed) {
        ae_free(&ds->alloc, ds->data);
        ae_free(&ds->alloc, ds->labels);
    }
    ae_free(&ds->alloc, ds->st_mean);
    ae_free(&ds->alloc, ds->st_std);
    ae_rowfile_unref(ds->file);
    ae_free(&ds->alloc, ds->rows);
    for (size_t i = 0; i < ds->nclasses; i++) ae_free(&ds->alloc, ds->classes[i]);
    ae_free(&ds->alloc, ds->classes);
    ds->file = NULL;
    ds->rows = NULL;
    ds->row0 = 0;
    ds->mul = 1.0f;
    ds->add = 0.0f;
    ds->elem = AE_ELEM_UNKNOWN;
    ds->t_scale = 1.0;
    ds->t_offset = 0.0;
    ds->classes = NULL;
    ds->nclasses = ds->skipped = 0;
    ds->data = NULL;
    ds->labels = NULL;
    ds->st_mean = ds->st_std = NULL;
    ds->st_n = 0;
    ds->borrowed = 0;
    ds->count = ds->dim = 0;
    ds->shape[0] = ds->shape[1] = ds->shape[2] = 0;
}

/* Takes over a parsed result (values and labels owned from ds->alloc). */
static void adopt(ae_dataset *ds, ae_idx *x) {
    clear(ds);
    ds->count = x->count;
    ds->dim = x->dim;
    memcpy(ds->shape, x->shape, sizeof ds->shape);
    ds->data = x->values;
    ds->labels = x->labels;
    ds->elem = x->elem;
    memset(x, 0, sizeof *x);
}

/* Before changing values of a borrowed dataset: make them its own. */
ae_status ae_dataset_own(ae_dataset *ds, const char *who) {
    if (!ds->borrowed) return AE_OK;
    size_t n = ds->count * ds->dim;
    float *d = ae_alloc(&ds->alloc, n * sizeof *d);
    int32_t *l = ds->labels ? ae_alloc(&ds->alloc, ds->count * sizeof *l) : NULL;
    if (!d || (ds->labels && !l)) {
        ae_free(&ds->alloc, d);
        ae_free(&ds->alloc, l);
        return ae_error(&ds->err, AE_ERR_OUT_OF_MEMORY,
                        "%s: out of memory copying the borrowed data (%zu floats)", who, n);
    }
    memcpy(d, ds->data, n * sizeof *d);
    if (l) memcpy(l, ds->labels, ds->count * sizeof *l);
    ds->data = d;
    ds->labels = l;
    ds->borrowed = 0;
    return AE_OK;
}

/* ---- file-backed rows ---- */

/* Which statistic feature j uses, for n shared values. */
static size_t stat_index(const ae_dataset *ds, size_t n, size_t j) {
    if (n == 1) return 0;
    if (n == ds->dim) return j;
    return j / (ds->shape[1] * ds->shape[2]); /* per channel */
}

/* Reads samples idx[0..n) (start .. start + n when idx is NULL) of a
 * file-backed dataset into dst, scaled and standardised. */
static ae_status file_read(ae_dataset *ds, const size_t *idx, size_t start, size_t n, float *dst) {
    ae_status st = AE_OK;
    if (!idx)
        st = ds->rows ? ae_rowfile_read(ds->file, &ds->err, ds->rows + start, 0, n, ds->mul, ds->add, dst)
                      : ae_rowfile_read(ds->file, &ds->err, NULL, ds->row0 + start, n, ds->mul,
                                        ds->add, dst);
    for (size_t i = 0; idx && i < n && st == AE_OK; i++) {
        size_t r = ds->rows ? ds->rows[idx[i]] : ds->row0 + idx[i];
        st = ae_rowfile_read(ds->file, &ds->err, NULL, r, 1, ds->mul, ds->add, dst + i * ds->dim);
    }
    if (st || !ds->st_n) return st;
    for (size_t s = 0; s < n; s++)
        for (size_t j = 0; j < ds->dim; j++) {
            size_t k = stat_index(ds, ds->st_n, j);
            float *x = dst + s * ds->dim + j;
            *x = (*x - ds->st_mean[k]) / ds->st_std[k];
        }
    return AE_OK;
}

ae_status ae_dataset_rows_view(const ae_dataset *ds_in, size_t start, size_t n, float *buf,
                               const float **out) {
    ae_dataset *ds = (ae_dataset *)(uintptr_t)ds_in; /* the message buffer is written */
    if (!ds->file) {
        *out = ds->data + start * ds->dim;
        return AE_OK;
    }
    ae_status st = file_read(ds, NULL, start, n, buf);
    *out = st ? NULL : buf;
    return st;
}

int ae_dataset_file_backed(const ae_dataset *ds) { return ds && ds->file; }

ae_status ae_dataset_rows(const ae_dataset *ds_in, size_t start, size_t n, float *dst,
                          int32_t *labels) {
    static const char who[] = "ae_dataset_rows";
    if (!ds_in) return AE_ERR_INVALID_ARG;
    ae_dataset *ds = (ae_dataset *)(uintptr_t)ds_in; /* only the message buffer is written */
    if (n == 0) return AE_OK;
    if (!dst) return ae_error(&ds->err, AE_ERR_INVALID_ARG, "%s: dst is NULL", who);
    if (start > ds->count || n > ds->count - start)
        return ae_error(&ds->err, AE_ERR_RANGE, "%s: rows %zu..%zu are out of range (%zu samples)",
                        who, start, start + n, ds->count);
    if (ds->file) {
        ae_status st = file_read(ds, NULL, start, n, dst);
        if (st) return st;
    } else {
        memcpy(dst, ds->data + start * ds->dim, n * ds->dim * sizeof *dst);
    }
    if (labels && ds->labels) memcpy(labels, ds->labels + start, n * sizeof *labels);
    return AE_OK;
}

ae_status ae_dataset_open_npy(ae_dataset *ds, const char *path) {
    if (!ds) return AE_ERR_INVALID_ARG;
    if (!path) return ae_error(&ds->err, AE_ERR_INVALID_ARG, "ae_dataset_open_npy: path is NULL");
    ae_rowfile *f;
    ae_status st = ae_rowfile_open(&ds->alloc, &ds->err, path, &f);
    if (st) return st;
    clear(ds);
    ds->file = f;
    ds->count = ae_rowfile_count(f);
    memcpy(ds->shape, ae_rowfile_shape(f), sizeof ds->shape);
    ds->dim = ds->shape[0] * ds->shape[1] * ds->shape[2];
    ds->elem = ae_rowfile_type(f) == AE_NPY_U1 ? AE_ELEM_UINT8 : AE_ELEM_FLOAT;
    return AE_OK;
}

void ae_dataset_destroy(ae_dataset *ds) {
    if (!ds) return;
    clear(ds);
    ae_allocator a = ds->alloc;
    ae_free(&a, ds);
}

const char *ae_dataset_last_error(const ae_dataset *ds) { return ds ? ds->err.msg : ""; }

ae_status ae_dataset_load_idx(ae_dataset *ds, const char *images_path, const char *labels_path) {
    if (!ds) return AE_ERR_INVALID_ARG;
    if (!images_path)
        return ae_error(&ds->err, AE_ERR_INVALID_ARG, "ae_dataset_load_idx: images_path is NULL");
    /* Load into new buffers and swap only when everything succeeded. */
    ae_idx img, lab;
    memset(&lab, 0, sizeof lab);
    ae_status st = ae_idx_read_file(&ds->alloc, &ds->err, images_path, AE_IDX_SAMPLES, &img);
    if (st != AE_OK) return st;
    if (labels_path) {
        st = ae_idx_read_file(&ds->alloc, &ds->err, labels_path, AE_IDX_LABELS, &lab);
        if (st == AE_OK && lab.count != img.count)
            st = ae_error(&ds->err, AE_ERR_FORMAT, "%s: %zu labels, but %s has %zu samples",
                          labels_path, lab.count, images_path, img.count);
        if (st != AE_OK) {
            ae_idx_free(&ds->alloc, &img);
            ae_idx_free(&ds->alloc, &lab);
            return st;
        }
    }
    img.labels = lab.labels;
    adopt(ds, &img);
    return AE_OK;
}

size_t ae_dataset_count(const ae_dataset *ds) { return ds ? ds->count : 0; }

size_t ae_dataset_dim(const ae_dataset *ds) { return ds ? ds->dim : 0; }

ae_status ae_dataset_shape(const ae_dataset *ds, size_t *channels, size_t *height, size_t *width) {
    if (!ds) return AE_ERR_INVALID_ARG;
    if (channels) *channels = ds->shape[0];
    if (height) *height = ds->shape[1];
    if (width) *width = ds->shape[2];
    return AE_OK;
}

const float *ae_dataset_data(const ae_dataset *ds) { return ds ? ds->data : NULL; }

const int32_t *ae_dataset_labels(const ae_dataset *ds) { return ds ? ds->labels : NULL; }

/* Replaces the labels with `lab` (owned from ds->alloc, or NULL). */
static ae_status take_labels(ae_dataset *ds, int32_t *lab, const char *who) {
    ae_status st = ae_dataset_own(ds, who);
    if (st) {
        ae_free(&ds->alloc, lab);
        return st;
    }
    ae_free(&ds->alloc, ds->labels);
    ds->labels = lab;
    return AE_OK;
}

ae_status ae_dataset_set_labels(ae_dataset *ds, const int32_t *labels, size_t count) {
    static const char who[] = "ae_dataset_set_labels";
    if (!ds) return AE_ERR_INVALID_ARG;
    if (!ds->data && !ds->file) return ae_error(&ds->err, AE_ERR_STATE, "%s: the dataset is empty", who);
    if (count != ds->count)
        return ae_error(&ds->err, AE_ERR_SHAPE, "%s: %zu labels for %zu samples", who, count,
                        ds->count);
    int32_t *lab = NULL;
    if (labels) {
        lab = ae_alloc(&ds->alloc, count * sizeof *lab);
        if (!lab) return ae_error(&ds->err, AE_ERR_OUT_OF_MEMORY, "%s: out of memory", who);
        memcpy(lab, labels, count * sizeof *lab);
    }
    return take_labels(ds, lab, who);
}

ae_status ae_dataset_load_labels(ae_dataset *ds, const char *path) {
    static const char who[] = "ae_dataset_load_labels";
    if (!ds) return AE_ERR_INVALID_ARG;
    if (!path) return ae_error(&ds->err, AE_ERR_INVALID_ARG, "%s: path is NULL", who);
    if (!ds->data && !ds->file) return ae_error(&ds->err, AE_ERR_STATE, "%s: the dataset is empty", who);
    uint8_t *buf;
    size_t len;
    ae_status st = ae_read_whole_file(&ds->alloc, &ds->err, path, &buf, &len);
    if (st) return st;
    ae_idx x;
    memset(&x, 0, sizeof x);
    if (len >= 6 && memcmp(buf, "\x93NUMPY", 6) == 0) {
        st = ae_npy_parse_labels(&ds->alloc, &ds->err, path, buf, len, &x);
    } else if (len >= 4 && ((buf[0] == 0x1f && buf[1] == 0x8b) ||
                            (buf[0] == 0 && buf[1] == 0 && buf[2] == 0x08))) {
        st = ae_idx_parse_mem(&ds->alloc, &ds->err, path, buf, len, AE_IDX_LABELS, &x);
    } else {
        st = ae_csv_parse_mem(&ds->alloc, &ds->err, path, buf, len, 0, &x);
        if (!st && x.dim != 1)
            st = ae_error(&ds->err, AE_ERR_FORMAT, "%s: %zu values a line; labels are one integer a line",
                          path, x.dim);
        if (!st) {
            x.labels = ae_alloc(&ds->alloc, x.count * sizeof *x.labels);
            if (!x.labels) st = ae_error(&ds->err, AE_ERR_OUT_OF_MEMORY, "%s: out of memory", who);
        }
        for (size_t i = 0; !st && i < x.count; i++) {
            float v = x.values[i];
            if (v != floorf(v) || !(v >= -2147483648.0f && v < 2147483648.0f))
                st = ae_error(&ds->err, AE_ERR_FORMAT,
                              "%s: label %zu (%g) is not a whole number in the int32 range", path, i,
                              (double)v);
            else
                x.labels[i] = (int32_t)v;
        }
    }
    ae_free(&ds->alloc, buf);
    if (!st && x.count != ds->count)
        st = ae_error(&ds->err, AE_ERR_FORMAT, "%s: %zu labels, but the dataset has %zu samples", path,
                      x.count, ds->count);
    if (st) {
        ae_idx_free(&ds->alloc, &x);
        return st;
    }
    int32_t *lab = x.labels;
    x.labels = NULL;
    ae_idx_free(&ds->alloc, &x);
    return take_labels(ds, lab, who);
}

ae_status ae_dataset_scale(ae_dataset *ds, float mul, float add) {
    if (!ds) return AE_ERR_INVALID_ARG;
    if (!isfinite(mul) || !isfinite(add))
        return ae_error(&ds->err, AE_ERR_INVALID_ARG,
                        "ae_dataset_scale: mul (%g) and add (%g) must be finite", (double)mul,
                        (double)add);
    if (ds->file) {
        /* Composed into the transform applied as rows are read (each read
           checks that the results are finite). */
        if (ds->st_n)
            return ae_error(&ds->err, AE_ERR_STATE,
                            "ae_dataset_scale: a file-backed dataset is scaled before it is standardised");
        float m2 = ds->mul * mul, a2 = ds->add * mul + add;
        if (!isfinite(m2) || !isfinite(a2))
            return ae_error(&ds->err, AE_ERR_INVALID_ARG, "ae_dataset_scale: the combined scale overflows");
        ds->mul = m2;
        ds->add = a2;
        ds->t_scale *= mul;
        ds->t_offset = ds->t_offset * mul + add;
        return AE_OK;
    }
    if (!ds->data)
        return ae_error(&ds->err, AE_ERR_STATE, "ae_dataset_scale: the dataset is empty");
    float *x = ds->data;
    size_t n = ds->count * ds->dim;
    /* x * mul + add is monotonic in x, so if the smallest and largest values
     * map to finite floats every value does: check before changing any. */
    float lo = x[0], hi = x[0];
    for (size_t i = 1; i < n; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    float ylo = lo * mul + add, yhi = hi * mul + add;
    if (!isfinite(ylo) || !isfinite(yhi))
        return ae_error(&ds->err, AE_ERR_INVALID_ARG,
                        "ae_dataset_scale: x * %g + %g overflows float for values in [%g, %g]",
                        (double)mul, (double)add, (double)lo, (double)hi);
    ae_status st = ae_dataset_own(ds, "ae_dataset_scale");
    if (st) return st;
    x = ds->data;
    for (size_t i = 0; i < n; i++) x[i] = x[i] * mul + add;
    ds->t_scale *= mul;
    ds->t_offset = ds->t_offset * mul + add;
    return AE_OK;
}

ae_status ae_dataset_gather(ae_dataset *ds, const size_t *idx, size_t n, float *dst,
                            int32_t *labels) {
    if (!ds) return AE_ERR_INVALID_ARG;
    if (n == 0) return AE_OK;
    if (!idx || !dst)
        return ae_error(&ds->err, AE_ERR_INVALID_ARG, "ae_dataset_gather: %s is NULL",
                        !idx ? "idx" : "dst");
    for (size_t i = 0; i < n; i++)
        if (idx[i] >= ds->count)
            return ae_error(&ds->err, AE_ERR_RANGE,
                            "ae_dataset_gather: idx[%zu] = %zu is out of range (%zu samples)", i,
                            idx[i], ds->count);
    if (ds->file) {
        ae_status st = file_read(ds, idx, 0, n, dst);
        if (st) return st;
    } else {
        for (size_t i = 0; i < n; i++)
            memcpy(dst + i * ds->dim, ds->data + idx[i] * ds->dim, ds->dim * sizeof *dst);
    }
    if (labels && ds->labels)
        for (size_t i = 0; i < n; i++) labels[i] = ds->labels[idx[i]];
    return AE_OK;
}

/* Batches walk the rows in their stored order (ae_dataset_shuffle reorders
 * them in place), so a batch is one contiguous block: copied, never
 * allocated. */
static size_t batch_total(size_t n, size_t bs, int drop_last) {
    return drop_last ? n / bs : n / bs + (n % bs != 0);
}

ae_status ae_dataset_batch_count(const ae_dataset *ds_in, size_t batch_size, int drop_last,
                                 size_t *count) {
    static const char who[] = "ae_dataset_batch_count";
    if (!ds_in) return AE_ERR_INVALID_ARG;
    ae_dataset *ds = (ae_dataset *)(uintptr_t)ds_in; /* only the message buffer is written */
    if (!count) return ae_error(&ds->err, AE_ERR_INVALID_ARG, "%s: count is NULL", who);
    if (batch_size == 0)
        return ae_error(&ds->err, AE_ERR_INVALID_ARG, "%s: batch_size is 0", who);
    *count = batch_total(ds->count, batch_size, drop_last);
    return AE_OK;
}

ae_status ae_dataset_get_batch(const ae_dataset *ds_in, size_t index, size_t batch_size,
                               int drop_last, float *dst, int32_t *labels, size_t *rows) {
    static const char who[] = "ae_dataset_get_batch";
    if (!ds_in) return AE_ERR_INVALID_ARG;
    ae_dataset *ds = (ae_dataset *)(uintptr_t)ds_in; /* only the message buffer is written */
    if (!dst || !rows)
        return ae_error(&ds->err, AE_ERR_INVALID_ARG, "%s: %s is NULL", who, !dst ? "dst" : "rows");
    if (batch_size == 0)
        return ae_error(&ds->err, AE_ERR_INVALID_ARG, "%s: batch_size is 0", who);
    size_t nb = batch_total(ds->count, batch_size, drop_last);
    if (index >= nb)
        return ae_error(&ds->err, AE_ERR_RANGE,
                        "%s: batch %zu is out of range (%zu samples in %zu batches of %zu%s)", who,
                        index, ds->count, nb, batch_size, drop_last ? ", drop_last" : "");
    /* index < nb, so start = index * batch_size < count: no overflow. */
    size_t start = index * batch_size, b = ds->count - start;
    if (b > batch_size) b = batch_size;
    if (ds->file) {
        ae_status st = file_read(ds, NULL, start, b, dst);
        if (st) return st;
    } else {
        memcpy(dst, ds->data + start * ds->dim, b * ds->dim * sizeof *dst);
    }
    if (labels && ds->labels) memcpy(labels, ds->labels + start, b * sizeof *labels);
    *rows = b;
    return AE_OK;
}

/* ---- memory, reshape ---- */

/* 1 when the byte ranges [p, p+n) and [q, q+m) share a byte. Compared as
 * integers: the ranges may belong to different objects. */
static int overlaps(const void *p, size_t n, const void *q, size_t m) {
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)q;
    return p && q && n && m && a < b + m && b < a + n;
}

ae_status ae_dataset_from_memory(ae_dataset *ds, const float *data, const int32_t *labels,
                                 size_t count, size_t channels, size_t height, size_t width,
                                 ae_data_mode mode) {
    static const char who[] = "ae_dataset_from_memory";
    if (!ds) return AE_ERR_INVALID_ARG;
    if (!data) return ae_error(&ds->err, AE_ERR_INVALID_ARG, "%s: data is NULL", who);
    if (mode != AE_DATA_COPY && mode != AE_DATA_BORROW)
        return ae_error(&ds->err, AE_ERR_INVALID_ARG, "%s: unknown mode %d", who, (int)mode);
    size_t dim, n, bytes;
    if (!count || !channels || !height || !width)
        return ae_error(&ds->err, AE_ERR_RANGE, "%s: count (%zu) and shape %zu x %zu x %zu must be nonzero",
                        who, count, channels, height, width);
    if (ae_mul_overflow(channels, height, &dim) || ae_mul_overflow(dim, width, &dim) ||
        ae_mul_overflow(dim, count, &n) || ae_mul_overflow(n, sizeof(float), &bytes))
        return ae_error(&ds->err, AE_ERR_RANGE, "%s: %zu samples of %zu x %zu x %zu overflow", who,
                        count, channels, height, width);
    size_t bad = ae_first_nonfinite(data, n);
    if (bad < n)
        return ae_error(&ds->err, AE_ERR_NUMERIC,
                        "%s: value %zu (sample %zu, feature %zu) is %g where data must be finite",
                        who, bad, bad / dim, bad % dim, (double)data[bad]);
    ae_idx x;
    memset(&x, 0, sizeof x);
    x.count = count;
    x.dim = dim;
    x.shape[0] = channels;
    x.shape[1] = height;
    x.shape[2] = width;
    if (mode == AE_DATA_BORROW && !ds->borrowed &&
        (overlaps(data, bytes, ds->data, ds->count * ds->dim * sizeof(float)) ||
         overlaps(data, bytes, ds->labels, ds->labels ? ds->count * sizeof(int32_t) : 0) ||
         (labels && (overlaps(labels, count * sizeof(int32_t), ds->data,
                              ds->count * ds->dim * sizeof(float)) ||
                     overlaps(labels, count * sizeof(int32_t), ds->labels,
                              ds->labels ? ds->count * sizeof(int32_t) : 0)))))
        return ae_error(&ds->err, AE_ERR_INVALID_ARG,
                        "%s: cannot borrow the dataset's own storage, which loading frees; "
                        "use AE_DATA_COPY", who);
    if (mode == AE_DATA_BORROW) {
        clear(ds);
        ds->count = count;
        ds->dim = dim;
        memcpy(ds->shape, x.shape, sizeof ds->shape);
        ds->data = (float *)(uintptr_t)data; /* never written while borrowed */
        ds->labels = (int32_t *)(uintptr_t)labels;
        ds->borrowed = 1;
        ds->elem = AE_ELEM_FLOAT;
        return AE_OK;
    }
    x.values = ae_alloc(&ds->alloc, bytes);
    x.labels = labels ? ae_alloc(&ds->alloc, count * sizeof(int32_t)) : NULL;
    if (!x.values || (labels && !x.labels)) {
        ae_free(&ds->alloc, x.values);
        ae_free(&ds->alloc, x.labels);
        return ae_error(&ds->err, AE_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu floats", who, n);
    }
    memcpy(x.values, data, bytes);
    if (labels) memcpy(x.labels, labels, count * sizeof(int32_t));
    x.elem = AE_ELEM_FLOAT;
    adopt(ds, &x);
    return AE_OK;
}

ae_status ae_dataset_reshape(ae_dataset *ds, size_t channels, size_t height, size_t width) {
    if (!ds) return AE_ERR_INVALID_ARG;
    if (!ds->data && !ds->file)
        return ae_error(&ds->err, AE_ERR_STATE, "ae_dataset_reshape: the dataset is empty");
    size_t d;
    if (ae_mul_overflow(channels, height, &d) || ae_mul_overflow(d, width, &d) || d != ds->dim)
        return ae_error(&ds->err, AE_ERR_SHAPE,
                        "ae_dataset_reshape: %zu x %zu x %zu does not hold the %zu values of a sample",
                        channels, height, width, ds->dim);
    if (ds->st_n > 1 && ds->st_n != ds->dim && ds->st_n == ds->shape[0] && channels != ds->shape[0])
        return ae_error(&ds->err, AE_ERR_SHAPE,
                        "ae_dataset_reshape: the data was standardised per channel (%zu channels)",
                        ds->shape[0]);
    ds->shape[0] = channels;
    ds->shape[1] = height;
    ds->shape[2] = width;
    return AE_OK;
}

/* ---- .npy and CSV ---- */

ae_status ae_dataset_load_npy(ae_dataset *ds, const char *path) {
    if (!ds) return AE_ERR_INVALID_ARG;
    if (!path) return ae_error(&ds->err, AE_ERR_INVALID_ARG, "ae_dataset_load_npy: path is NULL");
    uint8_t *buf;
    size_t len;
    ae_status st = ae_read_whole_file(&ds->alloc, &ds->err, path, &buf, &len);
    if (st) return st;
    ae_idx x;
    st = ae_npy_parse_mem(&ds->alloc, &ds->err, path, buf, len, &x);
    ae_free(&ds->alloc, buf);
    if (st) return st;
    adopt(ds, &x);
    return AE_OK;
}

ae_status ae_dataset_save_npy(ae_dataset *ds, const char *path) {
    if (!ds) return AE_ERR_INVALID_ARG;
    if (!path) return ae_error(&ds->err, AE_ERR_INVALID_ARG, "ae_dataset_save_npy: path is NULL");
    if (!ds->data && !ds->file)
        return ae_error(&ds->err, AE_ERR_STATE, "ae_dataset_save_npy: the dataset is empty");
    if (!ds->file) return ae_npy_write_file(&ds->alloc, &ds->err, path, ds->data, ds->count, ds->shape);
    /* The one writer takes the file's bytes in memory: the rows are read first. */
    size_t bytes;
    float *all = ae_mul_overflow(ds->count * ds->dim, sizeof(float), &bytes) ? NULL
                                                                             : ae_alloc(&ds->alloc, bytes);
    if (!all)
        return ae_error(&ds->err, AE_ERR_OUT_OF_MEMORY,
                        "ae_dataset_save_npy: out of memory for the %zu rows of a file-backed dataset",
                        ds->count);
    ae_status st = file_read(ds, NULL, 0, ds->count, all);
    if (!st) st = ae_npy_write_file(&ds->alloc, &ds->err, path, all, ds->count, ds->shape);
    ae_free(&ds->alloc, all);
    return st;
}

ae_status ae_dataset_load_csv(ae_dataset *ds, const char *path, unsigned flags) {
    if (!ds) return AE_ERR_INVALID_ARG;
    if (!path) return ae_error(&ds->err, AE_ERR_INVALID_ARG, "ae_dataset_load_csv: path is NULL");
    if (flags & ~(unsigned)(AE_CSV_HEADER | AE_CSV_LABEL_FIRST))
        return ae_error(&ds->err, AE_ERR_INVALID_ARG, "ae_dataset_load_csv: unknown flags 0x%x", flags);
    uint8_t *buf;
    size_t len;
    ae_status st = ae_read_whole_file(&ds->alloc, &ds->err, path, &buf, &len);
    if (st) return st;
    ae_idx x;
    st = ae_csv_parse_mem(&ds->alloc, &ds->err, path, buf, len, flags, &x);
    ae_free(&ds->alloc, buf);
    if (st) return st;
    adopt(ds, &x);
    return AE_OK;
}

/* ---- standardisation ---- */

/* The mean and population std of a file-backed dataset, read in chunks,
 * two passes in double as for data in memory. */
static ae_status file_stats(ae_dataset *ds, size_t n, double *acc, float *mu, float *sd) {
    size_t chunk = 256, dim = ds->dim;
    float *buf = ae_alloc(&ds->alloc, chunk * dim * sizeof *buf);
    if (!buf) return ae_error(&ds->err, AE_ERR_OUT_OF_MEMORY, "ae_dataset_standardize: out of memory");
    double per = (double)ds->count * (double)dim / (double)n;
    ae_status st = AE_OK;
    for (int pass = 0; pass < 2 && !st; pass++) {
        for (size_t s0 = 0; s0 < ds->count && !st; s0 += chunk) {
            size_t b = ds->count - s0 < chunk ? ds->count - s0 : chunk;
            st = file_read(ds, NULL, s0, b, buf);
            for (size_t s = 0; !st && s < b; s++)
                for (size_t j = 0; j < dim; j++) {
                    size_t k = stat_index(ds, n, j);
                    double v = buf[s * dim + j];
                    if (pass == 0)
                        acc[k] += v;
                    else
                        acc[n + k] += (v - acc[k]) * (v - acc[k]);
                }
        }
        if (pass == 0)
            for (size_t i = 0; i < n; i++) acc[i] /= per;
    }
    ae_free(&ds->alloc, buf);
    if (st) return st;
    for (size_t i = 0; i < n; i++) {
        double v = sqrt(acc[n + i] / per);
        mu[i] = (float)acc[i];
        sd[i] = v > 0.0 && isfinite((float)v) && (float)v > 0.0f ? (float)v : 1.0f;
    }
    return AE_OK;
}

ae_status ae_dataset_standardize(ae_dataset *ds, const float *mean, const float *std, size_t n) {
    static const char who[] = "ae_dataset_standardize";
    if (!ds) return AE_ERR_INVALID_ARG;
    if (!ds->data && !ds->file) return ae_error(&ds->err, AE_ERR_STATE, "%s: the dataset is empty", who);
    if (ds->st_n)
        return ae_error(&ds->err, AE_ERR_STATE, "%s: the dataset is already standardised", who);
    if (!mean != !std)
        return ae_error(&ds->err, AE_ERR_INVALID_ARG,
                        "%s: give both mean and std, or neither to compute them", who);
    if (n != 1 && n != ds->shape[0] && n != ds->dim)
        return ae_error(&ds->err, AE_ERR_SHAPE,
                        "%s: n = %zu is neither 1, the channel count (%zu) nor the sample size (%zu)",
                        who, n, ds->shape[0], ds->dim);
    for (size_t i = 0; mean && i < n; i++)
        if (!isfinite(mean[i]) || !isfinite(std[i]) || !(std[i] > 0.0f))
            return ae_error(&ds->err, AE_ERR_INVALID_ARG,
                            "%s: mean[%zu] = %g and std[%zu] = %g: both must be finite, std > 0", who,
                            i, (double)mean[i], i, (double)std[i]);
    float *mu = ae_alloc(&ds->alloc, n * sizeof *mu), *sd = ae_alloc(&ds->alloc, n * sizeof *sd);
    double *acc = mean ? NULL : ae_calloc(&ds->alloc, 2 * n, sizeof *acc);
    if (!mu || !sd || (!mean && !acc)) {
        ae_free(&ds->alloc, mu);
        ae_free(&ds->alloc, sd);
        ae_free(&ds->alloc, acc);
        return ae_error(&ds->err, AE_ERR_OUT_OF_MEMORY, "%s: out of memory", who);
    }
    if (mean) {
        memcpy(mu, mean, n * sizeof *mu);
        memcpy(sd, std, n * sizeof *sd);
    } else if (ds->file) {
        ae_status rs = file_stats(ds, n, acc, mu, sd);
        ae_free(&ds->alloc, acc);
        if (rs) {
            ae_free(&ds->alloc, mu);
            ae_free(&ds->alloc, sd);
            return rs;
        }
    } else {
        /* Two passes in double: the mean, then the mean squared deviation. */
        double per = (double)ds->count * (double)ds->dim / (double)n;
        for (size_t s = 0; s < ds->count; s++)
            for (size_t j = 0; j < ds->dim; j++)
                acc[stat_index(ds, n, j)] += ds->data[s * ds->dim + j];
        for (size_t i = 0; i < n; i++) acc[i] /= per;
        for (size_t s = 0; s < ds->count; s++)
            for (size_t j = 0; j < ds->dim; j++) {
                size_t k = stat_index(ds, n, j);
                double d = ds->data[s * ds->dim + j] - acc[k];
                acc[n + k] += d * d;
            }
        for (size_t i = 0; i < n; i++) {
            double v = sqrt(acc[n + i] / per);
            mu[i] = (float)acc[i];
            sd[i] = v > 0.0 && isfinite((float)v) && (float)v > 0.0f ? (float)v : 1.0f;
        }
        ae_free(&ds->alloc, acc);
    }
    if (ds->file) {
        /* Applied as rows are read; each read checks its results. */
        ds->st_mean = mu;
        ds->st_std = sd;
        ds->st_n = n;
        return AE_OK;
    }
    /* Check that every result is finite before changing anything. */
    int ok = 1;
    for (size_t s = 0; ok && s < ds->count; s++)
        for (size_t j = 0; j < ds->dim; j++) {
            size_t k = stat_index(ds, n, j);
            if (!isfinite((ds->data[s * ds->dim + j] - mu[k]) / sd[k])) {
                ok = 0;
                break;
            }
        }
    ae_status st = ok ? ae_dataset_own(ds, who)
                      : ae_error(&ds->err, AE_ERR_NUMERIC,
                                 "%s: the standardised values overflow float (std too small)", who);
    if (st) {
        ae_free(&ds->alloc, mu);
        ae_free(&ds->alloc, sd);
        return st;
    }
    for (size_t s = 0; s < ds->count; s++)
        for (size_t j = 0; j < ds->dim; j++) {
            size_t k = stat_index(ds, n, j);
            ds->data[s * ds->dim + j] = (ds->data[s * ds->dim + j] - mu[k]) / sd[k];
        }
    ds->st_mean = mu;
    ds->st_std = sd;
    ds->st_n = n;
    return AE_OK;
}

ae_status ae_dataset_standardization(const ae_dataset *ds, float *mean, float *std, size_t n) {
    if (!ds) return AE_ERR_INVALID_ARG;
    if (!ds->st_n) return AE_ERR_STATE;
    if (n != ds->st_n) return AE_ERR_SHAPE;
    if (mean) memcpy(mean, ds->st_mean, n * sizeof *mean);
    if (std) memcpy(std, ds->st_std, n * sizeof *std);
    return AE_OK;
}

size_t ae_dataset_standardization_count(const ae_dataset *ds) { return ds ? ds->st_n : 0; }

/* ---- shuffle, split ---- */

static void permutation(size_t *idx, size_t n, uint64_t seed) {
    ae_rng r;
    ae_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) idx[i] = i;
    for (size_t i = n; i-- > 1;) {
        size_t j = (size_t)ae_rng_below(&r, (uint64_t)i + 1);
        size_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

ae_status ae_dataset_shuffle(ae_dataset *ds, uint64_t seed) {
    static const char who[] = "ae_dataset_shuffle";
    if (!ds) return AE_ERR_INVALID_ARG;
    if (ds->count < 2) return AE_OK;
    if (ds->file) {
        /* Only the row map moves: new sample i is old sample idx[i]. */
        size_t *idx = ae_alloc(&ds->alloc, ds->count * sizeof *idx);
        int32_t *l = ds->labels ? ae_alloc(&ds->alloc, ds->count * sizeof *l) : NULL;
        if (!idx || (ds->labels && !l)) {
            ae_free(&ds->alloc, idx);
            ae_free(&ds->alloc, l);
            return ae_error(&ds->err, AE_ERR_OUT_OF_MEMORY, "%s: out of memory", who);
        }
        permutation(idx, ds->count, seed);
        for (size_t i = 0; i < ds->count; i++) {
            if (l) l[i] = ds->labels[idx[i]];
            idx[i] = ds->rows ? ds->rows[idx[i]] : ds->row0 + idx[i];
        }
        ae_free(&ds->alloc, ds->rows);
        ae_free(&ds->alloc, ds->labels);
        ds->rows = idx;
        ds->labels = l;
        ds->row0 = 0;
        return AE_OK;
    }
    size_t *idx = ae_alloc(&ds->alloc, ds->count * sizeof *idx);
    float *d = ae_alloc(&ds->alloc, ds->count * ds->dim * sizeof *d);
    int32_t *l = ds->labels ? ae_alloc(&ds->alloc, ds->count * sizeof *l) : NULL;
    if (!idx || !d || (ds->labels && !l)) {
        ae_free(&ds->alloc, idx);
        ae_free(&ds->alloc, d);
        ae_free(&ds->alloc, l);
        return ae_error(&ds->err, AE_ERR_OUT_OF_MEMORY, "%s: out of memory", who);
    }
    permutation(idx, ds->count, seed);
    for (size_t i = 0; i < ds->count; i++) {
        memcpy(d + i * ds->dim, ds->data + idx[i] * ds->dim, ds->dim * sizeof *d);
        if (l) l[i] = ds->labels[idx[i]];
    }
    ae_free(&ds->alloc, idx);
    if (!ds->borrowed) {
        ae_free(&ds->alloc, ds->data);
        ae_free(&ds->alloc, ds->labels);
    }
    ds->data = d;
    ds->labels = l;
    ds->borrowed = 0;
    return AE_OK;
}

/* A new dataset holding samples idx[0..n) of ds (start .. start + n when
 * idx is NULL). A file-backed one shares the file: only the row map (none
 * for a range of a range) and the labels are copied. */
static ae_status subset(const ae_dataset *ds, const size_t *idx, size_t start, size_t n,
                        ae_dataset **out) {
    ae_dataset *s = NULL;
    if (ae_dataset_create(&s, &ds->alloc) != AE_OK) return AE_ERR_OUT_OF_MEMORY;
    int map = ds->file && (idx || ds->rows);
    s->data = ds->file ? NULL : ae_alloc(&s->alloc, n * ds->dim * sizeof(float));
    s->rows = map ? ae_alloc(&s->alloc, n * sizeof(size_t)) : NULL;
    s->labels = ds->labels ? ae_alloc(&s->alloc, n * sizeof(int32_t)) : NULL;
    s->st_mean = ds->st_n ? ae_alloc(&s->alloc, ds->st_n * sizeof(float)) : NULL;
    s->st_std = ds->st_n ? ae_alloc(&s->alloc, ds->st_n * sizeof(float)) : NULL;
    if ((!ds->file && !s->data) || (map && !s->rows) || (ds->labels && !s->labels) ||
        (ds->st_n && (!s->st_mean || !s->st_std))) {
        ae_dataset_destroy(s);
        return AE_ERR_OUT_OF_MEMORY;
    }
    for (size_t i = 0; i < n; i++) {
        size_t k = idx ? idx[i] : start + i;
        if (s->data) memcpy(s->data + i * ds->dim, ds->data + k * ds->dim, ds->dim * sizeof(float));
        if (s->rows) s->rows[i] = ds->rows ? ds->rows[k] : ds->row0 + k;
        if (s->labels) s->labels[i] = ds->labels[k];
    }
    if (ds->file) {
        s->file = ae_rowfile_ref(ds->file);
        s->row0 = map ? 0 : ds->row0 + start;
        s->mul = ds->mul;
        s->add = ds->add;
    }
    if (ds->st_n) {
        memcpy(s->st_mean, ds->st_mean, ds->st_n * sizeof(float));
        memcpy(s->st_std, ds->st_std, ds->st_n * sizeof(float));
        s->st_n = ds->st_n;
    }
    s->count = n;
    s->dim = ds->dim;
    memcpy(s->shape, ds->shape, sizeof s->shape);
    s->elem = ds->elem;
    s->t_scale = ds->t_scale;
    s->t_offset = ds->t_offset;
    *out = s;
    return AE_OK;
}

ae_status ae_dataset_subset(const ae_dataset *ds_in, const size_t *idx, size_t n, ae_dataset **out) {
    static const char who[] = "ae_dataset_subset";
    if (out) *out = NULL;
    if (!ds_in) return AE_ERR_INVALID_ARG;
    ae_dataset *ds = (ae_dataset *)(uintptr_t)ds_in; /* only the message buffer is written */
    if (!out || !idx) return ae_error(&ds->err, AE_ERR_INVALID_ARG, "%s: %s is NULL", who, !out ? "out" : "idx");
    if (n == 0) return ae_error(&ds->err, AE_ERR_RANGE, "%s: n is 0 (a dataset is never empty)", who);
    for (size_t i = 0; i < n; i++)
        if (idx[i] >= ds->count)
            return ae_error(&ds->err, AE_ERR_RANGE, "%s: idx[%zu] = %zu is out of range (%zu samples)",
                            who, i, idx[i], ds->count);
    if (subset(ds, idx, 0, n, out) != AE_OK)
        return ae_error(&ds->err, AE_ERR_OUT_OF_MEMORY, "%s: out of memory", who);
    return AE_OK;
}

ae_status ae_dataset_subset_range(const ae_dataset *ds_in, size_t start, size_t n, ae_dataset **out) {
    static const char who[] = "ae_dataset_subset_range";
    if (out) *out = NULL;
    if (!ds_in) return AE_ERR_INVALID_ARG;
    ae_dataset *ds = (ae_dataset *)(uintptr_t)ds_in; /* only the message buffer is written */
    if (!out) return ae_error(&ds->err, AE_ERR_INVALID_ARG, "%s: out is NULL", who);
    if (n == 0 || start > ds->count || n > ds->count - start)
        return ae_error(&ds->err, AE_ERR_RANGE,
                        "%s: rows %zu..%zu are not a nonempty range of the %zu samples", who, start,
                        start + n, ds->count);
    if (subset(ds, NULL, start, n, out) != AE_OK)
        return ae_error(&ds->err, AE_ERR_OUT_OF_MEMORY, "%s: out of memory", who);
    return AE_OK;
}

ae_status ae_dataset_split(const ae_dataset *ds_in, double val_fraction, uint64_t seed,
                           ae_dataset **train, ae_dataset **val) {
    static const char who[] = "ae_dataset_split";
    if (train) *train = NULL;
    if (val) *val = NULL;
    if (!ds_in) return AE_ERR_INVALID_ARG;
    /* Only the message buffer is written. */
    ae_dataset *ds = (ae_dataset *)(uintptr_t)ds_in;
    if (!train || !val || train == val)
        return ae_error(&ds->err, AE_ERR_INVALID_ARG, "%s: train and val must be two distinct pointers",
                        who);
    if (!(val_fraction > 0.0 && val_fraction < 1.0))
        return ae_error(&ds->err, AE_ERR_INVALID_ARG, "%s: val_fraction must be in (0, 1), got %g", who,
                        val_fraction);
    size_t nval = (size_t)ceil(val_fraction * (double)ds->count);
    if (nval > ds->count) nval = ds->count;
    if (ds->count == 0 || nval == 0 || nval == ds->count)
        return ae_error(&ds->err, AE_ERR_STATE,
                        "%s: %zu samples with val_fraction %g leave an empty part", who, ds->count,
                        val_fraction);
    size_t *idx = ae_alloc(&ds->alloc, ds->count * sizeof *idx);
    if (!idx) return ae_error(&ds->err, AE_ERR_OUT_OF_MEMORY, "%s: out of memory", who);
    permutation(idx, ds->count, seed);
    ae_dataset *v = NULL, *t = NULL;
    ae_status st = subset(ds, idx, 0, nval, &v);
    if (!st) st = subset(ds, idx + nval, 0, ds->count - nval, &t);
    ae_free(&ds->alloc, idx);
    if (st) {
        ae_dataset_destroy(v);
        return ae_error(&ds->err, st, "%s: out of memory", who);
    }
    *train = t;
    *val = v;
    return AE_OK;
}

/* ---- image folders (folder.c) ---- */

const ae_allocator *ae_dataset_allocator(const ae_dataset *ds) { return &ds->alloc; }
ae_errbuf *ae_dataset_errbuf(ae_dataset *ds) { return &ds->err; }

void ae_dataset_adopt_images(ae_dataset *ds, ae_idx *x, ae_rowfile *file, char **classes,
                             size_t nclasses, size_t skipped) {
    x->elem = AE_ELEM_UINT8;
    adopt(ds, x);
    ds->file = file;
    if (file) ds->mul = 1.0f / 255.0f; /* the cache holds bytes; ToTensor's scale */
    /* Decoded images are v / 255 already (in memory) or as read (cache). */
    ds->t_scale = 1.0 / 255.0;
    ds->classes = classes;
    ds->nclasses = nclasses;
    ds->skipped = skipped;
}

size_t ae_dataset_class_count(const ae_dataset *ds) { return ds ? ds->nclasses : 0; }

const char *ae_dataset_class_name(const ae_dataset *ds, size_t i) {
    return ds && i < ds->nclasses ? ds->classes[i] : NULL;
}

size_t ae_dataset_skipped(const ae_dataset *ds) { return ds ? ds->skipped : 0; }
