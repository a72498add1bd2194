/* Data-parallel training over MPI (<libae/mpi.h>): attaching a model to a
 * communicator, the two hooks of <libae/hook.h>, and the agreement that
 * ends a sequence of collectives. Only libae's public API is used.
 *
 * The reduction is fixed-order, so a run repeats bitwise: the gradient
 * arena is cut into one chunk per rank; MPI_Alltoallv sends every rank's
 * copy of chunk j to rank j, which sums the copies in rank order (in
 * double, weighted as one process with the union of the batches would
 * weigh them), and MPI_Allgatherv hands every rank the summed chunks. Each
 * rank sends and receives about (N-1)/N of the arena twice, as a ring
 * all-reduce does, but none of the sums depends on message timing. The
 * loss terms and the batch statistics are small: MPI_Allgather, then the
 * same rank-order sum on every rank. */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_int.h"

static const char null_handle_msg[] = "the MPI handle is NULL";

ae_status ae_mpi_error(ae_mpi *h, ae_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->err, sizeof h->err, fmt, ap);
    va_end(ap);
    return st;
}

static ae_status mpi_failed(ae_mpi *h, int rc, const char *call) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", rc);
    return ae_mpi_error(h, AE_ERR_IO, "%s failed: %s", call, msg);
}

ae_status ae_mpi_exchange(ae_mpi *h, mpi_hdr *me) {
    int rc = MPI_Allgather(me, (int)sizeof *me, MPI_BYTE, h->hdrs, (int)sizeof *me, MPI_BYTE,
                           h->comm);
    if (rc != MPI_SUCCESS) return mpi_failed(h, rc, "MPI_Allgather");
    /* A rank elsewhere with an error left the sequence for it (an error
     * outside a step): that error is every rank's. */
    int away = -1;
    for (int q = 0; q < h->size && away < 0; q++) {
        const mpi_hdr *o = &h->hdrs[q];
        if ((o->tag != me->tag || o->n != me->n) && o->status) away = q;
    }
    if (away >= 0) {
        const mpi_hdr *o = &h->hdrs[away];
        h->broken = 1;
        h->broken_status = (ae_status)o->status;
        h->culprit = away;
        return ae_mpi_error(h, h->broken_status,
                            "rank %d left the training steps (%s): this step fails; call "
                            "ae_mpi_agree",
                            away, ae_status_name((ae_status)o->status));
    }
    for (int q = 0; q < h->size; q++) {
        const mpi_hdr *o = &h->hdrs[q];
        if (o->tag == me->tag && o->n == me->n) continue;
        h->broken = 1;
        /* This rank is the one that left, when it has an error of its own. */
        h->culprit = me->status ? h->rank : q;
        if (o->tag == TAG_AGREE) {
            h->broken_status = AE_ERR_STATE;
            return ae_mpi_error(h, h->broken_status,
                                "rank %d left the training steps (early): this step fails; call "
                                "ae_mpi_agree",
                                q);
        }
        h->broken_status = AE_ERR_STATE;
        return ae_mpi_error(h, AE_ERR_STATE,
                            "rank %d is at another point of the sequence of collective calls "
                            "(%d/%llu against %d/%llu): the ranks' models or calls differ",
                            q, (int)o->tag, (unsigned long long)o->n, (int)me->tag,
                            (unsigned long long)me->n);
    }
    return AE_OK;
}

int ae_mpi_first_failed(const ae_mpi *h) {
    for (int q = 0; q < h->size; q++)
        if (h->hdrs[q].status) return q;
    return -1;
}

ae_status ae_mpi_rank_failed(ae_mpi *h, int q, const char *what) {
    ae_status st = (ae_status)h->hdrs[q].status;
    h->culprit = q;
    return ae_mpi_error(h, st, "rank %d%s failed %s (%s)", q, q == h->rank ? " (this rank)" : "",
                        what, ae_status_name(st));
}

/* ---- the gradient-reduce hook ---- */

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define MPI_HOT __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MPI_HOT
#endif

