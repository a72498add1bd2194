/* Helpers shared by the examples: Fashion-MNIST loading, timing, test MSE.
 * Only the public API is used. */
#ifndef AE_EXAMPLES_COMMON_H
#define AE_EXAMPLES_COMMON_H

#include <libae/ae.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Runs a libae call; on failure prints it, its status and msg, and exits. */
#define CHECK(call, msg)                                                                 \
    do {                                                                                 \
        ae_status st_ = (call);                                                          \
        if (st_ != AE_OK) {                                                              \
            fprintf(stderr, "%s failed: %s: %s\n", #call, ae_status_name(st_), (msg));   \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

static inline double ex_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Loads a Fashion-MNIST split scaled to [0, 1]; exits with a message on failure. */
static inline ae_dataset *ex_load_fmnist(const char *dir, int train) {
    char img[512], lbl[512];
    snprintf(img, sizeof img, "%s/%s-images-idx3-ubyte.gz", dir, train ? "train" : "t10k");
    snprintf(lbl, sizeof lbl, "%s/%s-labels-idx1-ubyte.gz", dir, train ? "train" : "t10k");
    ae_dataset *ds = NULL;
    ae_status st = ae_dataset_create(&ds, NULL);
    if (st == AE_OK) st = ae_dataset_load_idx(ds, img, lbl);
    if (st == AE_OK) st = ae_dataset_scale(ds, 1.0f / 255.0f, 0.0f);
    if (st != AE_OK) {
        fprintf(stderr, "cannot load Fashion-MNIST: %s\n(install Debian's dataset-fashion-mnist)\n",
                ds ? ae_dataset_last_error(ds) : ae_status_string(st));
        ae_dataset_destroy(ds);
        exit(1);
    }
    return ds;
}

/* Mean squared error of the reconstructions over a whole dataset. */
static inline double ex_test_mse(ae_model *m, ae_dataset *ds) {
    size_t n = ae_dataset_count(ds), d = ae_dataset_dim(ds), bs = 1000;
    const float *x = ae_dataset_data(ds);
    float *out = malloc(bs * d * sizeof *out);
    double acc = 0.0;
    for (size_t i = 0; out && i < n; i += bs) {
        size_t b = n - i < bs ? n - i : bs;
        if (ae_reconstruct(m, x + i * d, b, out) != AE_OK) {
            fprintf(stderr, "reconstruct: %s\n", ae_model_last_error(m));
            exit(1);
        }
        for (size_t j = 0; j < b * d; j++) {
            double e = (double)out[j] - (double)x[i * d + j];
            acc += e * e;
        }
    }
    free(out);
    return acc / ((double)n * (double)d);
}

/* Fisher-Yates shuffle of 0..n-1 from a small xorshift generator. */
static inline void ex_shuffle(size_t *idx, size_t n, uint64_t *state) {
    for (size_t i = 0; i < n; i++) idx[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
        uint64_t x = *state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *state = x;
        size_t j = (size_t)(x % (i + 1));
        size_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

#endif
