/* Tests of value conventions (src/data/convention.c, src/model/convention.c,
 * the VALU section of src/io/io.c, ae_fit's record): what each loader
 * records, the rule of ae_dataset_conform in every case, what ae_fit and a
 * model file keep, and the cases of the issue in which data of another form
 * than the training data were silently misread (an IDX-trained model on a
 * [0, 1] .npy, a .npy-trained model on IDX, a model trained from C on IDX,
 * a CSV of 0..255 pixels). Files are written into a fresh directory under
 * /tmp. */
#include "test_util.h"

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define OK(x) assert_int_equal((x), AE_OK)

#define N 48
#define H 6
#define W 6
#define D (H * W)

static char g_dir[64];
static uint8_t g_bytes[N * D];

static const char *path_of(const char *name) {
    static char buf[8][128];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static void write_file(const char *name, const void *p, size_t n) {
    FILE *f = fopen(path_of(name), "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* A .npy file of `descr` with the given shape text and payload. */
static void write_npy(const char *name, const char *descr, const char *shape, const void *data,
                      size_t bytes) {
    char dict[200];
    int k = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                     descr, shape);
    size_t hlen = (size_t)k + 1, pad = (64 - (10 + hlen) % 64) % 64;
    hlen += pad;
    unsigned char *buf = malloc(10 + hlen + bytes);
    assert_non_null(buf);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)(hlen & 0xff);
    buf[9] = (unsigned char)(hlen >> 8);
    memcpy(buf + 10, dict, (size_t)k);
    memset(buf + 10 + k, ' ', pad);
    buf[10 + hlen - 1] = '\n';
    if (bytes) memcpy(buf + 10 + hlen, data, bytes);
    write_file(name, buf, 10 + hlen + bytes);
    free(buf);
}

static int group_setup(void **state) {
    (void)state;
    strcpy(g_dir, "/tmp/libae-conv-XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    /* Bars on a dim background, as 8-bit pixels. */
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++) {
            int on = (i % 2 ? j % W : j / W) == 1 + (i / 2) % 4;
            g_bytes[i * D + j] = (uint8_t)(on ? 230 : 10 + (i + j) % 20);
        }
    /* IDX images, a uint8 .npy, a [0, 1] float32 .npy, a float .npy of
     * 0..255 values, and CSVs of pixels, of 0/1 features and of reals. */
    unsigned char hdr[16] = {0, 0, 8, 3, 0, 0, 0, N, 0, 0, 0, H, 0, 0, 0, W};
    unsigned char *idx = malloc(16 + N * D);
    memcpy(idx, hdr, 16);
    memcpy(idx + 16, g_bytes, N * D);
    write_file("img.idx", idx, 16 + N * D);
    free(idx);
    write_npy("u8.npy", "|u1", "(48, 6, 6)", g_bytes, N * D);
    float f[N * D], raw[N * D];
    for (int i = 0; i < N * D; i++) {
        f[i] = (float)g_bytes[i] / 255.0f;
        raw[i] = (float)g_bytes[i];
    }
    write_npy("unit.npy", "<f4", "(48, 6, 6)", f, sizeof f);
    write_npy("raw.npy", "<f4", "(48, 6, 6)", raw, sizeof raw);
    FILE *c = fopen(path_of("pix.csv"), "wb");
    FILE *b = fopen(path_of("bin.csv"), "wb");
    FILE *r = fopen(path_of("real.csv"), "wb");
    assert_non_null(c);
    assert_non_null(b);
    assert_non_null(r);
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < D; j++) {
            fprintf(c, "%s%d", j ? "," : "", g_bytes[i * D + j]);
            fprintf(b, "%s%d", j ? "," : "", g_bytes[i * D + j] > 100);
            fprintf(r, "%s%g", j ? "," : "", (double)f[i * D + j]);
        }
        fputs("\n", c);
        fputs("\n", b);
        fputs("\n", r);
    }
    fclose(c);
    fclose(b);
    fclose(r);
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static ae_dataset *load(const char *name) {
    ae_dataset *ds = NULL;
    OK(ae_dataset_create(&ds, NULL));
    const char *p = path_of(name);
    size_t n = strlen(name);
    if (n > 4 && strcmp(name + n - 4, ".idx") == 0)
        OK(ae_dataset_load_idx(ds, p, NULL));
    else if (n > 4 && strcmp(name + n - 4, ".csv") == 0)
        OK(ae_dataset_load_csv(ds, p, 0));
    else
        OK(ae_dataset_load_npy(ds, p));
    if (ae_dataset_dim(ds) == D) OK(ae_dataset_reshape(ds, 1, H, W));
    return ds;
}

