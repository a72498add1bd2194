/* ONNX export and import (<libae/onnx.h>, src/io/onnx_*.c): arguments and
 * refusals, the buffer and file variants, export -> import round trips bit
 * for bit for every layer kind, the graphs torch.onnx.export writes for the
 * seeds' models against PyTorch's outputs and training steps (fixtures from
 * tests/fixtures/make_onnx.py), malformed and unsupported graphs refused
 * with a message. ONNX Runtime runs the exports in tests/onnx/. */
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"
#include "fixture.h"

/* The protobuf-c messages, to edit exported graphs (generated at build
   time), and the model's layers, to check what the builder holds. */
#include "ae_onnx.pb-c.h"
#include "model/model.h"

#define OK(call) assert_int_equal((call), AE_OK)

static ae_model *dense_model(void) {
    ae_config *c = NULL;
    ae_model *m = NULL;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_size(c, 12));
    OK(ae_config_add_dense(c, 8, AE_ACT_RELU));
    OK(ae_config_add_dense(c, 3, AE_ACT_IDENTITY));
    OK(ae_config_mirror_decoder(c, AE_ACT_SIGMOID));
    OK(ae_model_create(&m, c));
    ae_config_destroy(c);
    return m;
}

static void test_export_arguments(void **state) {
    (void)state;
    ae_model *m = dense_model();
    size_t size = 0;
    assert_int_equal(ae_model_export_onnx(NULL, "x.onnx", AE_ONNX_FULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_export_onnx(m, NULL, AE_ONNX_FULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_export_onnx(m, "", AE_ONNX_FULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_export_onnx(m, "x.onnx", (ae_onnx_part)7), AE_ERR_INVALID_ARG);
    assert_non_null(strstr(ae_model_last_error(m), "part"));
    assert_int_equal(ae_model_export_onnx_buffer(m, NULL, 0, NULL, AE_ONNX_FULL),
                     AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_export_onnx_buffer(m, NULL, 10, &size, AE_ONNX_FULL),
                     AE_ERR_INVALID_ARG);
    /* snprintf-style: the size, then the bytes */
    assert_int_equal(ae_model_export_onnx_buffer(m, NULL, 0, &size, AE_ONNX_FULL), AE_ERR_RANGE);
    assert_true(size > 12 * 8 * 4);
    unsigned char *buf = malloc(size);
    size_t size2 = 0;
    assert_int_equal(ae_model_export_onnx_buffer(m, buf, size - 1, &size2, AE_ONNX_FULL),
                     AE_ERR_RANGE);
    assert_int_equal(size2, size);
    OK(ae_model_export_onnx_buffer(m, buf, size, &size2, AE_ONNX_FULL));
    /* the file variant writes the same bytes */
    char path[] = "/tmp/ae-onnx-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    OK(ae_model_export_onnx(m, path, AE_ONNX_FULL));
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char *file = malloc(size + 1);
    assert_int_equal(fread(file, 1, size + 1, f), size);
    fclose(f);
    assert_memory_equal(file, buf, size);
    /* a directory that does not exist: AE_ERR_IO, nothing left behind */
    assert_int_equal(ae_model_export_onnx(m, "/nonexistent-dir/m.onnx", AE_ONNX_FULL), AE_ERR_IO);
    assert_non_null(strstr(ae_model_last_error(m), "/nonexistent-dir/m.onnx"));
    /* a FIFO is refused by kind and left as it was, as for every file libae writes */
    unlink(path);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(ae_model_export_onnx(m, path, AE_ONNX_FULL), AE_ERR_IO);
    assert_non_null(strstr(ae_model_last_error(m), "it is a FIFO, not a regular file"));
    struct stat fs;
    assert_int_equal(lstat(path, &fs), 0);
    assert_true(S_ISFIFO(fs.st_mode));
    free(file);
    free(buf);
    ae_model_destroy(m);
}


/* ---- helpers ---- */

static unsigned char *export_buf(const ae_model *m, ae_onnx_part part, size_t *size) {
    OK(ae_model_export_onnx_buffer(m, NULL, 0, size, part) == AE_ERR_RANGE ? AE_OK : AE_ERR_STATE);
    unsigned char *buf = malloc(*size);
    assert_non_null(buf);
    OK(ae_model_export_onnx_buffer(m, buf, *size, size, part));
    return buf;
}

static ae_model *import_buf(const unsigned char *buf, size_t size) {
    ae_model *m = NULL;
    char err[512];
    ae_status st = ae_model_import_onnx_buffer(&m, buf, size, NULL, err, sizeof err);
    if (st) fail_msg("import: %s: %s", ae_status_name(st), err);
    return m;
}

static ae_config *config(size_t c, size_t h, size_t w) {
    ae_config *cfg = NULL;
    OK(ae_config_create(&cfg, NULL));
    if (h * w == 1)
        OK(ae_config_set_input_size(cfg, c));
    else
        OK(ae_config_set_input_shape(cfg, c, h, w));
    OK(ae_config_set_float(cfg, AE_P_LEARNING_RATE, 1e-2));
    return cfg;
}

static ae_model *create(ae_config *cfg) {
    ae_model *m = NULL;
    if (ae_model_create(&m, cfg) != AE_OK) fail_msg("create: %s", ae_config_last_error(cfg));
    ae_config_destroy(cfg);
    return m;
}

static void train(ae_model *m, size_t steps) {
    size_t B = 8, D = ae_model_input_size(m);
    float *x = malloc(B * D * sizeof *x);
    for (size_t s = 0; s < steps; s++) {
        test_fill(x, B * D, 50 + (uint32_t)s, 0.0f, 1.0f);
        OK(ae_train_step(m, x, NULL, B, NULL));
    }
    free(x);
}

/* max |a - b| / max |b|: the error relative to the output's scale. */
static double rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= num)) num = d;
        if (fabs((double)b[i]) > den) den = fabs((double)b[i]);
    }
    return den > 0 ? num / den : num;
}

