/* Internal helpers shared by the ONNX exporter (onnx_export.c) and
 * importer (onnx_import.c): an arena the protobuf-c messages are built in
 * or unpacked into. The message types come from
 * ae_onnx.pb-c.h, generated at build time by protoc-c from Debian's
 * onnx.proto with its package renamed ae_onnx (meson.build). */
#ifndef AE_IO_ONNX_H
#define AE_IO_ONNX_H

#include <protobuf-c/protobuf-c.h>

#include "ae_onnx.pb-c.h"
#include "core/core.h"

/* The IR version of the schema the exporter writes (ONNX 1.12: 8). */
#define AE_ONNX_IR_VERSION 8

/* The value convention of a model's training data (<libae/data.h>) in an
 * ONNX model's metadata_props (docs/interop.md): the element type
 * ("uint8", "float", "unknown"), scale, offset, the training inputs' range
 * "lo,hi" and the standardisation's mean and std lists. An import that
 * finds AE_ONNX_DATA_ELEM restores the convention from them; a graph
 * without it (PyTorch's) takes its input as given. */
#define AE_ONNX_DATA_ELEM "ae.data.elem"
#define AE_ONNX_DATA_SCALE "ae.data.scale"
#define AE_ONNX_DATA_OFFSET "ae.data.offset"
#define AE_ONNX_DATA_RANGE "ae.data.range"
#define AE_ONNX_DATA_MEAN "ae.data.mean"
#define AE_ONNX_DATA_STD "ae.data.std"
/* Whether key is one of the six above. */
int ae_onnx_convention_key(const char *key);

/* A bump allocator over chunks from an ae_allocator; freed at once. */
typedef struct ae_arena_chunk ae_arena_chunk;
typedef struct ae_arena {
    const ae_allocator *alloc;
    ae_arena_chunk *head;
    size_t used, cap; /* in the head chunk */
    size_t total;     /* bytes allocated, for the limit */
    size_t limit;     /* 0: none */
    int failed;       /* an allocation failed (out of memory or over the limit) */
} ae_arena;

void ae_arena_init(ae_arena *a, const ae_allocator *alloc, size_t limit);
/* 16-byte aligned, zeroed; NULL (and a->failed set) on failure. */
void *ae_arena_alloc(ae_arena *a, size_t bytes);
void ae_arena_free(ae_arena *a);
/* A protobuf-c allocator drawing from the arena (its free does nothing). */
ProtobufCAllocator ae_arena_protobuf(ae_arena *a);

#endif