/* part[i] = Σ_q w[q] · copies[q·len + i], q ascending, in double: in
 * blocks, so that the loops vectorise (model a's chunk on 2 ranks, timed
 * alone: 0.17-0.26 ms as a plain loop, 0.14 ms so), while every element's
 * arithmetic, and so its bits, stays that of the plain loop. */
MPI_HOT static void sum_copies(float *part, const float *copies, size_t len, const double *w,
                               int ncopies) {
    enum { BLOCK = 512 };
    double acc[BLOCK];
    for (size_t lo = 0; lo < len; lo += BLOCK) {
        size_t n = len - lo < BLOCK ? len - lo : BLOCK;
        for (size_t i = 0; i < n; i++) acc[i] = 0.0;
        for (int q = 0; q < ncopies; q++) {
            const float *x = copies + (size_t)q * len + lo;
            double wq = w[q];
            for (size_t i = 0; i < n; i++) acc[i] += wq * (double)x[i];
        }
        for (size_t i = 0; i < n; i++) part[lo + i] = (float)acc[i];
    }
}

static ae_status reduce_arena(ae_mpi *h, float *g) {
    int r = h->rank, len = h->counts[r];
    for (int q = 0; q < h->size; q++) {
        h->rcounts[q] = len;
        h->rdispls[q] = q * len;
    }
    int rc = MPI_Alltoallv(g, h->counts, h->displs, MPI_FLOAT, h->recv, h->rcounts, h->rdispls,
                           MPI_FLOAT, h->comm);
    if (rc != MPI_SUCCESS) return mpi_failed(h, rc, "MPI_Alltoallv");
    sum_copies(h->part, h->recv, (size_t)len, h->w, h->size);
    rc = MPI_Allgatherv(h->part, len, MPI_FLOAT, g, h->counts, h->displs, MPI_FLOAT, h->comm);
    if (rc != MPI_SUCCESS) return mpi_failed(h, rc, "MPI_Allgatherv");
    return AE_OK;
}

/* A mean loss over N = Σ B_q samples is Σ (B_q / N) · (rank q's mean), so
 * gradients and loss terms combine with weights B_q / N; a summed loss
 * with weights 1. */
static ae_status grad_hook(void *ctx, float *g, size_t n, double *sc, size_t ns) {
    ae_mpi *h = ctx;
    if (h->broken) return h->broken_status;
    mpi_hdr me;
    memset(&me, 0, sizeof me);
    me.tag = TAG_GRAD;
    me.n = n;
    if (ns > AE_GRAD_SCALAR_STATUS) me.status = (int32_t)sc[AE_GRAD_SCALAR_STATUS];
    if (n != h->nparams && !me.status) me.status = AE_ERR_SHAPE;
    me.value = sc[AE_GRAD_SCALAR_BATCH];
    for (size_t k = 0; k < ns && k < AE_GRAD_SCALAR_COUNT; k++) me.sc[k] = sc[k];
    ae_status st = ae_mpi_exchange(h, &me);
    if (st) return st;
    int bad = ae_mpi_first_failed(h);
    if (bad >= 0) return ae_mpi_rank_failed(h, bad, "its part of the training step");
    int64_t red = AE_REDUCE_MEAN;
    (void)ae_model_get_int(h->m, AE_P_REDUCTION, &red);
    double total = 0.0;
    for (int q = 0; q < h->size; q++) total += h->hdrs[q].value;
    for (int q = 0; q < h->size; q++)
        h->w[q] = red == AE_REDUCE_MEAN ? h->hdrs[q].value / total : 1.0;
    for (size_t k = 0; k < ns && k < AE_GRAD_SCALAR_BATCH; k++) {
        double acc = 0.0;
        for (int q = 0; q < h->size; q++) acc += h->w[q] * h->hdrs[q].sc[k];
        sc[k] = acc;
    }
    /* One rank: the weight is 1 and the arena stays as it is (bitwise). */
    return h->size > 1 ? reduce_arena(h, g) : AE_OK;
}

