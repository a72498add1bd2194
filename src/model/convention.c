/* The value convention of a model's training data (<libae/data.h>,
 * docs/data.md "Value conventions"): a typed field of the model, saved in
 * its file (docs/file-format.md, section VALU), set by ae_fit. A model
 * without one has conv.struct_size 0. */
#include <math.h>
#include <string.h>

#include "model.h"

ae_status ae_convention_reserve(ae_model *m, size_t n) {
    if (n <= m->conv_cap) return AE_OK;
    float *p = ae_alloc(&m->alloc, 2 * n * sizeof *p);
    if (!p) return ae_error(&m->err, AE_ERR_OUT_OF_MEMORY, "out of memory for %zu mean/std values", n);
    size_t have = m->conv.struct_size ? m->conv.std_count : 0;
    if (have) {
        memcpy(p, m->conv_stats, have * sizeof *p);
        memcpy(p + n, m->conv_stats + m->conv_cap, have * sizeof *p);
    }
    ae_free(&m->alloc, m->conv_stats);
    m->conv_stats = p;
    m->conv_cap = n;
    return AE_OK;
}

void ae_convention_free(ae_model *m) {
    ae_free(&m->alloc, m->conv_stats);
    m->conv_stats = NULL;
    m->conv_cap = 0;
}

ae_status ae_model_set_data_convention(ae_model *m, const ae_data_convention *c, const float *mean,
                                       const float *std) {
    static const char who[] = "ae_model_set_data_convention";
    if (!m) return AE_ERR_INVALID_ARG;
    ae_errbuf *e = &m->err;
    if (!c) {
        memset(&m->conv, 0, sizeof m->conv);
        return AE_OK;
    }
    if (c->struct_size != sizeof *c)
        return ae_error(e, AE_ERR_INVALID_ARG,
                        "%s: struct_size is %zu, expected sizeof(ae_data_convention) = %zu", who,
                        c->struct_size, sizeof *c);
    if (c->elem != AE_ELEM_UNKNOWN && c->elem != AE_ELEM_FLOAT && c->elem != AE_ELEM_UINT8)
        return ae_error(e, AE_ERR_INVALID_ARG, "%s: unknown element type %d", who, (int)c->elem);
    if (!isfinite(c->scale) || c->scale == 0.0 || !isfinite(c->offset))
        return ae_error(e, AE_ERR_INVALID_ARG,
                        "%s: scale (%g) must be finite and not 0, offset (%g) finite", who, c->scale,
                        c->offset);
    if (isnan(c->lo) != isnan(c->hi) ||
        (!isnan(c->lo) && !(isfinite(c->lo) && isfinite(c->hi) && c->lo <= c->hi)))
        return ae_error(e, AE_ERR_INVALID_ARG,
                        "%s: the range [%g, %g] must be finite with lo <= hi, or both NaN", who,
                        c->lo, c->hi);
    size_t n = c->std_count;
    if (n && m->in_size % n != 0)
        return ae_error(e, AE_ERR_SHAPE,
                        "%s: std_count %zu does not divide the model's input size %zu", who, n,
                        m->in_size);
    if (n && (!mean || !std))
        return ae_error(e, AE_ERR_INVALID_ARG, "%s: std_count is %zu but mean or std is NULL", who, n);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(mean[i]) || !isfinite(std[i]) || !(std[i] > 0.0f))
            return ae_error(e, AE_ERR_INVALID_ARG,
                            "%s: mean[%zu] = %g and std[%zu] = %g: both must be finite, std > 0", who,
                            i, (double)mean[i], i, (double)std[i]);
    ae_status st = ae_convention_reserve(m, n);
    if (st) return st;
    m->conv = *c;
    if (n) {
        memcpy(m->conv_stats, mean, n * sizeof *mean);
        memcpy(m->conv_stats + m->conv_cap, std, n * sizeof *std);
    }
    return AE_OK;
}

ae_status ae_model_data_convention(const ae_model *m, ae_data_convention *out, float *mean,
                                   float *std, size_t n) {
    if (!m || !out || out->struct_size != sizeof *out) return AE_ERR_INVALID_ARG;
    if (m->conv.struct_size) {
        *out = m->conv;
    } else { /* ae_data_convention_init's defaults (data/ is not a dependency of model/) */
        memset(out, 0, sizeof *out);
        out->struct_size = sizeof *out;
        out->scale = 1.0;
        out->lo = out->hi = NAN;
    }
    if ((mean || std) && n != out->std_count) return AE_ERR_SHAPE;
    if (mean && n) memcpy(mean, m->conv_stats, n * sizeof *mean);
    if (std && n) memcpy(std, m->conv_stats + m->conv_cap, n * sizeof *std);
    return AE_OK;
}
