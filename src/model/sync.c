/* What a distributed trainer needs of a model besides the gradient-reduce
 * hook (<libae/hook.h>): the batch-statistics hook, whose calls during a
 * training step form a sequence fixed by the architecture (so that every
 * process makes the same collective calls, also when its own part of the
 * step fails), and the visit of the training state (to broadcast it). */
#include <math.h>
#include <string.h>

#include "model.h"

/* ---- the batch-statistics hook ---- */

ae_status ae_model_set_batch_reduce(ae_model *m, ae_batch_reduce_fn fn, void *ctx) {
    if (!m) return AE_ERR_INVALID_ARG;
    size_t room = 0;
    for (size_t i = 0; i < m->nlayers; i++) {
        size_t r = ae_batch_sync_room(&m->layers[i]);
        if (r > room) room = r;
    }
    if (fn && room && !m->sync_buf) {
        m->sync_buf = ae_alloc(&m->alloc, room * sizeof(double));
        if (!m->sync_buf)
            return ae_error(&m->err, AE_ERR_OUT_OF_MEMORY,
                            "out of memory for the batch statistics (%zu doubles)", room);
        m->sync_room = room;
    }
    m->sync_fn = fn;
    m->sync_ctx = fn ? ctx : NULL;
    return AE_OK;
}

void ae_sync_begin(ae_model *m, ae_batch_sync *s, size_t batch) {
    m->sync = NULL;
    if (!m->sync_fn || !m->sync_room) return;
    *s = (ae_batch_sync){.fn = m->sync_fn,
                         .ctx = m->sync_ctx,
                         .buf = m->sync_buf,
                         .grad_scale = m->s.reduction == AE_REDUCE_MEAN ? (double)batch : 1.0,
                         .calls = 0,
                         .status = AE_OK};
    m->sync = s;
}

/* Calls the hook with NaN and `local` for the calls of the step's sequence
 * after the first `made`: the forward's, in layer order, then the
 * backward's from the last layer down to the first it reaches. */
static void finish_sequence(ae_model *m, ae_batch_sync *s, ae_status local) {
    size_t k = 0, first = ae_model_first_trained(m);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t j = 0; j < m->nlayers; j++) {
            const ae_layer *L = &m->layers[pass ? m->nlayers - 1 - j : j];
            if (pass && m->nlayers - 1 - j < first) break;
            size_t sizes[2] = {pass ? L->sync_bwd : L->sync_fwd[0], pass ? 0 : L->sync_fwd[1]};
            for (int c = 0; c < 2; c++) {
                if (!sizes[c] || k++ < s->calls) continue;
                for (size_t i = 0; i < sizes[c]; i++) s->buf[i] = NAN;
                (void)s->fn(s->ctx, s->buf, sizes[c], local);
            }
        }
    }
}

ae_status ae_sync_end(ae_model *m, ae_status local) {
    ae_batch_sync *s = m->sync;
    m->sync = NULL;
    if (local) finish_sequence(m, s, s->status ? s->status : local);
    /* The hook's error comes first: a failure elsewhere makes this
     * process's statistics NaN, and its own error would only say that. */
    if (s->status)
        return ae_error(&m->err, s->status,
                        "the batch-statistics hook failed (%s); nothing was updated",
                        ae_status_name(s->status));
    return local;
}

/* ---- ae_fit over several processes ---- */

ae_status ae_model_set_fit_share(ae_model *m, ae_fit_share_fn fn, void *ctx, int rank, int size) {
    if (!m) return AE_ERR_INVALID_ARG;
    if (fn && (size < 1 || rank < 0 || rank >= size))
        return ae_error(&m->err, AE_ERR_INVALID_ARG,
                        "ae_model_set_fit_share: rank %d of %d processes", rank, size);
    m->share_fn = fn;
    m->share_ctx = fn ? ctx : NULL;
    m->share_rank = fn ? rank : 0;
    m->share_size = fn ? size : 1;
    return AE_OK;
}

/* ---- the training state ---- */

typedef struct state_part {
    void *data;
    size_t bytes;
    int floats; /* float values (checked finite); else uint64_t */
} state_part;

