/* Internal core: status messages, allocation, RNG, BLAS wrapper, numeric helpers.
 * Every other module includes this; it includes nothing of theirs. */
#ifndef AE_CORE_H
#define AE_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <libae/ae.h>

#define AE_ALIGN 64
/* Largest batch and layer width accepted: keeps every size product and
 * every BLAS dimension (int) far from overflow. */
#define AE_MAX_DIM ((size_t)1 << 24)

#if defined(__GNUC__)
#define AE_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define AE_PRINTF(a, b)
#endif

/* Hot element-wise loops are compiled for AVX-512, AVX2+FMA and the baseline,
 * and the best is picked at load time (the library itself targets the baseline). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define AE_HOT __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define AE_HOT
#endif

/* ---- errors ---- */
typedef struct ae_errbuf {
    char msg[320];
} ae_errbuf;

/* Formats the message into e (if not NULL) and returns code. */
ae_status ae_error(ae_errbuf *e, ae_status code, const char *fmt, ...) AE_PRINTF(3, 4);
ae_status ae_verror(ae_errbuf *e, ae_status code, const char *fmt, va_list ap);

/* strerror_r's text (the POSIX form: handles may be used from several threads). */
typedef struct ae_errtext {
    char s[96];
} ae_errtext;
ae_errtext ae_sys_error(int err);

/* ---- allocation (every block 64-byte aligned) ---- */
/* Copies `src` (or the malloc default when NULL) into dst; INVALID_ARG when malformed. */
ae_status ae_allocator_init(ae_allocator *dst, const ae_allocator *src);
void *ae_alloc(const ae_allocator *a, size_t bytes);
void *ae_calloc(const ae_allocator *a, size_t count, size_t size);
void ae_free(const ae_allocator *a, void *p);

/* Overflow-checked products: return 0 and set *out, or return 1 on overflow. */
static inline int ae_mul_overflow(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 1;
    *out = a * b;
    return 0;
}

/* ---- RNG: xoshiro256** seeded through splitmix64. ---- */
typedef struct ae_rng {
    uint64_t s[4];
} ae_rng;

void ae_rng_seed(ae_rng *r, uint64_t seed);
uint64_t ae_rng_next(ae_rng *r);
/* Uniform in [0, 1) with 24 random bits. */
float ae_rng_uniform(ae_rng *r);
/* Uniform double in [0, 1) with 53 random bits. */
double ae_rng_uniform_double(ae_rng *r);
/* Uniform integer in [0, n), unbiased; n > 0. */
uint64_t ae_rng_below(ae_rng *r, uint64_t n);
/* Standard normal (Box-Muller, one value per call). */
float ae_rng_normal(ae_rng *r);

/* ---- BLAS (row-major) ----
 * Every matrix product goes through these two, on the backend of the model
 * that runs them (ae_layer_io.backend): AE_BACKEND_ONEDNN computes with
 * oneDNN when it is built in, anything else (AUTO too: layers run alone by
 * tests and benchmarks) with OpenBLAS. With beta 0, C (y) is only written. */
typedef enum { AE_NO_TRANS = 0, AE_TRANS = 1 } ae_trans;
/* C[M,N] = alpha * op(A)[M,K] op(B)[K,N] + beta * C */
void ae_sgemm(ae_backend be, ae_trans ta, ae_trans tb, size_t M, size_t N, size_t K, float alpha,
              const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C,
              size_t ldc);
/* y = alpha * op(A) x + beta * y, A stored [rows, cols] */
void ae_sgemv(ae_backend be, ae_trans ta, size_t rows, size_t cols, float alpha, const float *A,
              size_t lda, const float *x, float beta, float *y);
/* dst [cols, rows] = srcᵀ, src [rows, cols] row-major (in tiles, so that
 * both sides are read and written a cache line at a time). */
void ae_transpose(const float *src, size_t rows, size_t cols, float *dst);
/* The backend a model created with `chosen` (a valid, available ae_backend)
 * computes with: the rule of AE_BACKEND_AUTO, applied once, at creation. */
ae_backend ae_backend_resolve(ae_backend chosen);

/* ---- numeric helpers ---- */
/* 1 when all n values are finite. */
int ae_all_finite(const float *p, size_t n);
/* Index of the first non-finite value, or n. */
size_t ae_first_nonfinite(const float *p, size_t n);

/* ---- files (file.c) ---- */
typedef struct ae_span {
    const void *p;
    size_t n;
} ae_span;
/* Replaces the file at `path` with the parts, one after the other,
 * atomically and durably: a new file next to it, flushed, renamed over it
 * (a replaced file's permission bits are kept), then the directory flushed.
 * docs/files.md is the user's side of these rules.
 * - Symbolic links: a link at `path` is followed (a dangling one too): the
 *   file it names is replaced (or created), atomically in that file's
 *   directory, and the link stays.
 * - Only a regular file is replaced: a directory, device, FIFO or socket
 *   at `path` (or named by its links) is refused.
 * - The temporary name is short (".ae-<hash of the name>-<slot>", 23
 *   bytes), so any name that fits a directory entry can be saved.
 * - The temporary files of the target left by killed saves are removed
 *   first when no other save into the directory is running (a shared
 *   flock on the directory marks a running save).
 * Returns 0 on success. -1 when the file was not replaced: nothing is left
 * behind, an existing file at `path` is as it was. -2 when the target
 * exists and is not a regular file: nothing is written, *step names what
 * it is ("a FIFO", "a symbolic link to a character device", ...) and errno
 * is 0. 1 when it was replaced but the directory could not be flushed. On
 * -1 and 1, *step says what failed ("write", "flush", ...: "cannot <step>
 * <path>" reads well) and errno the cause. */
int ae_file_replace(const ae_allocator *a, const char *path, const ae_span *parts, size_t nparts,
                    const char **step);

/* ae_file_replace with its outcome as a status, for every writer of the
 * library: the message in `err` says what happened without the path, for
 * the caller to put its own words and the path before it ("it is a FIFO,
 * not a regular file; nothing was written", "cannot write it: ...",
 * "written, but cannot flush it: ..."). AE_ERR_OUT_OF_MEMORY or
 * AE_ERR_IO. */
ae_status ae_file_save(const ae_allocator *a, const char *path, const ae_span *parts,
                       size_t nparts, ae_errbuf *err);

/* Opens `path` for reading, the one way every loader opens a file: a
 * regular file only, checked with fstat after an open with O_NONBLOCK, so
 * a FIFO or device is refused without waiting for a writer. Returns the
 * descriptor (O_CLOEXEC, blocking) and its size, or -1 with *why "cannot
 * open" / "cannot inspect" and errno the cause, or -2 when it is not a
 * regular file: *why names what it is ("a directory", "a FIFO", ...) and
 * errno is 0. */
int ae_file_open_read(const char *path, size_t *size, const char **why);

#endif
