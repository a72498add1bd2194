/* ae_fit over the ranks: the fit-share hook of <libae/hook.h>, with which
 * ae_fit itself trains each rank on its slice of every global batch and
 * lets rank 0 validate, call back and write checkpoints; and ae_mpi_fit,
 * ae_fit framed by the two agreements that every rank's run needs (the
 * same run on every rank before, the same outcome after). The fit loop
 * stays the one loop (src/train/fit.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_int.h"

ae_status ae_mpi_fit_hook(void *ctx, ae_fit_point point, double *v, size_t n, ae_status local) {
    ae_mpi *h = ctx;
    if (h->broken) return h->broken_status;
    mpi_hdr me;
    memset(&me, 0, sizeof me);
    me.tag = TAG_FIT;
    me.n = (uint64_t)point;
    me.status = local;
    if (n > AE_GRAD_SCALAR_COUNT) n = AE_GRAD_SCALAR_COUNT;
    for (size_t k = 0; k < n; k++) me.sc[k] = v[k];
    ae_status st = ae_mpi_exchange(h, &me);
    if (st) return st;
    for (size_t k = 0; k < n; k++) v[k] = h->hdrs[0].sc[k];
    int bad = ae_mpi_first_failed(h);
    return bad >= 0 ? ae_mpi_rank_failed(h, bad, "in ae_fit") : AE_OK;
}

/* What must be the same on every rank for their ae_fit calls to be one
 * run, in the order of the names below. */
enum { ARG_COUNT, ARG_DIM, ARG_BATCH, ARG_EPOCHS, ARG_ORDER, ARG_VAL, ARG_RESUME, ARG_N };
_Static_assert((int)ARG_N <= (int)AE_GRAD_SCALAR_COUNT, "the arguments travel in a header's sc[]");
static const char *const arg_names[ARG_N] = {
    "the training set's size", "the training set's sample size", "batch_size", "epochs",
    "shuffle, shuffle_seed, drop_last or restore_best", "the validation set's size",
    "the resume point (opts->resume and the loaded checkpoint's position)"};

static void run_args(const ae_mpi *h, const ae_dataset *train, const ae_fit_options *o,
                     double a[ARG_N]) {
    a[ARG_COUNT] = (double)ae_dataset_count(train);
    a[ARG_DIM] = (double)ae_dataset_dim(train);
    a[ARG_BATCH] = (double)o->batch_size;
    a[ARG_EPOCHS] = (double)o->epochs;
    /* The seed's 64 bits do not fit a double: its halves, mixed. */
    a[ARG_ORDER] = (double)((o->shuffle != 0) | (o->drop_last != 0) << 1 | (o->restore_best != 0) << 2) +
                   8.0 * ((double)(uint32_t)(o->shuffle_seed >> 32) * 4294967296.0 +
                          (double)(uint32_t)o->shuffle_seed);
    a[ARG_VAL] = o->val ? (double)ae_dataset_count(o->val) : -1.0;
    size_t ep = 0, b = 0;
    a[ARG_RESUME] = o->resume && ae_fit_resume_point(h->m, &ep, &b) == AE_OK
                        ? (double)ep * 16777216.0 + (double)b
                        : -1.0;
}

/* Each rank's ae_fit recorded the range of its own shard's inputs in the
 * model's value convention; every rank records the range over all shards,
 * so that the ranks' models stay the same (a collective). */
static ae_status share_range(ae_mpi *h) {
    ae_data_convention c = {.struct_size = sizeof c};
    ae_model_data_convention(h->m, &c, NULL, NULL, 0);
    size_t n = c.std_count;
    float *stats = n ? malloc(2 * n * sizeof *stats) : NULL;
    ae_status st = n && !stats ? ae_mpi_error(h, AE_ERR_OUT_OF_MEMORY, "out of memory") : AE_OK;
    if (!st) st = ae_model_data_convention(h->m, &c, stats, stats + n, n);
    if ((st = ae_mpi_agree(h, st)) != AE_OK) {
        free(stats);
        return st;
    }
    mpi_hdr me;
    memset(&me, 0, sizeof me);
    me.tag = TAG_RANGE;
    me.sc[0] = c.lo;
    me.sc[1] = c.hi;
    st = ae_mpi_exchange(h, &me);
    double lo = NAN, hi = NAN;
    for (int q = 0; !st && q < h->size; q++) {
        double a = h->hdrs[q].sc[0], b = h->hdrs[q].sc[1];
        if (isnan(a)) continue;
        lo = isnan(lo) || a < lo ? a : lo;
        hi = isnan(hi) || b > hi ? b : hi;
    }
    /* The same convention with a wider range: nothing to allocate. */
    if (!st && !isnan(lo)) {
        c.lo = lo, c.hi = hi;
        st = ae_model_set_data_convention(h->m, &c, stats, n ? stats + n : NULL);
    }
    free(stats);
    return st;
}

ae_status ae_mpi_fit(ae_mpi *h, const ae_dataset *train, const ae_fit_options *opts) {
    if (!h) return AE_ERR_INVALID_ARG;
    if (!h->attached) return ae_mpi_error(h, AE_ERR_STATE, "the handle is not attached");
    ae_fit_options defaults;
    ae_fit_options_init(&defaults);
    const ae_fit_options *o = opts ? opts : &defaults;
    ae_status st = AE_OK;
    if (!train) st = ae_mpi_error(h, AE_ERR_INVALID_ARG, "the training set is NULL");
    else if (o->struct_size != sizeof *o)
        st = ae_mpi_error(h, AE_ERR_INVALID_ARG, "opts->struct_size is %zu, not %zu",
                          o->struct_size, sizeof *o);
    /* The same run everywhere, or none starts: a difference would only
     * show as ranks that meet at different points. */
    mpi_hdr me;
    memset(&me, 0, sizeof me);
    me.tag = TAG_FIT_ARGS;
    me.status = st;
    if (!st) run_args(h, train, o, me.sc);
    st = ae_mpi_exchange(h, &me);
    if (!st && ae_mpi_first_failed(h) < 0)
        for (int k = 0; k < ARG_N && !st; k++)
            for (int q = 1; q < h->size && !st; q++)
                if (memcmp(&h->hdrs[q].sc[k], &h->hdrs[0].sc[k], sizeof(double)))
                    st = ae_mpi_error(h, AE_ERR_STATE,
                                      "ae_mpi_fit: %s differs between rank 0 and rank %d", arg_names[k], q);
    if (!st) st = (ae_status)me.status;
    char msg[sizeof h->err];
    memcpy(msg, h->err, sizeof msg);
    ae_status own = st;
    st = ae_mpi_agree(h, st);
    /* This rank's reason, when it is the error every rank returns. */
    if (own && own == st) memcpy(h->err, msg, sizeof msg);
    if (st) return st;
    st = ae_fit(h->m, train, o);
    /* The ranks that left the sequence of steps (an error reading their
     * rows) and those whose step failed for it meet here. */
    st = ae_mpi_agree(h, st);
    if (st && strstr(h->err, "(this rank)"))
        ae_mpi_error(h, st, "rank %d (this rank) failed: %s", h->rank, ae_model_last_error(h->m));
    if (!st) st = share_range(h);
    return st;
}