/* ---- round trips: libae -> ONNX -> libae, outputs bit for bit ---- */

typedef struct case_t {
    const char *name;
    ae_model *(*make)(void);
} case_t;

static ae_model *m_dense(void) {
    ae_config *c = config(24, 1, 1);
    OK(ae_config_add_dense(c, 16, AE_ACT_RELU));
    OK(ae_config_add_dense(c, 6, AE_ACT_IDENTITY));
    OK(ae_config_mirror_decoder(c, AE_ACT_SIGMOID));
    ae_model *m = create(c);
    OK(ae_model_set_meta(m, "ae.data.scale", "0.00392156862745098"));
    train(m, 3);
    return m;
}

static ae_model *m_activations(void) {
    ae_config *c = config(12, 1, 1);
    OK(ae_config_add_dense(c, 10, AE_ACT_LEAKY_RELU));
    OK(ae_config_layer_set_float(c, AE_LAST_LAYER, AE_LAYER_LEAKY_SLOPE, 0.2));
    OK(ae_config_add_dense(c, 9, AE_ACT_TANH));
    OK(ae_config_add_dense(c, 8, AE_ACT_GELU));
    OK(ae_config_layer_set_int(c, AE_LAST_LAYER, AE_LAYER_BIAS, 0));
    OK(ae_config_add_dense(c, 7, AE_ACT_IDENTITY));
    OK(ae_config_add_activation(c, AE_ACT_RELU));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_dense(c, 8, AE_ACT_SOFTPLUS));
    OK(ae_config_add_dense(c, 9, AE_ACT_ELU));
    OK(ae_config_add_dense(c, 10, AE_ACT_IDENTITY));
    OK(ae_config_add_activation(c, AE_ACT_GELU));
    OK(ae_config_add_activation(c, AE_ACT_SIGMOID));
    OK(ae_config_add_dense(c, 12, AE_ACT_SIGMOID));
    ae_model *m = create(c);
    train(m, 3);
    return m;
}

static ae_model *m_tied(void) {
    ae_config *c = config(20, 1, 1);
    OK(ae_config_add_dense(c, 12, AE_ACT_SIGMOID));
    OK(ae_config_add_dense(c, 5, AE_ACT_IDENTITY));
    OK(ae_config_mirror_decoder(c, AE_ACT_SIGMOID));
    OK(ae_config_tie(c));
    ae_model *m = create(c);
    train(m, 3);
    return m;
}

static ae_model *m_topk(void) {
    ae_config *c = config(20, 1, 1);
    OK(ae_config_add_dense(c, 12, AE_ACT_RELU));
    OK(ae_config_add_topk(c, 4));
    OK(ae_config_mirror_decoder(c, AE_ACT_SIGMOID));
    ae_model *m = create(c);
    train(m, 3);
    return m;
}

static ae_model *batch_topk(int trained) {
    ae_config *c = config(16, 1, 1);
    OK(ae_config_add_dense(c, 10, AE_ACT_RELU));
    OK(ae_config_add_batch_topk(c, 3));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_dense(c, 16, AE_ACT_SIGMOID));
    ae_model *m = create(c);
    if (trained) train(m, 4);
    return m;
}
static ae_model *m_batch_topk_trained(void) { return batch_topk(1); }
static ae_model *m_batch_topk_untrained(void) { return batch_topk(0); }

static ae_model *m_lifetime_bn1d(void) {
    ae_config *c = config(16, 1, 1);
    OK(ae_config_add_dense(c, 10, AE_ACT_IDENTITY));
    OK(ae_config_add_batchnorm(c));
    OK(ae_config_layer_set_float(c, AE_LAST_LAYER, AE_LAYER_BN_EPS, 1e-3));
    OK(ae_config_add_activation(c, AE_ACT_TANH));
    OK(ae_config_add_lifetime_topk(c, 2));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_dense(c, 16, AE_ACT_SIGMOID));
    ae_model *m = create(c);
    train(m, 3);
    return m;
}

static ae_model *m_conv_bn_pool_up(void) {
    ae_config *c = config(1, 8, 8);
    OK(ae_config_add_conv2d(c, 4, 3, 1, 1, AE_ACT_IDENTITY));
    OK(ae_config_add_batchnorm(c));
    OK(ae_config_add_activation(c, AE_ACT_RELU));
    OK(ae_config_add_maxpool2d(c, 2, 2, 0));
    OK(ae_config_add_conv2d(c, 8, 3, 2, 1, AE_ACT_LEAKY_RELU));
    OK(ae_config_add_avgpool_1x1(c));
    OK(ae_config_add_flatten(c));
    OK(ae_config_add_dense(c, 6, AE_ACT_IDENTITY));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_dense(c, 32, AE_ACT_RELU));
    OK(ae_config_add_unflatten(c, 8, 2, 2));
    OK(ae_config_add_upsample(c, 2, AE_UPSAMPLE_NEAREST));
    OK(ae_config_add_conv_transpose2d(c, 4, 3, 2, 1, 1, AE_ACT_RELU));
    OK(ae_config_add_batchnorm(c));
    OK(ae_config_add_conv2d(c, 1, 3, 1, 1, AE_ACT_SIGMOID));
    ae_model *m = create(c);
    train(m, 4);
    return m;
}

