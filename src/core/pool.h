/* The threads of libae's own loops (the element-wise passes, the optimizer
 * update, the loss), beside the backend's threaded matrix products. With
 * OpenMP (built with oneDNN, whose runtime it is) the loops run on
 * OpenMP's team, the threads oneDNN's products already keep warm, so the
 * two never compete for a core; without it they run on the calling thread.
 * Every split gives the same bits: a loop handed to ae_pool_for computes
 * each index from its own inputs only, and the reductions cut their input
 * into chunks that depend on its length alone (ae_pool_chunks). */
#ifndef AE_CORE_POOL_H
#define AE_CORE_POOL_H

#include <stddef.h>

/* Values a thread's share of a loop must hold to be worth waking it for
 * (the cheapest element-wise passes take half). */
#define AE_POOL_MIN_VALUES 16384

/* The units (rows, samples, planes, channels) of per_unit values each
 * that hold min_values: the min_each of a loop over such units. */
static inline size_t ae_pool_units(size_t min_values, size_t per_unit) {
    return per_unit ? (min_values + per_unit - 1) / per_unit : 1;
}

/* Called with a contiguous index range [lo, hi). */
typedef void (*ae_pool_fn)(void *ctx, size_t lo, size_t hi);

/* The most threads a loop can use: 1 without OpenMP. */
int ae_pool_available_threads(void);

/* The threads `requested` means: 0 is OpenMP's default (OMP_NUM_THREADS,
 * else the cores); always 1 without OpenMP. */
int ae_pool_resolve(int requested);

/* fn over [0, n) in at most `threads` ranges whose inner bounds are
 * multiples of `align` (>= 1), each of at least `min_each` indices; one
 * call fn(ctx, 0, n) on the calling thread when that leaves one range. */
void ae_pool_for(int threads, size_t n, size_t align, size_t min_each, ae_pool_fn fn, void *ctx);

/* As ae_pool_for, with at most AE_POOL_SLOTS ranges and each range's
 * index k < AE_POOL_SLOTS passed along: for loops that need a scratch
 * buffer of their own per range (AE_POOL_SLOTS of them). */
#define AE_POOL_SLOTS 4
typedef void (*ae_pool_slot_fn)(void *ctx, size_t k, size_t lo, size_t hi);
void ae_pool_for_slots(int threads, size_t n, size_t min_each, ae_pool_slot_fn fn, void *ctx);

/* Chunks of a reduction over n values: at most AE_POOL_CHUNKS, each a
 * multiple of 16 values long but the last; *len is the chunk length. */
#define AE_POOL_CHUNKS 64
size_t ae_pool_chunks(size_t n, size_t *len);

#endif