/* ---- the batch-statistics hook ---- */

static ae_status batch_hook(void *ctx, double *v, size_t n, ae_status local) {
    ae_mpi *h = ctx;
    if (h->broken) return h->broken_status;
    mpi_hdr me;
    memset(&me, 0, sizeof me);
    me.tag = TAG_BATCH;
    me.n = n;
    me.status = local;
    /* Grown before the exchange: a rank that cannot says so in its header
     * rather than miss the payload's collective. */
    if (n > h->dcap && !me.status) {
        double *p = n <= (size_t)INT_MAX ? realloc(h->dbuf, (size_t)h->size * n * sizeof *p) : NULL;
        if (p) {
            h->dbuf = p;
            h->dcap = n;
        } else {
            me.status = AE_ERR_OUT_OF_MEMORY;
        }
    }
    ae_status st = ae_mpi_exchange(h, &me);
    if (st) return st;
    int bad = ae_mpi_first_failed(h);
    if (bad >= 0) return ae_mpi_rank_failed(h, bad, "its part of the training step");
    int rc = MPI_Allgather(v, (int)n, MPI_DOUBLE, h->dbuf, (int)n, MPI_DOUBLE, h->comm);
    if (rc != MPI_SUCCESS) return mpi_failed(h, rc, "MPI_Allgather");
    for (size_t i = 0; i < n; i++) {
        double acc = 0.0;
        for (int q = 0; q < h->size; q++) acc += h->dbuf[(size_t)q * n + i];
        v[i] = acc;
    }
    return AE_OK;
}

/* ---- agreement ---- */

ae_status ae_mpi_agree(ae_mpi *h, ae_status local) {
    if (!h) return AE_ERR_INVALID_ARG;
    if (!h->attached) return ae_mpi_error(h, AE_ERR_STATE, "the handle is not attached");
    for (;;) {
        mpi_hdr me;
        memset(&me, 0, sizeof me);
        me.tag = TAG_AGREE;
        me.status = local;
        /* An error this rank only caught from another: the other's comes
         * first, whatever the ranks' order. */
        me.value = local && h->culprit >= 0 && h->culprit != h->rank;
        int rc = MPI_Allgather(&me, (int)sizeof me, MPI_BYTE, h->hdrs, (int)sizeof me, MPI_BYTE,
                               h->comm);
        if (rc != MPI_SUCCESS) return mpi_failed(h, rc, "MPI_Allgather");
        int all = 1;
        for (int q = 0; q < h->size; q++) all &= h->hdrs[q].tag == TAG_AGREE;
        /* The others were still in a collective of the steps: this header
         * broke it for them, and they come here next. */
        if (!all) continue;
        h->broken = 0;
        h->culprit = -1;
        int bad = -1;
        for (int q = 0; q < h->size && bad < 0; q++)
            if (h->hdrs[q].status && h->hdrs[q].value == 0.0) bad = q;
        if (bad < 0) bad = ae_mpi_first_failed(h);
        if (bad < 0) return AE_OK;
        ae_status st = ae_mpi_rank_failed(h, bad, "first");
        h->culprit = -1;
        return st;
    }
}

/* ---- attaching ---- */

static uint64_t fnv(uint64_t hsh, uint64_t v) {
    for (int i = 0; i < 8; i++) {
        hsh ^= (v >> (8 * i)) & 0xff;
        hsh *= 0x100000001b3ULL;
    }
    return hsh;
}

/* What must be equal on every rank: architecture, tying, frozen layers,
 * the state's sizes and every setting but the seed. */