static ae_model *m_conv_bilinear(void) {
    ae_config *c = config(2, 6, 6);
    OK(ae_config_add_conv2d(c, 4, 3, 1, 1, AE_ACT_ELU));
    OK(ae_config_layer_set_int(c, AE_LAST_LAYER, AE_LAYER_BIAS, 0));
    OK(ae_config_add_maxpool2d(c, 3, 2, 1));
    OK(ae_config_add_topk(c, 20));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_upsample(c, 2, AE_UPSAMPLE_BILINEAR));
    OK(ae_config_add_conv_transpose2d(c, 3, 3, 1, 1, 0, AE_ACT_SOFTPLUS));
    OK(ae_config_add_conv2d(c, 2, 1, 1, 0, AE_ACT_TANH));
    ae_model *m = create(c);
    train(m, 3);
    return m;
}

static ae_model *m_conv_dense(void) {
    ae_config *c = config(1, 6, 6);
    OK(ae_config_add_conv2d(c, 3, 3, 1, 0, AE_ACT_RELU));
    OK(ae_config_add_dense(c, 5, AE_ACT_TANH));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_dense(c, 36, AE_ACT_SIGMOID));
    ae_model *m = create(c);
    train(m, 3);
    return m;
}

static ae_model *m_vae(void) {
    ae_config *c = config(18, 1, 1);
    OK(ae_config_add_dense(c, 10, AE_ACT_RELU));
    OK(ae_config_add_gaussian(c, 3));
    OK(ae_config_mirror_decoder(c, AE_ACT_SIGMOID));
    ae_model *m = create(c);
    train(m, 3);
    return m;
}

static const case_t round_trip_cases[] = {
    {"dense", m_dense},
    {"activations", m_activations},
    {"tied", m_tied},
    {"topk", m_topk},
    {"batch_topk_trained", m_batch_topk_trained},
    {"batch_topk_untrained", m_batch_topk_untrained},
    {"lifetime_bn1d", m_lifetime_bn1d},
    {"conv_bn_pool_up", m_conv_bn_pool_up},
    {"conv_bilinear", m_conv_bilinear},
    {"conv_dense", m_conv_dense},
    {"vae", m_vae},
};

static void test_round_trip_bitwise(void **state) {
    (void)state;
    for (size_t c = 0; c < sizeof round_trip_cases / sizeof round_trip_cases[0]; c++) {
        ae_model *a = round_trip_cases[c].make();
        size_t size;
        unsigned char *buf = export_buf(a, AE_ONNX_FULL, &size);
        ae_model *b = import_buf(buf, size);
        size_t B = 5, D = ae_model_input_size(a), C = ae_model_code_size(a);
        assert_int_equal(ae_model_input_size(b), D);
        assert_int_equal(ae_model_code_size(b), C);
        float *x = malloc(B * D * sizeof *x), *c1 = malloc(B * C * sizeof *c1),
              *c2 = malloc(B * C * sizeof *c2), *y1 = malloc(B * D * sizeof *y1),
              *y2 = malloc(B * D * sizeof *y2);
        test_fill(x, B * D, 3, -0.2f, 1.2f);
        OK(ae_encode(a, x, B, c1));
        OK(ae_encode(b, x, B, c2));
        if (memcmp(c1, c2, B * C * sizeof *c1) != 0)
            fail_msg("%s: codes differ after the round trip", round_trip_cases[c].name);
        OK(ae_decode(a, c1, B, y1));
        OK(ae_decode(b, c1, B, y2));
        if (memcmp(y1, y2, B * D * sizeof *y1) != 0)
            fail_msg("%s: decoded outputs differ after the round trip", round_trip_cases[c].name);
        OK(ae_reconstruct(a, x, B, y1));
        OK(ae_reconstruct(b, x, B, y2));
        if (memcmp(y1, y2, B * D * sizeof *y1) != 0)
            fail_msg("%s: reconstructions differ after the round trip", round_trip_cases[c].name);
        /* the tying, the VAE's log-variance and the metadata survive too */
        for (size_t l = 0; l < ae_model_code_layer(a); l++)
            if (ae_model_is_tied(a, l)) assert_true(ae_model_is_tied(b, l));
        if (strcmp(round_trip_cases[c].name, "vae") == 0) {
            OK(ae_vae_encode(a, x, B, c1, y1));
            OK(ae_vae_encode(b, x, B, c2, y2));
            assert_memory_equal(y1, y2, B * C * sizeof *y1);
        }
        const char *v = NULL;
        if (strcmp(round_trip_cases[c].name, "dense") == 0) {
            OK(ae_model_get_meta(b, "ae.data.scale", &v));
            assert_non_null(v);
            assert_string_equal(v, "0.00392156862745098");
        }
        /* a second export of the import is the same file */
        size_t size2;
        unsigned char *buf2 = export_buf(b, AE_ONNX_FULL, &size2);
        ae_model *b2 = import_buf(buf2, size2);
        OK(ae_reconstruct(b2, x, B, y1));
        OK(ae_reconstruct(b, x, B, y2));
        assert_memory_equal(y1, y2, B * D * sizeof *y1);
        ae_model_destroy(b2);
        free(buf2);
        free(x);
        free(c1);
        free(c2);
        free(y1);
        free(y2);
        free(buf);
        ae_model_destroy(a);
        ae_model_destroy(b);
    }
}

/* A batch top-k exported after training keeps its k (in a doc string) and
 * threshold; BatchNorm keeps eps and momentum exactly; a tied model trains
 * after the import as before it. */
