/* Variational autoencoders in the model: the builder call of the Gaussian
 * layer, its KL term in the loss, the sampling source of a forward pass
 * (the model's RNG or fixed eps), and the calls of <libae/vae.h>. The layer
 * itself is src/layers/gaussian.c, the KL value src/losses/vae.c. */
#include <math.h>
#include <string.h>

#include "model.h"

/* The private stream of ae_vae_neg_elbo: AE_P_SEED xor "ELBO". */
#define AE_ELBO_SEED_XOR 0x454c424fULL

/* ---- builder ---- */

/* The Gaussian layer is the code (AE_LK_CODE): adding it marks the code. */
ae_status ae_config_add_gaussian(ae_config *cfg, size_t dim) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    ae_layer_spec spec;
    ae_layer_spec_init(&spec, AE_LAYER_GAUSSIAN);
    spec.units = dim;
    return ae_config_add_spec(cfg, &spec);
}

/* ---- creation ---- */

ae_status ae_vae_setup(ae_model *m, ae_errbuf *err) {
    for (size_t i = 0; i < m->nlayers; i++) {
        if (m->layers[i].kind != AE_LAYER_GAUSSIAN) continue;
        /* The builder only adds it as the code; stacking calls could move it. */
        if (i + 1 != m->code_layer)
            return ae_error(err, AE_ERR_STATE,
                            "layer %zu is a Gaussian layer but not the code (layer %zu ends the "
                            "encoder)", i, m->code_layer - 1);
        m->has_vae = 1;
        m->vae_layer = i;
        m->layers[i].gauss_in = &m->vae_in;
    }
    return AE_OK;
}

void ae_vae_free(ae_model *m) { ae_free(&m->alloc, m->vae_eps); }

/* ---- passes ---- */

static size_t vae_dim(const ae_model *m) { return m->layers[m->vae_layer].out; }

ae_status ae_vae_sampling(ae_model *m, size_t batch, ae_rng **rng, const float **eps) {
    *rng = NULL;
    *eps = NULL;
    if (!m->vae_eps) {
        *rng = &m->rng;
        return AE_OK;
    }
    size_t d = vae_dim(m);
    if (m->vae_eps_count != batch * d)
        return ae_error(&m->err, AE_ERR_SHAPE,
                        "fixed eps hold %zu values (batch %zu x dim %zu), this batch has %zu "
                        "samples: set eps for it or clear them with ae_vae_set_fixed_eps(m, NULL, 0)",
                        m->vae_eps_count, m->vae_eps_count / d, d, batch);
    *eps = m->vae_eps;
    return AE_OK;
}

double ae_vae_beta_now(const ae_model *m) {
    double beta = m->s.vae_beta;
    uint64_t w = (uint64_t)m->s.vae_warmup;
    if (w && m->steps < w) beta *= (double)m->steps / (double)w;
    return beta;
}

/* 1/batch for the mean reduction, 1 for the sum. */
static double batch_scale(const ae_model *m, size_t batch) {
    return m->s.reduction == AE_REDUCE_MEAN ? 1.0 / (double)batch : 1.0;
}

double ae_vae_kl_term(const ae_model *m, size_t batch) {
    if (!m->has_vae) return 0.0;
    const float *ml = ae_gaussian_mu_logvar(m->scratch[m->vae_layer]);
    return ae_vae_kl(ml, batch, vae_dim(m)) * batch_scale(m, batch);
}

void ae_vae_before_backward(ae_model *m, size_t batch) {
    m->vae_in.kl_coef = m->has_vae ? (float)(ae_vae_beta_now(m) * batch_scale(m, batch)) : 0.0f;
}

void ae_vae_before_forward(ae_model *m, ae_rng *rng, const float *eps) {
    m->vae_in.rng = rng;
    m->vae_in.eps = eps;
}

/* ---- public calls ---- */

static ae_status need_vae(ae_model *m) {
    if (m->has_vae) return AE_OK;
    return ae_error(&m->err, AE_ERR_STATE,
                    "the model has no Gaussian layer (ae_config_add_gaussian): it is not a VAE");
}

