#include <float.h>
#include <math.h>

#include "core/pool.h"
#include "optim.h"

/* Sixteen independent partial sums: a plain float reduction would not vectorise. */
AE_HOT double ae_optim_sqnorm(const float *g, size_t n) {
    float lanes[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (size_t j = 0; j < 16; j++) lanes[j] += g[i + j] * g[i + j];
    double total = 0.0;
    for (size_t j = 0; j < 16; j++) total += lanes[j];
    for (; i < n; i++) total += (double)g[i] * g[i];
    return total;
}

double ae_optim_grad_sqnorm_blocks(const float *grads, const ae_param_block *blocks,
                                   const ae_grad_shape *shapes, size_t nblocks, ae_block_bound *bb) {
    double total = 0.0;
    for (size_t b = 0; b < nblocks; b++) {
        double sq = 0.0;
        if (!blocks[b].frozen)
            sq = shapes && shapes[b].used ? shapes[b].used_sq
                                          : ae_optim_sqnorm(grads + blocks[b].off, blocks[b].len);
        if (bb) bb[b].sq = sq;
        total += sq;
    }
    return total;
}

double ae_optim_grad_sqnorm_shaped(const float *grads, const ae_param_block *blocks,
                                   const ae_grad_shape *shapes, size_t nblocks) {
    return ae_optim_grad_sqnorm_blocks(grads, blocks, shapes, nblocks, NULL);
}

double ae_optim_grad_sqnorm(const float *grads, const ae_param_block *blocks, size_t nblocks) {
    return ae_optim_grad_sqnorm_shaped(grads, blocks, NULL, nblocks);
}

/* PyTorch 1.13 _single_tensor_sgd. */
typedef struct sgd_consts {
    float lr, wd, mom, damp;
    int nesterov;
} sgd_consts;

static sgd_consts sgd_setup(const ae_optim_settings *s) {
    sgd_consts c = {(float)s->lr, (float)s->weight_decay, (float)s->momentum,
                    1.0f - (float)s->dampening, s->nesterov};
    return c;
}

/* One element: the new parameter *pn and momentum buffer *bn from p, the
 * gradient g and the buffer *b (read and written only with momentum). The
 * update and its exact check both compute through here, so they agree bit
 * for bit. */
static inline void sgd_new(const sgd_consts *c, float p, float g, const float *b, int fresh_buf,
                           float gs, float *pn, float *bn) {
    float d = g * gs;
    if (c->wd != 0.0f) d += c->wd * p;
    if (c->mom != 0.0f) {
        float bv = fresh_buf ? d : *b * c->mom + c->damp * d;
        d = c->nesterov ? d + c->mom * bv : bv;
        *bn = bv;
    }
    *pn = p - c->lr * d;
}

AE_HOT static void sgd_block(const sgd_consts *cp, float *p, const float *g, float *buf, size_t n,
                             int fresh_buf, float gs) {
    const sgd_consts c = *cp;
    for (size_t i = 0; i < n; i++) sgd_new(&c, p[i], g[i], buf + i, fresh_buf, gs, p + i, buf + i);
}

/* PyTorch 1.13 _single_tensor_adam (AdamW: decoupled decay first). */
typedef struct adam_consts {
    float step_size, bc2_sqrt, b1, b2, eps, one_b1, one_b2, wd, decay;
    int adamw;
} adam_consts;

static adam_consts adam_setup(const ae_optim_settings *s, uint64_t step) {
    const double t = (double)(step + 1);
    const double bc1 = 1.0 - pow(s->beta1, t), bc2 = 1.0 - pow(s->beta2, t);
    adam_consts c = {(float)(s->lr / bc1),
                     (float)sqrt(bc2),
                     (float)s->beta1,
                     (float)s->beta2,
                     (float)s->eps,
                     (float)(1.0 - s->beta1),
                     (float)(1.0 - s->beta2),
                     (float)s->weight_decay,
                     (float)(1.0 - s->lr * s->weight_decay),
                     s->kind == AE_OPT_ADAMW};
    return c;
}

/* One element: the new parameter and moments from pi, *m, *v and the
 * (scaled) gradient d, stored to pn, mn, vn. The update and its exact
 * check both compute through here, so they agree bit for bit. */
static inline void adam_new(const adam_consts *c, float pi, float m0, float v0, float d, float *pn,
                            float *mn, float *vn) {
    if (c->adamw)
        pi *= c->decay;
    else if (c->wd != 0.0f)
        d += c->wd * pi;
    float mi = m0 * c->b1 + c->one_b1 * d;
    float vi = v0 * c->b2 + c->one_b2 * (d * d);
    /* Moments that decay below FLT_MIN (a parameter whose gradient
     * stays 0, e.g. a dead latent's weights under top-k) are flushed
     * to 0: denormal arithmetic costs ~100 cycles an operation, and the
     * update they make is below 1e-30. */
    mi = fabsf(mi) < FLT_MIN ? 0.0f : mi;
    vi = vi < FLT_MIN ? 0.0f : vi;
    *mn = mi;
    *vn = vi;
    float denom = sqrtf(vi) / c->bc2_sqrt + c->eps;
    *pn = pi - c->step_size * (mi / denom);
}

static inline void adam_one(const adam_consts *c, float *p, float *m, float *v, float d) {
    adam_new(c, *p, *m, *v, d, p, m, v);
}

/* Each copies the constants to a local, which the stores cannot alias. */
AE_HOT static void adam_block(const adam_consts *cp, float *p, const float *g, float *m, float *v,
                              size_t n, float gs) {
    const adam_consts c = *cp;
    for (size_t i = 0; i < n; i++) adam_one(&c, p + i, m + i, v + i, g[i] * gs);
}

/* A zero gradient (0 · gs, exactly what the general loop computes), not read. */
AE_HOT static void adam_block_zero(const adam_consts *cp, float *p, float *m, float *v, size_t n) {
    const adam_consts c = *cp;
    for (size_t i = 0; i < n; i++) adam_one(&c, p + i, m + i, v + i, 0.0f);
}

/* A block's update over index range [lo, hi) (rows of the shape for a
 * row-sparse Adam block), on the step's threads: each value is updated
 * from its own inputs, so any split gives the same bits. */
typedef struct update_job {
    int sgd;
    sgd_consts sc;
    adam_consts ac;
    const ae_grad_shape *rows; /* row-sparse Adam: the shape, else NULL */
    float *p, *m, *v;
    const float *g;
    int fresh;
    float gs;
} update_job;

static void update_range(void *ctx, size_t lo, size_t hi) {
    const update_job *j = ctx;
    if (j->sgd) {
        sgd_block(&j->sc, j->p + lo, j->g + lo, j->m + lo, hi - lo, j->fresh, j->gs);
    } else if (j->rows) {
        size_t w = j->rows->row_len;
        for (size_t r = lo; r < hi; r++) {
            size_t o = r * w;
            if (j->rows->used[r])
                adam_block(&j->ac, j->p + o, j->g + o, j->m + o, j->v + o, w, j->gs);
            else
                adam_block_zero(&j->ac, j->p + o, j->m + o, j->v + o, w);
        }
    } else {
        adam_block(&j->ac, j->p + lo, j->g + lo, j->m + lo, j->v + lo, hi - lo, j->gs);
    }
}

void ae_optim_step_shaped(const ae_optim_settings *s, float *params, const float *grads,
                          float *state1, float *state2, ae_param_block *blocks,
                          const ae_grad_shape *shapes, size_t nblocks, float grad_scale) {
    for (size_t b = 0; b < nblocks; b++) {
        ae_param_block *blk = &blocks[b];
        if (blk->frozen) continue;
        size_t o = blk->off;
        update_job j = {.p = params + o, .g = grads + o, .m = state1 + o,
                        .v = state2 + o, .gs = grad_scale};
        size_t n = blk->len, min_each = AE_POOL_MIN_VALUES;
        if (s->kind == AE_OPT_SGD) {
            j.sgd = 1;
            j.sc = sgd_setup(s);
            j.fresh = !blk->momentum_ready;
        } else {
            j.ac = adam_setup(s, blk->step);
            /* Zero rows are not read; zero columns are (a masked loop is slower
             * than reading them). */
            if (shapes && shapes[b].used && !shapes[b].used_cols) {
                j.rows = &shapes[b];
                n = blk->len / shapes[b].row_len;
                min_each = ae_pool_units(AE_POOL_MIN_VALUES, shapes[b].row_len);
            }
        }
        ae_pool_for(s->threads, n, 16, min_each, update_range, &j);
        if (s->kind == AE_OPT_SGD && s->momentum != 0.0) blk->momentum_ready = 1;
        blk->step++;
    }
}

void ae_optim_step(const ae_optim_settings *s, float *params, const float *grads, float *state1,
                   float *state2, ae_param_block *blocks, size_t nblocks, float grad_scale) {
    ae_optim_step_shaped(s, params, grads, state1, state2, blocks, NULL, nblocks, grad_scale);
}

/* ---- the checked update ----
 * After a successful step every parameter and optimizer state value is
 * finite; otherwise the step changes nothing. Checking each value before
 * it is stored costs a second pass over params, grads and state (one that
 * computes the update without storing it: about half the memory traffic
 * of the update again), and rolling back costs a copy of the arenas; both
 * on every step. Instead each block keeps bounds on |p|, |state1| and
 * state2, and bounds on every value the update computes follow from them,
 * the gradient's norm and the settings in a few double operations per
 * block (triangle inequality through the same formulas; the bounds live
 * in ae_block_bound beside the block table). When they prove
 * everything below SAFE, far under FLT_MAX, the update runs unchecked and
 * its bounds become the block's. Otherwise (bounds unknown: a new model, a
 * block written outside the optimizer; or too large) the block takes the
 * exact pass first, which also makes its bounds the true maxima again.
 * Nothing is written before every block has passed. The bounds only grow
 * on unchecked steps (by the largest possible update), so the exact pass
 * comes back now and then for a model whose parameters keep growing. */

#define SAFE 1e36
/* Relative float rounding of the few operations between two bounds. */
#define SLACK (1.0 + 1e-5)

static int below(double x) { return x <= SAFE; } /* false for NaN */

/* Bounds after an SGD update of blk with |g·gs| <= G, in nb[3]; 1 when
 * every value the update computes stays below SAFE. */
static int sgd_bound(const sgd_consts *c, const ae_param_block *blk, const double mx[3], double G,
                     double nb[3]) {
    double wd = fabs((double)c->wd), mom = fabs((double)c->mom), damp = fabs((double)c->damp);
    double D = G + wd * mx[0], B = mx[1], D2 = D;
    if (c->mom != 0.0f) {
        B = blk->momentum_ready ? mom * mx[1] + damp * D : D;
        D2 = c->nesterov ? D + mom * B : B;
    }
    double U = fabs((double)c->lr) * D2;
    nb[0] = (mx[0] + U) * SLACK;
    nb[1] = B * SLACK;
    nb[2] = mx[2];
    return below(D) && below(B) && below(D2) && below(nb[0]) && below(nb[1]);
}

static int adam_bound(const adam_consts *c, const double mx[3], double G, double nb[3]) {
    if (!isfinite(c->step_size) || !isfinite(c->decay) || !(c->eps > 0.0f) ||
        !(c->bc2_sqrt > 0.0f))
        return 0;
    double P = mx[0], D = G;
    if (c->adamw)
        P *= fabs((double)c->decay);
    else if (c->wd != 0.0f)
        D += fabs((double)c->wd) * mx[0];
    double M = c->b1 * mx[1] + c->one_b1 * D;
    double V = c->b2 * mx[2] + c->one_b2 * (D * D);
    /* The denominator is at least eps and at most sqrt(V) / bc2 + eps. */
    double den = sqrt(V) / c->bc2_sqrt + c->eps;
    double R = M / c->eps, U = c->step_size * R;
    nb[0] = (P + U) * SLACK;
    nb[1] = M * SLACK;
    nb[2] = V * SLACK;
    return below(P) && below(D) && below(D * D) && below(M) && below(V) && below(den) &&
           below(R) && below(U) && below(nb[0]);
}

/* The exact check: the maxima of what the update would write (mx[3]), and
 * 0 when some value is not finite. Nothing is stored. */
static int finite_max(float x, float *mx) {
    float a = fabsf(x);
    if (a > *mx) *mx = a;
    return a <= FLT_MAX;
}

AE_HOT static int sgd_check(const sgd_consts *cp, const float *p, const float *g, const float *buf,
                            size_t n, int fresh_buf, float gs, float mx[3]) {
    const sgd_consts c = *cp;
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        float pn, bn = buf[i];
        sgd_new(&c, p[i], g[i], buf + i, fresh_buf, gs, &pn, &bn);
        ok &= finite_max(pn, &mx[0]) & finite_max(bn, &mx[1]);
    }
    return ok;
}

