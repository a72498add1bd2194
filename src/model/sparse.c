/* Sparse autoencoders in the model: the builder calls of the selection
 * layers and penalties, the sparsity hints between a top-k layer and its
 * dense neighbours, the penalties in the loss, the mode, and the statistics
 * (loss terms, L0 of the code, dead latents). */
#include <math.h>
#include <string.h>

#include "model.h"

/* The sparse dense paths are used when k * this <= the code width. */
#define AE_SPARSE_MIN_RATIO 4

/* ---- builder ---- */

/* k against the width of its input is checked by the layers' setup. */
static ae_status add_selection(ae_config *cfg, ae_layer_kind kind, size_t k, double fraction) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    ae_layer_spec spec;
    ae_layer_spec_init(&spec, kind);
    spec.iparam[0] = ae_size_attr(k);
    spec.fparam[0] = fraction;
    return ae_config_add_spec(cfg, &spec);
}

ae_status ae_config_add_topk(ae_config *cfg, size_t k) {
    return add_selection(cfg, AE_LAYER_TOPK, k, 0.0);
}

ae_status ae_config_add_lifetime_topk(ae_config *cfg, size_t k) {
    return add_selection(cfg, AE_LAYER_LIFETIME_TOPK, k, 0.0);
}

ae_status ae_config_add_lifetime_topk_fraction(ae_config *cfg, double fraction) {
    if (cfg && fraction == 0.0)
        return ae_error(&cfg->err, AE_ERR_RANGE, "lifetime_topk fraction must be in (0, 1], got 0");
    return add_selection(cfg, AE_LAYER_LIFETIME_TOPK, 0, fraction);
}

ae_status ae_config_add_batch_topk(ae_config *cfg, size_t k) {
    return add_selection(cfg, AE_LAYER_BATCH_TOPK, k, 0.0);
}

static ae_status penalty_layer(ae_config *cfg, size_t *layer) {
    if (*layer == AE_LAST_LAYER) {
        if (!cfg->nlayers) return ae_error(&cfg->err, AE_ERR_STATE, "no layer added yet");
        *layer = cfg->nlayers - 1;
    }
    if (*layer >= cfg->nlayers)
        return ae_error(&cfg->err, AE_ERR_RANGE, "layer %zu does not exist (the config has %zu)",
                        *layer, cfg->nlayers);
    return AE_OK;
}

static ae_status check_lambda(ae_config *cfg, double lambda, const char *what) {
    if (!(lambda >= 0.0 && lambda <= 1e6))
        return ae_error(&cfg->err, AE_ERR_RANGE, "%s: lambda must be in [0, 1e6], got %g", what,
                        lambda);
    return AE_OK;
}

ae_status ae_config_add_kl_sparsity(ae_config *cfg, size_t layer, double rho, double lambda,
                                    ae_reduction units) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    if (units != AE_REDUCE_MEAN && units != AE_REDUCE_SUM)
        return ae_error(&cfg->err, AE_ERR_INVALID_ARG, "KL sparsity: unknown reduction %d", (int)units);
    if (!(rho > 0.0 && rho < 1.0))
        return ae_error(&cfg->err, AE_ERR_RANGE, "KL sparsity: rho must be in (0, 1), got %g", rho);
    ae_status st = check_lambda(cfg, lambda, "KL sparsity");
    if (!st) st = penalty_layer(cfg, &layer);
    if (st) return st;
    ae_penalty_spec *p = &cfg->layers[layer].penalty;
    p->kl_on = 1;
    p->kl_sum = units == AE_REDUCE_SUM;
    p->kl_rho = rho;
    p->kl_lambda = lambda;
    return AE_OK;
}

ae_status ae_config_add_l1_sparsity(ae_config *cfg, size_t layer, double lambda) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    ae_status st = check_lambda(cfg, lambda, "L1 sparsity");
    if (!st) st = penalty_layer(cfg, &layer);
    if (st) return st;
    ae_penalty_spec *p = &cfg->layers[layer].penalty;
    p->l1_on = 1;
    p->l1_lambda = lambda;
    return AE_OK;
}

/* ---- creation ---- */

