#include <float.h>
#include <math.h>
#include <string.h>

#include "core/noise.h"
#include "core/pool.h"
#include "model.h"

static const char null_model_msg[] = "model is NULL";

/* ---- creation ---- */

static ae_status check_config(const ae_config *cfg, ae_errbuf *err) {
    if (!cfg->input_size) return ae_error(err, AE_ERR_STATE, "the config has no input size");
    if (!cfg->nlayers) return ae_error(err, AE_ERR_STATE, "the config has no layers");
    if (!cfg->code_marked)
        return ae_error(err, AE_ERR_STATE,
                        "no code marked: call ae_config_mark_code after the encoder layers");
    if (cfg->code_at == cfg->nlayers)
        return ae_error(err, AE_ERR_STATE, "the decoder is empty: add decoder layers or mirror the encoder");
    if (cfg->s.loss == AE_LOSS_BCE) {
        ae_activation a = cfg->layers[cfg->nlayers - 1].act;
        if (a != AE_ACT_SIGMOID)
            return ae_error(err, AE_ERR_STATE,
                            "BCE needs outputs in [0, 1]: the output activation must be sigmoid, not %s",
                            ae_act_name(a));
    }
    return AE_OK;
}

void ae_model_destroy(ae_model *m) {
    if (!m) return;
    ae_allocator a = m->alloc;
    ae_sparse_free(m);
    ae_vae_free(m);
    ae_meta_free(m);
    ae_convention_free(m);
    ae_plans_free(m);
    ae_fit_state_free(&a, m->fit);
    ae_free(&a, m->ws);
    ae_free(&a, m->scratch_n);
    ae_free(&a, m->noisy);
    ae_free(&a, m->y);
    ae_free(&a, m->pre);
    ae_free(&a, m->scratch);
    ae_free(&a, m->accumulate_w);
    ae_free(&a, m->w_own);
    ae_free(&a, m->blocks);
    ae_free(&a, m->grad_shapes);
    ae_free(&a, m->bounds);
    ae_free(&a, m->params);
    ae_free(&a, m->grads);
    ae_free(&a, m->state1);
    ae_free(&a, m->state2);
    ae_free(&a, m->buffers);
    ae_free(&a, m->buffers_saved);
    ae_free(&a, m->sync_buf);
    ae_free(&a, m->layers);
    ae_free(&a, m);
}

