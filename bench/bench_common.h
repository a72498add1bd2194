/* Timing helpers shared by the benchmark programs. */
#ifndef AE_BENCH_COMMON_H
#define AE_BENCH_COMMON_H

#include <libae/ae.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

char *openblas_get_corename(void);
int openblas_get_num_threads(void);

/* The backend named by `name` (auto, openblas, onednn; NULL: auto), or exits. */
static inline ae_backend bench_backend(const char *name) {
    if (!name) return AE_BACKEND_AUTO;
    for (int b = AE_BACKEND_AUTO; b <= AE_BACKEND_ONEDNN; b++)
        if (strcmp(name, ae_backend_name((ae_backend)b)) == 0) {
            if (ae_backend_available((ae_backend)b)) return (ae_backend)b;
            fprintf(stderr, "backend %s: not built into this libae\n", name);
            exit(2);
        }
    fprintf(stderr, "backend %s: not auto, openblas or onednn\n", name);
    exit(2);
}

/* The header line of a benchmark's output: what the figures depend on. */
static inline void bench_header(ae_backend backend) {
    const char *omp = getenv("OMP_NUM_THREADS");
    printf("# libae %s | backend %s | OpenBLAS core %s | threads %d (OpenBLAS), %s (OpenMP, oneDNN)\n",
           ae_version_string(), ae_backend_name(backend), openblas_get_corename(),
           openblas_get_num_threads(), omp ? omp : "default");
}

static inline double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int bench_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct bench_result {
    double median, min, max;
    int n;
} bench_result;

/* Runs fn(ctx, i) after `warmup` calls until at least min_steps calls and
 * min_seconds have passed; each call timed on its own. */
static inline bench_result bench_run(int (*fn)(void *, int), void *ctx, int warmup, int min_steps,
                                     double min_seconds) {
    for (int i = 0; i < warmup; i++)
        if (fn(ctx, i)) exit(1);
    int cap = 1 << 20, n = 0;
    double *t = malloc((size_t)cap * sizeof *t), start = bench_now();
    if (!t) exit(1);
    while (n < cap && (n < min_steps || bench_now() - start < min_seconds)) {
        double s = bench_now();
        if (fn(ctx, n)) exit(1);
        t[n++] = bench_now() - s;
    }
    qsort(t, (size_t)n, sizeof *t, bench_cmp);
    bench_result r = {t[n / 2], t[0], t[n - 1], n};
    free(t);
    return r;
}

static inline void bench_print(const char *name, size_t batch, bench_result r) {
    printf("%-40s batch %4zu  steps %6d  ms/step median %8.4f [min %8.4f max %8.4f]\n", name,
           batch, r.n, r.median * 1e3, r.min * 1e3, r.max * 1e3);
    fflush(stdout);
}

/* Real Fashion-MNIST rows when installed (as the PyTorch twin uses), else uniform noise. */
static inline float *bench_data(size_t rows, size_t dim) {
    float *x = malloc(rows * dim * sizeof *x);
    if (!x) exit(1);
    ae_dataset *ds = NULL;
    if (dim == 784 && ae_dataset_create(&ds, NULL) == AE_OK &&
        ae_dataset_load_idx(ds, "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
                            NULL) == AE_OK &&
        ae_dataset_count(ds) >= rows) {
        const float *d = ae_dataset_data(ds);
        for (size_t i = 0; i < rows * dim; i++) x[i] = d[i] / 255.0f;
    } else {
        uint32_t s = 12345;
        for (size_t i = 0; i < rows * dim; i++) {
            s = s * 1664525u + 1013904223u;
            x[i] = (float)(s >> 8) / 16777216.0f;
        }
    }
    ae_dataset_destroy(ds);
    return x;
}

#endif
