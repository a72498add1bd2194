/* Value conventions (docs/data.md "Value conventions"): what a dataset's
 * values mean (the stored element type, the scale and offset applied since
 * loading, the standardisation) and the one rule that gives data the
 * meaning of a model's training data (ae_dataset_conform). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "data.h"

void ae_data_convention_init(ae_data_convention *c) {
    if (!c) return;
    memset(c, 0, sizeof *c);
    c->struct_size = sizeof *c;
    c->elem = AE_ELEM_UNKNOWN;
    c->scale = 1.0;
    c->offset = 0.0;
    c->lo = c->hi = NAN;
}

ae_status ae_dataset_convention(const ae_dataset *ds, ae_data_convention *out) {
    if (!ds || !out || out->struct_size != sizeof *out) return AE_ERR_INVALID_ARG;
    ae_data_convention_init(out);
    out->elem = ds->elem;
    out->scale = ds->t_scale;
    out->offset = ds->t_offset;
    out->std_count = ds->st_n;
    return AE_OK;
}

ae_status ae_dataset_set_convention(ae_dataset *ds, const ae_data_convention *c) {
    static const char who[] = "ae_dataset_set_convention";
    if (!ds) return AE_ERR_INVALID_ARG;
    ae_errbuf *e = &ds->err;
    if (!c || c->struct_size != sizeof *c)
        return ae_error(e, AE_ERR_INVALID_ARG, "%s: c is NULL or its struct_size is not %zu", who,
                        sizeof *c);
    if (c->elem != AE_ELEM_FLOAT && c->elem != AE_ELEM_UINT8)
        return ae_error(e, AE_ERR_INVALID_ARG, "%s: the element type must be AE_ELEM_FLOAT or "
                        "AE_ELEM_UINT8, got %d", who, (int)c->elem);
    if (!isfinite(c->scale) || c->scale == 0.0 || !isfinite(c->offset) || c->std_count)
        return ae_error(e, AE_ERR_INVALID_ARG,
                        "%s: scale (%g) must be finite and not 0, offset (%g) finite, std_count 0",
                        who, c->scale, c->offset);
    if (!ds->data && !ds->file) return ae_error(e, AE_ERR_STATE, "%s: the dataset is empty", who);
    if (ds->st_n) return ae_error(e, AE_ERR_STATE, "%s: the dataset is standardised", who);
    ds->elem = c->elem;
    ds->t_scale = c->scale;
    ds->t_offset = c->offset;
    return AE_OK;
}

static const char *elem_name(ae_elem_type e) {
    return e == AE_ELEM_UINT8 ? "uint8" : e == AE_ELEM_FLOAT ? "float" : "unknown";
}

/* "uint8 data x 1/255", "float data x 2 + -1, standardised (3 values)". */
static void describe(char *buf, size_t cap, ae_elem_type e, double scale, double offset,
                     size_t st_n) {
    int k;
    if (fabs(scale * 255.0 - 1.0) < 1e-6)
        k = snprintf(buf, cap, "%s data x 1/255", elem_name(e));
    else
        k = snprintf(buf, cap, "%s data x %g", elem_name(e), scale);
    if (k > 0 && (size_t)k < cap && offset != 0.0)
        k += snprintf(buf + k, cap - (size_t)k, " + %g", offset);
    if (k > 0 && (size_t)k < cap && st_n)
        snprintf(buf + k, cap - (size_t)k, ", standardised (%zu mean/std value%s)", st_n,
                 st_n > 1 ? "s" : "");
}

/* Which statistic feature j uses, for n shared values (n 0: one group). */
static size_t group_of(const ae_dataset *ds, size_t n, size_t j) {
    if (n <= 1) return 0;
    if (n == ds->dim) return j;
    return j / (ds->shape[1] * ds->shape[2]);
}

/* Per-group minimum and maximum of the current values (g groups). */
static ae_status group_ranges(ae_dataset *ds, size_t n, float *gmin, float *gmax) {
    size_t g = n ? n : 1, dim = ds->dim, chunk = 256;
    for (size_t i = 0; i < g; i++) gmin[i] = INFINITY, gmax[i] = -INFINITY;
    float *buf = ds->file ? ae_alloc(&ds->alloc, chunk * dim * sizeof *buf) : NULL;
    if (ds->file && !buf)
        return ae_error(&ds->err, AE_ERR_OUT_OF_MEMORY, "ae_dataset_conform: out of memory");
    ae_status st = AE_OK;
    for (size_t s0 = 0; s0 < ds->count && !st; s0 += chunk) {
        size_t b = ds->count - s0 < chunk ? ds->count - s0 : chunk;
        const float *x = ds->data ? ds->data + s0 * dim : NULL;
        if (!x) {
            st = ae_dataset_rows(ds, s0, b, buf, NULL);
            x = buf;
        }
        for (size_t s = 0; !st && s < b; s++)
            for (size_t j = 0; j < dim; j++) {
                size_t k = group_of(ds, n, j);
                float v = x[s * dim + j];
                if (v < gmin[k]) gmin[k] = v;
                if (v > gmax[k]) gmax[k] = v;
            }
    }
    ae_free(&ds->alloc, buf);
    return st;
}

