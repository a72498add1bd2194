/* Writes the cases tests/onnx/check_ort.js runs through ONNX Runtime: for
 * every model below (every layer kind and activation, and models like the
 * seeds': dense, tied, sparse top-k, conv with BatchNorm/pools/upsample,
 * VAE), its full, encoder and decoder ONNX exports, a batch, and libae's
 * encode, decode and reconstruct of it (raw float32 files), listed in
 * DIR/manifest.json.
 *
 * Usage: ort_cases DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libae/ae.h>

#define CHECK(call)                                                                              \
    do {                                                                                         \
        ae_status st_ = (call);                                                                  \
        if (st_ != AE_OK) {                                                                      \
            fprintf(stderr, "ort_cases: %s:%d: %s failed: %s\n", __FILE__, __LINE__, #call,      \
                    ae_status_name(st_));                                                        \
            exit(1);                                                                             \
        }                                                                                        \
    } while (0)

static const char *dir;
static FILE *manifest;
static int ncases;

static void fill(float *p, size_t n, uint32_t seed, float lo, float hi) {
    uint32_t s = seed * 2654435761u + 1u;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        p[i] = lo + (hi - lo) * (float)(s >> 8) * (1.0f / 16777216.0f);
    }
}

static void write_floats(const char *name, const char *what, const float *p, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.%s.bin", dir, name, what);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, sizeof *p, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "ort_cases: cannot write %s\n", path);
        exit(1);
    }
}

/* A few training steps, so weights and running statistics are not the
 * initial ones; then inference mode. */
static void train(ae_model *m, size_t steps, uint32_t seed) {
    size_t B = 8, D = ae_model_input_size(m);
    float *x = malloc(B * D * sizeof *x);
    for (size_t s = 0; s < steps; s++) {
        fill(x, B * D, seed + (uint32_t)s, 0.0f, 1.0f);
        CHECK(ae_train_step(m, x, NULL, B, NULL));
    }
    free(x);
}

static void emit(const char *name, ae_config *cfg, size_t steps) {
    ae_model *m = NULL;
    if (ae_model_create(&m, cfg) != AE_OK) {
        fprintf(stderr, "ort_cases: %s: %s\n", name, ae_config_last_error(cfg));
        exit(1);
    }
    ae_config_destroy(cfg);
    train(m, steps, 100 + (uint32_t)ncases * 17);
    static const char *const parts[3] = {"full", "encoder", "decoder"};
    for (int p = 0; p < 3; p++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.%s.onnx", dir, name, parts[p]);
        if (ae_model_export_onnx(m, path, (ae_onnx_part)p) != AE_OK) {
            fprintf(stderr, "ort_cases: %s: %s\n", name, ae_model_last_error(m));
            exit(1);
        }
    }
    size_t B = 5, D = ae_model_input_size(m), C = ae_model_code_size(m);
    float *x = malloc(B * D * sizeof *x), *code = malloc(B * C * sizeof *code);
    float *dec = malloc(B * D * sizeof *dec), *rec = malloc(B * D * sizeof *rec);
    fill(x, B * D, 7 + (uint32_t)ncases, -0.2f, 1.2f);
    CHECK(ae_encode(m, x, B, code));
    CHECK(ae_decode(m, code, B, dec));
    CHECK(ae_reconstruct(m, x, B, rec));
    write_floats(name, "input", x, B * D);
    write_floats(name, "code", code, B * C);
    write_floats(name, "decoded", dec, B * D);
    write_floats(name, "reconstruction", rec, B * D);
    int vae = 0;
    for (size_t l = 0; l < ae_model_layer_count(m); l++) {
        ae_layer_info info = {.struct_size = sizeof info};
        CHECK(ae_model_layer_info(m, l, &info));
        vae |= info.kind == AE_LAYER_GAUSSIAN;
    }
    if (vae) {
        float *mu = malloc(B * C * sizeof *mu), *lv = malloc(B * C * sizeof *lv);
        CHECK(ae_vae_encode(m, x, B, mu, lv));
        write_floats(name, "logvar", lv, B * C);
        free(mu);
        free(lv);
    }
    fprintf(manifest, "%s{\"name\": \"%s\", \"batch\": %zu, \"input\": %zu, \"code\": %zu, \"vae\": %d}\n",
            ncases ? "," : "", name, B, D, C, vae);
    ncases++;
    free(x);
    free(code);
    free(dec);
    free(rec);
    ae_model_destroy(m);
}