ae_status ae_vae_encode(ae_model *m, const float *x, size_t batch, float *mu, float *logvar) {
    if (!m) return AE_ERR_INVALID_ARG;
    ae_status st = need_vae(m);
    if (!st) st = ae_model_prepare(m, x, mu, batch, m->in_size);
    if (st) return st;
    const float *y;
    if (m->mode == AE_MODE_TRAIN) {
        if ((st = ae_model_forward_train(m, 0, m->code_layer, x, batch, NULL, NULL, &y)) != AE_OK)
            return st;
    } else {
        ae_model_forward(m, 0, m->code_layer, x, batch, 0, NULL, NULL);
    }
    size_t d = vae_dim(m);
    const float *ml = ae_gaussian_mu_logvar(m->scratch[m->vae_layer]);
    for (size_t r = 0; r < batch; r++) {
        memcpy(mu + r * d, ml + r * 2 * d, d * sizeof *mu);
        if (logvar) memcpy(logvar + r * d, ml + r * 2 * d + d, d * sizeof *logvar);
    }
    return AE_OK;
}

/* Decodes n codes z (finite, checked by the caller) into out. */
static ae_status decode(ae_model *m, const float *z, size_t n, float *out) {
    ae_status st = ae_model_reserve(m, n);
    if (st) return st;
    const float *y;
    if (m->mode == AE_MODE_TRAIN) {
        if ((st = ae_model_forward_train(m, m->code_layer, m->nlayers, z, n, NULL, NULL, &y)) !=
            AE_OK)
            return st;
    } else {
        y = ae_model_forward(m, m->code_layer, m->nlayers, z, n, 0, NULL, NULL);
    }
    memcpy(out, y, n * m->out_size * sizeof *out);
    return AE_OK;
}

/* Checks a count of codes to decode. */
static ae_status check_count(ae_model *m, size_t n, size_t min, const char *what) {
    if (n < min || n > AE_MAX_DIM)
        return ae_error(&m->err, n == 0 ? AE_ERR_INVALID_ARG : AE_ERR_RANGE,
                        "%s must be in [%zu, %zu], got %zu", what, min, AE_MAX_DIM, n);
    return ae_model_check_layer_batch(m, n);
}

ae_status ae_vae_sample(ae_model *m, size_t n, float *out, float *z_out) {
    if (!m) return AE_ERR_INVALID_ARG;
    ae_status st = need_vae(m);
    if (st) return st;
    if (!out) return ae_error(&m->err, AE_ERR_INVALID_ARG, "the output buffer is NULL");
    if ((st = check_count(m, n, 1, "the number of samples")) != AE_OK) return st;
    size_t d = vae_dim(m);
    float *z = z_out ? z_out : ae_alloc(&m->alloc, n * d * sizeof *z);
    if (!z) return ae_error(&m->err, AE_ERR_OUT_OF_MEMORY, "out of memory for %zu codes", n);
    ae_rng before = m->rng;
    for (size_t i = 0; i < n * d; i++) z[i] = ae_rng_normal(&m->rng);
    st = decode(m, z, n, out);
    if (st) m->rng = before;
    if (!z_out) ae_free(&m->alloc, z);
    return st;
}

ae_status ae_vae_interpolate(ae_model *m, const float *z0, const float *z1, size_t steps,
                             float *out) {
    if (!m) return AE_ERR_INVALID_ARG;
    ae_status st = need_vae(m);
    if (st) return st;
    if (!z0 || !z1 || !out) return ae_error(&m->err, AE_ERR_INVALID_ARG, "a pointer is NULL");
    if (steps < 2 || steps > AE_MAX_DIM)
        return ae_error(&m->err, AE_ERR_RANGE, "steps must be in [2, %zu], got %zu", AE_MAX_DIM,
                        steps);
    if ((st = check_count(m, steps, 2, "steps")) != AE_OK) return st;
    size_t d = vae_dim(m);
    if (!ae_all_finite(z0, d) || !ae_all_finite(z1, d))
        return ae_error(&m->err, AE_ERR_NUMERIC, "the end codes hold a non-finite value");
    float *z = ae_alloc(&m->alloc, steps * d * sizeof *z);
    if (!z) return ae_error(&m->err, AE_ERR_OUT_OF_MEMORY, "out of memory for %zu codes", steps);
    for (size_t t = 0; t < steps; t++) {
        /* (1 - a) z0 + a z1 gives both ends exactly. */
        double a = (double)t / (double)(steps - 1);
        for (size_t j = 0; j < d; j++)
            z[t * d + j] = (float)((1.0 - a) * (double)z0[j] + a * (double)z1[j]);
    }
    st = decode(m, z, steps, out);
    ae_free(&m->alloc, z);
    return st;
}