ae_status ae_sparse_setup(ae_model *m, ae_errbuf *err) {
    size_t n = m->nlayers;
    for (size_t i = 0; i < n; i++) {
        ae_layer *L = &m->layers[i];
        const ae_penalty_spec *p = &L->spec.penalty;
        if ((p->kl_on || p->l1_on) && i + 1 == n)
            return ae_error(err, AE_ERR_STATE,
                            "layer %zu is the output layer: attach sparsity penalties to the code "
                            "or a hidden layer", i);
        if (p->kl_on && L->act != AE_ACT_SIGMOID)
            return ae_error(err, AE_ERR_STATE,
                            "KL sparsity needs values in (0, 1): layer %zu has activation %s, not "
                            "sigmoid", i, ae_act_name(L->act));
    }
    /* Sparsity hints: a dense layer reading a top-k output (possibly through
     * layers that keep zeros, such as a lifetime top-k) uses its index list;
     * a dense layer feeding a top-k layer gets a dy with k nonzeros per row,
     * unless a penalty adds a dense gradient to its output. Only when the
     * kept entries are at most 1/AE_SPARSE_MIN_RATIO of the width: denser
     * codes go faster through the GEMMs (measured, one thread: 784-64-784
     * with top-16, 1.44 ms a step on the sparse paths against 1.54 on the
     * GEMMs; on 784-4096-784 with top-32 the sparse paths make the step
     * about 3x faster than the model without top-k). */
    for (size_t i = 0; i < n; i++) {
        ae_layer *L = &m->layers[i];
        if (L->kind != AE_LAYER_DENSE) continue;
        for (size_t j = i; j-- > 0;) {
            const ae_layer *P = &m->layers[j];
            if (P->ops->kept_index) {
                if (P->sparse_k * AE_SPARSE_MIN_RATIO <= P->out) L->in_sparse_k = P->sparse_k;
                break;
            }
            if (!P->keeps_zeros) break;
        }
        const ae_penalty_spec *p = &L->spec.penalty;
        const ae_layer *N = i + 1 < n ? &m->layers[i + 1] : NULL;
        if (N && N->ops->kept_index && !p->kl_on && !p->l1_on &&
            N->sparse_k * AE_SPARSE_MIN_RATIO <= N->out)
            L->out_sparse_k = N->sparse_k;
    }
    const ae_allocator *a = &m->alloc;
    size_t code = m->layers[m->code_layer - 1].out;
    m->out_idx = ae_calloc(a, n, sizeof *m->out_idx);
    m->out_k = ae_calloc(a, n, sizeof *m->out_k);
    m->last_active = ae_calloc(a, code, sizeof *m->last_active);
    m->pen_tmp = ae_calloc(a, m->max_width, sizeof(float));
    m->grad_zero = ae_calloc(a, n, sizeof *m->grad_zero);
    m->grad_zero_ok = ae_calloc(a, n, 1);
    if (!m->out_idx || !m->out_k || !m->last_active || !m->pen_tmp || !m->grad_zero ||
        !m->grad_zero_ok)
        return ae_error(err, AE_ERR_OUT_OF_MEMORY, "out of memory creating the model");
    for (size_t i = 0; i < n; i++) {
        size_t nf = ae_sparse_zero_flags(&m->layers[i]);
        if (nf && !(m->grad_zero[i] = ae_calloc(a, nf, 1)))
            return ae_error(err, AE_ERR_OUT_OF_MEMORY, "out of memory creating the model");
    }
    m->mode = AE_MODE_INFER;
    return AE_OK;
}

size_t ae_sparse_zero_flags(const ae_layer *L) {
    if (L->kind != AE_LAYER_DENSE) return 0;
    /* The sparse dy path takes precedence (dense_backward). */
    if (L->out_sparse_k) return L->out;
    return L->in_sparse_k ? L->in : 0;
}

void ae_sparse_free(ae_model *m) {
    const ae_allocator *a = &m->alloc;
    if (m->grad_zero)
        for (size_t i = 0; i < m->nlayers; i++) ae_free(a, m->grad_zero[i]);
    ae_free(a, m->grad_zero);
    ae_free(a, m->grad_zero_ok);
    ae_free(a, (void *)m->out_idx);
    ae_free(a, m->out_k);
    ae_free(a, m->last_active);
    ae_free(a, m->pen_tmp);
}

/* ---- passes ---- */

void ae_sparse_after_forward(ae_model *m, size_t i, size_t from) {
    const ae_layer *L = &m->layers[i];
    if (L->ops->kept_index) {
        m->out_idx[i] = L->ops->kept_index(L, m->scratch[i]);
        m->out_k[i] = L->sparse_k;
    } else if (L->keeps_zeros && i > from) {
        m->out_idx[i] = m->out_idx[i - 1];
        m->out_k[i] = m->out_k[i - 1];
    } else {
        m->out_idx[i] = NULL;
        m->out_k[i] = 0;
    }
}