/* Rows of row_len floats; a row not flagged in `used` has a zero gradient
 * (adam_sparse's rule; used NULL: every row is read). */
AE_HOT static int adam_check(const adam_consts *cp, const float *p, const float *g, const float *m,
                             const float *v, size_t n, size_t row_len, const unsigned char *used,
                             float gs, float mx[3]) {
    const adam_consts c = *cp;
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        float pn, mn, vn;
        float d = !used || used[i / row_len] ? g[i] * gs : 0.0f;
        adam_new(&c, p[i], m[i], v[i], d, &pn, &mn, &vn);
        ok &= finite_max(pn, &mx[0]) & finite_max(mn, &mx[1]) & finite_max(vn, &mx[2]);
    }
    return ok;
}

/* 1 when the bounds in bb are those of blk. */
static int bounds_valid(const ae_block_bound *bb, const ae_param_block *blk) {
    return bb->bounded && bb->off == blk->off && bb->len == blk->len && bb->step == blk->step;
}

/* 1 when block blk's update is finite; the bounds it leaves in bb->next. */
static int block_passes(const ae_optim_settings *s, const float *params, const float *grads,
                        const float *state1, const float *state2, const ae_param_block *blk,
                        const ae_grad_shape *sh, ae_block_bound *bb, float gs) {
    double G = sqrt(bb->sq) * (double)gs * SLACK;
    int known = bounds_valid(bb, blk);
    sgd_consts sc;
    adam_consts ac;
    if (s->kind == AE_OPT_SGD) {
        sc = sgd_setup(s);
        if (known && sgd_bound(&sc, blk, bb->max, G, bb->next)) return 1;
    } else {
        ac = adam_setup(s, blk->step);
        if (known && adam_bound(&ac, bb->max, G, bb->next)) return 1;
    }
    size_t o = blk->off;
    float mx[3] = {0.0f, 0.0f, 0.0f};
    int ok;
    if (s->kind == AE_OPT_SGD) {
        /* Without momentum mx[1] is the maximum of the buffer as it is; SGD
         * has no state2. */
        ok = sgd_check(&sc, params + o, grads + o, state1 + o, blk->len, !blk->momentum_ready, gs,
                       mx);
    } else {
        int rows = sh && sh->used && !sh->used_cols;
        ok = adam_check(&ac, params + o, grads + o, state1 + o, state2 + o, blk->len,
                        rows ? sh->row_len : 1, rows ? sh->used : NULL, gs, mx);
    }
    for (int k = 0; k < 3; k++) bb->next[k] = (double)mx[k];
    return ok;
}