ae_status ae_model_create(ae_model **out, const ae_config *cfg_in) {
    if (!out) return AE_ERR_INVALID_ARG;
    *out = NULL;
    if (!cfg_in) return AE_ERR_INVALID_ARG;
    /* The config's message buffer is the only part written. */
    ae_config *cfg = (ae_config *)cfg_in;
    ae_status st = check_config(cfg, &cfg->err);
    if (st) return st;

    const ae_allocator *a = &cfg->alloc;
    ae_model *m = ae_calloc(a, 1, sizeof *m);
    if (!m) return ae_error(&cfg->err, AE_ERR_OUT_OF_MEMORY, "out of memory creating the model");
    m->alloc = *a;
    m->s = cfg->s;
    m->params_gen = 1;
    m->backend = ae_backend_resolve(cfg->backend);
    m->nlayers = cfg->nlayers;
    m->code_layer = cfg->code_at;
    m->in_size = cfg->input_size;

    m->layers = ae_calloc(a, m->nlayers, sizeof *m->layers);
    m->y = ae_calloc(a, m->nlayers, sizeof *m->y);
    m->pre = ae_calloc(a, m->nlayers, sizeof *m->pre);
    m->scratch = ae_calloc(a, m->nlayers, sizeof *m->scratch);
    m->scratch_n = ae_calloc(a, m->nlayers, sizeof *m->scratch_n);
    m->accumulate_w = ae_calloc(a, m->nlayers, 1);
    m->w_own = ae_calloc(a, m->nlayers, sizeof *m->w_own);
    m->blocks = ae_calloc(a, 2 * m->nlayers, sizeof *m->blocks);
    m->grad_shapes = ae_calloc(a, 2 * m->nlayers, sizeof *m->grad_shapes);
    m->bounds = ae_calloc(a, 2 * m->nlayers, sizeof *m->bounds);
    if (!m->layers || !m->y || !m->pre || !m->scratch || !m->scratch_n || !m->accumulate_w ||
        !m->w_own ||
        !m->blocks || !m->grad_shapes || !m->bounds)
        goto oom;

    ae_shape shape = cfg->input_shape;
    size_t off = 0, soff = 0;
    m->in_shape = shape;
    m->max_width = m->in_size;
    for (size_t i = 0; i < m->nlayers; i++) {
        const ae_layer_spec *sp = &cfg->layers[i];
        ae_layer *L = &m->layers[i];
        L->ops = ae_layer_ops_for(sp->kind);
        L->kind = sp->kind;
        L->spec = *sp;
        L->in_shape = shape;
        L->in = ae_shape_size(shape);
        L->act = sp->act;
        L->slope = sp->slope;
        L->has_bias = sp->bias;
        st = L->ops->setup(L, sp, &cfg->err);
        if (st) {
            ae_model_destroy(m);
            return st;
        }
        L->out = ae_shape_size(L->out_shape);
        if (L->out == 0 || L->out > AE_MAX_DIM) {
            ae_error(&cfg->err, AE_ERR_SHAPE, "layer %zu (%s) has %zu outputs per sample", i,
                     L->ops->desc->name, L->out);
            ae_model_destroy(m);
            return AE_ERR_SHAPE;
        }
        /* The loss differentiates the output activation itself, so the last
         * layer keeps its pre-activation whenever that derivative needs it
         * (GELU) or the loss reads logits, whatever the layer's kind. */
        L->keep_pre = L->keep_pre ||
                      (i + 1 == m->nlayers && (ae_act_needs_pre(L->act) ||
                                               ae_loss_wants_logits((ae_loss)m->s.loss, L->act)));
        L->w_off = m->w_own[i] = off;
        off += L->w_count;
        L->b_off = off;
        off += L->b_count;
        L->s_off = soff;
        soff += L->s_count;
        if (L->w_count) m->blocks[m->nblocks++] = (ae_param_block){L->w_off, L->w_count, 0, 0, 0};
        if (L->b_count) m->blocks[m->nblocks++] = (ae_param_block){L->b_off, L->b_count, 0, 0, 0};
        if (L->out > m->max_width) m->max_width = L->out;
        shape = L->out_shape;
    }
    if (ae_shape_size(shape) != cfg->input_size) {
        ae_model_destroy(m);
        return ae_error(&cfg->err, AE_ERR_SHAPE,
                        "the decoder's output has %zu features (%zux%zux%zu) but the input has %zu",
                        ae_shape_size(shape), shape.c, shape.h, shape.w, cfg->input_size);
    }
    m->out_size = ae_shape_size(shape);
    st = ae_sparse_setup(m, &cfg->err);
    if (!st) st = ae_vae_setup(m, &cfg->err);
    if (!st) st = ae_plans_setup(m, &cfg->err);
    if (st) {
        ae_model_destroy(m);
        return st;
    }
    m->nparams = off;
    m->nbuffers = soff;
    m->params = ae_calloc(a, off ? off : 1, sizeof(float));
    m->grads = ae_calloc(a, off ? off : 1, sizeof(float));
    m->state1 = ae_calloc(a, off ? off : 1, sizeof(float));
    m->state2 = ae_calloc(a, off ? off : 1, sizeof(float));
    m->buffers = ae_calloc(a, soff ? soff : 1, sizeof(float));
    m->buffers_saved = ae_calloc(a, soff ? soff : 1, sizeof(float));
    if (!m->params || !m->grads || !m->state1 || !m->state2 || !m->buffers || !m->buffers_saved)
        goto oom;

    if (cfg->tied && (st = ae_stack_tie(m, 0, m->code_layer - 1, &cfg->err)) != AE_OK) {
        ae_model_destroy(m);
        return st;
    }
    ae_rng_seed(&m->rng, (uint64_t)m->s.seed);
    for (size_t i = 0; i < m->nlayers; i++) {
        ae_layer *L = &m->layers[i];
        L->ops->init(L, m->params, &m->rng);
        if (L->ops->init_state) L->ops->init_state(L, m->buffers + L->s_off);
    }
    *out = m;
    return AE_OK;
oom:
    ae_model_destroy(m);
    return ae_error(&cfg->err, AE_ERR_OUT_OF_MEMORY, "out of memory creating the model");
}

const char *ae_model_last_error(const ae_model *m) { return m ? m->err.msg : null_model_msg; }

ae_backend ae_model_backend(const ae_model *m) { return m ? m->backend : AE_BACKEND_AUTO; }

ae_status ae_model_set_threads(ae_model *m, int threads) {
    if (!m) return AE_ERR_INVALID_ARG;
    if (threads < 0 || threads > AE_MAX_THREADS)
        return ae_error(&m->err, AE_ERR_RANGE, "threads must be in [0, %d], not %d", AE_MAX_THREADS,
                        threads);
    m->threads = threads;
    return AE_OK;
}

/* The default follows OpenMP's count on oneDNN, whose products run on the
 * same team; on OpenBLAS, whose own threads would compete with OpenMP's
 * spinning ones for the cores (measured: the seed-002 model's 2-thread
 * step 24 -> 58 ms), it is the calling thread. */
int ae_model_threads(const ae_model *m) {
    if (!m) return 0;
    if (m->threads == 0 && m->backend != AE_BACKEND_ONEDNN) return 1;
    return ae_pool_resolve(m->threads);
}

/* ---- workspace ---- */

/* The workspace's layout for `batch` samples: each buffer rounded to 16
 * floats keeps every one 64-byte aligned. Returns the floats it takes; with
 * ws, points the per-layer buffers into it. */
static size_t layout(ae_model *m, size_t batch, float *ws) {
    size_t gsize = (batch * m->max_width + 15) & ~(size_t)15, total = 0;
    for (size_t i = 0; i < m->nlayers; i++) {
        const ae_layer *L = &m->layers[i];
        size_t y = (batch * L->out + 15) & ~(size_t)15;
        size_t s = (ae_plans_scratch(m, i, batch) + 15) & ~(size_t)15;
        if (ws) {
            m->y[i] = ws + total;
            m->pre[i] = L->keep_pre ? ws + total + y : NULL;
            m->scratch[i] = ws + total + y + (L->keep_pre ? y : 0);
            m->scratch_n[i] = s;
        }
        total += y + (L->keep_pre ? y : 0) + s;
    }
    if (ws) {
        m->grad_a = ws + total;
        m->grad_b = ws + total + gsize;
    }
    return total + 2 * gsize;
}