/* The index lists layer i may read: in_idx always, out_idx in backward. */
static void fill_hints(const ae_model *m, size_t i, size_t from, size_t batch, int backward,
                       ae_sparse_io *sp) {
    const ae_layer *L = &m->layers[i];
    memset(sp, 0, sizeof *sp);
    /* The sparse paths count entries in int32. */
    if (batch * (L->in_sparse_k > L->out_sparse_k ? L->in_sparse_k : L->out_sparse_k) >
        (size_t)INT32_MAX)
        return;
    if (L->in_sparse_k && i > from && m->out_idx[i - 1] && m->out_k[i - 1] == L->in_sparse_k) {
        sp->in_idx = m->out_idx[i - 1];
        sp->in_k = m->out_k[i - 1];
    }
    if (backward && L->out_sparse_k && i + 1 < m->nlayers && m->out_idx[i + 1] &&
        m->out_k[i + 1] == L->out_sparse_k) {
        sp->out_idx = m->out_idx[i + 1];
        sp->out_k = m->out_k[i + 1];
    }
}

ae_sparse_io *ae_sparse_hints(const ae_model *m, size_t i, size_t from, size_t batch,
                              ae_sparse_io *sp) {
    fill_hints(m, i, from, batch, 0, sp);
    return sp->in_idx ? sp : NULL;
}

/* 1 when layer i may leave its dx unwritten outside the entries the
 * backward of layer i - 1 reads (ae_sparse_io.dx_kept_only). That holds
 * only where layer i is known to write every entry layer i - 1 reads, so
 * the cases are listed, not inferred. */
static int dx_kept_only(const ae_model *m, size_t i, size_t first, size_t batch) {
    if (i == 0 || i - 1 < first) return 0;
    const ae_layer *L = &m->layers[i], *P = &m->layers[i - 1];
    /* A top-k layer's backward reads its dy only at its kept entries. A
     * dense layer i writes them all (its sparse-input path writes exactly
     * those, its other paths all of dx). A selection layer i writes only
     * its own kept entries, which need not cover P's: not here. */
    if (P->ops->kept_index) return L->kind == AE_LAYER_DENSE;
    /* A dense layer feeding top-k layer i reads dy only at layer i's kept
     * entries when it takes its sparse path (see dense_backward); those
     * are the entries layer i writes. */
    if (P->kind != AE_LAYER_DENSE || P->w_transposed || !P->out_sparse_k || !L->ops->kept_index)
        return 0;
    ae_sparse_io sp;
    fill_hints(m, i - 1, 0, batch, 1, &sp);
    return sp.out_idx != NULL && sp.out_k == P->out_sparse_k;
}

ae_sparse_io *ae_sparse_before_backward(ae_model *m, size_t i, size_t first, size_t batch,
                                        int want_dx, ae_sparse_io *sp) {
    fill_hints(m, i, 0, batch, 1, sp);
    sp->sparse_grads = 1;
    sp->dx_kept_only = want_dx && dx_kept_only(m, i, first, batch);
    unsigned char *zero = m->grad_zero[i];
    if (zero && !m->grad_zero_ok[i]) memset(zero, 0, ae_sparse_zero_flags(&m->layers[i]));
    sp->w_zero = zero;
    return sp->in_idx || sp->out_idx || sp->w_zero || sp->dx_kept_only ? sp : NULL;
}

void ae_sparse_after_backward(ae_model *m, size_t i, const ae_sparse_io *sp) {
    const ae_layer *L = &m->layers[i];
    /* Flags the layer did not keep up to date are forgotten. */
    if (m->grad_zero[i]) m->grad_zero_ok[i] = sp->w_used != NULL;
    if (!sp->w_used) return;
    /* The layer knows where its weight gradient is zero: the optimizer and
     * the finiteness check read its flags instead of the zeros. */
    for (size_t b = 0; b < m->nblocks; b++) {
        const ae_param_block *blk = &m->blocks[b];
        /* The weight's own block (sparse paths are for untied layers). */
        if (blk->off != L->w_off || blk->len != L->w_count) continue;
        m->grad_shapes[b] = (ae_grad_shape){sp->w_used, L->in, sp->w_used_cols, sp->w_sqnorm};
        return;
    }
}

void ae_sparse_penalties(const ae_model *m, size_t batch, double *kl, double *l1) {
    *kl = 0.0;
    *l1 = 0.0;
    for (size_t i = 0; i < m->nlayers; i++) {
        const ae_layer *L = &m->layers[i];
        const ae_penalty_spec *p = &L->spec.penalty;
        if (p->kl_on) *kl += ae_kl_penalty(p, m->y[i], batch, L->out);
        if (p->l1_on) *l1 += ae_l1_penalty(p, m->y[i], batch, L->out);
    }
}

void ae_sparse_penalty_grad(ae_model *m, size_t i, size_t batch, float *dy) {
    const ae_layer *L = &m->layers[i];
    const ae_penalty_spec *p = &L->spec.penalty;
    if (p->kl_on) ae_kl_penalty_grad(p, m->y[i], batch, L->out, dy, m->pen_tmp);
    if (p->l1_on) ae_l1_penalty_grad(p, m->y[i], batch, L->out, dy);
}

