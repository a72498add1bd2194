/* The arena of the ONNX exporter and importer, and the metadata keys of
 * the value convention they share. */
#include <string.h>

#include "onnx.h"

struct ae_arena_chunk {
    ae_arena_chunk *next;
    size_t size;
};

/* Room for the chunk header, keeping the data 16-byte aligned. */
#define CHUNK_HEADER ((sizeof(ae_arena_chunk) + 15) / 16 * 16)
#define CHUNK_MIN ((size_t)64 << 10)

void ae_arena_init(ae_arena *a, const ae_allocator *alloc, size_t limit) {
    memset(a, 0, sizeof *a);
    a->alloc = alloc;
    a->limit = limit;
}

void *ae_arena_alloc(ae_arena *a, size_t bytes) {
    if (a->failed) return NULL;
    size_t need = (bytes + 15) / 16 * 16;
    if (need < bytes) {
        a->failed = 1;
        return NULL;
    }
    if (!a->head || a->cap - a->used < need) {
        /* Large blocks get a chunk of their own; small ones share. */
        size_t size = need > CHUNK_MIN / 4 ? need : CHUNK_MIN;
        if (size > SIZE_MAX - CHUNK_HEADER ||
            (a->limit && (size > a->limit || a->total > a->limit - size))) {
            a->failed = 1;
            return NULL;
        }
        ae_arena_chunk *c = ae_alloc(a->alloc, CHUNK_HEADER + size);
        if (!c) {
            a->failed = 1;
            return NULL;
        }
        a->total += size;
        c->size = size;
        if (size == need && a->head && a->cap - a->used >= 16) {
            /* Keep filling the current chunk: put the big one behind it. */
            c->next = a->head->next;
            a->head->next = c;
            void *p = (unsigned char *)c + CHUNK_HEADER;
            memset(p, 0, need);
            return p;
        }
        c->next = a->head;
        a->head = c;
        a->used = 0;
        a->cap = size;
    }
    void *p = (unsigned char *)a->head + CHUNK_HEADER + a->used;
    a->used += need;
    memset(p, 0, need);
    return p;
}

void ae_arena_free(ae_arena *a) {
    ae_arena_chunk *c = a->head;
    while (c) {
        ae_arena_chunk *next = c->next;
        ae_free(a->alloc, c);
        c = next;
    }
    a->head = NULL;
    a->used = a->cap = a->total = 0;
}

static void *pb_alloc(void *ud, size_t size) { return ae_arena_alloc(ud, size); }
static void pb_free(void *ud, void *p) {
    (void)ud;
    (void)p;
}

ProtobufCAllocator ae_arena_protobuf(ae_arena *a) {
    ProtobufCAllocator pa = {pb_alloc, pb_free, a};
    return pa;
}

int ae_onnx_convention_key(const char *key) {
    static const char *const keys[] = {AE_ONNX_DATA_ELEM,  AE_ONNX_DATA_SCALE, AE_ONNX_DATA_OFFSET,
                                       AE_ONNX_DATA_RANGE, AE_ONNX_DATA_MEAN,  AE_ONNX_DATA_STD};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(key, keys[i]) == 0) return 1;
    return 0;
}