ae_status ae_model_workspace_size(const ae_model *m, size_t batch, size_t *bytes) {
    if (!m || !bytes) return AE_ERR_INVALID_ARG;
    if (batch < 1 || batch > AE_MAX_DIM) return AE_ERR_RANGE;
    /* Without a workspace, layout only reads the model. */
    *bytes = layout((ae_model *)m, batch, NULL) * sizeof(float);
    return AE_OK;
}

ae_status ae_model_reserve(ae_model *m, size_t batch) {
    ae_status st = ae_plans_for(m, batch);
    if (st) return st;
    size_t B = batch > m->ws_batch ? batch : m->ws_batch;
    /* A batch size no larger still needs a new layout when a plan made for
     * it wants more scratch than its layer has. */
    int fits = B == m->ws_batch;
    for (size_t i = 0; fits && m->plans && i < m->nlayers; i++)
        fits = ae_plans_scratch(m, i, B) <= m->scratch_n[i];
    if (fits) return AE_OK;
    size_t total = layout(m, B, NULL);
    float *ws = ae_alloc(&m->alloc, total * sizeof(float));
    if (!ws)
        return ae_error(&m->err, AE_ERR_OUT_OF_MEMORY,
                        "out of memory allocating the workspace for batch %zu (%zu bytes)", B,
                        total * sizeof(float));
    ae_free(&m->alloc, m->ws);
    m->ws = ws;
    m->ws_batch = B;
    layout(m, B, ws);
    return AE_OK;
}

/* ---- passes ---- */

const float *ae_model_forward(ae_model *m, size_t from, size_t to, const float *x, size_t batch,
                              int train, ae_rng *rng, const float *eps) {
    ae_vae_before_forward(m, rng, eps);
    int threads = ae_model_threads(m);
    for (size_t i = from; i < to; i++) {
        ae_layer_io io = {.batch = batch, .train = train, .x = x, .pre = m->pre[i], .y = m->y[i],
                          .scratch = m->scratch[i],
                          .state = m->layers[i].s_count ? m->buffers + m->layers[i].s_off : NULL,
                          .backend = m->backend,
                          .threads = threads,
                          .plan = ae_model_layer_plan(m, i, batch),
                          .sync = train ? m->sync : NULL};
        /* Not in a training step: it writes the weights after its forward
         * pass, so it would pack at every step. */
        if (!m->stepping) io.packed = ae_plans_packed(m, i, &io.packed_stale);
        ae_sparse_io sp;
        io.sparse = ae_sparse_hints(m, i, from, batch, &sp);
        m->layers[i].ops->forward(&m->layers[i], m->params, &io);
        if (io.packed && !io.packed_stale) m->packed_gen[i] = m->params_gen;
        ae_sparse_after_forward(m, i, from);
        x = m->y[i];
    }
    return x;
}

/* Layer state is checked after the pass that wrote it rather than inside
 * each layer's update: it is a few floats per layer (BatchNorm's running
 * statistics, batch top-k's threshold), just written and in cache, and the
 * copy to restore from (buffers_saved) exists already. */
ae_status ae_model_check_state(ae_model *m) {
    if (ae_all_finite(m->buffers, m->nbuffers)) return AE_OK;
    size_t e = ae_first_nonfinite(m->buffers, m->nbuffers), i = 0;
    while (i + 1 < m->nlayers && e >= m->layers[i].s_off + m->layers[i].s_count) i++;
    float v = m->buffers[e];
    memcpy(m->buffers, m->buffers_saved, m->nbuffers * sizeof(float));
    return ae_error(&m->err, AE_ERR_NUMERIC,
                    "layer %zu (%s): its state would become non-finite (%g at element %zu, the "
                    "statistics overflow float); nothing was updated",
                    i, m->layers[i].ops->desc->name, (double)v, e - m->layers[i].s_off);
}

ae_status ae_model_forward_train(ae_model *m, size_t from, size_t to, const float *x,
                                 size_t batch, ae_rng *rng, const float *eps, const float **y) {
    if (m->nbuffers) memcpy(m->buffers_saved, m->buffers, m->nbuffers * sizeof(float));
    *y = ae_model_forward(m, from, to, x, batch, 1, rng, eps);
    return ae_model_check_state(m);
}

void ae_model_params_written(ae_model *m) {
    ae_optim_forget_bounds(m->bounds, 2 * m->nlayers);
    m->params_gen++;
}

static ae_status check_batch(ae_model *m, const void *a, const void *b, size_t batch) {
    if (!a || !b) return ae_error(&m->err, AE_ERR_INVALID_ARG, "a data pointer is NULL");
    if (batch == 0) return ae_error(&m->err, AE_ERR_INVALID_ARG, "batch size is 0");
    if (batch > AE_MAX_DIM)
        return ae_error(&m->err, AE_ERR_RANGE, "batch size must be at most %zu, got %zu",
                        AE_MAX_DIM, batch);
    return ae_model_check_layer_batch(m, batch);
}