static ae_config *config(size_t c, size_t h, size_t w) {
    ae_config *cfg = NULL;
    CHECK(ae_config_create(&cfg, NULL));
    if (h * w == 1)
        CHECK(ae_config_set_input_size(cfg, c));
    else
        CHECK(ae_config_set_input_shape(cfg, c, h, w));
    CHECK(ae_config_set_float(cfg, AE_P_LEARNING_RATE, 1e-2));
    return cfg;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: ort_cases DIR\n");
        return 2;
    }
    dir = argv[1];
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    manifest = fopen(path, "w");
    if (!manifest) {
        fprintf(stderr, "ort_cases: cannot write %s\n", path);
        return 1;
    }
    fprintf(manifest, "[\n");
    ae_config *c;

    /* dense, like seed model a: 784-256-32-256-784 at a small size */
    c = config(24, 1, 1);
    CHECK(ae_config_add_dense(c, 16, AE_ACT_RELU));
    CHECK(ae_config_add_dense(c, 6, AE_ACT_IDENTITY));
    CHECK(ae_config_mirror_decoder(c, AE_ACT_SIGMOID));
    emit("dense", c, 3);

    /* every activation, fused in a dense layer and standalone; a layer without bias */
    c = config(12, 1, 1);
    CHECK(ae_config_add_dense(c, 10, AE_ACT_LEAKY_RELU));
    CHECK(ae_config_layer_set_float(c, AE_LAST_LAYER, AE_LAYER_LEAKY_SLOPE, 0.2));
    CHECK(ae_config_add_dense(c, 9, AE_ACT_TANH));
    CHECK(ae_config_add_dense(c, 8, AE_ACT_GELU));
    CHECK(ae_config_layer_set_int(c, AE_LAST_LAYER, AE_LAYER_BIAS, 0));
    CHECK(ae_config_add_dense(c, 7, AE_ACT_IDENTITY));
    CHECK(ae_config_add_activation(c, AE_ACT_RELU));
    CHECK(ae_config_mark_code(c));
    CHECK(ae_config_add_dense(c, 8, AE_ACT_SOFTPLUS));
    CHECK(ae_config_add_dense(c, 9, AE_ACT_ELU));
    CHECK(ae_config_add_dense(c, 10, AE_ACT_IDENTITY));
    CHECK(ae_config_add_activation(c, AE_ACT_GELU));
    CHECK(ae_config_add_activation(c, AE_ACT_LEAKY_RELU));
    CHECK(ae_config_add_dense(c, 12, AE_ACT_SIGMOID));
    emit("activations", c, 3);

    /* tied, as the seeds' tied autoencoder */
    c = config(20, 1, 1);
    CHECK(ae_config_add_dense(c, 12, AE_ACT_SIGMOID));
    CHECK(ae_config_add_dense(c, 5, AE_ACT_IDENTITY));
    CHECK(ae_config_mirror_decoder(c, AE_ACT_SIGMOID));
    CHECK(ae_config_tie(c));
    emit("tied", c, 3);

    /* sparse: top-k on the code */
    c = config(20, 1, 1);
    CHECK(ae_config_add_dense(c, 12, AE_ACT_RELU));
    CHECK(ae_config_add_topk(c, 4));
    CHECK(ae_config_mirror_decoder(c, AE_ACT_SIGMOID));
    emit("topk", c, 3);

    /* lifetime top-k (inference: passes through) and a BatchNorm1d */
    c = config(16, 1, 1);
    CHECK(ae_config_add_dense(c, 10, AE_ACT_IDENTITY));
    CHECK(ae_config_add_batchnorm(c));
    CHECK(ae_config_add_activation(c, AE_ACT_TANH));
    CHECK(ae_config_add_lifetime_topk(c, 2));
    CHECK(ae_config_mark_code(c));
    CHECK(ae_config_add_dense(c, 16, AE_ACT_SIGMOID));
    emit("lifetime_bn1d", c, 3);

    /* batch top-k, trained (the threshold) and not (the batch's k·B largest) */
    for (int trained = 0; trained < 2; trained++) {
        c = config(16, 1, 1);
        CHECK(ae_config_add_dense(c, 10, AE_ACT_RELU));
        CHECK(ae_config_add_batch_topk(c, 3));
        CHECK(ae_config_mark_code(c));
        CHECK(ae_config_add_dense(c, 16, AE_ACT_SIGMOID));
        emit(trained ? "batch_topk_trained" : "batch_topk_untrained", c, trained ? 4 : 0);
    }

    /* conv with BatchNorm, pools and upsampling (as the seeds' conv AE) */
    c = config(1, 8, 8);
    CHECK(ae_config_add_conv2d(c, 4, 3, 1, 1, AE_ACT_IDENTITY));
    CHECK(ae_config_add_batchnorm(c));
    CHECK(ae_config_add_activation(c, AE_ACT_RELU));
    CHECK(ae_config_add_maxpool2d(c, 2, 2, 0));
    CHECK(ae_config_add_conv2d(c, 8, 3, 2, 1, AE_ACT_LEAKY_RELU));
    CHECK(ae_config_add_avgpool_1x1(c));
    CHECK(ae_config_add_flatten(c));
    CHECK(ae_config_add_dense(c, 6, AE_ACT_IDENTITY));
    CHECK(ae_config_mark_code(c));
    CHECK(ae_config_add_dense(c, 32, AE_ACT_RELU));
    CHECK(ae_config_add_unflatten(c, 8, 2, 2));
    CHECK(ae_config_add_upsample(c, 2, AE_UPSAMPLE_NEAREST));
    CHECK(ae_config_add_conv_transpose2d(c, 4, 3, 2, 1, 1, AE_ACT_RELU));
    CHECK(ae_config_add_batchnorm(c));
    CHECK(ae_config_add_conv2d(c, 1, 3, 1, 1, AE_ACT_SIGMOID));
    emit("conv_bn_pool_up", c, 4);

    /* bilinear upsampling, a padded max pool, a conv without bias, a code
       that is an image (the decoder's input is NCHW), top-k over an image */
    c = config(2, 6, 6);
    CHECK(ae_config_add_conv2d(c, 4, 3, 1, 1, AE_ACT_ELU));
    CHECK(ae_config_layer_set_int(c, AE_LAST_LAYER, AE_LAYER_BIAS, 0));
    CHECK(ae_config_add_maxpool2d(c, 3, 2, 1));
    CHECK(ae_config_add_topk(c, 20));
    CHECK(ae_config_mark_code(c));
    CHECK(ae_config_add_upsample(c, 2, AE_UPSAMPLE_BILINEAR));
    CHECK(ae_config_add_conv_transpose2d(c, 3, 3, 1, 1, 0, AE_ACT_SOFTPLUS));
    CHECK(ae_config_add_conv2d(c, 2, 1, 1, 0, AE_ACT_TANH));
    emit("conv_bilinear", c, 3);

    /* a dense layer right after a conv (the export flattens first), an
       MLP on image input, BatchNorm on an image code */
    c = config(1, 6, 6);
    CHECK(ae_config_add_conv2d(c, 3, 3, 1, 0, AE_ACT_RELU));
    CHECK(ae_config_add_dense(c, 5, AE_ACT_TANH));
    CHECK(ae_config_mark_code(c));
    CHECK(ae_config_add_dense(c, 36, AE_ACT_SIGMOID));
    emit("conv_dense", c, 3);
    c = config(2, 3, 3);
    CHECK(ae_config_add_conv2d(c, 4, 1, 1, 0, AE_ACT_IDENTITY));
    CHECK(ae_config_add_batchnorm(c));
    CHECK(ae_config_mark_code(c));
    CHECK(ae_config_add_dense(c, 18, AE_ACT_IDENTITY));
    emit("bn_image_code", c, 3);

    /* VAE: the encoder exports the mean and the log-variance */
    c = config(18, 1, 1);
    CHECK(ae_config_add_dense(c, 10, AE_ACT_RELU));
    CHECK(ae_config_add_gaussian(c, 3));
    CHECK(ae_config_mirror_decoder(c, AE_ACT_SIGMOID));
    emit("vae", c, 3);

    /* the seeds' sizes: model a (784-256-32-256-784), seed 000's conv AE
       (Conv2d 1->16->32 stride 2, Conv2d(32, 64, 7), mirrored with
       ConvTranspose2d), a 784-400-20 VAE */
    c = config(784, 1, 1);
    CHECK(ae_config_add_dense(c, 256, AE_ACT_RELU));
    CHECK(ae_config_add_dense(c, 32, AE_ACT_IDENTITY));
    CHECK(ae_config_mirror_decoder(c, AE_ACT_SIGMOID));
    emit("seed_dense_a", c, 2);

    c = config(1, 28, 28);
    CHECK(ae_config_add_conv2d(c, 16, 3, 2, 1, AE_ACT_RELU));
    CHECK(ae_config_add_conv2d(c, 32, 3, 2, 1, AE_ACT_RELU));
    CHECK(ae_config_add_conv2d(c, 64, 7, 1, 0, AE_ACT_IDENTITY));
    CHECK(ae_config_mark_code(c));
    CHECK(ae_config_add_conv_transpose2d(c, 32, 7, 1, 0, 0, AE_ACT_RELU));
    CHECK(ae_config_add_conv_transpose2d(c, 16, 3, 2, 1, 1, AE_ACT_RELU));
    CHECK(ae_config_add_conv_transpose2d(c, 1, 3, 2, 1, 1, AE_ACT_SIGMOID));
    emit("seed000_conv", c, 2);

    c = config(784, 1, 1);
    CHECK(ae_config_add_dense(c, 400, AE_ACT_RELU));
    CHECK(ae_config_add_gaussian(c, 20));
    CHECK(ae_config_mirror_decoder(c, AE_ACT_SIGMOID));
    emit("seed_vae", c, 2);

    fprintf(manifest, "]\n");
    if (fclose(manifest) != 0) return 1;
    printf("ort_cases: %d models written to %s\n", ncases, dir);
    return 0;
}
