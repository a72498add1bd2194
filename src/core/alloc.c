#include <stdlib.h>
#include <string.h>

#include "core.h"

static void *default_alloc(void *ud, size_t n) {
    (void)ud;
    return malloc(n);
}

static void default_release(void *ud, void *p) {
    (void)ud;
    free(p);
}

ae_status ae_allocator_init(ae_allocator *dst, const ae_allocator *src) {
    if (!src) {
        dst->struct_size = sizeof *dst;
        dst->alloc = default_alloc;
        dst->release = default_release;
        dst->user_data = NULL;
        return AE_OK;
    }
    if (src->struct_size != sizeof(ae_allocator) || !src->alloc || !src->release)
        return AE_ERR_INVALID_ARG;
    *dst = *src;
    return AE_OK;
}

/* The user's allocator promises no alignment, so each block is over-allocated
 * and the raw pointer is stored just before the aligned address. */
void *ae_alloc(const ae_allocator *a, size_t bytes) {
    size_t total = bytes + AE_ALIGN + sizeof(void *);
    if (total < bytes) return NULL;
    char *raw = a->alloc(a->user_data, total);
    if (!raw) return NULL;
    uintptr_t base = (uintptr_t)(raw + sizeof(void *));
    uintptr_t aligned = (base + AE_ALIGN - 1) & ~(uintptr_t)(AE_ALIGN - 1);
    ((void **)aligned)[-1] = raw;
    return (void *)aligned;
}

void *ae_calloc(const ae_allocator *a, size_t count, size_t size) {
    size_t bytes;
    if (ae_mul_overflow(count, size, &bytes)) return NULL;
    void *p = ae_alloc(a, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

void ae_free(const ae_allocator *a, void *p) {
    if (!p) return;
    a->release(a->user_data, ((void **)p)[-1]);
}