ae_status ae_model_check_layer_batch(ae_model *m, size_t batch) {
    for (size_t i = 0; i < m->nlayers; i++) {
        const ae_layer *L = &m->layers[i];
        if (L->max_batch && batch > L->max_batch)
            return ae_error(&m->err, AE_ERR_RANGE,
                            "layer %zu (%s) takes batches of at most %zu, got %zu", i,
                            L->ops->desc->name, L->max_batch, batch);
    }
    return AE_OK;
}

/* Layers that need several samples in training (BatchNorm of a vector). */
static ae_status check_train_batch(ae_model *m, size_t batch) {
    for (size_t i = 0; i < m->nlayers; i++) {
        const ae_layer *L = &m->layers[i];
        if (batch < L->min_train_batch)
            return ae_error(&m->err, AE_ERR_SHAPE,
                            "layer %zu (%s) needs at least %zu samples per training batch, got %zu",
                            i, L->ops->desc->name, L->min_train_batch, batch);
    }
    return AE_OK;
}

static ae_status check_finite(ae_model *m, const float *p, size_t n, const char *what) {
    if (ae_all_finite(p, n)) return AE_OK;
    size_t i = ae_first_nonfinite(p, n);
    return ae_error(&m->err, AE_ERR_NUMERIC, "%s holds a non-finite value (%g) at element %zu",
                    what, (double)p[i], i);
}

ae_status ae_model_check_target(ae_model *m, const float *t, size_t batch, const char *what) {
    size_t n = batch * m->out_size, i = ae_loss_bad_target((ae_loss)m->s.loss, t, n);
    if (i == n) return AE_OK;
    /* Outside [0, 1] the BCE has no minimum: training ran to -2e9. */
    return ae_error(&m->err, AE_ERR_RANGE,
                    "%s holds %g at element %zu (sample %zu, value %zu): BCE targets must be in "
                    "[0, 1]",
                    what, (double)t[i], i, i / m->out_size, i % m->out_size);
}

ae_status ae_model_prepare(ae_model *m, const float *x, const void *out, size_t batch,
                           size_t width) {
    ae_status st = check_batch(m, x, out, batch);
    if (!st) st = check_finite(m, x, batch * width, "the input");
    if (!st) st = ae_model_reserve(m, batch);
    return st;
}

/* Forward and loss; with grad, also the gradient of the output's pre-activation into grad_a. */
/* terms receives the reconstruction, KL sparsity, L1 and VAE KL parts of the
 * loss (the last without beta). `sample`: a Gaussian layer samples. */
static ae_status forward_loss(ae_model *m, const float *x, const float *target, size_t batch,
                              int train, int sample, int grad, double *loss, double terms[4]) {
    if (!target) target = x;
    ae_rng *rng = NULL;
    const float *eps = NULL;
    ae_status st = sample && m->has_vae ? ae_vae_sampling(m, batch, &rng, &eps) : AE_OK;
    if (!st) st = check_finite(m, x, batch * m->in_size, "the input");
    if (!st && target != x) st = check_finite(m, target, batch * m->out_size, "the target");
    if (!st) st = ae_model_check_target(m, target, batch, target != x ? "the target" : "the input");
    if (!st) st = ae_model_reserve(m, batch);
    if (st) return st;
    m->stepping = grad;
    ae_model_forward(m, 0, m->nlayers, x, batch, train, rng, eps);
    m->stepping = 0;
    /* The callers saved the layer state before. */
    if (train && (st = ae_model_check_state(m)) != AE_OK) return st;
    const ae_layer *last = &m->layers[m->nlayers - 1];
    ae_loss_input li = {(ae_loss)m->s.loss, (ae_reduction)m->s.reduction, last->act, last->slope,
                        m->y[m->nlayers - 1], m->pre[m->nlayers - 1], target,
                        batch * m->out_size, ae_model_threads(m)};
    terms[0] = ae_loss_eval(&li, grad ? m->grad_a : NULL);
    ae_sparse_penalties(m, batch, &terms[1], &terms[2]);
    terms[3] = ae_vae_kl_term(m, batch);
    *loss = terms[0] + terms[1] + terms[2] + (m->has_vae ? ae_vae_beta_now(m) * terms[3] : 0.0);
    /* The caller receives a float: a loss beyond its range is infinite there. */
    if (!isfinite(*loss) || fabs(*loss) > FLT_MAX)
        return ae_error(&m->err, AE_ERR_NUMERIC,
                        "the loss (%g) is not finite as a float; nothing was updated", *loss);
    return AE_OK;
}

/* 1 when some parameter of the layer takes a gradient. */
static int layer_trains(const ae_layer *L) {
    return (L->b_count && !L->frozen) || (L->w_count && !L->frozen && !L->w_frozen);
}

size_t ae_model_first_trained(const ae_model *m) {
    size_t first = 0;
    while (first < m->nlayers && !layer_trains(&m->layers[first])) first++;
    return first;
}