static ae_data_convention conv_of(const ae_dataset *ds) {
    ae_data_convention c;
    c.struct_size = sizeof c;
    OK(ae_dataset_convention(ds, &c));
    return c;
}

/* A small dense model with a sigmoid output: D-16-4-16-D. */
static ae_model *small_model(void) {
    ae_config *cfg = NULL;
    ae_model *m = NULL;
    OK(ae_config_create(&cfg, NULL));
    OK(ae_config_set_input_size(cfg, D));
    OK(ae_config_add_dense(cfg, 16, AE_ACT_RELU));
    OK(ae_config_add_dense(cfg, 4, AE_ACT_IDENTITY));
    OK(ae_config_mark_code(cfg));
    OK(ae_config_add_dense(cfg, 16, AE_ACT_RELU));
    OK(ae_config_add_dense(cfg, D, AE_ACT_SIGMOID));
    OK(ae_config_set_int(cfg, AE_P_SEED, 3));
    OK(ae_config_set_float(cfg, AE_P_LEARNING_RATE, 0.01));
    OK(ae_model_create(&m, cfg));
    ae_config_destroy(cfg);
    return m;
}

static void fit(ae_model *m, const ae_dataset *ds, size_t epochs) {
    ae_fit_options o;
    ae_fit_options_init(&o);
    o.epochs = epochs;
    o.batch_size = 16;
    OK(ae_fit(m, ds, &o));
}

/* The reconstruction MSE of a prepared dataset. */
static double mse_of(ae_model *m, const ae_dataset *ds) {
    float y[N * D];
    const float *x = ae_dataset_data(ds);
    OK(ae_reconstruct(m, x, N, y));
    double s = 0;
    for (size_t i = 0; i < N * D; i++) s += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
    return s / (N * D);
}

/* ---- what the loaders record ---- */

static void test_loaders_record(void **state) {
    (void)state;
    struct {
        const char *file;
        ae_elem_type elem;
    } cases[] = {{"img.idx", AE_ELEM_UINT8},  {"u8.npy", AE_ELEM_UINT8},
                 {"unit.npy", AE_ELEM_FLOAT}, {"raw.npy", AE_ELEM_FLOAT},
                 {"pix.csv", AE_ELEM_UINT8},  {"bin.csv", AE_ELEM_FLOAT},
                 {"real.csv", AE_ELEM_FLOAT}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ae_dataset *ds = load(cases[i].file);
        ae_data_convention c = conv_of(ds);
        if (c.elem != cases[i].elem) print_error("%s: element type %d\n", cases[i].file, c.elem);
        assert_int_equal(c.elem, cases[i].elem);
        assert_true(c.scale == 1.0 && c.offset == 0.0 && c.std_count == 0);
        assert_true(isnan(c.lo) && isnan(c.hi));
        /* Scaling composes: x * 2 + 1, then x * 0.5. */
        OK(ae_dataset_scale(ds, 2.0f, 1.0f));
        OK(ae_dataset_scale(ds, 0.5f, 0.0f));
        c = conv_of(ds);
        assert_true(c.scale == 1.0 && c.offset == 0.5);
        ae_dataset_destroy(ds);
    }
    /* Memory is float; subsets, splits and file-backed rows keep theirs. */
    ae_dataset *ds = NULL, *sub = NULL, *tr = NULL, *va = NULL;
    OK(ae_dataset_create(&ds, NULL));
    assert_int_equal(conv_of(ds).elem, AE_ELEM_UNKNOWN);
    float x[4] = {1, 2, 3, 4};
    OK(ae_dataset_from_memory(ds, x, NULL, 4, 1, 1, 1, AE_DATA_BORROW));
    assert_int_equal(conv_of(ds).elem, AE_ELEM_FLOAT);
    OK(ae_dataset_open_npy(ds, path_of("u8.npy")));
    assert_int_equal(conv_of(ds).elem, AE_ELEM_UINT8);
    OK(ae_dataset_scale(ds, 1.0f / 255.0f, 0.0f));
    size_t idx[2] = {3, 1};
    OK(ae_dataset_subset(ds, idx, 2, &sub));
    ae_data_convention c = conv_of(sub);
    assert_int_equal(c.elem, AE_ELEM_UINT8);
    assert_true(c.scale == (double)(1.0f / 255.0f));
    OK(ae_dataset_split(ds, 0.25, 1, &tr, &va));
    assert_int_equal(conv_of(va).elem, AE_ELEM_UINT8);
    assert_true(conv_of(tr).scale == c.scale);
    ae_dataset_destroy(sub);
    ae_dataset_destroy(tr);
    ae_dataset_destroy(va);
    /* A declared convention: pixels already divided by 255. */
    float px[2] = {0.5f, 1.0f};
    OK(ae_dataset_from_memory(ds, px, NULL, 2, 1, 1, 1, AE_DATA_COPY));
    ae_data_convention_init(&c);
    c.elem = AE_ELEM_UINT8;
    c.scale = 1.0 / 255.0;
    OK(ae_dataset_set_convention(ds, &c));
    assert_true(conv_of(ds).elem == AE_ELEM_UINT8 && conv_of(ds).scale == 1.0 / 255.0);
    assert_true(ae_dataset_data(ds)[0] == 0.5f); /* values unchanged */
    c.elem = AE_ELEM_UNKNOWN;
    assert_int_equal(ae_dataset_set_convention(ds, &c), AE_ERR_INVALID_ARG);
    c.elem = AE_ELEM_FLOAT;
    c.std_count = 1;
    assert_int_equal(ae_dataset_set_convention(ds, &c), AE_ERR_INVALID_ARG);
    c.std_count = 0;
    c.scale = 0.0;
    assert_int_equal(ae_dataset_set_convention(ds, &c), AE_ERR_INVALID_ARG);
    c.scale = 1.0;
    OK(ae_dataset_standardize(ds, NULL, NULL, 1));
    assert_int_equal(ae_dataset_set_convention(ds, &c), AE_ERR_STATE);
    c.struct_size = 4;
    assert_int_equal(ae_dataset_convention(ds, &c), AE_ERR_INVALID_ARG);
    ae_dataset_destroy(ds);
}

