/* libae's side of the ONNX Runtime comparison (bench/onnx_bench.sh): for
 * model a's encoder (784-256-32) and the seeds' conv AE encoder (seed 000:
 * Conv2d 1->16->32 stride 2, Conv2d(32, 64, 7)), exports the encoder to
 * DIR/NAME.onnx, an Identity graph of the same input (DIR/NAME_identity.onnx,
 * which the Node.js side times beside its own Reshape + Slice graph of the
 * encoder's input and output sizes to measure its call overhead) and the
 * input batches; then times ae_encode at batch 1 and 256 and prints one line
 * "libae NAME BATCH MEDIAN_US" each. ROUNDS rounds, so the script can
 * interleave it with ONNX Runtime's.
 *
 * Usage: onnx_bench DIR [ROUNDS [BACKEND]]   (auto, openblas or onednn; one
 * thread as the script sets) */
#include "bench_common.h"

typedef struct ctx {
    ae_model *m;
    const float *x;
    float *code;
    size_t batch;
} ctx;

static int encode_once(void *p, int i) {
    (void)i;
    ctx *c = p;
    return ae_encode(c->m, c->x, c->batch, c->code) != AE_OK;
}

static ae_backend backend;

static ae_model *make(int conv, int identity) {
    ae_config *cfg = NULL;
    ae_model *m = NULL;
    int ok = ae_config_create(&cfg, NULL) == AE_OK && ae_config_set_backend(cfg, backend) == AE_OK;
    if (conv) {
        ok = ok && ae_config_set_input_shape(cfg, 1, 28, 28) == AE_OK;
        if (identity)
            ok = ok && ae_config_add_lifetime_topk(cfg, 1) == AE_OK; /* exports as Identity */
        else
            ok = ok && ae_config_add_conv2d(cfg, 16, 3, 2, 1, AE_ACT_RELU) == AE_OK &&
                 ae_config_add_conv2d(cfg, 32, 3, 2, 1, AE_ACT_RELU) == AE_OK &&
                 ae_config_add_conv2d(cfg, 64, 7, 1, 0, AE_ACT_IDENTITY) == AE_OK;
        ok = ok && ae_config_mark_code(cfg) == AE_OK && ae_config_add_flatten(cfg) == AE_OK &&
             ae_config_add_dense(cfg, 784, AE_ACT_SIGMOID) == AE_OK;
    } else {
        ok = ok && ae_config_set_input_size(cfg, 784) == AE_OK;
        if (identity)
            ok = ok && ae_config_add_lifetime_topk(cfg, 1) == AE_OK;
        else
            ok = ok && ae_config_add_dense(cfg, 256, AE_ACT_RELU) == AE_OK &&
                 ae_config_add_dense(cfg, 32, AE_ACT_IDENTITY) == AE_OK;
        ok = ok && ae_config_mark_code(cfg) == AE_OK &&
             ae_config_add_dense(cfg, 784, AE_ACT_SIGMOID) == AE_OK;
    }
    ok = ok && ae_config_set_int(cfg, AE_P_SEED, 1) == AE_OK && ae_model_create(&m, cfg) == AE_OK;
    if (!ok) {
        fprintf(stderr, "onnx_bench: %s\n", ae_config_last_error(cfg));
        exit(1);
    }
    ae_config_destroy(cfg);
    return m;
}

static void export(ae_model *m, const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.onnx", dir, name);
    if (ae_model_export_onnx(m, path, AE_ONNX_ENCODER) != AE_OK) {
        fprintf(stderr, "onnx_bench: %s\n", ae_model_last_error(m));
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: onnx_bench DIR [ROUNDS [BACKEND]]\n");
        return 2;
    }
    const char *dir = argv[1];
    int rounds = argc > 2 ? atoi(argv[2]) : 1;
    backend = bench_backend(argc > 3 ? argv[3] : NULL);
    static const char *const names[2] = {"dense_a", "conv_seed"};
    static const size_t batches[2] = {1, 256};
    float *x = bench_data(256, 784);
    char path[4096];
    snprintf(path, sizeof path, "%s/input.bin", dir);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(x, sizeof *x, 256 * 784, f) != 256 * 784 || fclose(f) != 0) return 1;
    ae_model *models[2];
    for (int k = 0; k < 2; k++) {
        char nm[64];
        models[k] = make(k, 0);
        export(models[k], dir, names[k]);
        ae_model *id = make(k, 1);
        snprintf(nm, sizeof nm, "%s_identity", names[k]);
        export(id, dir, nm);
        ae_model_destroy(id);
    }
    if (rounds == 0) {
        /* The setup run prints what the figures were measured on. */
        const char *coretype = getenv("OPENBLAS_CORETYPE");
        const char *omp = getenv("OMP_NUM_THREADS");
        printf("# libae %s, backend %s, OpenBLAS core %s (OPENBLAS_CORETYPE=%s), %d OpenBLAS "
               "thread(s), OMP_NUM_THREADS=%s\n",
               ae_version_string(), ae_backend_name(ae_model_backend(models[0])),
               openblas_get_corename(), coretype ? coretype : "(unset)",
               openblas_get_num_threads(), omp ? omp : "(unset)");
    }
    float *code = malloc(256 * 784 * sizeof *code);
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < 2; k++)
            for (int b = 0; b < 2; b++) {
                ctx c = {models[k], x, code, batches[b]};
                bench_result res = bench_run(encode_once, &c, 20, 50, 0.5);
                printf("libae %s %zu %.3f\n", names[k], batches[b], res.median * 1e6);
                fflush(stdout);
            }
    for (int k = 0; k < 2; k++) ae_model_destroy(models[k]);
    free(code);
    free(x);
    return 0;
}