ae_status ae_vae_neg_elbo(ae_model *m, const float *x, size_t batch, double *neg_elbo,
                          double *recon, double *kl) {
    if (!m) return AE_ERR_INVALID_ARG;
    ae_status st = need_vae(m);
    if (!st && !neg_elbo) st = ae_error(&m->err, AE_ERR_INVALID_ARG, "neg_elbo is NULL");
    if (!st) st = ae_model_prepare(m, x, x, batch, m->in_size);
    if (!st) st = ae_model_check_target(m, x, batch, "the input");
    if (st) return st;
    ae_rng rng;
    ae_rng_seed(&rng, (uint64_t)m->s.seed ^ AE_ELBO_SEED_XOR);
    int train = m->mode == AE_MODE_TRAIN;
    /* A forward in training mode may update layer state: restore it on failure. */
    if (m->nbuffers) memcpy(m->buffers_saved, m->buffers, m->nbuffers * sizeof(float));
    ae_model_forward(m, 0, m->nlayers, x, batch, train, &rng, NULL);
    if (train && (st = ae_model_check_state(m)) != AE_OK) return st;
    const ae_layer *last = &m->layers[m->nlayers - 1];
    ae_loss_input li = {(ae_loss)m->s.loss, AE_REDUCE_SUM, last->act, last->slope,
                        m->y[m->nlayers - 1], m->pre[m->nlayers - 1], x, batch * m->out_size,
                        ae_model_threads(m)};
    double r = ae_loss_eval(&li, NULL) / (double)batch;
    double k = ae_vae_kl(ae_gaussian_mu_logvar(m->scratch[m->vae_layer]), batch, vae_dim(m)) /
               (double)batch;
    if (!isfinite(r + k)) {
        if (m->nbuffers) memcpy(m->buffers, m->buffers_saved, m->nbuffers * sizeof(float));
        return ae_error(&m->err, AE_ERR_NUMERIC,
                        "the negative ELBO is not finite (reconstruction %g, KL %g)", r, k);
    }
    *neg_elbo = r + k;
    if (recon) *recon = r;
    if (kl) *kl = k;
    return AE_OK;
}

ae_status ae_vae_loss_terms(const ae_model *m, double *recon, double *kl) {
    if (!m) return AE_ERR_INVALID_ARG;
    /* The model's message buffer is the only part written. */
    if (!m->has_vae) return ae_error((ae_errbuf *)&m->err, AE_ERR_STATE,
                                     "the model has no Gaussian layer: it is not a VAE");
    if (!m->has_stats)
        return ae_error((ae_errbuf *)&m->err, AE_ERR_STATE,
                        "no training step or evaluation yet: there are no loss terms");
    if (recon) *recon = m->stat_recon;
    if (kl) *kl = m->stat_vae_kl;
    return AE_OK;
}

ae_status ae_vae_set_fixed_eps(ae_model *m, const float *eps, size_t count) {
    if (!m) return AE_ERR_INVALID_ARG;
    ae_status st = need_vae(m);
    if (st) return st;
    if (!eps) {
        ae_free(&m->alloc, m->vae_eps);
        m->vae_eps = NULL;
        m->vae_eps_count = 0;
        return AE_OK;
    }
    size_t d = vae_dim(m);
    if (count == 0 || count % d != 0 || count / d > AE_MAX_DIM)
        return ae_error(&m->err, AE_ERR_SHAPE,
                        "fixed eps: count must be batch x dim (dim %zu, batch 1 to %zu), got %zu", d,
                        AE_MAX_DIM, count);
    if (!ae_all_finite(eps, count)) {
        size_t i = ae_first_nonfinite(eps, count);
        return ae_error(&m->err, AE_ERR_NUMERIC, "fixed eps hold a non-finite value (%g) at %zu",
                        (double)eps[i], i);
    }
    float *p = ae_alloc(&m->alloc, count * sizeof *p);
    if (!p) return ae_error(&m->err, AE_ERR_OUT_OF_MEMORY, "out of memory for %zu fixed eps", count);
    memcpy(p, eps, count * sizeof *p);
    ae_free(&m->alloc, m->vae_eps);
    m->vae_eps = p;
    m->vae_eps_count = count;
    return AE_OK;
}