/* ---- the rule ---- */

static ae_data_convention conv(ae_elem_type e, double scale, double lo, double hi) {
    ae_data_convention c;
    ae_data_convention_init(&c);
    c.elem = e;
    c.scale = scale;
    c.lo = lo;
    c.hi = hi;
    return c;
}

static void expect_values(const ae_dataset *ds, double mul) {
    const float *x = ae_dataset_data(ds);
    for (size_t i = 0; i < N * D; i++) {
        float want = (float)g_bytes[i] * (float)mul;
        if (fabsf(x[i] - want) > 1e-6f * fmaxf(1.0f, fabsf(want))) {
            print_error("value %zu: %g, expected %g\n", i, (double)x[i], (double)want);
            fail();
        }
    }
}

static void test_conform_rules(void **state) {
    (void)state;
    ae_data_convention u8 = conv(AE_ELEM_UINT8, 1.0 / 255.0, 0.0, 1.0);
    ae_data_convention fl = conv(AE_ELEM_FLOAT, 1.0, 0.0, 1.0);
    ae_data_convention none;
    ae_data_convention_init(&none);
    /* Same element type: the same scale (from the stored values). */
    ae_dataset *ds = load("img.idx");
    OK(ae_dataset_conform(ds, &u8, NULL, NULL));
    expect_values(ds, 1.0 / 255.0);
    OK(ae_dataset_conform(ds, &u8, NULL, NULL)); /* twice: the same */
    expect_values(ds, 1.0 / 255.0);
    ae_dataset_destroy(ds);
    /* 8-bit data for a float model: v / 255 of its units. */
    ds = load("u8.npy");
    OK(ae_dataset_conform(ds, &fl, NULL, NULL));
    expect_values(ds, 1.0 / 255.0);
    ae_data_convention c = conv_of(ds);
    assert_true(c.elem == AE_ELEM_UINT8 && fabs(c.scale * 255.0 - 1.0) < 1e-12);
    ae_dataset_destroy(ds);
    /* Float data for an 8-bit model: already in its range. */
    ds = load("unit.npy");
    OK(ae_dataset_conform(ds, &u8, NULL, NULL));
    expect_values(ds, 1.0 / 255.0);
    assert_true(conv_of(ds).scale == 1.0);
    ae_dataset_destroy(ds);
    /* No convention recorded: 8-bit data x 1/255, floats as they are. */
    ds = load("pix.csv");
    OK(ae_dataset_conform(ds, &none, NULL, NULL));
    expect_values(ds, 1.0 / 255.0);
    ae_dataset_destroy(ds);
    ds = load("raw.npy");
    OK(ae_dataset_conform(ds, &none, NULL, NULL));
    expect_values(ds, 1.0);
    ae_dataset_destroy(ds);
    /* A model trained on 0..255 floats (scale 1): the same file type stays 0..255. */
    ae_data_convention raw = conv(AE_ELEM_FLOAT, 1.0, 0.0, 255.0);
    ds = load("raw.npy");
    OK(ae_dataset_conform(ds, &raw, NULL, NULL));
    expect_values(ds, 1.0);
    ae_dataset_destroy(ds);
    /* A meaning that cannot be resolved is refused, naming both conventions,
     * and the dataset is unchanged: 0..255 floats for a model of uint8 x 1/255. */
    ds = load("raw.npy");
    assert_int_equal(ae_dataset_conform(ds, &u8, NULL, NULL), AE_ERR_RANGE);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", ae_dataset_last_error(ds));
    if (!strstr(msg, "float data x 1") || !strstr(msg, "uint8 data x 1/255") || !strstr(msg, "[10, 230]"))
        print_error("message: %s\n", msg);
    assert_non_null(strstr(msg, "float data x 1"));
    assert_non_null(strstr(msg, "uint8 data x 1/255"));
    assert_non_null(strstr(msg, "[10, 230]"));
    expect_values(ds, 1.0);
    assert_true(conv_of(ds).scale == 1.0);
    /* The same without a recorded range: the model's 8-bit range is [0, 1]. */
    ae_data_convention u8_norange = conv(AE_ELEM_UINT8, 1.0 / 255.0, NAN, NAN);
    assert_int_equal(ae_dataset_conform(ds, &u8_norange, NULL, NULL), AE_ERR_RANGE);
    /* ... and 8-bit data for a model of 0..255 floats (v / 255 gives [0, 1]). */
    ae_dataset_destroy(ds);
    ds = load("img.idx");
    assert_int_equal(ae_dataset_conform(ds, &raw, NULL, NULL), AE_ERR_RANGE);
    assert_non_null(strstr(ae_dataset_last_error(ds), "trained on values in [0, 255]"));
    expect_values(ds, 1.0);
    /* A float model of unknown range takes them as v / 255. */
    raw.lo = raw.hi = NAN;
    OK(ae_dataset_conform(ds, &raw, NULL, NULL));
    expect_values(ds, 1.0 / 255.0);
    ae_dataset_destroy(ds);
    /* Standardisation with the model's statistics, per channel. */
    float mean = 0.25f, sd = 0.5f;
    ae_data_convention st = u8;
    st.std_count = 1;
    ds = load("img.idx");
    OK(ae_dataset_conform(ds, &st, &mean, &sd));
    const float *x = ae_dataset_data(ds);
    assert_true(fabsf(x[0] - ((float)g_bytes[0] * (float)(1.0 / 255.0) - 0.25f) / 0.5f) < 1e-6f);
    assert_int_equal(ae_dataset_standardization_count(ds), 1);
    OK(ae_dataset_conform(ds, &st, &mean, &sd)); /* the same: nothing changes */
    float other = 0.3f;
    assert_int_equal(ae_dataset_conform(ds, &st, &other, &sd), AE_ERR_STATE);
    assert_int_equal(ae_dataset_conform(ds, &u8, NULL, NULL), AE_ERR_STATE);
    ae_dataset_destroy(ds);
    /* File-backed rows get the same meaning as they are read. */
    ds = NULL;
    OK(ae_dataset_create(&ds, NULL));
    OK(ae_dataset_open_npy(ds, path_of("u8.npy")));
    OK(ae_dataset_conform(ds, &st, &mean, &sd));
    float row[D];
    OK(ae_dataset_rows(ds, 0, 1, row, NULL));
    assert_true(fabsf(row[0] - ((float)g_bytes[0] * (float)(1.0 / 255.0) - 0.25f) / 0.5f) < 1e-6f);
    ae_dataset_destroy(ds);
    /* Float file-backed data checked against an 8-bit model's range. */
    OK(ae_dataset_create(&ds, NULL));
    OK(ae_dataset_open_npy(ds, path_of("raw.npy")));
    assert_int_equal(ae_dataset_conform(ds, &u8, NULL, NULL), AE_ERR_RANGE);
    ae_dataset_destroy(ds);
}