static void test_round_trip_training(void **state) {
    (void)state;
    ae_model *(*makes[3])(void) = {m_tied, m_batch_topk_trained, m_conv_bn_pool_up};
    for (int c = 0; c < 3; c++) {
        ae_model *a = makes[c]();
        size_t size;
        unsigned char *buf = export_buf(a, AE_ONNX_FULL, &size);
        ae_model *b = import_buf(buf, size);
        OK(ae_model_set_float(b, AE_P_LEARNING_RATE, 1e-2));
        /* the optimizer state is not in ONNX: both start afresh */
        ae_model *a2 = import_buf(buf, size);
        OK(ae_model_set_float(a2, AE_P_LEARNING_RATE, 1e-2));
        train(a2, 2);
        train(b, 2);
        size_t B = 4, D = ae_model_input_size(a);
        float *x = malloc(B * D * sizeof *x), *y1 = malloc(B * D * sizeof *y1),
              *y2 = malloc(B * D * sizeof *y2);
        test_fill(x, B * D, 8, 0, 1);
        OK(ae_reconstruct(a2, x, B, y1));
        OK(ae_reconstruct(b, x, B, y2));
        assert_memory_equal(y1, y2, B * D * sizeof *y1);
        free(x);
        free(y1);
        free(y2);
        free(buf);
        ae_model_destroy(a);
        ae_model_destroy(a2);
        ae_model_destroy(b);
    }
    /* the batch top-k's k and BatchNorm's settings, as the builder holds them */
    ae_model *bn = m_lifetime_bn1d(), *t = m_batch_topk_trained();
    size_t size;
    unsigned char *buf = export_buf(t, AE_ONNX_FULL, &size);
    ae_model *b = import_buf(buf, size);
    assert_int_equal(b->layers[1].kind, AE_LAYER_BATCH_TOPK);
    assert_int_equal(b->layers[1].spec.iparam[0], 3);
    free(buf);
    ae_model_destroy(b);
    buf = export_buf(bn, AE_ONNX_FULL, &size);
    b = import_buf(buf, size);
    assert_int_equal(b->layers[1].kind, AE_LAYER_BATCHNORM);
    assert_memory_equal(&b->layers[1].spec.fparam, &bn->layers[1].spec.fparam,
                        sizeof bn->layers[1].spec.fparam); /* momentum 0.1, eps 1e-3, exactly */
    free(buf);
    ae_model_destroy(b);
    ae_model_destroy(t);
    ae_model_destroy(bn);
}

/* ---- the graphs torch.onnx.export writes (tests/fixtures/make_onnx.py) ---- */

static void check_pytorch(const char *name) {
    char path[4096], fxname[64];
    snprintf(path, sizeof path, "%s/tests/fixtures/onnx/%s.onnx", getenv("AE_SOURCE_ROOT"), name);
    snprintf(fxname, sizeof fxname, "onnx/%s", name);
    fixture fx;
    if (fixture_load(&fx, fxname) != 0) fail_msg("cannot load fixture %s", fxname);
    ae_model *m = NULL;
    char err[512];
    ae_status st = ae_model_import_onnx(&m, path, NULL, err, sizeof err);
    if (st) fail_msg("%s: %s", name, err);
    size_t B = (size_t)fx.array[0][0], S = (size_t)fx.array[0][1], D = (size_t)fx.array[0][3],
           C = (size_t)fx.array[0][4];
    int trains = fx.array[0][2] != 0.0f;
    /* A graph from elsewhere takes its input as given: float data, scale 1. */
    ae_data_convention dc = {.struct_size = sizeof dc};
    OK(ae_model_data_convention(m, &dc, NULL, NULL, 0));
    assert_int_equal(dc.elem, AE_ELEM_FLOAT);
    assert_true(dc.scale == 1.0 && dc.offset == 0.0 && dc.std_count == 0);
    assert_true(isnan(dc.lo) && isnan(dc.hi));
    assert_int_equal(ae_model_meta_count(m), 0);
    assert_int_equal(ae_model_input_size(m), D);
    assert_int_equal(ae_model_code_size(m), C);
    float *code = malloc(B * C * sizeof *code), *y = malloc(B * D * sizeof *y);
    OK(ae_encode(m, fx.array[1], B, code));
    double e_code = rel_err(code, fx.array[2], B * C);
    OK(ae_decode(m, fx.array[2], B, y));
    double e_dec = rel_err(y, fx.array[3], B * D);
    OK(ae_reconstruct(m, fx.array[1], B, y));
    double e_rec = rel_err(y, fx.array[4], B * D);
    print_message("%-10s encode %.2e, decode %.2e, reconstruct %.2e", name, e_code, e_dec, e_rec);
    if (!(e_code <= 1e-5 && e_dec <= 1e-5 && e_rec <= 1e-5))
        fail_msg("%s: outputs differ from PyTorch's", name);
    if (trains) {
        /* S Adam steps (libae's defaults are PyTorch's: lr 1e-3, MSE mean) */
        float *b = malloc(B * D * sizeof *b);
        double e_loss = 0;
        for (size_t s = 0; s < S; s++) {
            test_fill(b, B * D, 900 + (uint32_t)s, 0.0f, 1.0f);
            float loss;
            OK(ae_train_step(m, b, NULL, B, &loss));
            double e = fabs(loss - fx.array[5][s]) / fabs(fx.array[5][s]);
            if (e > e_loss) e_loss = e;
        }
        OK(ae_reconstruct(m, fx.array[1], B, y));
        double e_after = rel_err(y, fx.array[6], B * D);
        print_message(", %zu Adam steps: losses %.2e, outputs after %.2e", S, e_loss, e_after);
        if (!(e_loss <= 1e-4 && e_after <= 1e-4)) fail_msg("%s: training differs from PyTorch's", name);
        free(b);
    }
    print_message("\n");
    free(code);
    free(y);
    ae_model_destroy(m);
    fixture_free(&fx);
}

