/* Times the dense models of SPEC.md with libae: a training step (forward,
 * MSE, backward, Adam) of a: 784-256-32-256-784 and b: 784-64-784 at batch
 * 256, and the encoder of a at batch 1 and 256. bench/compare_dense.py runs
 * this beside PyTorch and the GEMM-only bound and prints the ratios. */
#include "bench_common.h"

#define ROWS 8192

typedef struct ctx {
    ae_model *m;
    const float *x;
    float *out;
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

static int encode_fn(void *p, int i) {
    ctx *c = p;
    size_t off = ((size_t)i * c->batch) % (ROWS - c->batch + 1);
    return ae_encode(c->m, c->x + off * c->dim, c->batch, c->out) != AE_OK;
}

static ae_backend backend;

static ae_model *build(const size_t *widths, size_t n, size_t code_at, const ae_activation *acts) {
    ae_config *cfg = NULL;
    ae_model *m = NULL;
    if (ae_config_create(&cfg, NULL) != AE_OK || ae_config_set_backend(cfg, backend) != AE_OK)
        exit(1);
    ae_config_set_input_size(cfg, widths[0]);
    for (size_t i = 1; i < n; i++) {
        ae_config_add_dense(cfg, widths[i], acts[i - 1]);
        if (i == code_at) ae_config_mark_code(cfg);
    }
    ae_config_set_int(cfg, AE_P_OPTIMIZER, AE_OPT_ADAM);
    if (ae_model_create(&m, cfg) != AE_OK) {
        fprintf(stderr, "create: %s\n", ae_config_last_error(cfg));
        exit(1);
    }
    ae_config_destroy(cfg);
    return m;
}

/* bench_dense [SECONDS [MODELS [BACKEND]]]: MODELS picks among a, b, e
 * (default all), so a profiler can watch one model; BACKEND is auto (the
 * default), openblas or onednn. */
int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 2.0;
    const char *only = argc > 2 ? argv[2] : "abe";
    backend = bench_backend(argc > 3 ? argv[3] : NULL);
    float *x = bench_data(ROWS, 784);
    float *out = malloc(256 * 784 * sizeof *out);

    const size_t wa[] = {784, 256, 32, 256, 784};
    const ae_activation aa[] = {AE_ACT_RELU, AE_ACT_IDENTITY, AE_ACT_RELU, AE_ACT_SIGMOID};
    ctx c = {build(wa, 5, 2, aa), x, out, 256, 784};
    bench_header(ae_model_backend(c.m));
    if (strchr(only, 'a'))
        bench_print("a train 784-256-32-256-784", 256, bench_run(train_fn, &c, 30, 300, secs));

    const size_t wb[] = {784, 64, 784};
    const ae_activation ab[] = {AE_ACT_LEAKY_RELU, AE_ACT_IDENTITY};
    ctx cb = {build(wb, 3, 1, ab), x, out, 256, 784};
    if (strchr(only, 'b'))
        bench_print("b train 784-64-784", 256, bench_run(train_fn, &cb, 30, 300, secs));
    ae_model_destroy(cb.m);

    if (strchr(only, 'e')) {
        c.batch = 1;
        bench_print("e encode 784-256-32", 1, bench_run(encode_fn, &c, 100, 3000, secs));
        c.batch = 256;
        bench_print("e encode 784-256-32", 256, bench_run(encode_fn, &c, 30, 300, secs));
    }
    ae_model_destroy(c.m);
    free(x);
    free(out);
    return 0;
}