static void backward(ae_model *m, const float *x, size_t batch) {
    float *dy = m->grad_a, *dx = m->grad_b;
    /* Below the first layer that trains, no gradient is needed. */
    size_t first = ae_model_first_trained(m);
    for (size_t b = 0; b < m->nblocks; b++) m->grad_shapes[b].used = NULL;
    int threads = ae_model_threads(m);
    for (size_t i = m->nlayers; i-- > first;) {
        ae_layer *L = &m->layers[i];
        ae_layer_io io = {.batch = batch,
                          .train = 1,
                          .x = i ? m->y[i - 1] : x,
                          .pre = m->pre[i],
                          .y = m->y[i],
                          .dy = dy,
                          .dx = i > first ? dx : NULL,
                          .dy_is_dpre = i + 1 == m->nlayers,
                          .scratch = m->scratch[i],
                          .state = L->s_count ? m->buffers + L->s_off : NULL,
                          .backend = m->backend,
                          .threads = threads,
                          .plan = ae_model_layer_plan(m, i, batch),
                          .sync = m->sync};
        if (i + 1 < m->nlayers) ae_sparse_penalty_grad(m, i, batch, dy);
        ae_sparse_io sp;
        io.sparse = ae_sparse_before_backward(m, i, first, batch, io.dx != NULL, &sp);
        L->ops->backward(L, m->params, m->grads, &io, m->accumulate_w[i]);
        if (io.sparse) ae_sparse_after_backward(m, i, io.sparse);
        float *t = dy;
        dy = dx;
        dx = t;
    }
}

ae_status ae_model_reserve_noisy(ae_model *m, size_t batch) {
    if (batch <= m->noisy_batch) return AE_OK;
    float *p = ae_alloc(&m->alloc, batch * m->in_size * sizeof(float));
    if (!p)
        return ae_error(&m->err, AE_ERR_OUT_OF_MEMORY,
                        "out of memory for the corrupted input of batch %zu", batch);
    ae_free(&m->alloc, m->noisy);
    m->noisy = p;
    m->noisy_batch = batch;
    return AE_OK;
}

/* Denoising: corrupts a private copy of x (allocated at the first step of a
 * new largest batch) from the model's RNG; *xin is the copy. */
static ae_status corrupt_input(ae_model *m, const float *x, size_t batch, const float **xin) {
    const ae_noise_spec *ns = &m->s.noise;
    ae_status st = ae_noise_check(ns, &m->err, 1);
    if (!st) st = check_finite(m, x, batch * m->in_size, "the input");
    if (st) return st;
    if ((st = ae_model_reserve_noisy(m, batch)) != AE_OK) return st;
    ae_noise_apply_mt(ae_model_threads(m), ns, &m->rng, x, m->noisy, batch, m->in_size);
    *xin = m->noisy;
    return AE_OK;
}

/* ---- the training step ----
 * ae_train_step runs four parts in a fixed order (docs/internals.md, "How a
 * training step flows"): compute_gradients (forward, loss, backward into
 * the gradient arena), reduce (the gradient-reduce hook, on the complete
 * arena), check_gradients (finiteness, global norm, clipping) and
 * apply_update (the optimizer). Nothing before apply_update touches a
 * parameter or optimizer state, and the statistics are committed only
 * after it, so a part that fails leaves the model as it was once the RNG
 * and the layer state (written by the forward pass) are restored. */

/* Corruption, forward, loss and backward: the gradient of the batch in
 * m->grads and the loss terms in sc (indexed by ae_grad_scalar). */
static ae_status compute_gradients(ae_model *m, const float *x, const float *target, size_t batch,
                                   double *sc) {
    const float *xin = x;
    ae_status st;
    if (m->s.noise.kind != AE_NOISE_NONE) {
        if ((st = corrupt_input(m, x, batch, &xin)) != AE_OK) return st;
        if (!target) target = x; /* the clean input */
    }
    double terms[4];
    st = forward_loss(m, xin, target, batch, 1, 1, 1, &sc[AE_GRAD_SCALAR_LOSS], terms);
    if (st) return st;
    ae_vae_before_backward(m, batch);
    backward(m, xin, batch);
    sc[AE_GRAD_SCALAR_RECON] = terms[0];
    sc[AE_GRAD_SCALAR_KL] = terms[1];
    sc[AE_GRAD_SCALAR_L1] = terms[2];
    sc[AE_GRAD_SCALAR_VAE_KL] = terms[3];
    return AE_OK;
}

/* The hook point: the arena is complete (every gradient of the step
 * written, the rows the sparse paths know to be zero included) and nothing
 * has read it yet. `local` is the status of compute_gradients: when it
 * failed, the hook still runs (a collective must be entered by every
 * process) on NaN, so that a summing reducer fails the step everywhere. */