static void test_conform_errors(void **state) {
    (void)state;
    ae_dataset *ds = load("img.idx");
    ae_data_convention c = conv(AE_ELEM_UINT8, 1.0 / 255.0, NAN, NAN);
    assert_int_equal(ae_dataset_conform(NULL, &c, NULL, NULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_dataset_conform(ds, NULL, NULL, NULL), AE_ERR_INVALID_ARG);
    ae_data_convention bad = c;
    bad.struct_size = 8;
    assert_int_equal(ae_dataset_conform(ds, &bad, NULL, NULL), AE_ERR_INVALID_ARG);
    bad = c;
    bad.elem = (ae_elem_type)9;
    assert_int_equal(ae_dataset_conform(ds, &bad, NULL, NULL), AE_ERR_INVALID_ARG);
    bad = c;
    bad.scale = 0.0;
    assert_int_equal(ae_dataset_conform(ds, &bad, NULL, NULL), AE_ERR_INVALID_ARG);
    bad = c;
    bad.lo = 0.0; /* only one end of the range */
    assert_int_equal(ae_dataset_conform(ds, &bad, NULL, NULL), AE_ERR_INVALID_ARG);
    bad = c;
    bad.std_count = 1;
    assert_int_equal(ae_dataset_conform(ds, &bad, NULL, NULL), AE_ERR_INVALID_ARG);
    float m = 0.0f, s = 0.0f;
    assert_int_equal(ae_dataset_conform(ds, &bad, &m, &s), AE_ERR_INVALID_ARG);
    bad.std_count = 5;
    float m5[5] = {0}, s5[5] = {1, 1, 1, 1, 1};
    assert_int_equal(ae_dataset_conform(ds, &bad, m5, s5), AE_ERR_SHAPE);
    /* An overflowing scale is refused before anything changes. */
    bad = c;
    bad.scale = 1e38;
    assert_int_equal(ae_dataset_conform(ds, &bad, NULL, NULL), AE_ERR_NUMERIC);
    expect_values(ds, 1.0);
    ae_dataset_destroy(ds);
    ae_dataset *empty = NULL;
    OK(ae_dataset_create(&empty, NULL));
    assert_int_equal(ae_dataset_conform(empty, &c, NULL, NULL), AE_ERR_STATE);
    ae_dataset_destroy(empty);
    /* Every allocation failure leaves the dataset as it was. */
    for (long k = 0;; k++) {
        test_alloc ta = {0, 0, -1};
        ae_allocator a = test_allocator(&ta);
        ae_dataset *d = NULL;
        OK(ae_dataset_create(&d, &a));
        float *v = malloc(N * D * sizeof *v);
        for (size_t i = 0; i < N * D; i++) v[i] = g_bytes[i];
        OK(ae_dataset_from_memory(d, v, NULL, N, 1, H, W, AE_DATA_BORROW));
        ae_data_convention dc = conv(AE_ELEM_FLOAT, 2.0, 0.0, 510.0);
        dc.std_count = 1;
        float mm = 1.0f, ss = 2.0f;
        ta.fail_at = ta.count + k;
        ae_status st = ae_dataset_conform(d, &dc, &mm, &ss);
        if (st == AE_OK) {
            assert_true(fabsf(ae_dataset_data(d)[0] - ((float)g_bytes[0] * 2.0f - 1.0f) / 2.0f) < 1e-5f);
            ae_dataset_destroy(d);
            free(v);
            assert_int_equal(ta.live, 0);
            break;
        }
        assert_int_equal(st, AE_ERR_OUT_OF_MEMORY);
        assert_true(ae_dataset_data(d) == v && v[0] == (float)g_bytes[0]);
        assert_int_equal(ae_dataset_standardization_count(d), 0);
        assert_true(conv_of(d).scale == 1.0);
        ae_dataset_destroy(d);
        free(v);
        assert_int_equal(ta.live, 0);
    }
}

/* ---- models: ae_fit records, the setter and getter, the file keeps ---- */

/* Field by field: a struct's padding is not a value (a copy need not keep
 * it), and NaN ranges are equal. */
static int same_convention(const ae_data_convention *a, const ae_data_convention *b) {
    return a->elem == b->elem && a->scale == b->scale && a->offset == b->offset &&
           a->std_count == b->std_count && (a->lo == b->lo || (isnan(a->lo) && isnan(b->lo))) &&
           (a->hi == b->hi || (isnan(a->hi) && isnan(b->hi)));
}

static void test_model_convention(void **state) {
    (void)state;
    ae_model *m = small_model();
    ae_data_convention c;
    c.struct_size = sizeof c;
    OK(ae_model_data_convention(m, &c, NULL, NULL, 0));
    assert_true(c.elem == AE_ELEM_UNKNOWN && c.scale == 1.0 && isnan(c.lo));
    /* ae_fit records its training set's convention and the range of its inputs. */
    ae_dataset *ds = load("img.idx");
    OK(ae_dataset_scale(ds, 1.0f / 255.0f, 0.0f));
    OK(ae_dataset_standardize(ds, NULL, NULL, 1));
    float mean, sd;
    OK(ae_dataset_standardization(ds, &mean, &sd, 1));
    fit(m, ds, 2);
    OK(ae_model_data_convention(m, &c, NULL, NULL, 0));
    assert_int_equal(c.elem, AE_ELEM_UINT8);
    assert_true(c.scale == (double)(1.0f / 255.0f) && c.offset == 0.0 && c.std_count == 1);
    float lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < N * D; i++) {
        lo = fminf(lo, ae_dataset_data(ds)[i]);
        hi = fmaxf(hi, ae_dataset_data(ds)[i]);
    }
    assert_true(c.lo == lo && c.hi == hi);
    float gm, gs;
    assert_int_equal(ae_model_data_convention(m, &c, &gm, &gs, 2), AE_ERR_SHAPE);
    OK(ae_model_data_convention(m, &c, &gm, &gs, 1));
    assert_true(gm == mean && gs == sd);
    /* Saved and loaded, bit for bit. */
    size_t size;
    assert_int_equal(ae_model_save_buffer(m, NULL, 0, &size, AE_SAVE_MODEL), AE_ERR_RANGE);
    unsigned char *buf = malloc(size);
    OK(ae_model_save_buffer(m, buf, size, &size, AE_SAVE_MODEL));
    ae_model *back = NULL;
    OK(ae_model_load_buffer(&back, buf, size, NULL));
    ae_data_convention c2;
    c2.struct_size = sizeof c2;
    OK(ae_model_data_convention(back, &c2, &gm, &gs, 1));
    assert_true(same_convention(&c, &c2));
    assert_true(gm == mean && gs == sd);
    /* Data for the loaded model, in one call: the training set's meaning. */
    ae_dataset *other = load("u8.npy");
    OK(ae_model_prepare_data(back, other));
    assert_memory_equal(ae_dataset_data(other), ae_dataset_data(ds), N * D * sizeof(float));
    ae_dataset_destroy(other);
    ae_model_destroy(back);
    /* A damaged VALU section is refused: an unknown element type (a version
     * error in a newer minor version), a length that does not fit its
     * count, a std of 0, a scale of 0. The section is optional: a reader
     * that does not know it skips it. */
    size_t at = 0;
    for (size_t i = 32; i + 4 < size; i++)
        if (memcmp(buf + i, "VALU", 4) == 0) at = i;
    assert_true(at);
    assert_int_equal(buf[at + 4], 1);
    struct {
        size_t off;
        unsigned char byte;
        int minor;
        ae_status want;
        const char *text;
    } bad[] = {{16, 7, 0, AE_ERR_FORMAT, "element type"},
               {16, 7, 1, AE_ERR_VERSION, "element type"},
               {16 + 40, 2, 0, AE_ERR_FORMAT, "VALU"},
               {16 + 48 + 4 + 3, 0x80, 0, AE_ERR_FORMAT, "std"},
               {16 + 8 + 6, 0, 0, AE_ERR_FORMAT, "scale"},
               {16 + 4, 1, 0, AE_ERR_FORMAT, "reserved"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned char *q = malloc(size);
        memcpy(q, buf, size);
        if (bad[i].off == 16 + 8 + 6) memset(q + at + 16 + 8, 0, 8);
        else if (bad[i].off == 16 + 48 + 4 + 3) memset(q + at + 16 + 48 + 4, 0, 4);
        else q[at + bad[i].off] = bad[i].byte;
        q[10] = (unsigned char)(AE_FORMAT_VERSION_MINOR + bad[i].minor);
        uint32_t crc = (uint32_t)crc32(0L, q, (uInt)(size - 4));
        for (int b = 0; b < 4; b++) q[size - 4 + b] = (unsigned char)(crc >> (8 * b));
        ae_config *cfg = NULL;
        OK(ae_config_create(&cfg, NULL));
        ae_status got = ae_model_load_buffer(&back, q, size, cfg);
        if (got != bad[i].want || !strstr(ae_config_last_error(cfg), bad[i].text))
            print_error("case %zu: %s '%s'\n", i, ae_status_name(got), ae_config_last_error(cfg));
        assert_int_equal(got, bad[i].want);
        assert_non_null(strstr(ae_config_last_error(cfg), bad[i].text));
        ae_config_destroy(cfg);
        free(q);
    }
    free(buf);
    /* The setter checks every field and changes nothing on failure. */
    ae_data_convention s = conv(AE_ELEM_FLOAT, 2.0, -1.0, 1.0);
    s.struct_size = 3;
    assert_int_equal(ae_model_set_data_convention(m, &s, NULL, NULL), AE_ERR_INVALID_ARG);
    s = conv(AE_ELEM_FLOAT, 0.0, -1.0, 1.0);
    assert_int_equal(ae_model_set_data_convention(m, &s, NULL, NULL), AE_ERR_INVALID_ARG);
    s = conv(AE_ELEM_FLOAT, 1.0, 2.0, 1.0);
    assert_int_equal(ae_model_set_data_convention(m, &s, NULL, NULL), AE_ERR_INVALID_ARG);
    s = conv(AE_ELEM_FLOAT, 1.0, NAN, 1.0);
    assert_int_equal(ae_model_set_data_convention(m, &s, NULL, NULL), AE_ERR_INVALID_ARG);
    s = conv((ae_elem_type)3, 1.0, NAN, NAN);
    assert_int_equal(ae_model_set_data_convention(m, &s, NULL, NULL), AE_ERR_INVALID_ARG);
    s = conv(AE_ELEM_FLOAT, 1.0, NAN, NAN);
    s.std_count = 5; /* does not divide 36 */
    float five[5] = {0, 0, 0, 0, 0}, ones[5] = {1, 1, 1, 1, 1};
    assert_int_equal(ae_model_set_data_convention(m, &s, five, ones), AE_ERR_SHAPE);
    s.std_count = 4;
    ones[2] = -1.0f;
    assert_int_equal(ae_model_set_data_convention(m, &s, five, ones), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_set_data_convention(m, &s, NULL, NULL), AE_ERR_INVALID_ARG);
    OK(ae_model_data_convention(m, &c2, NULL, NULL, 0));
    assert_true(same_convention(&c, &c2));
    ones[2] = 1.0f;
    OK(ae_model_set_data_convention(m, &s, five, ones));
    OK(ae_model_data_convention(m, &c2, NULL, NULL, 0));
    assert_true(c2.std_count == 4 && c2.elem == AE_ELEM_FLOAT);
    OK(ae_model_set_data_convention(m, NULL, NULL, NULL));
    OK(ae_model_data_convention(m, &c2, NULL, NULL, 0));
    assert_true(c2.elem == AE_ELEM_UNKNOWN && c2.std_count == 0);
    /* Without a convention the file has no VALU section. */
    ae_model_save_buffer(m, NULL, 0, &size, AE_SAVE_MODEL);
    buf = malloc(size);
    OK(ae_model_save_buffer(m, buf, size, &size, AE_SAVE_MODEL));
    for (size_t i = 0; i + 4 < size; i++) assert_true(memcmp(buf + i, "VALU", 4) != 0);
    free(buf);
    ae_dataset_destroy(ds);
    ae_model_destroy(m);
}

/* Files of format 1.0 (the golden files) have no convention, and stored a
 * Gaussian noise level as a variance: they load with the same noise, now
 * a standard deviation. */
static void test_format_1_0(void **state) {
    (void)state;
    const char *root = getenv("AE_SOURCE_ROOT");
    char p[1024];
    snprintf(p, sizeof p, "%s/tests/fixtures/golden_sparse_v1.aem", root ? root : "..");
    ae_model *m = NULL;
    OK(ae_model_load(&m, p, NULL));
    ae_data_convention c;
    c.struct_size = sizeof c;
    OK(ae_model_data_convention(m, &c, NULL, NULL, 0));
    assert_int_equal(c.elem, AE_ELEM_UNKNOWN);
    int64_t kind;
    double level;
    OK(ae_model_get_int(m, AE_P_NOISE_KIND, &kind));
    OK(ae_model_get_float(m, AE_P_NOISE_LEVEL, &level));
    assert_int_equal(kind, AE_NOISE_GAUSSIAN);
    assert_true(level == sqrt(0.05)); /* written as the variance 0.05 */
    /* Saved again (format 1.1) it keeps the standard deviation. */
    size_t size;
    ae_model_save_buffer(m, NULL, 0, &size, AE_SAVE_CHECKPOINT);
    unsigned char *buf = malloc(size);
    OK(ae_model_save_buffer(m, buf, size, &size, AE_SAVE_CHECKPOINT));
    assert_int_equal(buf[10], AE_FORMAT_VERSION_MINOR);
    ae_model *back = NULL;
    OK(ae_model_load_buffer(&back, buf, size, NULL));
    OK(ae_model_get_float(back, AE_P_NOISE_LEVEL, &level));
    assert_true(level == sqrt(0.05));
    free(buf);
    ae_model_destroy(back);
    ae_model_destroy(m);
}

/* ---- the issue's cases through the API ---- */

/* A model trained from C on IDX data scaled to [0, 1] (in 0.1.0's first
 * form its file said nothing of it, and the tool read IDX as 0..255:
 * MSE 13283): it means the same on the same set as IDX, as a uint8 .npy
 * and as a [0, 1] float .npy. */
static void test_issue_cases(void **state) {
    (void)state;
    ae_model *m = small_model();
    ae_dataset *tr = load("img.idx");
    OK(ae_dataset_scale(tr, 1.0f / 255.0f, 0.0f));
    fit(m, tr, 20);
    double want = mse_of(m, tr);
    assert_true(want < 0.05);
    const char *files[] = {"img.idx", "u8.npy", "unit.npy", "pix.csv"};
    for (size_t i = 0; i < 4; i++) {
        ae_dataset *ds = load(files[i]);
        OK(ae_model_prepare_data(m, ds));
        double got = mse_of(m, ds);
        if (fabs(got - want) > 1e-6) print_error("%s: MSE %g, expected %g\n", files[i], got, want);
        assert_true(fabs(got - want) <= 1e-6);
        ae_dataset_destroy(ds);
    }
    /* The 0..255 float file is refused (not read as [0, 1/255] or [0, 255]). */
    ae_dataset *raw = load("raw.npy");
    assert_int_equal(ae_model_prepare_data(m, raw), AE_ERR_RANGE);
    ae_dataset_destroy(raw);
    ae_model_destroy(m);

    /* A model trained on a [0, 1] float .npy reads IDX as v / 255 (the tool
     * read it as 0..255: MSE 15195). */
    m = small_model();
    ae_dataset *fl = load("unit.npy");
    fit(m, fl, 20);
    want = mse_of(m, fl);
    ae_dataset *idx = load("img.idx");
    OK(ae_model_prepare_data(m, idx));
    assert_true(fabs(mse_of(m, idx) - want) <= 1e-6);
    /* A model whose size differs. */
    float one[3] = {0, 0, 0};
    ae_dataset *small = NULL;
    OK(ae_dataset_create(&small, NULL));
    OK(ae_dataset_from_memory(small, one, NULL, 1, 3, 1, 1, AE_DATA_COPY));
    assert_int_equal(ae_model_prepare_data(m, small), AE_ERR_SHAPE);
    assert_int_equal(ae_model_prepare_data(NULL, small), AE_ERR_INVALID_ARG);
    ae_dataset_destroy(small);
    ae_dataset_destroy(idx);
    ae_dataset_destroy(fl);
    ae_dataset_destroy(tr);
    ae_model_destroy(m);

    /* A model trained with ae_train_step only has no convention: IDX data
     * get the documented default, x 1/255. */
    m = small_model();
    ae_dataset *ds = load("img.idx");
    OK(ae_model_prepare_data(m, ds));
    expect_values(ds, 1.0 / 255.0);
    ae_dataset_destroy(ds);
    ae_model_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loaders_record),
        cmocka_unit_test(test_conform_rules),
        cmocka_unit_test(test_conform_errors),
        cmocka_unit_test(test_model_convention),
        cmocka_unit_test(test_format_1_0),
        cmocka_unit_test(test_issue_cases),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