ae_status ae_dataset_conform(ae_dataset *ds, const ae_data_convention *t, const float *mean,
                             const float *std) {
    static const char who[] = "ae_dataset_conform";
    if (!ds) return AE_ERR_INVALID_ARG;
    ae_errbuf *e = &ds->err;
    if (!t) return ae_error(e, AE_ERR_INVALID_ARG, "%s: target is NULL", who);
    if (t->struct_size != sizeof *t)
        return ae_error(e, AE_ERR_INVALID_ARG,
                        "%s: target->struct_size is %zu, expected sizeof(ae_data_convention) = %zu",
                        who, t->struct_size, sizeof *t);
    if (t->elem != AE_ELEM_UNKNOWN && t->elem != AE_ELEM_FLOAT && t->elem != AE_ELEM_UINT8)
        return ae_error(e, AE_ERR_INVALID_ARG, "%s: unknown element type %d", who, (int)t->elem);
    if (!isfinite(t->scale) || t->scale == 0.0 || !isfinite(t->offset))
        return ae_error(e, AE_ERR_INVALID_ARG,
                        "%s: scale (%g) must be finite and not 0, offset (%g) finite", who,
                        t->scale, t->offset);
    if (isnan(t->lo) != isnan(t->hi) || (!isnan(t->lo) && !(isfinite(t->lo) && isfinite(t->hi) &&
                                                             t->lo <= t->hi)))
        return ae_error(e, AE_ERR_INVALID_ARG,
                        "%s: the range [%g, %g] must be finite with lo <= hi, or both NaN", who,
                        t->lo, t->hi);
    size_t n = t->std_count;
    if (n && (!mean || !std))
        return ae_error(e, AE_ERR_INVALID_ARG, "%s: std_count is %zu but mean or std is NULL", who, n);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(mean[i]) || !isfinite(std[i]) || !(std[i] > 0.0f))
            return ae_error(e, AE_ERR_INVALID_ARG,
                            "%s: mean[%zu] = %g and std[%zu] = %g: both must be finite, std > 0", who,
                            i, (double)mean[i], i, (double)std[i]);
    if (!ds->data && !ds->file) return ae_error(e, AE_ERR_STATE, "%s: the dataset is empty", who);
    if (n && n != 1 && n != ds->shape[0] && n != ds->dim)
        return ae_error(e, AE_ERR_SHAPE,
                        "%s: std_count %zu is neither 1, the channel count (%zu) nor the sample size "
                        "(%zu)",
                        who, n, ds->shape[0], ds->dim);

    /* The scale and offset wanted, relative to the stored values. */
    ae_elem_type de = ds->elem == AE_ELEM_UINT8 ? AE_ELEM_UINT8 : AE_ELEM_FLOAT;
    double sw, aw;
    int cross = 0;
    if (t->elem == AE_ELEM_UNKNOWN) {
        sw = de == AE_ELEM_UINT8 ? 1.0 / 255.0 : 1.0;
        aw = 0.0;
    } else if (de == t->elem) {
        sw = t->scale;
        aw = t->offset;
    } else if (de == AE_ELEM_UINT8) {
        sw = t->scale / 255.0; /* v / 255 stands for a float value */
        aw = t->offset;
        cross = 1;
    } else {
        sw = 1.0; /* float data are already in the model's range */
        aw = 0.0;
        cross = 1;
    }
    /* From the current values: x * r + q. Conventions that agree to float
       precision (1/255 as a float and as a double) change nothing. */
    double r = sw / ds->t_scale, q = aw - ds->t_offset * r;
    int identity = fabs(r - 1.0) <= 1e-6 && fabs(q) <= 1e-9;
    if (identity) r = 1.0, q = 0.0;

    char have[160], want[160];
    describe(have, sizeof have, de, sw, aw, 0);
    describe(want, sizeof want, t->elem, t->scale, t->offset, n);
    if (ds->st_n) {
        int same = identity && n == ds->st_n;
        for (size_t i = 0; same && i < n; i++)
            same = ds->st_mean[i] == mean[i] && ds->st_std[i] == std[i];
        if (same) return AE_OK;
        return ae_error(e, AE_ERR_STATE,
                        "%s: the dataset was standardised already (%zu mean/std values), "
                        "otherwise than %s: load it anew",
                        who, ds->st_n, want);
    }
    /* When the element types differ, a meaning was taken for granted; it is
       checked against the 8-bit range [0, 255] as the model reads it:
       float data must lie in it (within half its span), and for 8-bit
       data the model's float training inputs must have. */
    int check_data = cross && de == AE_ELEM_FLOAT;
    int check_model = cross && de == AE_ELEM_UINT8 && !isnan(t->lo);
    if (identity && !n && !check_data && !check_model) {
        ds->t_scale = sw;
        ds->t_offset = aw;
        return AE_OK;
    }
    size_t g = n ? n : 1;
    double nlo = INFINITY, nhi = -INFINITY; /* [0, 255] as the model's inputs */
    double bs = de == AE_ELEM_UINT8 ? sw : t->scale, ba = de == AE_ELEM_UINT8 ? aw : t->offset;
    for (size_t k = 0; k < g; k++) {
        double a = ba, b = 255.0 * bs + ba;
        if (n) a = (a - mean[k]) / std[k], b = (b - mean[k]) / std[k];
        nlo = fmin(nlo, fmin(a, b));
        nhi = fmax(nhi, fmax(a, b));
    }
    double slack = (nhi - nlo) / 2.0;
    if (check_model && (t->lo < nlo - slack || t->hi > nhi + slack))
        return ae_error(e, AE_ERR_RANGE,
                        "%s: %s (8-bit values taken as v/255 of the model's float data) give values "
                        "in [%g, %g], but the model's convention is %s, trained on values in "
                        "[%g, %g]: the meanings differ; give the scale explicitly",
                        who, have, nlo, nhi, want, t->lo, t->hi);

    /* The range of the result, per statistics group, before anything
       changes: it must be finite (and for float data within the model's
       8-bit range). Rows on disk are checked as they are read. */
    float fr = (float)r, fq = (float)q;
    if (check_data || ds->data) {
        float *gmin = ae_alloc(&ds->alloc, 2 * g * sizeof *gmin);
        if (!gmin) return ae_error(e, AE_ERR_OUT_OF_MEMORY, "%s: out of memory", who);
        float *gmax = gmin + g;
        ae_status st = group_ranges(ds, n, gmin, gmax);
        if (st) {
            ae_free(&ds->alloc, gmin);
            return st;
        }
        float lo = INFINITY, hi = -INFINITY;
        int finite = 1;
        for (size_t k = 0; k < g; k++) {
            if (gmin[k] > gmax[k]) continue; /* a group without values */
            float a = gmin[k] * fr + fq, b = gmax[k] * fr + fq;
            if (n) a = (a - mean[k]) / std[k], b = (b - mean[k]) / std[k];
            finite &= isfinite(a) && isfinite(b);
            if (a > b) {
                float tmp = a;
                a = b, b = tmp;
            }
            lo = a < lo ? a : lo;
            hi = b > hi ? b : hi;
        }
        ae_free(&ds->alloc, gmin);
        if (!finite)
            return ae_error(e, AE_ERR_NUMERIC, "%s: %s as %s overflow float", who, have, want);
        if (check_data && ((double)lo < nlo - slack || (double)hi > nhi + slack))
            return ae_error(e, AE_ERR_RANGE,
                            "%s: %s (float data taken as already in the model's range) hold values "
                            "in [%g, %g], but the model's convention is %s, which reads 8-bit "
                            "values as [%g, %g]: the meanings differ; give the scale explicitly",
                            who, have, (double)lo, (double)hi, want, nlo, nhi);
    }

    float *mu = n ? ae_alloc(&ds->alloc, n * sizeof *mu) : NULL;
    float *sd = n ? ae_alloc(&ds->alloc, n * sizeof *sd) : NULL;
    if (n && (!mu || !sd)) {
        ae_free(&ds->alloc, mu);
        ae_free(&ds->alloc, sd);
        return ae_error(e, AE_ERR_OUT_OF_MEMORY, "%s: out of memory", who);
    }
    if (n) {
        memcpy(mu, mean, n * sizeof *mu);
        memcpy(sd, std, n * sizeof *sd);
    }
    if (ds->file) {
        /* Composed with what rows get as they are read. */
        float m2 = (float)(ds->mul * r), a2 = (float)(ds->add * r + q);
        if (!isfinite(m2) || m2 == 0.0f || !isfinite(a2)) {
            ae_free(&ds->alloc, mu);
            ae_free(&ds->alloc, sd);
            return ae_error(e, AE_ERR_NUMERIC, "%s: the scale %g overflows float", who, sw);
        }
        ds->mul = m2;
        ds->add = a2;
    } else {
        ae_status st = ae_dataset_own(ds, who);
        if (st) {
            ae_free(&ds->alloc, mu);
            ae_free(&ds->alloc, sd);
            return st;
        }
        float *x = ds->data;
        for (size_t s = 0; s < ds->count; s++)
            for (size_t j = 0; j < ds->dim; j++) {
                float v = x[s * ds->dim + j];
                if (!identity) v = v * fr + fq;
                if (n) {
                    size_t k = group_of(ds, n, j);
                    v = (v - mu[k]) / sd[k];
                }
                x[s * ds->dim + j] = v;
            }
    }
    ds->t_scale = sw;
    ds->t_offset = aw;
    if (n) {
        ds->st_mean = mu;
        ds->st_std = sd;
        ds->st_n = n;
    }
    return AE_OK;
}