static ae_status reduce(ae_model *m, ae_status local, size_t batch, double *sc) {
    if (local) {
        for (size_t i = 0; i < m->nparams; i++) m->grads[i] = NAN;
        for (int k = 0; k < AE_GRAD_SCALAR_COUNT; k++) sc[k] = NAN;
    }
    sc[AE_GRAD_SCALAR_BATCH] = (double)batch;
    sc[AE_GRAD_SCALAR_STATUS] = (double)local;
    ae_status st = m->reduce_fn(m->reduce_ctx, m->grads, m->nparams, sc, AE_GRAD_SCALAR_COUNT);
    /* The hook may have rewritten any gradient: what the sparse paths know
     * of the arena (zero rows, their sums of squares) no longer holds, and
     * the next backward rewrites every row. */
    memset(m->grad_zero_ok, 0, m->nlayers);
    for (size_t b = 0; b < m->nblocks; b++) m->grad_shapes[b].used = NULL;
    if (local) return local;
    if (st)
        return ae_error(&m->err, st, "the gradient-reduce hook failed (%s); nothing was updated",
                        ae_status_name(st));
    static const char *const names[] = {"loss", "reconstruction loss", "KL sparsity penalty",
                                        "L1 penalty", "VAE KL term"};
    for (int k = 0; k < AE_GRAD_SCALAR_BATCH; k++)
        if (!isfinite(sc[k]))
            return ae_error(&m->err, AE_ERR_NUMERIC,
                            "the gradient-reduce hook left a non-finite %s (%g); nothing was updated",
                            names[k], sc[k]);
    return AE_OK;
}

/* The finiteness check and the clipping scale, over what the hook left. */
static ae_status check_gradients(ae_model *m, float *scale) {
    double sq = ae_optim_grad_sqnorm_blocks(m->grads, m->blocks, m->grad_shapes, m->nblocks,
                                            m->bounds);
    if (!isfinite(sq))
        return ae_error(&m->err, AE_ERR_NUMERIC,
                        "the gradient is not finite at step %llu; nothing was updated",
                        (unsigned long long)m->steps);
    *scale = 1.0f;
    if (m->s.clip_norm > 0.0) {
        double norm = sqrt(sq);
        /* PyTorch's clip_grad_norm_: scale by max_norm / (norm + 1e-6) when above 1. */
        double c = m->s.clip_norm / (norm + 1e-6);
        if (c < 1.0) *scale = (float)c;
    }
    return AE_OK;
}

/* The optimizer, checked: it writes nothing when some parameter or
 * optimizer state value would not be finite (src/optim/optim.c says how
 * that stays cheap). */
static ae_status apply_update(ae_model *m, float scale) {
    ae_optim_settings os;
    ae_settings_to_optim(&m->s, &os);
    os.threads = ae_model_threads(m);
    size_t b = 0;
    if (ae_optim_step_checked(&os, m->params, m->grads, m->state1, m->state2, m->blocks,
                              m->grad_shapes, m->bounds, m->nblocks, scale, &b) == AE_OK) {
        m->params_gen++; /* the packed parameters (plan.c) are stale */
        return AE_OK;
    }
    size_t i = 0, off = m->blocks[b].off;
    int bias = 0;
    for (; i < m->nlayers; i++) {
        const ae_layer *L = &m->layers[i];
        if (L->w_count && !L->w_transposed && L->w_off == off) break;
        if (L->b_count && L->b_off == off && (bias = 1)) break;
    }
    return ae_error(&m->err, AE_ERR_NUMERIC,
                    "the update of layer %zu's %s would make a parameter or its optimizer state "
                    "non-finite (learning rate, weight decay or values too large) at step %llu; "
                    "nothing was updated",
                    i, bias ? "bias" : "weight", (unsigned long long)m->steps);
}

ae_status ae_train_step(ae_model *m, const float *x, const float *target, size_t batch,
                        float *loss) {
    if (!m) return AE_ERR_INVALID_ARG;
    ae_status st = check_batch(m, x, x, batch);
    if (!st) st = check_train_batch(m, batch);
    if (st) return st;
    /* A failed step leaves the RNG and the layer state (the forward pass of
     * a training step updates running statistics) as they were. */
    ae_rng rng_before = m->rng;
    if (m->nbuffers) memcpy(m->buffers_saved, m->buffers, m->nbuffers * sizeof(float));
    double sc[AE_GRAD_SCALAR_COUNT];
    float scale = 1.0f;
    ae_batch_sync sync;
    ae_sync_begin(m, &sync, batch);
    st = compute_gradients(m, x, target, batch, sc);
    if (m->sync) st = ae_sync_end(m, st);
    if (m->reduce_fn) st = reduce(m, st, batch, sc);
    if (!st) st = check_gradients(m, &scale);
    if (!st) st = apply_update(m, scale);
    if (st) {
        if (m->nbuffers) memcpy(m->buffers, m->buffers_saved, m->nbuffers * sizeof(float));
        m->rng = rng_before;
        return st;
    }
    m->steps++;
    m->last_loss = sc[AE_GRAD_SCALAR_LOSS];
    ae_sparse_record(m, batch, sc[AE_GRAD_SCALAR_RECON], sc[AE_GRAD_SCALAR_KL],
                     sc[AE_GRAD_SCALAR_L1]);
    m->stat_loss = sc[AE_GRAD_SCALAR_LOSS];
    m->stat_vae_kl = sc[AE_GRAD_SCALAR_VAE_KL];
    ae_sparse_after_step(m, batch);
    if (loss) *loss = (float)sc[AE_GRAD_SCALAR_LOSS];
    return AE_OK;
}