ae_status ae_optim_step_checked(const ae_optim_settings *s, float *params, const float *grads,
                                float *state1, float *state2, ae_param_block *blocks,
                                const ae_grad_shape *shapes, ae_block_bound *bb, size_t nblocks,
                                float grad_scale, size_t *bad_block) {
    for (size_t b = 0; b < nblocks; b++) {
        if (blocks[b].frozen) continue;
        if (!block_passes(s, params, grads, state1, state2, &blocks[b], shapes ? &shapes[b] : NULL,
                          &bb[b], grad_scale)) {
            if (bad_block) *bad_block = b;
            return AE_ERR_NUMERIC;
        }
    }
    ae_optim_step_shaped(s, params, grads, state1, state2, blocks, shapes, nblocks, grad_scale);
    for (size_t b = 0; b < nblocks; b++) {
        const ae_param_block *blk = &blocks[b];
        if (blk->frozen) continue;
        bb[b].off = blk->off;
        bb[b].len = blk->len;
        bb[b].step = blk->step;
        bb[b].bounded = 1;
        for (int k = 0; k < 3; k++) bb[b].max[k] = bb[b].next[k];
    }
    return AE_OK;
}

void ae_optim_forget_bounds(ae_block_bound *bb, size_t n) {
    for (size_t b = 0; b < n; b++) bb[b].bounded = 0;
}