static void list_parts(ae_model *m, state_part p[AE_STATE_PART_COUNT]) {
    size_t code = m->layers[m->code_layer - 1].out;
    p[AE_STATE_PARAMS] = (state_part){m->params, m->nparams * sizeof(float), 1};
    p[AE_STATE_OPTIM_1] = (state_part){m->state1, m->nparams * sizeof(float), 1};
    p[AE_STATE_OPTIM_2] = (state_part){m->state2, m->nparams * sizeof(float), 1};
    p[AE_STATE_LAYERS] = (state_part){m->buffers, m->nbuffers * sizeof(float), 1};
    p[AE_STATE_STEPS] = (state_part){&m->steps, sizeof m->steps, 0};
    p[AE_STATE_RNG] = (state_part){m->rng.s, sizeof m->rng.s, 0};
    p[AE_STATE_ACTIVITY] = (state_part){m->last_active, code * sizeof *m->last_active, 0};
    /* Not contiguous in the model: copied field by field (block_fields). */
    p[AE_STATE_OPTIM_BLOCKS] = (state_part){NULL, 2 * m->nblocks * sizeof(uint64_t), 0};
}

/* The blocks' optimizer fields to (put 0) or from (put 1) `u`. */
static void block_fields(ae_model *m, uint64_t *u, int put) {
    for (size_t b = 0; b < m->nblocks; b++) {
        ae_param_block *blk = &m->blocks[b];
        if (put) {
            blk->step = u[2 * b];
            blk->momentum_ready = (int)u[2 * b + 1];
        } else {
            u[2 * b] = blk->step;
            u[2 * b + 1] = (uint64_t)blk->momentum_ready;
        }
    }
}

ae_status ae_model_visit_state(ae_model *m, ae_state_fn fn, void *ctx) {
    if (!m) return AE_ERR_INVALID_ARG;
    if (!fn) return ae_error(&m->err, AE_ERR_INVALID_ARG, "the state callback is NULL");
    state_part p[AE_STATE_PART_COUNT];
    list_parts(m, p);
    size_t total = 0;
    for (int k = 0; k < AE_STATE_PART_COUNT; k++) total += (p[k].bytes + 7) & ~(size_t)7;
    /* The callback writes a copy: the model takes it only when all is well. */
    unsigned char *copy = ae_alloc(&m->alloc, total ? total : 1);
    if (!copy)
        return ae_error(&m->err, AE_ERR_OUT_OF_MEMORY,
                        "out of memory copying the training state (%zu bytes)", total);
    unsigned char *at[AE_STATE_PART_COUNT], *q = copy;
    uint64_t *blocks = NULL;
    for (int k = 0; k < AE_STATE_PART_COUNT; k++) {
        at[k] = q;
        if (p[k].bytes && p[k].data) memcpy(q, p[k].data, p[k].bytes);
        q += (p[k].bytes + 7) & ~(size_t)7;
    }
    blocks = (uint64_t *)(void *)at[AE_STATE_OPTIM_BLOCKS];
    block_fields(m, blocks, 0);
    ae_status st = AE_OK;
    for (int k = 0; k < AE_STATE_PART_COUNT && !st; k++) {
        st = fn(ctx, (ae_state_part)k, at[k], p[k].bytes);
        if (st)
            ae_error(&m->err, st, "the state callback failed (%s) on part %d; nothing was changed",
                     ae_status_name(st), k);
    }
    for (int k = 0; k < AE_STATE_PART_COUNT && !st; k++) {
        if (!p[k].floats) continue;
        const float *f = (const float *)(void *)at[k];
        size_t n = p[k].bytes / sizeof(float);
        if (!ae_all_finite(f, n))
            st = ae_error(&m->err, AE_ERR_NUMERIC,
                          "state part %d holds a non-finite value (%g at element %zu); nothing "
                          "was changed",
                          k, (double)f[ae_first_nonfinite(f, n)], ae_first_nonfinite(f, n));
    }
    if (!st) {
        uint64_t r[4];
        memcpy(r, at[AE_STATE_RNG], sizeof r);
        if (!(r[0] | r[1] | r[2] | r[3]))
            st = ae_error(&m->err, AE_ERR_RANGE,
                          "the RNG state is all zero (xoshiro256** never leaves it); nothing was "
                          "changed");
    }
    for (size_t b = 0; b < m->nblocks && !st; b++)
        if (blocks[2 * b + 1] > 1)
            st = ae_error(&m->err, AE_ERR_RANGE,
                          "block %zu's momentum flag is %llu, not 0 or 1; nothing was changed", b,
                          (unsigned long long)blocks[2 * b + 1]);
    if (!st) {
        for (int k = 0; k < AE_STATE_PART_COUNT; k++)
            if (p[k].bytes && p[k].data) memcpy(p[k].data, at[k], p[k].bytes);
        block_fields(m, blocks, 1);
        ae_model_params_written(m);
        /* What the sparse paths knew of the gradient arena is no longer tied
         * to these parameters' last step: the next backward rewrites it. */
        memset(m->grad_zero_ok, 0, m->nlayers);
    }
    ae_free(&m->alloc, copy);
    return st;
}
