/* Times a training step (forward, MSE, backward, Adam lr 1e-3, batch 256)
 * of sparse autoencoders against the same models without sparsity:
 *   b  784-64-784 (LeakyReLU code, linear output)     c  b with top-16
 *   w  784-4096-784 (LeakyReLU code, linear output)   w32  w with top-32
 * bench/torch_sparse.py times the PyTorch twins in the same environment;
 * bench/compare_sparse.py runs both and prints the ratios.
 *
 *   bench_sparse [seconds per model] [models, e.g. "bcww32"]
 */
#include <string.h>

#include "bench_common.h"

#define ROWS 8192

typedef struct ctx {
    ae_model *m;
    const float *x;
    size_t batch, dim;
} ctx;

static int train_fn(void *p, int i) {
    ctx *c = p;
    size_t off = ((size_t)i * c->batch) % (ROWS - c->batch + 1);
    float loss;
    if (ae_train_step(c->m, c->x + off * c->dim, NULL, c->batch, &loss) != AE_OK) {
        fprintf(stderr, "train: %s\n", ae_model_last_error(c->m));
        return 1;
    }
    return 0;
}

static ae_model *build(size_t code, size_t k) {
    ae_config *cfg = NULL;
    ae_model *m = NULL;
    if (ae_config_create(&cfg, NULL) != AE_OK) exit(1);
    ae_status st = ae_config_set_input_size(cfg, 784);
    if (!st) st = ae_config_add_dense(cfg, code, AE_ACT_LEAKY_RELU);
    if (!st && k) st = ae_config_add_topk(cfg, k);
    if (!st) st = ae_config_mark_code(cfg);
    if (!st) st = ae_config_add_dense(cfg, 784, AE_ACT_IDENTITY);
    if (!st) st = ae_config_set_int(cfg, AE_P_OPTIMIZER, AE_OPT_ADAM);
    if (!st) st = ae_model_create(&m, cfg);
    if (st) {
        fprintf(stderr, "build: %s\n", ae_config_last_error(cfg));
        exit(1);
    }
    ae_config_destroy(cfg);
    return m;
}

static void one(const char *name, size_t code, size_t k, const float *x, double secs) {
    ctx c = {build(code, k), x, 256, 784};
    bench_print(name, 256, bench_run(train_fn, &c, code > 1000 ? 5 : 30, code > 1000 ? 20 : 300, secs));
    ae_model_destroy(c.m);
}

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 2.0;
    const char *which = argc > 2 ? argv[2] : "bcww32";
    printf("# libae %s | OpenBLAS core %s | threads %d\n", ae_version_string(),
           openblas_get_corename(), openblas_get_num_threads());
    float *x = bench_data(ROWS, 784);
    if (strchr(which, 'b')) one("b train 784-64-784", 64, 0, x, secs);
    if (strchr(which, 'c')) one("c train 784-64-784 top16", 64, 16, x, secs);
    if (strstr(which, "w") && (strstr(which, "w") != strstr(which, "w32") || strstr(which, "ww")))
        one("w train 784-4096-784", 4096, 0, x, secs);
    if (strstr(which, "w32")) one("w32 train 784-4096-784 top32", 4096, 32, x, secs);
    free(x);
    return 0;
}