static uint64_t signature(ae_model *m, const size_t part_bytes[AE_STATE_PART_COUNT],
                          unsigned flags) {
    uint64_t s = 0xcbf29ce484222325ULL;
    s = fnv(s, flags);
    s = fnv(s, ae_model_input_size(m));
    s = fnv(s, ae_model_output_size(m));
    s = fnv(s, ae_model_code_layer(m));
    s = fnv(s, ae_model_param_count(m));
    size_t nl = ae_model_layer_count(m);
    s = fnv(s, nl);
    for (size_t i = 0; i < nl; i++) {
        ae_layer_info li;
        memset(&li, 0, sizeof li);
        li.struct_size = sizeof li;
        if (ae_model_layer_info(m, i, &li) == AE_OK) {
            s = fnv(s, (uint64_t)li.kind);
            s = fnv(s, (uint64_t)li.activation);
            s = fnv(s, li.in_size);
            s = fnv(s, li.out_size);
            s = fnv(s, li.weight_count);
            s = fnv(s, li.bias_count);
        }
        s = fnv(s, (uint64_t)ae_model_is_tied(m, i));
        s = fnv(s, (uint64_t)ae_model_is_frozen(m, i));
    }
    for (int k = 0; k < AE_STATE_PART_COUNT; k++) s = fnv(s, part_bytes[k]);
    for (int id = 0; id < 1000; id++) {
        int is_int = 0;
        if (id == AE_P_SEED || ae_param_bounds((ae_param)id, &is_int, NULL, NULL, NULL)) continue;
        uint64_t bits = 0;
        if (is_int) {
            int64_t v = 0;
            if (ae_model_get_int(m, (ae_param)id, &v) == AE_OK) bits = (uint64_t)v;
        } else {
            double v = 0.0;
            if (ae_model_get_float(m, (ae_param)id, &v) == AE_OK) memcpy(&bits, &v, sizeof bits);
        }
        s = fnv(fnv(s, (uint64_t)id), bits);
    }
    return s;
}