ae_status ae_model_set_grad_reduce(ae_model *m, ae_grad_reduce_fn fn, void *ctx) {
    if (!m) return AE_ERR_INVALID_ARG;
    m->reduce_fn = fn;
    m->reduce_ctx = fn ? ctx : NULL;
    return AE_OK;
}

ae_status ae_evaluate(ae_model *m, const float *x, const float *target, size_t batch, float *loss) {
    if (!m) return AE_ERR_INVALID_ARG;
    ae_status st = check_batch(m, x, x, batch);
    if (st) return st;
    double l, terms[4];
    /* A forward in training mode may update layer state and draw from the
     * RNG: restore both on failure. */
    if (m->nbuffers) memcpy(m->buffers_saved, m->buffers, m->nbuffers * sizeof(float));
    ae_rng rng_before = m->rng;
    int train = m->mode == AE_MODE_TRAIN;
    st = forward_loss(m, x, target, batch, train, train, 0, &l, terms);
    if (st) {
        if (m->nbuffers) memcpy(m->buffers, m->buffers_saved, m->nbuffers * sizeof(float));
        m->rng = rng_before;
        return st;
    }
    ae_sparse_record(m, batch, terms[0], terms[1], terms[2]);
    m->stat_loss = l;
    m->stat_vae_kl = terms[3];
    if (loss) *loss = (float)l;
    return AE_OK;
}

/* `sample`: a Gaussian layer among the layers samples (training mode only). */
static ae_status run_range(ae_model *m, size_t from, size_t to, const float *x, size_t batch,
                           float *out, size_t in_width, size_t out_width, int sample) {
    if (!m) return AE_ERR_INVALID_ARG;
    int train = m->mode == AE_MODE_TRAIN;
    ae_rng *rng = NULL;
    const float *eps = NULL;
    ae_status st = ae_model_prepare(m, x, out, batch, in_width);
    if (!st && sample && train && m->has_vae) st = ae_vae_sampling(m, batch, &rng, &eps);
    if (st) return st;
    const float *y;
    if (train) {
        /* A refused pass changes nothing: the RNG it drew from included. */
        ae_rng rng_before = m->rng;
        if ((st = ae_model_forward_train(m, from, to, x, batch, rng, eps, &y)) != AE_OK) {
            m->rng = rng_before;
            return st;
        }
    } else {
        y = ae_model_forward(m, from, to, x, batch, 0, rng, eps);
    }
    memcpy(out, y, batch * out_width * sizeof(float));
    return AE_OK;
}

ae_status ae_encode(ae_model *m, const float *x, size_t batch, float *code) {
    if (!m) return AE_ERR_INVALID_ARG;
    return run_range(m, 0, m->code_layer, x, batch, code, m->in_size, ae_model_code_size(m), 0);
}

ae_status ae_decode(ae_model *m, const float *code, size_t batch, float *out) {
    if (!m) return AE_ERR_INVALID_ARG;
    return run_range(m, m->code_layer, m->nlayers, code, batch, out, ae_model_code_size(m),
                     m->out_size, 0);
}

ae_status ae_reconstruct(ae_model *m, const float *x, size_t batch, float *out) {
    if (!m) return AE_ERR_INVALID_ARG;
    return run_range(m, 0, m->nlayers, x, batch, out, m->in_size, m->out_size, 1);
}

/* ---- getters ---- */

size_t ae_model_input_size(const ae_model *m) { return m ? m->in_size : 0; }
size_t ae_model_output_size(const ae_model *m) { return m ? m->out_size : 0; }
size_t ae_model_code_size(const ae_model *m) {
    return m ? m->layers[m->code_layer - 1].out : 0;
}
size_t ae_model_layer_count(const ae_model *m) { return m ? m->nlayers : 0; }
size_t ae_model_code_layer(const ae_model *m) { return m ? m->code_layer : 0; }
uint64_t ae_model_step_count(const ae_model *m) { return m ? m->steps : 0; }

size_t ae_model_param_count(const ae_model *m) {
    if (!m) return 0;
    size_t n = 0;
    for (size_t b = 0; b < m->nblocks; b++) n += m->blocks[b].len;
    return n;
}

/* The 0.1.0 struct ends after bias_count. */
#define LAYER_INFO_V1_SIZE (offsetof(ae_layer_info, bias_count) + sizeof(size_t))

ae_status ae_model_layer_info(const ae_model *m, size_t layer, ae_layer_info *info) {
    if (!m || !info || info->struct_size < LAYER_INFO_V1_SIZE) return AE_ERR_INVALID_ARG;
    if (layer >= m->nlayers) return AE_ERR_RANGE;
    const ae_layer *L = &m->layers[layer];
    ae_layer_info v;
    memset(&v, 0, sizeof v);
    v.struct_size = info->struct_size < sizeof v ? info->struct_size : sizeof v;
    v.kind = L->kind;
    v.activation = L->act;
    v.in_size = L->in;
    v.out_size = L->out;
    v.weight_count = L->w_count;
    v.bias_count = L->b_count;
    v.state_count = L->s_count;
    memcpy(info, &v, v.struct_size);
    return AE_OK;
}