static void test_pytorch_dense(void **state) {
    (void)state;
    check_pytorch("dense");
}
static void test_pytorch_tied(void **state) {
    (void)state;
    check_pytorch("tied");
}
static void test_pytorch_sparse(void **state) {
    (void)state;
    check_pytorch("sparse");
}
static void test_pytorch_conv(void **state) {
    (void)state;
    check_pytorch("conv");
    check_pytorch("conv_eval");
    check_pytorch("seed_conv");
}
static void test_pytorch_ops(void **state) {
    (void)state;
    check_pytorch("ops");
}
static void test_pytorch_vae(void **state) {
    (void)state;
    check_pytorch("vae");
}

/* ---- refusals, malformed files, allocation failures ---- */

/* The exported graph of m, unpacked (protobuf-c's malloc). */
static AeOnnx__ModelProto *unpack_export(const ae_model *m, unsigned char **buf, size_t *size) {
    *buf = export_buf(m, AE_ONNX_FULL, size);
    AeOnnx__ModelProto *mp = ae_onnx__model_proto__unpack(NULL, *size, *buf);
    assert_non_null(mp);
    return mp;
}

/* Packs mp and imports it: the status, the message in err. */
static ae_status import_proto(const AeOnnx__ModelProto *mp, ae_model **out, char *err, size_t n) {
    size_t size = ae_onnx__model_proto__get_packed_size(mp);
    unsigned char *buf = malloc(size ? size : 1);
    ae_onnx__model_proto__pack(mp, buf);
    ae_status st = ae_model_import_onnx_buffer(out, buf, size, NULL, err, n);
    free(buf);
    return st;
}

static AeOnnx__NodeProto *find_node(AeOnnx__GraphProto *g, const char *op, size_t nth) {
    for (size_t i = 0; i < g->n_node; i++)
        if (strcmp(g->node[i]->op_type, op) == 0 && nth-- == 0) return g->node[i];
    fail_msg("no node %s", op);
    return NULL;
}

static void expect_refusal(const AeOnnx__ModelProto *mp, ae_status want, const char *part1,
                           const char *part2) {
    ae_model *m = (ae_model *)1;
    char err[512];
    ae_status st = import_proto(mp, &m, err, sizeof err);
    if (st != want || m != NULL || !strstr(err, part1) || (part2 && !strstr(err, part2)))
        fail_msg("got %s '%s', expected %s with '%s' '%s'", ae_status_name(st), err,
                 ae_status_name(want), part1, part2 ? part2 : "");
}

/* ---- the value convention of the input ---- */

/* Replaces the value of metadata `key` (the message frees it later). */
static void set_prop(AeOnnx__ModelProto *mp, const char *key, const char *value) {
    for (size_t i = 0; i < mp->n_metadata_props; i++)
        if (strcmp(mp->metadata_props[i]->key, key) == 0) {
            free(mp->metadata_props[i]->value);
            mp->metadata_props[i]->value = strdup(value);
            return;
        }
    fail_msg("no metadata %s", key);
}

/* The training data's value convention travels in metadata_props and
 * comes back as the model's own (not as metadata), replacing metadata of
 * its keys; a decoder's graph, whose input is the code, carries none; a
 * malformed convention is refused with its key. */