static ae_status record_sizes(void *ctx, ae_state_part part, void *data, size_t bytes) {
    (void)data;
    ((size_t *)ctx)[part] = bytes;
    return AE_OK;
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static void xoshiro_next(uint64_t *s) {
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
}

/* xoshiro256**'s jump: 2^128 draws ahead (the authors' constants). */
static void xoshiro_jump(uint64_t *s) {
    static const uint64_t J[4] = {0x180ec6d33cfd0abaULL, 0xd5a61266f0c9392cULL,
                                  0xa9582618e03fc9aaULL, 0x39abdc4529b1661cULL};
    uint64_t t[4] = {0, 0, 0, 0};
    for (int i = 0; i < 4; i++)
        for (int b = 0; b < 64; b++) {
            if (J[i] & (1ULL << b))
                for (int k = 0; k < 4; k++) t[k] ^= s[k];
            xoshiro_next(s);
        }
    memcpy(s, t, sizeof t);
}

/* Rank 0's part to every rank, in pieces MPI's int counts can hold. */
static ae_status broadcast_part(void *ctx, ae_state_part part, void *data, size_t bytes) {
    ae_mpi *h = ctx;
    mpi_hdr me;
    memset(&me, 0, sizeof me);
    me.tag = TAG_STATE;
    me.n = (uint64_t)part;
    ae_status st = ae_mpi_exchange(h, &me);
    if (st) return st;
    for (size_t off = 0; off < bytes;) {
        size_t len = bytes - off < ((size_t)1 << 30) ? bytes - off : (size_t)1 << 30;
        int rc = MPI_Bcast((unsigned char *)data + off, (int)len, MPI_BYTE, 0, h->comm);
        if (rc != MPI_SUCCESS) return mpi_failed(h, rc, "MPI_Bcast");
        off += len;
    }
    if (part == AE_STATE_RNG && bytes == 4 * sizeof(uint64_t))
        for (int r = 0; r < h->rank; r++) xoshiro_jump((uint64_t *)data);
    return AE_OK;
}

/* The buffers of the arena's reduction, from its size. */
static ae_status alloc_buffers(ae_mpi *h) {
    size_t n = h->nparams, N = (size_t)h->size, chunk = n / N + 1;
    h->counts = calloc(N, sizeof *h->counts);
    h->displs = calloc(N, sizeof *h->displs);
    h->rcounts = calloc(N, sizeof *h->rcounts);
    h->rdispls = calloc(N, sizeof *h->rdispls);
    h->w = calloc(N, sizeof *h->w);
    h->recv = malloc(N * chunk * sizeof *h->recv);
    h->part = malloc(chunk * sizeof *h->part);
    if (!h->counts || !h->displs || !h->rcounts || !h->rdispls || !h->w || !h->recv || !h->part)
        return ae_mpi_error(h, AE_ERR_OUT_OF_MEMORY, "out of memory for the reduction buffers");
    for (size_t j = 0; j < N; j++) {
        size_t lo = n * j / N, hi = n * (j + 1) / N;
        h->displs[j] = (int)lo;
        h->counts[j] = (int)(hi - lo);
    }
    return AE_OK;
}

static void free_buffers(ae_mpi *h) {
    free(h->hdrs);
    free(h->counts);
    free(h->displs);
    free(h->rcounts);
    free(h->rdispls);
    free(h->w);
    free(h->recv);
    free(h->part);
    free(h->dbuf);
}

/* The local preparation of ae_mpi_attach; *sig is the model's signature. */
static ae_status prepare(ae_mpi *h, uint64_t *sig) {
    size_t bytes[AE_STATE_PART_COUNT] = {0};
    ae_status st = ae_model_visit_state(h->m, record_sizes, bytes);
    if (st)
        return ae_mpi_error(h, st, "reading the model's state failed: %s",
                            ae_model_last_error(h->m));
    h->nparams = bytes[AE_STATE_PARAMS] / sizeof(float);
    if (h->nparams > (size_t)INT_MAX)
        return ae_mpi_error(h, AE_ERR_RANGE,
                            "the model has %zu parameters: MPI's counts hold at most %d", h->nparams,
                            INT_MAX);
    if ((st = alloc_buffers(h)) != AE_OK) return st;
    *sig = signature(h->m, bytes, h->flags);
    if (!(h->flags & AE_MPI_LOCAL_BATCHNORM) &&
        (st = ae_model_set_batch_reduce(h->m, batch_hook, h)) != AE_OK)
        return ae_mpi_error(h, st, "%s", ae_model_last_error(h->m));
    return AE_OK;
}

ae_status ae_mpi_attach(ae_mpi **out, ae_model *m, MPI_Comm comm, unsigned flags) {
    if (!out) return AE_ERR_INVALID_ARG;
    ae_mpi *h = calloc(1, sizeof *h);
    *out = h;
    if (!h) return AE_ERR_OUT_OF_MEMORY;
    if (!m) return ae_mpi_error(h, AE_ERR_INVALID_ARG, "the model is NULL");
    if (flags & ~(unsigned)AE_MPI_LOCAL_BATCHNORM)
        return ae_mpi_error(h, AE_ERR_INVALID_ARG, "unknown flags 0x%x", flags);
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (!init || fin) return ae_mpi_error(h, AE_ERR_STATE, "MPI is not initialised");
    int rc = MPI_Comm_dup(comm, &h->comm);
    if (rc != MPI_SUCCESS) return mpi_failed(h, rc, "MPI_Comm_dup");
    h->has_comm = 1;
    MPI_Comm_rank(h->comm, &h->rank);
    MPI_Comm_size(h->comm, &h->size);
    h->m = m;
    h->flags = flags;
    h->culprit = -1;
    h->hdrs = calloc((size_t)h->size, sizeof *h->hdrs);
    if (!h->hdrs) return ae_mpi_error(h, AE_ERR_OUT_OF_MEMORY, "out of memory");
    /* From here every failure goes through the agreement, so that all the
     * ranks return it. */
    uint64_t sig = 0;
    ae_status st = prepare(h, &sig);
    h->attached = 1;
    mpi_hdr me;
    memset(&me, 0, sizeof me);
    me.tag = TAG_ATTACH;
    me.status = st;
    me.n = sig;
    rc = MPI_Allgather(&me, (int)sizeof me, MPI_BYTE, h->hdrs, (int)sizeof me, MPI_BYTE, h->comm);
    if (rc != MPI_SUCCESS) {
        st = mpi_failed(h, rc, "MPI_Allgather");
    } else {
        int bad = ae_mpi_first_failed(h);
        if (bad >= 0 && bad != h->rank) st = ae_mpi_rank_failed(h, bad, "to attach");
        for (int q = 1; q < h->size && !st; q++)
            if (h->hdrs[q].n != h->hdrs[0].n)
                st = ae_mpi_error(h, AE_ERR_STATE,
                                  "rank %d's model differs from rank 0's (architecture, tying, "
                                  "frozen layers, settings or flags)",
                                  q);
    }
    /* Every rank knows the same outcome of the exchange: all broadcast, or
     * none does. */
    if (!st && (st = ae_model_visit_state(m, broadcast_part, h)) != AE_OK && !h->err[0])
        ae_mpi_error(h, st, "taking rank 0's state failed: %s", ae_model_last_error(m));
    char msg[sizeof h->err];
    memcpy(msg, h->err, sizeof msg);
    ae_status agreed = ae_mpi_agree(h, st);
    if (st) memcpy(h->err, msg, sizeof msg); /* this rank's own reason is the better message */
    if (!agreed) agreed = ae_model_set_grad_reduce(m, grad_hook, h);
    if (!agreed) agreed = ae_model_set_fit_share(m, ae_mpi_fit_hook, h, h->rank, h->size);
    if (agreed) {
        ae_model_set_grad_reduce(m, NULL, NULL);
        ae_model_set_batch_reduce(m, NULL, NULL);
        h->attached = 0;
        return agreed;
    }
    h->err[0] = '\0';
    return AE_OK;
}

void ae_mpi_detach(ae_mpi *h) {
    if (!h) return;
    if (h->attached) {
        ae_model_set_grad_reduce(h->m, NULL, NULL);
        ae_model_set_batch_reduce(h->m, NULL, NULL);
        ae_model_set_fit_share(h->m, NULL, NULL, 0, 1);
    }
    if (h->has_comm) MPI_Comm_free(&h->comm);
    free_buffers(h);
    free(h);
}

const char *ae_mpi_last_error(const ae_mpi *h) { return h ? h->err : null_handle_msg; }
int ae_mpi_rank(const ae_mpi *h) { return h ? h->rank : -1; }
int ae_mpi_size(const ae_mpi *h) { return h ? h->size : 0; }

/* ---- statistics kept outside the steps ---- */

static ae_status combine_part(void *ctx, ae_state_part part, void *data, size_t bytes) {
    ae_mpi *h = ctx;
    mpi_hdr me;
    memset(&me, 0, sizeof me);
    me.tag = TAG_STATS;
    me.n = (uint64_t)part;
    ae_status st = ae_mpi_exchange(h, &me);
    if (st || part != AE_STATE_ACTIVITY || !bytes) return st;
    /* The last step a unit was active on any rank: a maximum, which no
     * order of summation changes. */
    int rc = MPI_Allreduce(MPI_IN_PLACE, data, (int)(bytes / sizeof(uint64_t)), MPI_UINT64_T,
                           MPI_MAX, h->comm);
    return rc == MPI_SUCCESS ? AE_OK : mpi_failed(h, rc, "MPI_Allreduce");
}

ae_status ae_mpi_sync_stats(ae_mpi *h) {
    if (!h) return AE_ERR_INVALID_ARG;
    if (!h->attached) return ae_mpi_error(h, AE_ERR_STATE, "the handle is not attached");
    if (h->broken) return h->broken_status;
    ae_status st = ae_model_visit_state(h->m, combine_part, h);
    if (st && !h->err[0]) ae_mpi_error(h, st, "%s", ae_model_last_error(h->m));
    return st;
}