/* Finds a layer's weight or bias range for the get/set calls. */
static ae_status param_range(const ae_model *m, ae_errbuf *err, size_t layer, int bias,
                             size_t count, const void *buf, size_t *off) {
    if (!buf) return ae_error(err, AE_ERR_INVALID_ARG, "the buffer is NULL");
    if (layer >= m->nlayers)
        return ae_error(err, AE_ERR_RANGE, "layer %zu does not exist (the model has %zu)", layer,
                        m->nlayers);
    const ae_layer *L = &m->layers[layer];
    size_t want = bias ? L->b_count : L->w_count;
    if (count != want)
        return ae_error(err, AE_ERR_SHAPE, "layer %zu has %zu %s values, not %zu", layer, want,
                        bias ? "bias" : "weight", count);
    *off = bias ? L->b_off : L->w_off;
    return AE_OK;
}

static ae_status get_param(const ae_model *m, size_t layer, int bias, float *dst, size_t count) {
    if (!m) return AE_ERR_INVALID_ARG;
    size_t off = 0;
    /* Getters are const: their errors are reported by code only. */
    ae_status st = param_range(m, NULL, layer, bias, count, dst, &off);
    if (st) return st;
    if (!bias)
        ae_stack_read_weight(m, &m->layers[layer], dst);
    else
        memcpy(dst, m->params + off, count * sizeof(float));
    return AE_OK;
}

static ae_status set_param(ae_model *m, size_t layer, int bias, const float *src, size_t count) {
    if (!m) return AE_ERR_INVALID_ARG;
    size_t off = 0;
    ae_status st = param_range(m, &m->err, layer, bias, count, src, &off);
    if (st) return st;
    st = check_finite(m, src, count, bias ? "the bias" : "the weight");
    if (st) return st;
    if (!bias)
        ae_stack_write_weight(m, &m->layers[layer], src);
    else
        memcpy(m->params + off, src, count * sizeof(float));
    ae_model_params_written(m);
    return AE_OK;
}

ae_status ae_model_get_weights(const ae_model *m, size_t layer, float *dst, size_t count) {
    return get_param(m, layer, 0, dst, count);
}
ae_status ae_model_set_weights(ae_model *m, size_t layer, const float *src, size_t count) {
    return set_param(m, layer, 0, src, count);
}
ae_status ae_model_get_bias(const ae_model *m, size_t layer, float *dst, size_t count) {
    return get_param(m, layer, 1, dst, count);
}
ae_status ae_model_set_bias(ae_model *m, size_t layer, const float *src, size_t count) {
    return set_param(m, layer, 1, src, count);
}

/* Non-trainable layer state (m->buffers). */
static ae_status state_range(const ae_model *m, ae_errbuf *err, size_t layer, size_t count,
                             const void *buf) {
    if (!buf) return ae_error(err, AE_ERR_INVALID_ARG, "the buffer is NULL");
    if (layer >= m->nlayers)
        return ae_error(err, AE_ERR_RANGE, "layer %zu does not exist (the model has %zu)", layer,
                        m->nlayers);
    const ae_layer *L = &m->layers[layer];
    if (count != L->s_count)
        return ae_error(err, AE_ERR_SHAPE, "layer %zu (%s) has %zu state values, not %zu", layer,
                        L->ops->desc->name, L->s_count, count);
    return AE_OK;
}

ae_status ae_model_get_state(const ae_model *m, size_t layer, float *dst, size_t count) {
    if (!m) return AE_ERR_INVALID_ARG;
    ae_status st = state_range(m, NULL, layer, count, dst);
    if (st) return st;
    if (count) memcpy(dst, m->buffers + m->layers[layer].s_off, count * sizeof(float));
    return AE_OK;
}

ae_status ae_model_set_state(ae_model *m, size_t layer, const float *src, size_t count) {
    if (!m) return AE_ERR_INVALID_ARG;
    ae_status st = state_range(m, &m->err, layer, count, src);
    if (!st) st = check_finite(m, src, count, "the layer state");
    if (st) return st;
    const ae_layer *L = &m->layers[layer];
    if (L->ops->check_state) {
        st = L->ops->check_state(L, src, &m->err);
        if (st) return st;
    }
    if (count) memcpy(m->buffers + L->s_off, src, count * sizeof(float));
    return AE_OK;
}

ae_status ae_model_set_int(ae_model *m, ae_param param, int64_t value) {
    if (!m) return AE_ERR_INVALID_ARG;
    return ae_settings_set(&m->s, &m->err, param, 1, value, 0.0, 1);
}
ae_status ae_model_set_float(ae_model *m, ae_param param, double value) {
    if (!m) return AE_ERR_INVALID_ARG;
    return ae_settings_set(&m->s, &m->err, param, 0, 0, value, 1);
}
ae_status ae_model_get_int(const ae_model *m, ae_param param, int64_t *value) {
    if (!m || !value) return AE_ERR_INVALID_ARG;
    return ae_settings_get(&m->s, NULL, param, 1, value, NULL);
}
ae_status ae_model_get_float(const ae_model *m, ae_param param, double *value) {
    if (!m || !value) return AE_ERR_INVALID_ARG;
    return ae_settings_get(&m->s, NULL, param, 0, NULL, value);
}
