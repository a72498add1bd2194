/* The dataset handle: float samples [count, dim] with optional int32 labels,
 * loading (through the IDX reader), scaling and gathering. */
#include <math.h>
#include <string.h>

#include "data.h"

struct ae_dataset {
    ae_allocator alloc;
    ae_errbuf err;
    size_t count, dim;
    size_t shape[3]; /* C, H, W */
    float *data;     /* [count, dim], NULL when empty */
    int32_t *labels; /* [count], NULL when there are none */
};

ae_status ae_dataset_create(ae_dataset **out, const ae_allocator *alloc) {
    if (!out) return AE_ERR_INVALID_ARG;
    *out = NULL;
    ae_allocator a;
    if (ae_allocator_init(&a, alloc) != AE_OK) return AE_ERR_INVALID_ARG;
    ae_dataset *ds = ae_alloc(&a, sizeof *ds);
    if (!ds) return AE_ERR_OUT_OF_MEMORY;
    memset(ds, 0, sizeof *ds);
    ds->alloc = a;
    *out = ds;
    return AE_OK;
}

static void clear(ae_dataset *ds) {
    ae_free(&ds->alloc, ds->data);
    ae_free(&ds->alloc, ds->labels);
    ds->data = NULL;
    ds->labels = NULL;
    ds->count = ds->dim = 0;
    ds->shape[0] = ds->shape[1] = ds->shape[2] = 0;
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
    clear(ds);
    ds->count = img.count;
    ds->dim = img.dim;
    memcpy(ds->shape, img.shape, sizeof ds->shape);
    ds->data = img.values;
    ds->labels = lab.labels;
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

ae_status ae_dataset_scale(ae_dataset *ds, float mul, float add) {
    if (!ds) return AE_ERR_INVALID_ARG;
    if (!isfinite(mul) || !isfinite(add))
        return ae_error(&ds->err, AE_ERR_INVALID_ARG,
                        "ae_dataset_scale: mul (%g) and add (%g) must be finite", (double)mul,
                        (double)add);
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
    for (size_t i = 0; i < n; i++) x[i] = x[i] * mul + add;
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
    for (size_t i = 0; i < n; i++)
        memcpy(dst + i * ds->dim, ds->data + idx[i] * ds->dim, ds->dim * sizeof *dst);
    if (labels && ds->labels)
        for (size_t i = 0; i < n; i++) labels[i] = ds->labels[idx[i]];
    return AE_OK;
}
