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

void ae_pool_for(int threads, size_t n, size_t align, size_t min_each, ae_pool_fn fn, void *ctx) {
    if (align == 0) align = 1;
    if (min_each < align) min_each = align;
    size_t t = threads > 1 ? (size_t)threads : 1;
    if (t > n / min_each) t = n / min_each;
    if (t <= 1) {
        if (n) fn(ctx, 0, n);
        return;
    }
#ifdef AE_HAVE_OPENMP
    size_t units = (n + align - 1) / align;
#pragma omp parallel num_threads((int)t)
    {
        size_t k = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        size_t lo = units * k / nt * align, hi = units * (k + 1) / nt * align;
        if (hi > n) hi = n;
        if (lo < hi) fn(ctx, lo, hi);
    }
#else
    fn(ctx, 0, n);
#endif
}

size_t ae_pool_chunks(size_t n, size_t *len) {
    size_t l = (n + AE_POOL_CHUNKS - 1) / AE_POOL_CHUNKS;
    l = (l + 15) / 16 * 16;
    if (l < 4096) l = 4096;
    *len = l;
    return n ? (n + l - 1) / l : 0;
}
