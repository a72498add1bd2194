#include "pool.h"

#ifdef AE_HAVE_OPENMP
#include <omp.h>
#endif

int ae_pool_available_threads(void) {
#ifdef AE_HAVE_OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int ae_pool_resolve(int requested) {
#ifdef AE_HAVE_OPENMP
    if (requested > 0) return requested;
#else
    (void)requested;
#endif
    return ae_pool_available_threads();
}

/* How many ranges: at most `threads`, each of at least min_each. */
static size_t ranges(int threads, size_t n, size_t align, size_t min_each) {
    if (min_each < align) min_each = align;
    size_t t = threads > 1 ? (size_t)threads : 1;
    if (t > n / min_each) t = n / min_each;
    return t ? t : 1;
}

#ifdef AE_HAVE_OPENMP
/* The split of [0, n) in t ranges of whole `align` units; range k. */
static void range_of(size_t n, size_t align, size_t t, size_t k, size_t *lo, size_t *hi) {
    size_t units = (n + align - 1) / align;
    *lo = units * k / t * align;
    *hi = units * (k + 1) / t * align;
    if (*hi > n) *hi = n;
}

/* fn over [0, n) in t >= 2 ranges of whole `align` units on t threads
 * (fewer when OpenMP gives fewer), range k on thread k. */
static void run(size_t t, size_t n, size_t align, ae_pool_slot_fn fn, void *ctx) {
#pragma omp parallel num_threads((int)t)
    {
        size_t lo, hi, k = (size_t)omp_get_thread_num();
        range_of(n, align, (size_t)omp_get_num_threads(), k, &lo, &hi);
        if (lo < hi) fn(ctx, k, lo, hi);
    }
}
#else
/* Without OpenMP the calling thread takes the whole range. */
static void run(size_t t, size_t n, size_t align, ae_pool_slot_fn fn, void *ctx) {
    (void)t;
    (void)align;
    fn(ctx, 0, 0, n);
}
#endif

typedef struct plain_job {
    ae_pool_fn fn;
    void *ctx;
} plain_job;

static void plain_range(void *ctx, size_t k, size_t lo, size_t hi) {
    (void)k;
    const plain_job *j = ctx;
    j->fn(j->ctx, lo, hi);
}

void ae_pool_for(int threads, size_t n, size_t align, size_t min_each, ae_pool_fn fn, void *ctx) {
    if (align == 0) align = 1;
    size_t t = ranges(threads, n, align, min_each);
    if (t <= 1) {
        if (n) fn(ctx, 0, n);
        return;
    }
    plain_job j = {fn, ctx};
    run(t, n, align, plain_range, &j);
}

void ae_pool_for_slots(int threads, size_t n, size_t min_each, ae_pool_slot_fn fn, void *ctx) {
    size_t t = ranges(threads < AE_POOL_SLOTS ? threads : AE_POOL_SLOTS, n, 1, min_each);
    if (t <= 1) {
        if (n) fn(ctx, 0, 0, n);
        return;
    }
    run(t, n, 1, fn, ctx);
}

size_t ae_pool_chunks(size_t n, size_t *len) {
    size_t l = (n + AE_POOL_CHUNKS - 1) / AE_POOL_CHUNKS;
    l = (l + 15) / 16 * 16;
    if (l < 4096) l = 4096;
    *len = l;
    return n ? (n + l - 1) / l : 0;
}
