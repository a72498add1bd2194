/* ae_mpi_fit: ae_fit on each rank's shard of the training set, through
 * the public API (ae_dataset_subset_range, the callback), so that the fit
 * loop stays the one loop. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_int.h"

typedef struct fit_ctx {
    ae_mpi *h;
    ae_fit_callback user;
    void *user_ctx;
} fit_ctx;

/* Rank 0's callback decides for every rank. Every rank's ae_fit calls
 * this once per epoch, at the same point: a collective. */
static int epoch_callback(const ae_epoch_stats *stats, void *ctx) {
    fit_ctx *c = ctx;
    ae_mpi *h = c->h;
    if (h->broken) return 1;
    int stop = 0;
    if (h->rank == 0 && c->user) stop = c->user(stats, c->user_ctx) != 0;
    mpi_hdr me;
    memset(&me, 0, sizeof me);
    me.tag = TAG_CALLBACK;
    me.value = stop;
    if (ae_mpi_exchange(h, &me)) return 1;
    return h->hdrs[0].value != 0.0;
}

/* splitmix64: a shuffle seed per rank, rank 0 keeping the caller's. */
static uint64_t rank_seed(uint64_t seed, int rank) {
    if (!rank) return seed;
    uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (uint64_t)rank;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The checks and the shard, before any collective of the fit. */
static ae_status prepare(ae_mpi *h, const ae_dataset *train, ae_fit_options *o,
                         ae_dataset **shard) {
    if (!train) return ae_mpi_error(h, AE_ERR_INVALID_ARG, "the training set is NULL");
    size_t N = (size_t)h->size, count = ae_dataset_count(train), s = count / N;
    if (o->batch_size == 0 || o->batch_size % N)
        return ae_mpi_error(h, AE_ERR_INVALID_ARG,
                            "the global batch size %zu is not a positive multiple of the %zu ranks",
                            o->batch_size, N);
    if (s == 0)
        return ae_mpi_error(h, AE_ERR_STATE, "the training set has %zu samples, fewer than the %zu ranks",
                            count, N);
    ae_status st = ae_dataset_subset_range(train, (size_t)h->rank * s, s, shard);
    if (st) return ae_mpi_error(h, st, "taking this rank's shard failed: %s", ae_dataset_last_error(train));
    o->batch_size /= N;
    o->shuffle_seed = rank_seed(o->shuffle_seed, h->rank);
    return AE_OK;
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
    ae_fit_options o;
    ae_fit_options_init(&o);
    ae_status st = AE_OK;
    if (opts) {
        if (opts->struct_size != sizeof o)
            st = ae_mpi_error(h, AE_ERR_INVALID_ARG, "opts->struct_size is %zu, not %zu",
                              opts->struct_size, sizeof o);
        else
            o = *opts;
    }
    ae_dataset *shard = NULL;
    if (!st) st = prepare(h, train, &o, &shard);
    fit_ctx c = {h, o.callback, o.user};
    o.callback = epoch_callback;
    o.user = &c;
    /* A rank that cannot start stops the others before their first step. */
    st = ae_mpi_agree(h, st);
    if (!st) {
        st = ae_fit(h->m, shard, &o);
        if (st && !h->broken)
            ae_mpi_error(h, st, "this rank's fit failed: %s", ae_model_last_error(h->m));
        char msg[sizeof h->err];
        memcpy(msg, h->err, sizeof msg);
        ae_status own = st;
        st = ae_mpi_agree(h, st);
        /* The first failing rank's reason, where this rank has it. */
        if (own && own == st) memcpy(h->err, msg, sizeof msg);
    }
    if (!st) st = share_range(h);
    ae_dataset_destroy(shard);
    return st;
}