static void test_convention_travels(void **state) {
    (void)state;
    ae_model *a = dense_model();
    ae_data_convention c;
    ae_data_convention_init(&c);
    c.elem = AE_ELEM_UINT8;
    c.scale = 1.0 / 255.0;
    c.offset = -0.125;
    c.std_count = 3;
    c.lo = -1.75, c.hi = 2.5;
    const float mean[3] = {0.1f, 0.2f, 1.0f / 3.0f}, std[3] = {0.3f, 0.7f, 1e-3f};
    OK(ae_model_set_data_convention(a, &c, mean, std));
    OK(ae_model_set_meta(a, "ae.data.scale", "7")); /* an older tool's key */
    OK(ae_model_set_meta(a, "note", "kept"));
    size_t size;
    unsigned char *buf = export_buf(a, AE_ONNX_FULL, &size);
    ae_model *b = import_buf(buf, size);
    ae_data_convention back = {.struct_size = sizeof back};
    float m2[3], s2[3];
    OK(ae_model_data_convention(b, &back, m2, s2, 3));
    assert_int_equal(back.elem, AE_ELEM_UINT8);
    assert_true(back.scale == c.scale && back.offset == c.offset && back.lo == c.lo &&
                back.hi == c.hi);
    assert_memory_equal(m2, mean, sizeof mean);
    assert_memory_equal(s2, std, sizeof std);
    const char *v = NULL;
    OK(ae_model_get_meta(b, "note", &v));
    assert_string_equal(v, "kept");
    OK(ae_model_get_meta(b, "ae.data.scale", &v));
    assert_null(v);
    ae_model_destroy(b);

    /* The encoder's graph takes the data too; the decoder's does not. */
    free(buf);
    for (int part = AE_ONNX_ENCODER; part <= AE_ONNX_DECODER; part++) {
        buf = export_buf(a, (ae_onnx_part)part, &size);
        AeOnnx__ModelProto *mp = ae_onnx__model_proto__unpack(NULL, size, buf);
        assert_non_null(mp);
        const char *elem = NULL, *scale = NULL;
        for (size_t i = 0; i < mp->n_metadata_props; i++) {
            if (strcmp(mp->metadata_props[i]->key, "ae.data.elem") == 0) elem = mp->metadata_props[i]->value;
            if (strcmp(mp->metadata_props[i]->key, "ae.data.scale") == 0) scale = mp->metadata_props[i]->value;
        }
        if (part == AE_ONNX_ENCODER) {
            assert_string_equal(elem, "uint8");
            assert_true(strtod(scale, NULL) == 1.0 / 255.0);
        } else {
            assert_null(elem);
            assert_string_equal(scale, "7");
        }
        ae_onnx__model_proto__free_unpacked(mp, NULL);
        free(buf);
    }

    static const struct {
        const char *key, *value, *msg;
    } bad[] = {
        {"ae.data.elem", "int16", "'ae.data.elem': 'int16'"},
        {"ae.data.scale", "0x", "'ae.data.scale'"},
        {"ae.data.scale", "0", "scale (0) must be finite and not 0"},
        {"ae.data.offset", "inf", "'ae.data.offset'"},
        {"ae.data.range", "1", "'ae.data.range'"},
        {"ae.data.range", "2,1", "the range [2, 1]"},
        {"ae.data.mean", "1,2", "'ae.data.std'"},
        {"ae.data.mean", "1,2,3,4,5,6,7,8,9,10,11,12,13", "'ae.data.mean'"},
        {"ae.data.std", "1,-2,3", "std[1] = -2"},
        {"ae.data.std", "1,2,1e39", "'ae.data.std'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned char *raw;
        AeOnnx__ModelProto *mp = unpack_export(a, &raw, &size);
        set_prop(mp, bad[i].key, bad[i].value);
        expect_refusal(mp, AE_ERR_FORMAT, bad[i].msg, NULL);
        ae_onnx__model_proto__free_unpacked(mp, NULL);
        free(raw);
    }
    /* A missing list is named. */
    unsigned char *raw;
    AeOnnx__ModelProto *mp = unpack_export(a, &raw, &size);
    AeOnnx__StringStringEntryProto *last = mp->metadata_props[mp->n_metadata_props - 1];
    assert_string_equal(last->key, "ae.data.std");
    free(last->key);
    last->key = strdup("other");
    expect_refusal(mp, AE_ERR_FORMAT, "'ae.data.std' is missing", NULL);
    ae_onnx__model_proto__free_unpacked(mp, NULL);
    free(raw);
    ae_model_destroy(a);
}

static void test_import_refusals(void **state) {
    (void)state;
    ae_model *a = m_dense();
    unsigned char *buf;
    size_t size;
    AeOnnx__ModelProto *mp = unpack_export(a, &buf, &size);
    AeOnnx__GraphProto *g = mp->graph;
    AeOnnx__NodeProto *relu = find_node(g, "Relu", 0), *gemm2 = find_node(g, "Gemm", 2);

    /* an op without a layer: the node's name and op type */
    char *save = relu->op_type;
    relu->op_type = "Softmax";
    expect_refusal(mp, AE_ERR_UNSUPPORTED, relu->name, "Softmax");
    relu->op_type = save;
    /* a node of another domain */
    relu->domain = "com.microsoft";
    expect_refusal(mp, AE_ERR_UNSUPPORTED, relu->name, "domain");
    relu->domain = NULL;
    /* a branch: the decoder reads a tensor the encoder went past */
    save = gemm2->input[0];
    gemm2->input[0] = relu->output[0];
    expect_refusal(mp, AE_ERR_UNSUPPORTED, gemm2->name, "branches");
    /* a name defined nowhere */
    gemm2->input[0] = "nowhere";
    expect_refusal(mp, AE_ERR_FORMAT, gemm2->name, "not defined");
    /* names may hold any byte; the message stays one printable line */
    gemm2->input[0] = "two\nlines\x1b[2J";
    expect_refusal(mp, AE_ERR_FORMAT, "two?lines?[2J", NULL);
    gemm2->input[0] = save;
    /* a Gemm that is no dense layer */
    AeOnnx__AttributeProto alpha = AE_ONNX__ATTRIBUTE_PROTO__INIT, *attrs[2];
    alpha.name = "alpha";
    alpha.has_f = 1;
    alpha.f = 2.0f;
    alpha.has_type = 1;
    alpha.type = AE_ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    AeOnnx__AttributeProto **save_attrs = gemm2->attribute;
    size_t save_n = gemm2->n_attribute;
    attrs[0] = save_attrs[0];
    attrs[1] = &alpha;
    gemm2->attribute = attrs;
    gemm2->n_attribute = 2;
    expect_refusal(mp, AE_ERR_UNSUPPORTED, gemm2->name, "alpha");
    gemm2->attribute = save_attrs;
    gemm2->n_attribute = save_n;
    /* a weight of the wrong shape */
    AeOnnx__TensorProto *w = g->initializer[0];
    int64_t d0 = w->dims[0];
    w->dims[0] = d0 + 1;
    expect_refusal(mp, AE_ERR_FORMAT, w->name, "bytes");
    w->dims[0] = d0;
    /* the first output is not the end of the chain */
    char *out0 = g->output[0]->name;
    g->output[0]->name = g->output[1]->name;
    expect_refusal(mp, AE_ERR_UNSUPPORTED, "first output", NULL);
    g->output[0]->name = out0;

    /* Identity and Dropout are read through */
    AeOnnx__NodeProto drop = AE_ONNX__NODE_PROTO__INIT, id = AE_ONNX__NODE_PROTO__INIT;
    char *drop_in[1] = {relu->output[0]}, *drop_out[1] = {"dropped"}, *id_out[1] = {"same"};
    drop.op_type = "Dropout";
    drop.name = "drop";
    drop.n_input = 1;
    drop.input = drop_in;
    drop.n_output = 1;
    drop.output = drop_out;
    id.op_type = "Identity";
    id.name = "id";
    id.n_input = 1;
    id.input = drop_out;
    id.n_output = 1;
    id.output = id_out;
    AeOnnx__NodeProto **nodes = malloc((g->n_node + 2) * sizeof *nodes), **save_nodes = g->node;
    size_t k = 0, save_nn = g->n_node;
    for (size_t i = 0; i < g->n_node; i++) {
        nodes[k++] = g->node[i];
        if (g->node[i] == relu) {
            nodes[k++] = &drop;
            nodes[k++] = &id;
        }
    }
    AeOnnx__NodeProto *next = find_node(g, "Gemm", 1);
    save = next->input[0];
    next->input[0] = "same";
    g->node = nodes;
    g->n_node = k;
    ae_model *b = NULL;
    char err[512];
    ae_status st = import_proto(mp, &b, err, sizeof err);
    if (st) fail_msg("%s", err);
    float x[2 * 24], y1[2 * 24], y2[2 * 24];
    test_fill(x, 2 * 24, 4, 0, 1);
    OK(ae_reconstruct(a, x, 2, y1));
    OK(ae_reconstruct(b, x, 2, y2));
    assert_memory_equal(y1, y2, sizeof y1);
    ae_model_destroy(b);
    /* a Dropout's mask output is not */
    char *drop_out2[2] = {"dropped", "mask"};
    drop.n_output = 2;
    drop.output = drop_out2;
    expect_refusal(mp, AE_ERR_UNSUPPORTED, "'drop' (Dropout)", "mask");
    g->node = save_nodes;
    g->n_node = save_nn;
    next->input[0] = save;
    free(nodes);

    /* the code named by the caller */
    ae_onnx_import_options o;
    ae_onnx_import_options_init(&o);
    o.code = relu->output[0];
    OK(ae_model_import_onnx_buffer(&b, buf, size, &o, err, sizeof err));
    assert_int_equal(ae_model_code_size(b), 16);
    assert_int_equal(ae_model_code_layer(b), 1);
    ae_model_destroy(b);
    o.code = "no such tensor";
    assert_int_equal(ae_model_import_onnx_buffer(&b, buf, size, &o, err, sizeof err),
                     AE_ERR_INVALID_ARG);
    assert_non_null(strstr(err, "no such tensor"));
    o.code = "input";
    assert_int_equal(ae_model_import_onnx_buffer(&b, buf, size, &o, err, sizeof err),
                     AE_ERR_UNSUPPORTED);
    /* settings from a config */
    ae_config *cfg = NULL;
    OK(ae_config_create(&cfg, NULL));
    OK(ae_config_set_int(cfg, AE_P_LOSS, AE_LOSS_BCE));
    OK(ae_config_set_float(cfg, AE_P_LEARNING_RATE, 0.25));
    o.code = NULL;
    o.settings = cfg;
    OK(ae_model_import_onnx_buffer(&b, buf, size, &o, err, sizeof err));
    int64_t loss;
    double lr;
    OK(ae_model_get_int(b, AE_P_LOSS, &loss));
    OK(ae_model_get_float(b, AE_P_LEARNING_RATE, &lr));
    assert_int_equal(loss, AE_LOSS_BCE);
    assert_true(lr == 0.25);
    ae_model_destroy(b);
    /* and the config's backend (the library's own call: not the tests' wrapper) */
    for (int be = AE_BACKEND_OPENBLAS; be <= AE_BACKEND_ONEDNN; be++) {
        if (!ae_backend_available((ae_backend)be)) continue;
        OK(ae_config_set_backend(cfg, (ae_backend)be));
        OK((ae_model_import_onnx_buffer)(&b, buf, size, &o, err, sizeof err));
        assert_int_equal(ae_model_backend(b), be);
        ae_model_destroy(b);
    }
    ae_config_destroy(cfg);
    /* arguments */
    o.struct_size = 8;
    assert_int_equal(ae_model_import_onnx_buffer(&b, buf, size, &o, err, sizeof err),
                     AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_import_onnx_buffer(NULL, buf, size, NULL, err, sizeof err),
                     AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_import_onnx_buffer(&b, NULL, 5, NULL, NULL, 0), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_import_onnx(&b, NULL, NULL, err, sizeof err), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_import_onnx(&b, "/nonexistent.onnx", NULL, err, sizeof err),
                     AE_ERR_IO);
    assert_non_null(strstr(err, "/nonexistent.onnx"));
    assert_null(b);
    static const unsigned char junk[] = "this is not an ONNX file";
    assert_int_equal(ae_model_import_onnx_buffer(&b, junk, sizeof junk, NULL, err, sizeof err),
                     AE_ERR_FORMAT);
    assert_int_equal(ae_model_import_onnx_buffer(&b, junk, 0, NULL, err, sizeof err),
                     AE_ERR_FORMAT);
    ae_onnx__model_proto__free_unpacked(mp, NULL);
    free(buf);
    ae_model_destroy(a);
}

/* A layer kind without an ONNX form is refused by name, never exported. */
static void test_export_refuses_unknown_kind(void **state) {
    (void)state;
    ae_model *m = dense_model();
    ae_layer_kind k = m->layers[1].kind;
    m->layers[1].kind = (ae_layer_kind)99;
    size_t size = 0;
    assert_int_equal(ae_model_export_onnx_buffer(m, NULL, 0, &size, AE_ONNX_FULL),
                     AE_ERR_UNSUPPORTED);
    assert_non_null(strstr(ae_model_last_error(m), "layer 1"));
    assert_non_null(strstr(ae_model_last_error(m), "no ONNX form"));
    m->layers[1].kind = k;
    ae_model_destroy(m);
}

/* The parts: the encoder's output is the code, the decoder's input. */
static void test_export_parts(void **state) {
    (void)state;
    ae_model *m = m_vae();
    unsigned char *buf;
    size_t size;
    const char *want[3][4] = {{"input", "reconstruction", "code", "logvar"},
                              {"input", "code", "logvar", NULL},
                              {"code", "reconstruction", NULL, NULL}};
    for (int p = 0; p < 3; p++) {
        buf = export_buf(m, (ae_onnx_part)p, &size);
        AeOnnx__ModelProto *mp = ae_onnx__model_proto__unpack(NULL, size, buf);
        assert_non_null(mp);
        assert_int_equal(mp->opset_import[0]->version, AE_ONNX_OPSET);
        assert_int_equal(mp->graph->n_input, 1);
        assert_string_equal(mp->graph->input[0]->name, want[p][0]);
        size_t nout = 0;
        while (nout < 3 && want[p][1 + nout]) nout++;
        assert_int_equal(mp->graph->n_output, nout);
        for (size_t i = 0; i < nout; i++)
            assert_string_equal(mp->graph->output[i]->name, want[p][1 + i]);
        ae_onnx__model_proto__free_unpacked(mp, NULL);
        /* an encoder or a decoder alone is no autoencoder to import */
        if (p) {
            ae_model *b = NULL;
            char err[256];
            assert_int_not_equal(ae_model_import_onnx_buffer(&b, buf, size, NULL, err, sizeof err),
                                 AE_OK);
        }
        free(buf);
    }
    ae_model_destroy(m);
}

/* Every prefix and many single-byte changes of a file: a clean error or a
 * model, nothing leaked. */
static void test_import_malformed(void **state) {
    (void)state;
    ae_model *a = m_conv_bn_pool_up();
    size_t size;
    unsigned char *buf = export_buf(a, AE_ONNX_FULL, &size);
    test_alloc t = {0, 0, -1};
    ae_allocator al = test_allocator(&t);
    ae_onnx_import_options o;
    ae_onnx_import_options_init(&o);
    o.alloc = &al;
    unsigned char *copy = malloc(size);
    size_t ok = 0, refused = 0;
    for (size_t n = 0; n < size; n += n < 256 ? 1 : 7) {
        ae_model *b = NULL;
        char err[256];
        ae_status st = ae_model_import_onnx_buffer(&b, buf, n, &o, err, sizeof err);
        if (st == AE_OK) {
            ok++;
            ae_model_destroy(b);
        } else {
            refused++;
            assert_null(b);
            assert_true(err[0] != '\0');
        }
        assert_int_equal(t.live, 0);
    }
    uint32_t r = 12345;
    for (int i = 0; i < 3000; i++) {
        memcpy(copy, buf, size);
        r = r * 1664525u + 1013904223u;
        copy[(r >> 8) % size] ^= (unsigned char)(1u << (r & 7));
        ae_model *b = NULL;
        char err[256];
        ae_status st = ae_model_import_onnx_buffer(&b, copy, size, &o, err, sizeof err);
        if (st == AE_OK) {
            ok++;
            float x[64], y[64];
            test_fill(x, 64, 1, 0, 1);
            ae_reconstruct(b, x, 1, y);
            ae_model_destroy(b);
        } else {
            refused++;
            assert_null(b);
        }
        assert_int_equal(t.live, 0);
    }
    print_message("malformed files: %zu imported, %zu refused\n", ok, refused);
    free(copy);
    free(buf);
    ae_model_destroy(a);
}

/* Each allocation of an import and of an export failing in turn. */
static void test_allocation_failures(void **state) {
    (void)state;
    ae_model *a = m_conv_bn_pool_up();
    size_t size;
    unsigned char *buf = export_buf(a, AE_ONNX_FULL, &size);
    ae_onnx_import_options o;
    ae_onnx_import_options_init(&o);
    long n = 0;
    for (;; n++) {
        test_alloc t = {0, 0, n};
        ae_allocator al = test_allocator(&t);
        o.alloc = &al;
        ae_model *b = NULL;
        char err[256];
        ae_status st = ae_model_import_onnx_buffer(&b, buf, size, &o, err, sizeof err);
        if (st == AE_OK) {
            ae_model_destroy(b);
            assert_int_equal(t.live, 0);
            break;
        }
        assert_int_equal(st, AE_ERR_OUT_OF_MEMORY);
        assert_int_equal(t.live, 0);
    }
    /* export: a model whose later allocations fail */
    test_alloc t = {0, 0, -1};
    ae_allocator al = test_allocator(&t);
    o.alloc = &al;
    ae_model *b = NULL;
    char err[256];
    OK(ae_model_import_onnx_buffer(&b, buf, size, &o, err, sizeof err));
    long before = t.live;
    for (long k = 0;; k++) {
        t.count = 0;
        t.fail_at = k;
        size_t sz = 0;
        ae_status st = ae_model_export_onnx_buffer(b, NULL, 0, &sz, AE_ONNX_FULL);
        assert_int_equal(t.live, before);
        if (st == AE_ERR_RANGE) break;
        assert_int_equal(st, AE_ERR_OUT_OF_MEMORY);
    }
    t.fail_at = -1;
    print_message("imports fail cleanly at each of %ld allocations\n", n);
    ae_model_destroy(b);
    assert_int_equal(t.live, 0);
    free(buf);
    ae_model_destroy(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_export_arguments),
        cmocka_unit_test(test_round_trip_bitwise),
        cmocka_unit_test(test_round_trip_training),
        cmocka_unit_test(test_pytorch_dense),
        cmocka_unit_test(test_pytorch_tied),
        cmocka_unit_test(test_pytorch_sparse),
        cmocka_unit_test(test_pytorch_conv),
        cmocka_unit_test(test_pytorch_ops),
        cmocka_unit_test(test_pytorch_vae),
        cmocka_unit_test(test_import_refusals),
        cmocka_unit_test(test_convention_travels),
        cmocka_unit_test(test_export_refuses_unknown_kind),
        cmocka_unit_test(test_export_parts),
        cmocka_unit_test(test_import_malformed),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