/* ---- statistics ---- */

void ae_sparse_record(ae_model *m, size_t batch, double recon, double kl, double l1) {
    size_t c = m->code_layer - 1, n = m->layers[c].out;
    const float *z = m->y[c];
    size_t nz = 0;
    if (m->out_idx[c]) {
        /* Only the listed entries can be nonzero. */
        size_t k = m->out_k[c];
        for (size_t r = 0; r < batch; r++)
            for (size_t t = 0; t < k; t++) nz += z[r * n + (size_t)m->out_idx[c][r * k + t]] != 0.0f;
    } else {
        for (size_t i = 0; i < batch * n; i++) nz += z[i] != 0.0f;
    }
    m->stat_loss = recon + kl + l1;
    m->stat_recon = recon;
    m->stat_kl = kl;
    m->stat_l1 = l1;
    m->stat_l0 = (double)nz / (double)batch;
    m->has_stats = 1;
}

void ae_sparse_after_step(ae_model *m, size_t batch) {
    size_t c = m->code_layer - 1, n = m->layers[c].out;
    const float *z = m->y[c];
    if (m->out_idx[c]) {
        size_t k = m->out_k[c];
        for (size_t r = 0; r < batch; r++)
            for (size_t t = 0; t < k; t++) {
                size_t j = (size_t)m->out_idx[c][r * k + t];
                if (z[r * n + j] != 0.0f) m->last_active[j] = m->steps;
            }
    } else {
        for (size_t r = 0; r < batch; r++)
            for (size_t j = 0; j < n; j++)
                if (z[r * n + j] != 0.0f) m->last_active[j] = m->steps;
    }
    size_t kept_all = 0;
    for (size_t i = 0; i < m->nlayers; i++)
        if (m->layers[i].kind == AE_LAYER_LIFETIME_TOPK &&
            batch <= ae_lifetime_k(&m->layers[i], batch))
            kept_all++;
    m->stat_kept_all = kept_all;
}

ae_status ae_model_set_mode(ae_model *m, ae_mode mode) {
    if (!m) return AE_ERR_INVALID_ARG;
    if (mode != AE_MODE_INFER && mode != AE_MODE_TRAIN)
        return ae_error(&m->err, AE_ERR_INVALID_ARG, "unknown mode %d", (int)mode);
    m->mode = mode;
    return AE_OK;
}

ae_mode ae_model_get_mode(const ae_model *m) { return m ? (ae_mode)m->mode : AE_MODE_INFER; }

ae_status ae_model_get_stat(const ae_model *m, ae_stat stat, double *value) {
    if (!m || !value) return AE_ERR_INVALID_ARG;
    switch (stat) {
    case AE_STAT_LOSS:
    case AE_STAT_LOSS_RECON:
    case AE_STAT_LOSS_KL:
    case AE_STAT_LOSS_L1:
    case AE_STAT_CODE_L0:
        if (!m->has_stats) return AE_ERR_STATE;
        *value = stat == AE_STAT_LOSS         ? m->stat_loss
                 : stat == AE_STAT_LOSS_RECON ? m->stat_recon
                 : stat == AE_STAT_LOSS_KL    ? m->stat_kl
                 : stat == AE_STAT_LOSS_L1    ? m->stat_l1
                                              : m->stat_l0;
        return AE_OK;
    case AE_STAT_DEAD_LATENTS: {
        if (!m->steps) return AE_ERR_STATE;
        size_t n = m->layers[m->code_layer - 1].out, dead = 0;
        uint64_t w = (uint64_t)m->s.dead_window;
        for (size_t j = 0; j < n; j++)
            dead += m->last_active[j] == 0 || m->steps - m->last_active[j] >= w;
        *value = (double)dead;
        return AE_OK;
    }
    case AE_STAT_LOSS_VAE_KL:
        if (!m->has_vae || !m->has_stats) return AE_ERR_STATE;
        *value = m->stat_vae_kl;
        return AE_OK;
    case AE_STAT_LIFETIME_KEPT_ALL:
        if (!m->steps) return AE_ERR_STATE;
        *value = (double)m->stat_kept_all;
        return AE_OK;
    case AE_STAT_BATCH_TOPK_THRESHOLD:
        for (size_t i = 0; i < m->nlayers; i++) {
            const ae_layer *L = &m->layers[i];
            if (L->kind != AE_LAYER_BATCH_TOPK) continue;
            return ae_batch_topk_threshold(L, m->buffers + L->s_off, value) ? AE_OK : AE_ERR_STATE;
        }
        return AE_ERR_STATE;
    }
    return AE_ERR_INVALID_ARG;
}
