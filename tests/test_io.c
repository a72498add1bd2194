/* Saving and loading (<libae/io.h>): metadata; every model kind round-trips
 * (outputs, settings, state); checkpoints resume bitwise; malformed input of
 * every kind is refused with a message (truncation at every offset, every
 * bit flip, crafted headers with a valid CRC); allocation failures; the
 * atomic save under injected and real failures; the committed golden files. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "golden.h"
#include "test_util.h"

#include <libae/io.h>

#include "model/model.h" /* the RNG state, compared after a resume */

#define OK(call) assert_int_equal((call), AE_OK)

/* The atomic save's system calls, wrapped at link time (tests/meson.build
   links this test with -Wl,--wrap=open64,...): while fail_stage names one of
   them, that call fails with EIO, as a full disk or a yanked device would. */
static const char *fail_stage;
int __real_open64(const char *path, int flags, ...);
ssize_t __real_write(int fd, const void *buf, size_t n);
int __real_fsync(int fd);
int __real_close(int fd);
int __real_rename(const char *from, const char *to);

static int failing(const char *call) {
    if (fail_stage && strcmp(fail_stage, call) == 0) {
        errno = EIO;
        return 1;
    }
    return 0;
}

int __wrap_open64(const char *path, int flags, ...) {
    mode_t mode = 0;
    if (flags & O_CREAT) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    return failing("open") ? -1 : __real_open64(path, flags, mode);
}
ssize_t __wrap_write(int fd, const void *buf, size_t n) {
    return failing("write") ? -1 : __real_write(fd, buf, n);
}
int __wrap_fsync(int fd) { return failing("fsync") ? -1 : __real_fsync(fd); }
int __wrap_close(int fd) {
    int r = __real_close(fd); /* the descriptor is gone either way */
    return failing("close") ? -1 : r;
}
int __wrap_rename(const char *from, const char *to) {
    return failing("rename") ? -1 : __real_rename(from, to);
}

/* ---- helpers ---- */

static char tmpdir[256];

static int setup_dir(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_io_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state) {
    (void)state;
    DIR *d = opendir(tmpdir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
                continue;
            snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
            if (rmdir(p) != 0) unlink(p);
        }
        closedir(d);
    }
    rmdir(tmpdir);
    return 0;
}

static void path_in(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", tmpdir, name); }

/* Number of entries in the test directory. */
static int dir_entries(void) {
    DIR *d = opendir(tmpdir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static unsigned char *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc(n > 0 ? (size_t)n : 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return p;
}

static void write_all(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static unsigned char *save_buf(ae_model *m, unsigned flags, size_t *size) {
    assert_int_equal(ae_model_save_buffer(m, NULL, 0, size, flags), AE_ERR_RANGE);
    unsigned char *p = malloc(*size);
    assert_non_null(p);
    size_t again = 0;
    OK(ae_model_save_buffer(m, p, *size, &again, flags));
    assert_int_equal(again, *size);
    return p;
}

/* A config used only as the handle of a load: allocator `a` (NULL: malloc)
 * and the message of a failure. */
static ae_config *load_cfg(const ae_allocator *a) {
    ae_config *c = NULL;
    OK(ae_config_create(&c, a));
    return c;
}

static ae_model *load_buf(const void *p, size_t n, const ae_allocator *a) {
    ae_model *m = NULL;
    ae_config *c = load_cfg(a);
    ae_status st = ae_model_load_buffer(&m, p, n, c);
    if (st) print_error("load failed: %s (%s)\n", ae_config_last_error(c), ae_status_name(st));
    assert_int_equal(st, AE_OK);
    assert_string_equal(ae_config_last_error(c), "");
    ae_config_destroy(c);
    return m;
}

/* Loading must fail with `want` (0: any error) and a message. */
static ae_status expect_refused(const void *p, size_t n, ae_status want, const char *substr) {
    ae_model *m = (ae_model *)1;
    ae_config *c = load_cfg(NULL);
    ae_status st = ae_model_load_buffer(&m, p, n, c);
    char err[512];
    snprintf(err, sizeof err, "%s", ae_config_last_error(c));
    ae_config_destroy(c);
    if (st == AE_OK || (want && st != want) || (substr && !strstr(err, substr))) {
        print_error("got %s '%s', wanted %s '%s'\n", ae_status_name(st), err,
                    want ? ae_status_name(want) : "an error", substr ? substr : "");
        fail();
    }
    assert_null(m);
    assert_true(strlen(err) > 5);
    assert_null(strchr(err, '\n'));
    return st;
}

static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const unsigned char *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void wr64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Rewrites the size field and the CRC after a crafted change. */
static void fix_crc(unsigned char *p, size_t n) {
    wr64(p + 16, n);
    wr32(p + n - 4, (uint32_t)crc32(0L, p, (uInt)(n - 4)));
}

/* Offset of the payload of section `tag`, and its length. */
static size_t find_section(const unsigned char *p, size_t n, const char *tag, size_t *len) {
    size_t pos = 32;
    uint32_t count = rd32(p + 24);
    for (uint32_t k = 0; k < count; k++) {
        uint64_t l = rd64(p + pos + 8);
        if (memcmp(p + pos, tag, 4) == 0) {
            *len = (size_t)l;
            return pos + 16;
        }
        pos += 16 + (size_t)l;
    }
    assert_true(pos <= n);
    fail_msg("no section %s", tag);
    return 0;
}

/* A copy of the file with `extra` bytes inserted at `at` (a section
 * boundary or inside a section whose length is then fixed by the caller). */
static unsigned char *splice(const unsigned char *p, size_t n, size_t at, const void *ins,
                             size_t ins_len, size_t del_len, size_t *out_n) {
    *out_n = n + ins_len - del_len;
    unsigned char *q = malloc(*out_n);
    assert_non_null(q);
    memcpy(q, p, at);
    memcpy(q + at, ins, ins_len);
    memcpy(q + at + ins_len, p + at + del_len, n - at - del_len);
    return q;
}

/* ---- model builders (one per kind of model) ---- */

typedef struct model_kind {
    const char *name;
    ae_model *(*build)(const ae_allocator *a);
    size_t batch;
} model_kind;

#define CHECK_BUILD(call)                                                                          \
    do {                                                                                           \
        if ((call) != AE_OK) {                                                                     \
            print_error("%s: %s\n", #call, ae_config_last_error(c));                               \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

static ae_model *finish(ae_config *c) {
    ae_model *m = NULL;
    CHECK_BUILD(ae_model_create(&m, c));
    ae_config_destroy(c);
    return m;
}

/* Dense, mirrored, BCE, Adam, Gaussian denoising (draws from the RNG every step). */
static ae_model *build_dense(const ae_allocator *a) {
    ae_config *c = NULL;
    OK(ae_config_create(&c, a));
    CHECK_BUILD(ae_config_set_input_size(c, 12));
    CHECK_BUILD(ae_config_add_dense(c, 8, AE_ACT_LEAKY_RELU));
    CHECK_BUILD(ae_config_layer_set_float(c, AE_LAST_LAYER, AE_LAYER_LEAKY_SLOPE, 0.2));
    CHECK_BUILD(ae_config_add_dense(c, 4, AE_ACT_TANH));
    CHECK_BUILD(ae_config_layer_set_int(c, AE_LAST_LAYER, AE_LAYER_BIAS, 0));
    CHECK_BUILD(ae_config_mirror_decoder(c, AE_ACT_SIGMOID));
    CHECK_BUILD(ae_config_set_int(c, AE_P_LOSS, AE_LOSS_BCE));
    CHECK_BUILD(ae_config_set_int(c, AE_P_SEED, 1234));
    CHECK_BUILD(ae_config_set_float(c, AE_P_LEARNING_RATE, 1e-2));
    CHECK_BUILD(ae_config_set_int(c, AE_P_NOISE_KIND, AE_NOISE_GAUSSIAN));
    CHECK_BUILD(ae_config_set_float(c, AE_P_NOISE_LEVEL, 0.01));
    CHECK_BUILD(ae_config_set_int(c, AE_P_NOISE_CLIP, 1));
    CHECK_BUILD(ae_config_set_float(c, AE_P_GRAD_CLIP_NORM, 5.0));
    return finish(c);
}

/* Sparse: top-k code with an L1 penalty before it, SGD with Nesterov momentum, masking noise. */
static ae_model *build_topk(const ae_allocator *a) {
    ae_config *c = NULL;
    OK(ae_config_create(&c, a));
    CHECK_BUILD(ae_config_set_input_size(c, 16));
    CHECK_BUILD(ae_config_add_dense(c, 32, AE_ACT_RELU));
    CHECK_BUILD(ae_config_add_l1_sparsity(c, AE_LAST_LAYER, 1e-3));
    CHECK_BUILD(ae_config_add_topk(c, 4));
    CHECK_BUILD(ae_config_mark_code(c));
    CHECK_BUILD(ae_config_add_dense(c, 16, AE_ACT_IDENTITY));
    CHECK_BUILD(ae_config_set_int(c, AE_P_OPTIMIZER, AE_OPT_SGD));
    CHECK_BUILD(ae_config_set_float(c, AE_P_LEARNING_RATE, 0.05));
    CHECK_BUILD(ae_config_set_float(c, AE_P_MOMENTUM, 0.9));
    CHECK_BUILD(ae_config_set_int(c, AE_P_NESTEROV, 1));
    CHECK_BUILD(ae_config_set_float(c, AE_P_WEIGHT_DECAY, 1e-4));
    CHECK_BUILD(ae_config_set_int(c, AE_P_NOISE_KIND, AE_NOISE_MASK));
    CHECK_BUILD(ae_config_set_float(c, AE_P_NOISE_LEVEL, 0.25));
    CHECK_BUILD(ae_config_set_int(c, AE_P_DEAD_WINDOW, 3));
    return finish(c);
}

/* Sparse, both sparse paths (dy into the encoder, input of the decoder) with
 * Adam: the gradient's zero-row bookkeeping is a cache, not state. */
static ae_model *build_topk_adam(const ae_allocator *a) {
    ae_config *c = NULL;
    OK(ae_config_create(&c, a));
    CHECK_BUILD(ae_config_set_input_size(c, 24));
    CHECK_BUILD(ae_config_add_dense(c, 64, AE_ACT_IDENTITY));
    CHECK_BUILD(ae_config_add_topk(c, 4));
    CHECK_BUILD(ae_config_mark_code(c));
    CHECK_BUILD(ae_config_add_dense(c, 24, AE_ACT_IDENTITY));
    CHECK_BUILD(ae_config_set_float(c, AE_P_LEARNING_RATE, 1e-2));
    ae_model *m = finish(c);
    assert_true(m->layers[0].out_sparse_k == 4 && m->layers[2].in_sparse_k == 4);
    return m;
}

/* Sparse: KL penalty on a sigmoid layer, lifetime top-k (fraction), batch top-k (θ state), AdamW. */
static ae_model *build_kl_batch(const ae_allocator *a) {
    ae_config *c = NULL;
    OK(ae_config_create(&c, a));
    CHECK_BUILD(ae_config_set_input_size(c, 10));
    CHECK_BUILD(ae_config_add_dense(c, 12, AE_ACT_SIGMOID));
    CHECK_BUILD(ae_config_add_kl_sparsity(c, AE_LAST_LAYER, 0.1, 0.5, AE_REDUCE_SUM));
    CHECK_BUILD(ae_config_add_lifetime_topk_fraction(c, 0.5));
    CHECK_BUILD(ae_config_add_batch_topk(c, 3));
    CHECK_BUILD(ae_config_mark_code(c));
    CHECK_BUILD(ae_config_add_lifetime_topk(c, 2));
    CHECK_BUILD(ae_config_add_dense(c, 10, AE_ACT_SIGMOID));
    CHECK_BUILD(ae_config_set_int(c, AE_P_OPTIMIZER, AE_OPT_ADAMW));
    CHECK_BUILD(ae_config_set_float(c, AE_P_WEIGHT_DECAY, 1e-2));
    CHECK_BUILD(ae_config_set_int(c, AE_P_REDUCTION, AE_REDUCE_SUM));
    CHECK_BUILD(ae_config_set_int(c, AE_P_SEED, 99));
    return finish(c);
}

/* Tied at creation, then one pair untied and a layer frozen (Adam state per block). */
static ae_model *build_tied_frozen(const ae_allocator *a) {
    ae_config *c = NULL;
    OK(ae_config_create(&c, a));
    CHECK_BUILD(ae_config_set_input_size(c, 12));
    CHECK_BUILD(ae_config_add_dense(c, 9, AE_ACT_RELU));
    CHECK_BUILD(ae_config_add_dense(c, 6, AE_ACT_ELU));
    CHECK_BUILD(ae_config_add_dense(c, 3, AE_ACT_IDENTITY));
    CHECK_BUILD(ae_config_mirror_decoder(c, AE_ACT_IDENTITY));
    CHECK_BUILD(ae_config_tie(c));
    CHECK_BUILD(ae_config_set_int(c, AE_P_SEED, 5));
    ae_model *m = finish(c);
    float x[4 * 12], loss;
    test_fill(x, 4 * 12, 3, -1, 1);
    OK(ae_train_step(m, x, NULL, 4, &loss)); /* untied below: a block with a fresh step */
    OK(ae_model_untie_layers(m, 1, 1));
    OK(ae_model_freeze(m, 0, 0));
    OK(ae_model_freeze(m, 4, 4));
    return m;
}

/* Convolutional: conv, BatchNorm (running statistics), max pooling, flatten,
 * dense code, unflatten, bilinear upsampling, transposed conv, activation. */
static ae_model *build_conv(const ae_allocator *a) {
    ae_config *c = NULL;
    OK(ae_config_create(&c, a));
    CHECK_BUILD(ae_config_set_input_shape(c, 1, 8, 8));
    CHECK_BUILD(ae_config_add_conv2d(c, 4, 3, 1, 1, AE_ACT_GELU));
    CHECK_BUILD(ae_config_add_batchnorm(c));
    CHECK_BUILD(ae_config_layer_set_float(c, AE_LAST_LAYER, AE_LAYER_BN_MOMENTUM, 0.3));
    CHECK_BUILD(ae_config_layer_set_float(c, AE_LAST_LAYER, AE_LAYER_BN_EPS, 1e-3));
    CHECK_BUILD(ae_config_add_maxpool2d(c, 2, 0, 0));
    CHECK_BUILD(ae_config_add_flatten(c));
    CHECK_BUILD(ae_config_add_dense(c, 6, AE_ACT_TANH));
    CHECK_BUILD(ae_config_mark_code(c));
    CHECK_BUILD(ae_config_add_dense(c, 64, AE_ACT_RELU));
    CHECK_BUILD(ae_config_add_unflatten(c, 4, 4, 4));
    CHECK_BUILD(ae_config_add_upsample(c, 2, AE_UPSAMPLE_BILINEAR));
    CHECK_BUILD(ae_config_add_conv_transpose2d(c, 1, 3, 1, 1, 0, AE_ACT_IDENTITY));
    CHECK_BUILD(ae_config_layer_set_int(c, AE_LAST_LAYER, AE_LAYER_BIAS, 0));
    CHECK_BUILD(ae_config_add_activation(c, AE_ACT_SIGMOID));
    CHECK_BUILD(ae_config_set_int(c, AE_P_SEED, 7));
    CHECK_BUILD(ae_config_set_int(c, AE_P_NOISE_KIND, AE_NOISE_SALT_PEPPER));
    CHECK_BUILD(ae_config_set_float(c, AE_P_NOISE_LEVEL, 0.1));
    return finish(c);
}

/* Convolutional: strided conv, global average pooling, nearest upsampling, a conv decoder. */
static ae_model *build_conv_pool(const ae_allocator *a) {
    ae_config *c = NULL;
    OK(ae_config_create(&c, a));
    CHECK_BUILD(ae_config_set_input_shape(c, 2, 4, 4));
    CHECK_BUILD(ae_config_add_conv2d(c, 8, 3, 2, 1, AE_ACT_RELU));
    CHECK_BUILD(ae_config_add_avgpool_1x1(c));
    CHECK_BUILD(ae_config_add_flatten(c));
    CHECK_BUILD(ae_config_mark_code(c));
    CHECK_BUILD(ae_config_add_unflatten(c, 8, 1, 1));
    CHECK_BUILD(ae_config_add_upsample(c, 4, AE_UPSAMPLE_NEAREST));
    CHECK_BUILD(ae_config_add_conv2d(c, 2, 3, 1, 1, AE_ACT_IDENTITY));
    CHECK_BUILD(ae_config_set_int(c, AE_P_OPTIMIZER, AE_OPT_SGD));
    CHECK_BUILD(ae_config_set_float(c, AE_P_MOMENTUM, 0.5));
    CHECK_BUILD(ae_config_set_float(c, AE_P_DAMPENING, 0.1));
    CHECK_BUILD(ae_config_set_int(c, AE_P_NOISE_KIND, AE_NOISE_DROPOUT));
    CHECK_BUILD(ae_config_set_float(c, AE_P_NOISE_LEVEL, 0.2));
    return finish(c);
}

/* VAE: dense encoder, Gaussian code, mirrored decoder, BCE summed, beta
 * with a warm-up (depends on the step count), sampling from the RNG. */
static ae_model *build_vae(const ae_allocator *a) {
    ae_config *c = NULL;
    OK(ae_config_create(&c, a));
    CHECK_BUILD(ae_config_set_input_size(c, 10));
    CHECK_BUILD(ae_config_add_dense(c, 8, AE_ACT_RELU));
    CHECK_BUILD(ae_config_add_gaussian(c, 3));
    CHECK_BUILD(ae_config_mirror_decoder(c, AE_ACT_SIGMOID));
    CHECK_BUILD(ae_config_set_int(c, AE_P_LOSS, AE_LOSS_BCE));
    CHECK_BUILD(ae_config_set_int(c, AE_P_REDUCTION, AE_REDUCE_SUM));
    CHECK_BUILD(ae_config_set_float(c, AE_P_VAE_BETA, 0.5));
    CHECK_BUILD(ae_config_set_int(c, AE_P_VAE_BETA_WARMUP_STEPS, 6));
    CHECK_BUILD(ae_config_set_int(c, AE_P_SEED, 31));
    return finish(c);
}

/* Convolutional VAE whose sampling uses fixed eps (kept by a checkpoint). */
static ae_model *build_vae_conv_fixed_eps(const ae_allocator *a) {
    ae_config *c = NULL;
    OK(ae_config_create(&c, a));
    CHECK_BUILD(ae_config_set_input_shape(c, 1, 4, 4));
    CHECK_BUILD(ae_config_add_conv2d(c, 3, 3, 1, 1, AE_ACT_RELU));
    CHECK_BUILD(ae_config_add_flatten(c));
    CHECK_BUILD(ae_config_add_gaussian(c, 2));
    CHECK_BUILD(ae_config_mark_code(c)); /* does nothing after the Gaussian layer */
    CHECK_BUILD(ae_config_add_dense(c, 16, AE_ACT_RELU));
    CHECK_BUILD(ae_config_add_unflatten(c, 1, 4, 4));
    CHECK_BUILD(ae_config_add_conv2d(c, 1, 3, 1, 1, AE_ACT_IDENTITY));
    CHECK_BUILD(ae_config_set_float(c, AE_P_VAE_BETA, 2.0));
    ae_model *m = finish(c);
    float eps[4 * 2];
    test_fill(eps, 8, 17, -2, 2);
    OK(ae_vae_set_fixed_eps(m, eps, 8));
    return m;
}

static const model_kind kinds[] = {
    {"vae", build_vae, 8},             {"vae_conv_fixed_eps", build_vae_conv_fixed_eps, 4},
    {"dense", build_dense, 8},         {"topk", build_topk, 8},
    {"topk_adam", build_topk_adam, 8},
    {"kl_batch_topk", build_kl_batch, 8}, {"tied_frozen", build_tied_frozen, 4},
    {"conv", build_conv, 4},           {"conv_pool", build_conv_pool, 4},
};
#define NKINDS (sizeof kinds / sizeof kinds[0])

/* Deterministic batch for step `s`. */
static void batch_for(const ae_model *m, size_t batch, int s, float *x) {
    test_fill(x, batch * ae_model_input_size(m), 1000u + (uint32_t)s, 0, 1);
}

static void train(ae_model *m, size_t batch, int from, int steps, float *losses) {
    float *x = malloc(batch * ae_model_input_size(m) * sizeof(float));
    for (int s = 0; s < steps; s++) {
        batch_for(m, batch, from + s, x);
        float loss;
        ae_status st = ae_train_step(m, x, NULL, batch, &loss);
        if (st) print_error("train step: %s\n", ae_model_last_error(m));
        assert_int_equal(st, AE_OK);
        if (losses) losses[s] = loss;
    }
    free(x);
}

/* Every parameter, through the public getters. */
static float *all_params(const ae_model *m, size_t *n) {
    size_t total = 0;
    ae_layer_info info = {.struct_size = sizeof info};
    for (size_t i = 0; i < ae_model_layer_count(m); i++) {
        OK(ae_model_layer_info(m, i, &info));
        total += info.weight_count + info.bias_count;
    }
    float *p = malloc((total ? total : 1) * sizeof(float)), *q = p;
    for (size_t i = 0; i < ae_model_layer_count(m); i++) {
        OK(ae_model_layer_info(m, i, &info));
        if (info.weight_count) OK(ae_model_get_weights(m, i, q, info.weight_count));
        q += info.weight_count;
        if (info.bias_count) OK(ae_model_get_bias(m, i, q, info.bias_count));
        q += info.bias_count;
    }
    *n = total;
    return p;
}

static void assert_same_params(const ae_model *a, const ae_model *b) {
    size_t na, nb;
    float *pa = all_params(a, &na), *pb = all_params(b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(pa, pb, na * sizeof(float));
    free(pa);
    free(pb);
}

/* Architecture, settings, parameters, tying, freezing, mode, metadata. */
static void assert_same_model(const ae_model *a, const ae_model *b) {
    assert_int_equal(ae_model_layer_count(a), ae_model_layer_count(b));
    assert_int_equal(ae_model_code_layer(a), ae_model_code_layer(b));
    assert_int_equal(ae_model_param_count(a), ae_model_param_count(b));
    for (size_t i = 0; i < ae_model_layer_count(a); i++) {
        ae_layer_info ia = {.struct_size = sizeof ia}, ib = {.struct_size = sizeof ib};
        OK(ae_model_layer_info(a, i, &ia));
        OK(ae_model_layer_info(b, i, &ib));
        assert_memory_equal(&ia, &ib, sizeof ia);
        size_t sa[6], sb[6];
        OK(ae_model_layer_shape(a, i, sa, sa + 3));
        OK(ae_model_layer_shape(b, i, sb, sb + 3));
        assert_memory_equal(sa, sb, sizeof sa);
        assert_int_equal(ae_model_is_tied(a, i), ae_model_is_tied(b, i));
        assert_int_equal(ae_model_is_frozen(a, i), ae_model_is_frozen(b, i));
    }
    for (int p = 0; p < 128; p++) {
        int is_int;
        if (ae_param_bounds((ae_param)p, &is_int, NULL, NULL, NULL) != AE_OK) continue;
        if (is_int) {
            int64_t va, vb;
            OK(ae_model_get_int(a, (ae_param)p, &va));
            OK(ae_model_get_int(b, (ae_param)p, &vb));
            assert_int_equal(va, vb);
        } else {
            double va, vb;
            OK(ae_model_get_float(a, (ae_param)p, &va));
            OK(ae_model_get_float(b, (ae_param)p, &vb));
            assert_memory_equal(&va, &vb, sizeof va);
        }
    }
    assert_int_equal(ae_model_get_mode(a), ae_model_get_mode(b));
    assert_int_equal(ae_model_meta_count(a), ae_model_meta_count(b));
    for (size_t i = 0; i < ae_model_meta_count(a); i++) {
        const char *ka, *va, *kb, *vb;
        OK(ae_model_meta_at(a, i, &ka, &va));
        OK(ae_model_meta_at(b, i, &kb, &vb));
        assert_string_equal(ka, kb);
        assert_string_equal(va, vb);
    }
    assert_same_params(a, b);
}

/* Encode, decode and reconstruct give bitwise the same outputs. */
static void assert_same_outputs(ae_model *a, ae_model *b, size_t batch) {
    size_t in = ae_model_input_size(a), code = ae_model_code_size(a);
    float *x = malloc(batch * in * sizeof(float)), *ca = malloc(batch * code * sizeof(float)),
          *cb = malloc(batch * code * sizeof(float)), *ra = malloc(batch * in * sizeof(float)),
          *rb = malloc(batch * in * sizeof(float));
    test_fill(x, batch * in, 4242, 0, 1);
    OK(ae_encode(a, x, batch, ca));
    OK(ae_encode(b, x, batch, cb));
    assert_memory_equal(ca, cb, batch * code * sizeof(float));
    OK(ae_decode(a, ca, batch, ra));
    OK(ae_decode(b, ca, batch, rb));
    assert_memory_equal(ra, rb, batch * in * sizeof(float));
    OK(ae_reconstruct(a, x, batch, ra));
    OK(ae_reconstruct(b, x, batch, rb));
    assert_memory_equal(ra, rb, batch * in * sizeof(float));
    /* The loss depends on the step count through a VAE's KL warm-up, and a
     * model file (not a checkpoint) starts counting again. */
    if (ae_model_step_count(a) == ae_model_step_count(b)) {
        float la, lb;
        OK(ae_evaluate(a, x, NULL, batch, &la));
        OK(ae_evaluate(b, x, NULL, batch, &lb));
        assert_memory_equal(&la, &lb, sizeof la);
    }
    free(x);
    free(ca);
    free(cb);
    free(ra);
    free(rb);
}

/* ---- metadata ---- */

static void test_meta(void **state) {
    (void)state;
    test_alloc t = {0, 0, -1};
    ae_allocator a = test_allocator(&t);
    ae_model *m = build_dense(&a);
    const char *v = "x", *k = NULL;
    OK(ae_model_get_meta(m, "absent", &v));
    assert_null(v);
    assert_int_equal(ae_model_meta_count(m), 0);
    OK(ae_model_set_meta(m, "history", "{\"epochs\": 3}"));
    OK(ae_model_set_meta(m, "data", "fashion-mnist \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
    OK(ae_model_set_meta(m, "empty", ""));
    assert_int_equal(ae_model_meta_count(m), 3);
    OK(ae_model_get_meta(m, "history", &v));
    assert_string_equal(v, "{\"epochs\": 3}");
    OK(ae_model_set_meta(m, "history", "replaced"));
    OK(ae_model_meta_at(m, 0, &k, &v));
    assert_string_equal(k, "history");
    assert_string_equal(v, "replaced");
    OK(ae_model_set_meta(m, "history", NULL));
    OK(ae_model_set_meta(m, "never-set", NULL));
    assert_int_equal(ae_model_meta_count(m), 2);
    OK(ae_model_meta_at(m, 0, &k, NULL));
    assert_string_equal(k, "data");
    assert_int_equal(ae_model_meta_at(m, 2, &k, &v), AE_ERR_RANGE);

    /* Refusals change nothing. */
    char key[300];
    memset(key, 'k', sizeof key);
    key[255] = '\0';
    OK(ae_model_set_meta(m, key, "255 bytes is allowed"));
    key[255] = 'k';
    key[256] = '\0';
    assert_int_equal(ae_model_set_meta(m, key, "v"), AE_ERR_INVALID_ARG);
    assert_non_null(strstr(ae_model_last_error(m), "255"));
    assert_int_equal(ae_model_set_meta(m, "", "v"), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_set_meta(m, NULL, "v"), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_set_meta(m, "bad\xff", "v"), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_set_meta(m, "k", "overlong \xc0\xaf"), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_set_meta(m, "k", "surrogate \xed\xa0\x80"), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_set_meta(m, "k", "cut \xe2\x82"), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_set_meta(m, "multi\nline", "\xff"), AE_ERR_INVALID_ARG);
    assert_non_null(strstr(ae_model_last_error(m), "'multi?line'"));
    size_t big = ((size_t)1 << 20) + 1;
    char *val = malloc(big + 1);
    memset(val, 'v', big);
    val[big] = '\0';
    assert_int_equal(ae_model_set_meta(m, "big", val), AE_ERR_INVALID_ARG);
    val[big - 1] = '\0';
    OK(ae_model_set_meta(m, "big", val)); /* exactly 1 MiB */
    free(val);
    assert_int_equal(ae_model_meta_count(m), 4);
    assert_int_equal(ae_model_get_meta(NULL, "k", &v), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_get_meta(m, NULL, &v), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_meta_count(NULL), 0);
    assert_int_equal(ae_model_set_meta(NULL, "k", "v"), AE_ERR_INVALID_ARG);

    /* Allocation failures: each index fails cleanly and changes nothing. */
    for (long f = 0;; f++) {
        long before = t.count;
        t.fail_at = before + f;
        ae_status st = ae_model_set_meta(m, "many-new-key", "value");
        t.fail_at = -1;
        if (st == AE_OK) break;
        assert_int_equal(st, AE_ERR_OUT_OF_MEMORY);
        assert_int_equal(ae_model_meta_count(m), 4);
    }
    assert_int_equal(ae_model_meta_count(m), 5);
    for (int i = 0; i < 20; i++) {
        char kk[16];
        snprintf(kk, sizeof kk, "key%d", i);
        OK(ae_model_set_meta(m, kk, kk));
    }
    OK(ae_model_get_meta(m, "key19", &v));
    assert_string_equal(v, "key19");
    ae_model_destroy(m);
    assert_int_equal(t.live, 0);
}

/* ---- round trips ---- */

static void test_roundtrip_every_kind(void **state) {
    (void)state;
    for (size_t k = 0; k < NKINDS; k++) {
        const model_kind *mk = &kinds[k];
        ae_model *m = mk->build(NULL);
        train(m, mk->batch, 0, 3, NULL);
        OK(ae_model_set_meta(m, "kind", mk->name));
        OK(ae_model_set_meta(m, "history", "loss 0.5 0.4 0.3"));
        for (unsigned flags = 0; flags <= AE_SAVE_CHECKPOINT; flags++) {
            size_t n;
            unsigned char *buf = save_buf(m, flags, &n);
            ae_model *l = load_buf(buf, n, NULL);
            assert_same_model(m, l);
            assert_int_equal(ae_model_step_count(l), flags ? ae_model_step_count(m) : 0);
            /* Saving what was loaded gives the same bytes (before any
             * evaluation changes the statistics a checkpoint keeps). */
            size_t n2;
            unsigned char *buf2 = save_buf(l, flags, &n2);
            assert_int_equal(n, n2);
            assert_memory_equal(buf, buf2, n);
            assert_same_outputs(m, l, mk->batch);
            /* Training continues. */
            train(l, mk->batch, 3, 2, NULL);
            free(buf);
            free(buf2);
            ae_model_destroy(l);
        }
        /* Mode is saved. */
        OK(ae_model_set_mode(m, AE_MODE_TRAIN));
        size_t n;
        unsigned char *buf = save_buf(m, AE_SAVE_MODEL, &n);
        ae_model *l = load_buf(buf, n, NULL);
        assert_int_equal(ae_model_get_mode(l), AE_MODE_TRAIN);
        free(buf);
        ae_model_destroy(l);
        ae_model_destroy(m);
    }
}

/* A sample's shape is the model's (its input shape, or the first layer's
 * unflatten), and its file keeps it: a dense model of images, a vector
 * model reading its input as an image, and a plain vector model. */
static void test_sample_shape_saved(void **state) {
    (void)state;
    static const char *const texts[] = {
        "input 1 12 12\ndense 8 activation=relu\ncode\ndense 144 activation=sigmoid\n",
        "input 48\nunflatten 3 4 4\nconv2d 2 3 padding=1\nflatten\ncode\ndense 48\n",
        "input 10\ndense 3\ncode\ndense 10\n",
    };
    static const size_t want[][3] = {{1, 12, 12}, {3, 4, 4}, {10, 1, 1}};
    for (size_t i = 0; i < 3; i++) {
        ae_config *cfg = NULL;
        ae_model *m = NULL;
        OK(ae_config_create(&cfg, NULL));
        OK(ae_config_from_arch(cfg, texts[i]));
        OK(ae_model_create(&m, cfg));
        size_t n, c, h, w;
        unsigned char *buf = save_buf(m, AE_SAVE_MODEL, &n);
        ae_model *l = load_buf(buf, n, NULL);
        OK(ae_model_sample_shape(l, &c, &h, &w));
        assert_true(c == want[i][0] && h == want[i][1] && w == want[i][2]);
        OK(ae_model_sample_shape(m, &c, &h, &w));
        assert_true(c == want[i][0] && h == want[i][1] && w == want[i][2]);
        free(buf);
        ae_model_destroy(l);
        ae_model_destroy(m);
        ae_config_destroy(cfg);
    }
}

/* N steps, save, load, M steps == N + M steps straight, for every kind. */
static void test_checkpoint_resumes_bitwise(void **state) {
    (void)state;
    const int N = 4, M = 5;
    for (size_t k = 0; k < NKINDS; k++) {
        const model_kind *mk = &kinds[k];
        ae_model *straight = mk->build(NULL);
        float ls[9], lr[9];
        train(straight, mk->batch, 0, N + M, ls);

        ae_model *first = mk->build(NULL);
        train(first, mk->batch, 0, N, lr);
        uint64_t steps = ae_model_step_count(first);
        char path[512];
        path_in(path, sizeof path, "ckpt.aem");
        OK(ae_model_save(first, path, AE_SAVE_CHECKPOINT));
        ae_model_destroy(first);
        ae_model *resumed = NULL;
        ae_config *c = load_cfg(NULL);
        ae_status st = ae_model_load(&resumed, path, c);
        if (st) print_error("%s: %s\n", mk->name, ae_config_last_error(c));
        OK(st);
        ae_config_destroy(c);
        assert_int_equal(ae_model_step_count(resumed), steps);
        train(resumed, mk->batch, N, M, lr + N);
        assert_memory_equal(ls, lr, sizeof(float) * (size_t)(N + M));
        assert_same_params(straight, resumed);
        assert_int_equal(ae_model_step_count(resumed), ae_model_step_count(straight));
        assert_memory_equal(&straight->rng, &resumed->rng, sizeof straight->rng);
        double ra = 0, rb = 0, ka = 0, kb = 0;
        assert_int_equal(ae_vae_loss_terms(straight, &ra, &ka), ae_vae_loss_terms(resumed, &rb, &kb));
        assert_true(ra == rb && ka == kb);
        for (int s = AE_STAT_LOSS; s <= AE_STAT_LOSS_VAE_KL; s++) {
            double va = 0, vb = 0;
            ae_status sa = ae_model_get_stat(straight, (ae_stat)s, &va);
            assert_int_equal(sa, ae_model_get_stat(resumed, (ae_stat)s, &vb));
            assert_memory_equal(&va, &vb, sizeof va);
        }
        assert_same_outputs(straight, resumed, mk->batch);
        /* A model file (no optimizer state) loads the parameters only. */
        OK(ae_model_save(straight, path, AE_SAVE_MODEL));
        ae_model *plain = NULL;
        OK(ae_model_load(&plain, path, NULL));
        assert_int_equal(ae_model_step_count(plain), 0);
        assert_same_outputs(straight, plain, mk->batch);
        ae_model_destroy(plain);
        ae_model_destroy(straight);
        ae_model_destroy(resumed);
        unlink(path);
    }
}

static void test_save_buffer_contract(void **state) {
    (void)state;
    ae_model *m = build_dense(NULL);
    size_t size = 0;
    assert_int_equal(ae_model_save_buffer(m, NULL, 0, &size, 0), AE_ERR_RANGE);
    assert_true(size > 100);
    unsigned char *buf = malloc(size + 8);
    memset(buf, 0xAB, size + 8);
    size_t got = 0;
    assert_int_equal(ae_model_save_buffer(m, buf, size - 1, &got, 0), AE_ERR_RANGE);
    assert_int_equal(got, size);
    assert_int_equal(buf[0], 0xAB); /* nothing written */
    assert_non_null(strstr(ae_model_last_error(m), "bytes"));
    OK(ae_model_save_buffer(m, buf, size + 8, &got, 0));
    assert_int_equal(got, size);
    assert_int_equal(buf[size], 0xAB);
    /* The file on disk is the same bytes. */
    char path[512];
    path_in(path, sizeof path, "same.aem");
    OK(ae_model_save(m, path, AE_SAVE_MODEL));
    size_t fn;
    unsigned char *file = read_all(path, &fn);
    assert_int_equal(fn, size);
    assert_memory_equal(file, buf, size);
    free(file);
    unlink(path);
    /* Little-endian header whatever the host. */
    assert_memory_equal(buf, "\x89" "AEM\r\n\x1a\n", 8);
    assert_int_equal(buf[8] | buf[9] << 8, AE_FORMAT_VERSION_MAJOR);
    assert_int_equal(rd64(buf + 16), size);
    /* Misuse. */
    assert_int_equal(ae_model_save_buffer(NULL, buf, size, &got, 0), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_save_buffer(m, buf, size, NULL, 0), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_save_buffer(m, NULL, 5, &got, 0), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_save_buffer(m, buf, size, &got, 2), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_save(m, NULL, 0), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_save(m, "", 0), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_save(NULL, path, 0), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_save(m, path, 7), AE_ERR_INVALID_ARG);
    ae_model *out = (ae_model *)1;
    ae_config *c = load_cfg(NULL);
    assert_int_equal(ae_model_load_buffer(&out, NULL, 10, c), AE_ERR_INVALID_ARG);
    assert_null(out);
    assert_string_equal(ae_config_last_error(c), "buf is NULL");
    assert_int_equal(ae_model_load_buffer(NULL, buf, size, c), AE_ERR_INVALID_ARG);
    assert_string_equal(ae_config_last_error(c), "out is NULL");
    assert_int_equal(ae_model_load(&out, NULL, c), AE_ERR_INVALID_ARG);
    assert_string_equal(ae_config_last_error(c), "path is NULL");
    /* Without a config: the same codes, no message anywhere. */
    assert_int_equal(ae_model_load(&out, NULL, NULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_load_buffer(&out, "garbage!", 8, NULL), AE_ERR_FORMAT);
    assert_null(out);
    ae_config_destroy(c);
    free(buf);
    ae_model_destroy(m);
}

/* The load's config is the handle of its message, and only that: a success
 * leaves the config as it was (its last message too), a failure sets the
 * message, and its layers and settings neither shape the loaded model nor
 * change. */
static void test_load_reports_on_config(void **state) {
    (void)state;
    ae_config *c = NULL;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_size(c, 6));
    OK(ae_config_add_dense(c, 3, AE_ACT_RELU));
    OK(ae_config_mark_code(c));
    OK(ae_config_mirror_decoder(c, AE_ACT_SIGMOID));
    OK(ae_config_set_int(c, AE_P_SEED, 5));
    ae_model *before = NULL;
    OK(ae_model_create(&before, c));
    assert_int_equal(ae_config_set_input_size(c, 6), AE_ERR_STATE);
    char earlier[512];
    snprintf(earlier, sizeof earlier, "%s", ae_config_last_error(c));
    assert_true(strlen(earlier) > 5);

    ae_model *src = build_conv(NULL);
    size_t n;
    unsigned char *buf = save_buf(src, AE_SAVE_MODEL, &n);
    ae_model *m = NULL;
    OK(ae_model_load_buffer(&m, buf, n, c));
    assert_string_equal(ae_config_last_error(c), earlier);
    assert_int_equal(ae_model_input_size(m), ae_model_input_size(src));
    assert_same_outputs(src, m, 2);
    ae_model_destroy(m);

    m = (ae_model *)1;
    assert_int_equal(ae_model_load_buffer(&m, buf, n - 1, c), AE_ERR_FORMAT);
    assert_null(m);
    assert_string_not_equal(ae_config_last_error(c), earlier);
    assert_null(strchr(ae_config_last_error(c), '\n'));
    char path[512];
    path_in(path, sizeof path, "absent.aem");
    assert_int_equal(ae_model_load(&m, path, c), AE_ERR_IO);
    assert_int_equal(strncmp(ae_config_last_error(c), path, strlen(path)), 0);

    /* The config still builds the model it built before. */
    int64_t seed = 0;
    OK(ae_config_get_int(c, AE_P_SEED, &seed));
    assert_int_equal(seed, 5);
    ae_model *after = NULL;
    OK(ae_model_create(&after, c));
    assert_same_model(before, after);
    ae_model_destroy(after);
    ae_model_destroy(before);
    ae_model_destroy(src);
    free(buf);
    ae_config_destroy(c);
}

/* ---- malformed input ---- */

/* A small model file: 3-2-3 dense. */
static unsigned char *small_file(size_t *n, unsigned flags) {
    ae_config *c = NULL;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_size(c, 3));
    OK(ae_config_add_dense(c, 2, AE_ACT_RELU));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_dense(c, 3, AE_ACT_IDENTITY));
    ae_model *m = finish(c);
    OK(ae_model_set_meta(m, "k", "v"));
    train(m, 2, 0, 2, NULL);
    unsigned char *p = save_buf(m, flags, n);
    ae_model_destroy(m);
    return p;
}

static void test_truncation_every_offset(void **state) {
    (void)state;
    for (unsigned flags = 0; flags <= 1; flags++) {
        size_t n;
        unsigned char *p = small_file(&n, flags);
        assert_true(n < 2000);
        ae_model_destroy(load_buf(p, n, NULL));
        for (size_t cut = 0; cut < n; cut++) {
            /* A copy of exactly `cut` bytes, so ASan sees any read past it. */
            unsigned char *q = malloc(cut ? cut : 1);
            memcpy(q, p, cut);
            ae_status st = expect_refused(q, cut, 0, NULL);
            assert_int_equal(st, AE_ERR_FORMAT);
            free(q);
        }
        /* Trailing bytes too. */
        unsigned char *q = malloc(n + 1);
        memcpy(q, p, n);
        q[n] = 0;
        expect_refused(q, n + 1, AE_ERR_FORMAT, "trailing");
        free(q);
        free(p);
    }
}

static void test_every_bit_flip(void **state) {
    (void)state;
    size_t n;
    unsigned char *p = small_file(&n, AE_SAVE_CHECKPOINT);
    int by_checksum = 0;
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 8; b++) {
            p[i] ^= (unsigned char)(1u << b);
            ae_status st = expect_refused(p, n, 0, NULL);
            p[i] ^= (unsigned char)(1u << b);
            /* Magic, version and size are read before the checksum. */
            if (i >= 8 && i < 10) /* the major version; the minor is checked by the CRC */
                assert_int_equal(st, AE_ERR_VERSION);
            else if (i < 8 || (i >= 16 && i < 24))
                assert_int_equal(st, AE_ERR_FORMAT);
            else
                assert_int_equal(st, AE_ERR_CHECKSUM);
            by_checksum += st == AE_ERR_CHECKSUM;
        }
    assert_int_equal(by_checksum, (int)(n - 18) * 8);
    expect_refused(p + 0, 0, AE_ERR_FORMAT, "truncated");
    free(p);
}

static void test_wrong_magic_and_versions(void **state) {
    (void)state;
    size_t n;
    unsigned char *p = small_file(&n, 0);
    unsigned char *q = malloc(n);
    memcpy(q, p, n);
    memcpy(q, "PK\3\4abcd", 8);
    expect_refused(q, n, AE_ERR_FORMAT, "magic");
    expect_refused("hello", 5, AE_ERR_FORMAT, "magic");

    /* A newer major version: refused before anything else, CRC or not. */
    memcpy(q, p, n);
    q[8] = 2;
    expect_refused(q, n, AE_ERR_VERSION, "format version 2.");
    fix_crc(q, n);
    expect_refused(q, n, AE_ERR_VERSION, "format version 2.");
    q[8] = 0;
    fix_crc(q, n);
    expect_refused(q, n, AE_ERR_VERSION, "format version 0.");

    /* A newer minor version that uses nothing new loads. */
    memcpy(q, p, n);
    q[10] = 7;
    fix_crc(q, n);
    ae_model_destroy(load_buf(q, n, NULL));
    free(q);

    /* A newer minor version with an optional unknown section loads; with a
     * required one it is a version error; in a 1.0 file it is malformed. */
    unsigned char sec[16 + 5] = {'X', 'T', 'R', 'A', 1, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5};
    size_t qn;
    q = splice(p, n, 32, sec, sizeof sec, 0, &qn);
    wr32(q + 24, rd32(q + 24) + 1);
    q[10] = AE_FORMAT_VERSION_MINOR + 1;
    fix_crc(q, qn);
    ae_model_destroy(load_buf(q, qn, NULL));
    q[32 + 4] = 0; /* the section's flags: required now */
    fix_crc(q, qn);
    expect_refused(q, qn, AE_ERR_VERSION, "XTRA");
    q[10] = 0;
    fix_crc(q, qn);
    expect_refused(q, qn, AE_ERR_FORMAT, "XTRA");
    free(q);

    /* Unknown file flags. */
    q = malloc(n);
    memcpy(q, p, n);
    q[12] = 6;
    fix_crc(q, n);
    expect_refused(q, n, AE_ERR_FORMAT, "flags");
    q[10] = AE_FORMAT_VERSION_MINOR + 1;
    fix_crc(q, n);
    expect_refused(q, n, AE_ERR_VERSION, "flags");
    /* The checkpoint flag on a model file: sections missing. */
    memcpy(q, p, n);
    q[12] = 1;
    fix_crc(q, n);
    expect_refused(q, n, AE_ERR_FORMAT, "OPTM");
    free(q);
    free(p);
}

/* A file of an older minor version lacks settings added later: they take
 * their defaults. Dropping a SETS entry makes such a file. */
static void test_missing_setting_takes_default(void **state) {
    (void)state;
    size_t n, len;
    unsigned char *p = small_file(&n, 0);
    size_t sets = find_section(p, n, "SETS", &len);
    uint32_t count = rd32(p + sets);
    /* Find AE_P_DEAD_WINDOW's entry and set it away from its default first. */
    size_t at = 0;
    for (uint32_t i = 0; i < count; i++)
        if (rd32(p + sets + 8 + 16 * i) == AE_P_DEAD_WINDOW) at = sets + 8 + 16 * i;
    assert_true(at);
    wr64(p + at + 8, 77);
    fix_crc(p, n);
    ae_model *m = load_buf(p, n, NULL);
    int64_t v;
    OK(ae_model_get_int(m, AE_P_DEAD_WINDOW, &v));
    assert_int_equal(v, 77);
    ae_model_destroy(m);
    size_t qn;
    unsigned char *q = splice(p, n, at, "", 0, 16, &qn);
    wr32(q + sets, count - 1);
    wr64(q + sets - 8, len - 16);
    fix_crc(q, qn);
    m = load_buf(q, qn, NULL);
    OK(ae_model_get_int(m, AE_P_DEAD_WINDOW, &v));
    assert_int_equal(v, 1000);
    ae_model_destroy(m);
    /* A setting out of range is refused with its name. */
    free(q);
    q = malloc(n);
    memcpy(q, p, n);
    for (uint32_t i = 0; i < count; i++)
        if (rd32(p + sets + 8 + 16 * i) == AE_P_LEARNING_RATE) {
            double bad = -1.0;
            memcpy(q + sets + 8 + 16 * i + 8, &bad, 8);
        }
    fix_crc(q, n);
    expect_refused(q, n, AE_ERR_FORMAT, "AE_P_LEARNING_RATE");
    /* An unknown setting; a duplicate; a wrong type. */
    memcpy(q, p, n);
    wr32(q + sets + 8, 99);
    fix_crc(q, n);
    expect_refused(q, n, AE_ERR_FORMAT, "unknown setting 99");
    memcpy(q, p, n);
    wr32(q + sets + 8 + 16, rd32(q + sets + 8));
    fix_crc(q, n);
    expect_refused(q, n, AE_ERR_FORMAT, "twice");
    memcpy(q, p, n);
    wr32(q + sets + 12, 1 - rd32(q + sets + 12));
    fix_crc(q, n);
    expect_refused(q, n, AE_ERR_FORMAT, "type");
    free(q);
    free(p);
}

/* Largest single allocation, to show absurd sizes allocate nothing large. */
typedef struct max_alloc {
    size_t max;
} max_alloc;
static void *max_alloc_fn(void *ud, size_t n) {
    max_alloc *t = ud;
    if (n > t->max) t->max = n;
    return malloc(n);
}
static void max_release_fn(void *ud, void *p) {
    (void)ud;
    free(p);
}

/* Crafted with a valid CRC: sizes that would need absurd memory, unknown
 * kinds, inconsistent records. */
static void test_crafted_headers(void **state) {
    (void)state;
    size_t n, len;
    unsigned char *p = small_file(&n, AE_SAVE_CHECKPOINT);
    unsigned char *q = malloc(n);
    size_t arch = find_section(p, n, "ARCH", &len);
    size_t rec0 = arch + 40, rec1 = arch + 40 + 128;
    max_alloc mx = {0};
    ae_allocator ma = {sizeof ma, max_alloc_fn, max_release_fn, &mx};
    ae_model *m = NULL;

#define CRAFT(stmt, code, substr)                                                                  \
    do {                                                                                           \
        memcpy(q, p, n);                                                                           \
        stmt;                                                                                      \
        fix_crc(q, n);                                                                             \
        expect_refused(q, n, code, substr);                                                        \
        mx.max = 0;                                                                                \
        ae_config *mc = load_cfg(&ma);                                                             \
        assert_int_not_equal(ae_model_load_buffer(&m, q, n, mc), AE_OK);                           \
        assert_true(mx.max < 65536);                                                               \
        ae_config_destroy(mc);                                                                     \
    } while (0)

    /* Counts and lengths far beyond the file. */
    CRAFT(wr32(q + arch + 24, 0xFFFFFFFFu), AE_ERR_FORMAT, "ARCH");
    CRAFT(wr32(q + arch + 24, 0x02000000u), AE_ERR_FORMAT, "ARCH");
    CRAFT(wr64(q + arch - 8, (uint64_t)1 << 62), AE_ERR_FORMAT, "past the end");
    CRAFT(wr64(q + arch - 8, 0xFFFFFFFFFFFFFFF0u), AE_ERR_FORMAT, "past the end");
    CRAFT(wr32(q + 24, 0xFFFFFFFFu), AE_ERR_FORMAT, "past the end");
    CRAFT(wr32(q + 24, 1), AE_ERR_FORMAT, "between the last section");
    /* A layer of 2^24 units, or an input of 2^24 features: allowed widths
     * whose parameters the file does not hold. */
    CRAFT(wr64(q + rec0 + 16, (uint64_t)1 << 24), AE_ERR_FORMAT, "parameters");
    CRAFT(wr64(q + arch, (uint64_t)1 << 24), AE_ERR_FORMAT, NULL);
    CRAFT((wr64(q + arch, (uint64_t)1 << 24), wr64(q + rec1 + 16, (uint64_t)1 << 24)),
          AE_ERR_FORMAT, "parameters");
    CRAFT(wr64(q + rec0 + 16, (uint64_t)1 << 40), AE_ERR_FORMAT, "units");
    CRAFT(wr64(q + arch + 8, 0xFFFFFFFFFFFFu), AE_ERR_FORMAT, "input shape");
    size_t meta = find_section(p, n, "META", &len);
    CRAFT(wr32(q + meta, 0xFFFFFFFFu), AE_ERR_FORMAT, "META");
    CRAFT(wr32(q + meta + 8, 0xFFFFFFF0u), AE_ERR_FORMAT, "META");
    CRAFT(wr32(q + meta + 8, 0), AE_ERR_FORMAT, "META");
    CRAFT(q[meta + 12] = 0xFF, AE_ERR_FORMAT, "UTF-8");
    size_t sets = find_section(p, n, "SETS", &len);
    CRAFT(wr32(q + sets, 0x10000000u), AE_ERR_FORMAT, "SETS");
    size_t parm = find_section(p, n, "PARM", &len);
    CRAFT(wr64(q + parm, 0x4000000000000000u), AE_ERR_FORMAT, "parameters");
    CRAFT(wr32(q + parm + 8, 0x7FC00000u), AE_ERR_FORMAT, "not finite");
    size_t olen, optm = find_section(p, n, "OPTM", &olen);
    CRAFT(wr32(q + optm, 0x7FFFFFFFu), AE_ERR_FORMAT, "OPTM");
    CRAFT(wr64(q + optm + 8 + 16, 1000), AE_ERR_FORMAT, "OPTM");
    CRAFT(wr64(q + optm + 8 + 8, 1000), AE_ERR_FORMAT, "OPTM");
    size_t tran = find_section(p, n, "TRAN", &len);
    CRAFT(memset(q + tran + 8, 0, 32), AE_ERR_FORMAT, "RNG");
    CRAFT(wr64(q + tran + 112, 1u << 30), AE_ERR_FORMAT, "TRAN");
    CRAFT(wr64(q + tran + 112 + 8 * 2, 0xFFFFFFFFFFFFFFFFu), AE_ERR_FORMAT, "TRAN");
    CRAFT(wr64(q + tran + 104, 99), AE_ERR_FORMAT, "statistics");
    /* A fixed eps count (the section's last field when there are none) whose
     * byte count, 4 times it, wraps around to the 0 bytes that follow. */
    CRAFT(wr64(q + tran + len - 8, (uint64_t)1 << 62), AE_ERR_FORMAT, "section TRAN has");

    /* Unknown layer kind: malformed in a file of this minor version, a version error in a newer one. */
    CRAFT(wr32(q + rec0, 99), AE_ERR_FORMAT, "unknown kind 99");
    CRAFT((wr32(q + rec0, 99), q[10] = AE_FORMAT_VERSION_MINOR + 1), AE_ERR_VERSION, "unknown kind 99");
    CRAFT(wr32(q + rec0 + 4, 42), AE_ERR_FORMAT, "activation");
    /* Fields the kind does not use must be 0. */
    CRAFT(wr64(q + rec0 + 56, 5), AE_ERR_FORMAT, "not 0");
    CRAFT(q[rec0 + 64] = 1, AE_ERR_FORMAT, "not 0");
    CRAFT(wr32(q + rec0 + 8, 1u << 7), AE_ERR_FORMAT, "flags");
    /* Tied marks only encoder layers with a partner. */
    CRAFT(q[rec1 + 8] |= 4, AE_ERR_FORMAT, "tied");
    /* Penalties go through the builder's checks. */
    CRAFT((wr32(q + rec0 + 96, 1), memset(q + rec0 + 104, 0xFF, 8)), AE_ERR_FORMAT, "rho");
    /* The code must split encoder and decoder. */
    CRAFT(wr32(q + arch + 28, 0), AE_ERR_FORMAT, "code");
    CRAFT(wr32(q + arch + 28, 2), AE_ERR_FORMAT, "code");
    CRAFT(wr32(q + arch + 32, 3), AE_ERR_FORMAT, "mode");
    /* Messages stay on one line whatever the bytes. */
    CRAFT((q[arch - 16] = '\n', wr64(q + arch - 8, 1u << 20)), AE_ERR_FORMAT, "'?RCH'");
    CRAFT((q[meta + 12] = '\n', wr32(q + meta + 13, 0xFFFFFFFFu)), AE_ERR_FORMAT, "META");
    /* A section twice. */
    CRAFT(memcpy(q + arch - 16, "SETS", 4), AE_ERR_FORMAT, "twice");
#undef CRAFT
    free(q);
    free(p);
}

/* ---- allocation failures ---- */

static void test_load_allocation_failures(void **state) {
    (void)state;
    ae_model *src = build_conv(NULL);
    train(src, 4, 0, 2, NULL);
    OK(ae_model_set_meta(src, "a", "b"));
    OK(ae_model_set_meta(src, "c", "d"));
    char path[512];
    path_in(path, sizeof path, "walk.aem");
    OK(ae_model_save(src, path, AE_SAVE_CHECKPOINT));
    size_t n;
    unsigned char *buf = save_buf(src, AE_SAVE_CHECKPOINT, &n);
    /* A VAE with fixed eps (restored through their own allocation) from memory. */
    ae_model *vae = build_vae_conv_fixed_eps(NULL);
    train(vae, 4, 0, 2, NULL);
    size_t vn;
    unsigned char *vbuf = save_buf(vae, AE_SAVE_CHECKPOINT, &vn);
    for (int from_path = 0; from_path <= 2; from_path++) {
        long k = 0;
        for (;; k++) {
            test_alloc t = {0, 0, -1};
            ae_allocator a = test_allocator(&t);
            ae_config *c = load_cfg(&a);
            /* Counted from the load's first allocation, the config's own made. */
            long base = t.count;
            t.fail_at = base + k;
            ae_model *m = NULL;
            ae_status st = from_path == 1 ? ae_model_load(&m, path, c)
                           : from_path == 2 ? ae_model_load_buffer(&m, vbuf, vn, c)
                                            : ae_model_load_buffer(&m, buf, n, c);
            if (st == AE_OK) {
                assert_true(t.count - base <= k); /* every allocation index was tried */
                t.fail_at = -1;
                assert_same_outputs(from_path == 2 ? vae : src, m, 4);
                ae_model_destroy(m);
                ae_config_destroy(c);
                assert_int_equal(t.live, 0);
                break;
            }
            assert_int_equal(st, AE_ERR_OUT_OF_MEMORY);
            assert_null(m);
            assert_non_null(strstr(ae_config_last_error(c), "memory"));
            ae_config_destroy(c);
            assert_int_equal(t.live, 0);
        }
        assert_true(k > 10);
    }
    /* Saving: its two allocations fail cleanly and leave the file. */
    size_t before_n;
    unsigned char *before = read_all(path, &before_n);
    test_alloc t = {0, 0, -1};
    ae_allocator a = test_allocator(&t);
    ae_model *m = NULL;
    ae_config *c = load_cfg(&a);
    OK(ae_model_load(&m, path, c));
    ae_config_destroy(c);
    OK(ae_model_set_meta(m, "changed", "yes"));
    for (long k = 0; k < 2; k++) {
        t.fail_at = t.count + k;
        assert_int_equal(ae_model_save(m, path, AE_SAVE_MODEL), AE_ERR_OUT_OF_MEMORY);
        size_t now_n;
        unsigned char *now = read_all(path, &now_n);
        assert_int_equal(now_n, before_n);
        assert_memory_equal(now, before, now_n);
        free(now);
        assert_int_equal(dir_entries(), 1);
    }
    t.fail_at = -1;
    ae_model_destroy(m);
    assert_int_equal(t.live, 0);
    unlink(path);
    free(before);
    free(buf);
    free(vbuf);
    ae_model_destroy(vae);
    ae_model_destroy(src);
}

/* ---- atomic save ---- */

static void assert_file_is(const char *path, const char *content) {
    size_t n;
    unsigned char *p = read_all(path, &n);
    assert_non_null(p);
    assert_int_equal(n, strlen(content));
    assert_memory_equal(p, content, n);
    free(p);
}

static void test_atomic_save(void **state) {
    (void)state;
    ae_model *m = build_dense(NULL);
    char path[512];
    path_in(path, sizeof path, "model.aem");
    assert_int_equal(dir_entries(), 0);

    /* Every step failing: the old file survives, no temporary file is left. */
    const char *stages[] = {"open", "write", "fsync", "close", "rename"};
    for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++) {
        write_all(path, "old contents", 12);
        fail_stage = stages[i];
        ae_status st = ae_model_save(m, path, AE_SAVE_CHECKPOINT);
        fail_stage = NULL;
        assert_int_equal(st, AE_ERR_IO);
        assert_non_null(strstr(ae_model_last_error(m), path));
        assert_file_is(path, "old contents");
        assert_int_equal(dir_entries(), 1);
    }

    /* A real write failure: the file size limit. */
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = {100, old.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    ae_status st = ae_model_save(m, path, AE_SAVE_MODEL);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    assert_int_equal(st, AE_ERR_IO);
    assert_non_null(strstr(ae_model_last_error(m), "write"));
    assert_file_is(path, "old contents");
    assert_int_equal(dir_entries(), 1);

    /* The target is a directory: the rename fails, the temporary file goes. */
    char sub[512];
    path_in(sub, sizeof sub, "adir");
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(ae_model_save(m, sub, AE_SAVE_MODEL), AE_ERR_IO);
    assert_int_equal(dir_entries(), 2);
    /* Loading a directory or a missing file. */
    ae_model *l = NULL;
    ae_config *c = load_cfg(NULL);
    assert_int_equal(ae_model_load(&l, sub, c), AE_ERR_IO);
    assert_non_null(strstr(ae_config_last_error(c), sub));
    assert_non_null(strstr(ae_config_last_error(c), "is a directory"));
    /* Not a regular file (a FIFO, a directory, a link to either): refused
     * by path and kind, left as it was. */
    assert_int_equal(ae_model_save(m, sub, AE_SAVE_MODEL), AE_ERR_IO);
    assert_non_null(strstr(ae_model_last_error(m), sub));
    assert_non_null(strstr(ae_model_last_error(m), "it is a directory, not a regular file"));
    char fifo[512], link[512];
    path_in(fifo, sizeof fifo, "model.fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    path_in(link, sizeof link, "fifo-link.aem");
    assert_int_equal(symlink(fifo, link), 0);
    assert_int_equal(ae_model_save(m, fifo, AE_SAVE_MODEL), AE_ERR_IO);
    assert_non_null(strstr(ae_model_last_error(m), "it is a FIFO"));
    assert_int_equal(ae_model_save(m, link, AE_SAVE_MODEL), AE_ERR_IO);
    assert_non_null(strstr(ae_model_last_error(m), link));
    assert_non_null(strstr(ae_model_last_error(m), "it is a symbolic link to a FIFO"));
    struct stat fs;
    assert_int_equal(lstat(fifo, &fs), 0);
    assert_true(S_ISFIFO(fs.st_mode));
    assert_int_equal(dir_entries(), 4);
    unlink(link);
    unlink(fifo);
    /* Through a link to a file (a dangling one: the file is created). */
    path_in(link, sizeof link, "link.aem");
    assert_int_equal(symlink("linked.aem", link), 0);
    OK(ae_model_save(m, link, AE_SAVE_MODEL));
    assert_int_equal(lstat(link, &fs), 0);
    assert_true(S_ISLNK(fs.st_mode));
    char linked[512];
    path_in(linked, sizeof linked, "linked.aem");
    OK(ae_model_load(&l, linked, c));
    ae_model_destroy(l);
    l = NULL;
    unlink(link);
    unlink(linked);
    assert_int_equal(dir_entries(), 2);
    /* Loading a FIFO: refused at once (it used to wait for a writer; the
     * alarm fails the test rather than let it hang). */
    path_in(fifo, sizeof fifo, "load.fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    alarm(20);
    assert_int_equal(ae_model_load(&l, fifo, c), AE_ERR_IO);
    alarm(0);
    assert_non_null(strstr(ae_config_last_error(c), fifo));
    assert_non_null(strstr(ae_config_last_error(c), "is a FIFO"));
    assert_null(l);
    unlink(fifo);
    rmdir(sub);
    path_in(sub, sizeof sub, "missing/dir/model.aem");
    assert_int_equal(ae_model_save(m, sub, AE_SAVE_MODEL), AE_ERR_IO);
    assert_int_equal(ae_model_load(&l, sub, c), AE_ERR_IO);
    assert_non_null(strstr(ae_config_last_error(c), "No such file"));
    assert_null(l);

    /* Success replaces the old file, keeping its permission bits; a
     * relative path works too. */
    assert_int_equal(chmod(path, 0640), 0);
    OK(ae_model_save(m, path, AE_SAVE_MODEL));
    assert_int_equal(dir_entries(), 1);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0640);
    OK(ae_model_load(&l, path, c));
    ae_config_destroy(c);
    assert_same_model(m, l);
    ae_model_destroy(l);
    char cwd[512];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(tmpdir), 0);
    OK(ae_model_save(m, "relative.aem", AE_SAVE_MODEL));
    OK(ae_model_load(&l, "relative.aem", NULL));
    ae_model_destroy(l);
    unlink("relative.aem");
    assert_int_equal(chdir(cwd), 0);
    unlink(path);
    ae_model_destroy(m);
}

/* ---- golden files (committed, never regenerated) ---- */

/* What tests/fixtures/gen_golden.c computed from a golden file when it was
   made (its *.expected is one initializer of this). */
typedef struct golden_expect {
    size_t batch;                   /* inputs encoded: test_fill seed 2026, [0, 1] */
    float code[16];                 /* their codes */
    size_t n_code;
    float decoded[64];              /* ae_decode of 2 codes: seed 2027, [-1, 1] */
    size_t n_decoded;
    const char *layer_flags;        /* per layer: T tied, F frozen, B both, . neither */
    int has_theta;                  /* a batch top-k layer's threshold, as loaded */
    double theta;
    uint64_t steps_before;          /* the step count loaded */
    float loss;                     /* then one step on 4 inputs: seed 2028, [0, 1] */
    double recon, kl, l1;           /* its AE_STAT_LOSS_RECON, _KL, _L1 */
    int has_vae_kl;                 /* and AE_STAT_LOSS_VAE_KL for a VAE */
    double vae_kl;
    float params[64];               /* after it, per layer: W first, W last, b first */
    size_t n_params;
} golden_expect;

static void assert_close_value(double got, double expected, const char *name, const char *what) {
    if (fabs(got - expected) > 1e-6 + 1e-5 * fabs(expected)) {
        print_error("%s %s: got %.9g, expected %.9g\n", name, what, got, expected);
        fail();
    }
}

/* Relative tolerance 1e-5 (absolute 1e-6 near 0): on one machine the values
   are bitwise those stored, but OpenBLAS's kernels differ between CPUs. */
static void golden(const char *name, const golden_expect *e) {
    char path[1024], what[64];
    const char *root = getenv("AE_SOURCE_ROOT");
    snprintf(path, sizeof path, "%s/tests/fixtures/%s", root ? root : ".", name);
    ae_model *m = NULL;
    ae_config *c = load_cfg(NULL);
    ae_status st = ae_model_load(&m, path, c);
    if (st) print_error("%s\n", ae_config_last_error(c));
    OK(st);
    ae_config_destroy(c);
    const char *v = NULL;
    OK(ae_model_get_meta(m, "libae.golden", &v));
    assert_non_null(v);
    size_t in = ae_model_input_size(m), code = ae_model_code_size(m);
    size_t out = ae_model_output_size(m), layers = ae_model_layer_count(m);
    float *x = malloc(4 * in * sizeof(float)), *y = malloc(64 * 64 * sizeof(float));

    /* The encoder, then the decoder, in the mode the file stores. */
    assert_int_equal(e->batch * code, e->n_code);
    test_fill(x, e->batch * in, 2026, 0, 1);
    OK(ae_encode(m, x, e->batch, y));
    snprintf(what, sizeof what, "%s code", name);
    assert_close_arrays(y, e->code, e->n_code, 1e-5, 1e-6, what);
    assert_int_equal(2 * out, e->n_decoded);
    test_fill(x, 2 * code, 2027, -1, 1);
    OK(ae_decode(m, x, 2, y));
    snprintf(what, sizeof what, "%s decoded", name);
    assert_close_arrays(y, e->decoded, e->n_decoded, 1e-5, 1e-6, what);

    /* The layer flags and state. */
    assert_int_equal(strlen(e->layer_flags), layers);
    for (size_t l = 0; l < layers; l++) {
        char f = e->layer_flags[l];
        assert_int_equal(ae_model_is_tied(m, l), f == 'T' || f == 'B');
        assert_int_equal(ae_model_is_frozen(m, l), f == 'F' || f == 'B');
    }
    double theta;
    st = ae_model_get_stat(m, AE_STAT_BATCH_TOPK_THRESHOLD, &theta);
    assert_int_equal(st == AE_OK, e->has_theta);
    if (e->has_theta) assert_close_value(theta, e->theta, name, "theta");
    assert_int_equal(ae_model_step_count(m), e->steps_before);

    /* One more training step: the settings, optimizer state, RNG and (for
       a VAE) warm-up and fixed eps of a checkpoint all enter it. */
    float loss;
    test_fill(x, 4 * in, 2028, 0, 1);
    OK(ae_train_step(m, x, NULL, 4, &loss));
    assert_close_value(loss, e->loss, name, "loss");
    double s;
    OK(ae_model_get_stat(m, AE_STAT_LOSS_RECON, &s));
    assert_close_value(s, e->recon, name, "recon");
    OK(ae_model_get_stat(m, AE_STAT_LOSS_KL, &s));
    assert_close_value(s, e->kl, name, "KL penalty");
    OK(ae_model_get_stat(m, AE_STAT_LOSS_L1, &s));
    assert_close_value(s, e->l1, name, "L1 penalty");
    st = ae_model_get_stat(m, AE_STAT_LOSS_VAE_KL, &s);
    assert_int_equal(st == AE_OK, e->has_vae_kl);
    if (e->has_vae_kl) assert_close_value(s, e->vae_kl, name, "VAE KL");
    assert_int_equal(ae_model_step_count(m), e->steps_before + 1);
    float p[64];
    size_t np = 0;
    OK(golden_sample_params(m, y, 64 * 64, p, sizeof p / sizeof p[0], &np));
    assert_int_equal(np, e->n_params);
    snprintf(what, sizeof what, "%s params", name);
    assert_close_arrays(p, e->params, np, 1e-5, 1e-6, what);
    free(x);
    free(y);
    ae_model_destroy(m);
}

/* Written by libae 0.1.0 (format 1.0); see tests/fixtures/README.md. */
static const golden_expect golden_dense = {
#include "fixtures/golden_v1.expected"
};
static const golden_expect golden_conv = {
#include "fixtures/golden_conv_v1.expected"
};
/* Format 1.0 too, added to cover every layer kind, flag and penalty. */
static const golden_expect golden_vae = {
#include "fixtures/golden_vae_v1.expected"
};
static const golden_expect golden_sparse = {
#include "fixtures/golden_sparse_v1.expected"
};
static const golden_expect golden_convt = {
#include "fixtures/golden_convt_v1.expected"
};

static void test_golden_files(void **state) {
    (void)state;
    golden("golden_v1.aem", &golden_dense);
    golden("golden_conv_v1.aem", &golden_conv);
    golden("golden_vae_v1.aem", &golden_vae);
    golden("golden_sparse_v1.aem", &golden_sparse);
    golden("golden_convt_v1.aem", &golden_convt);
}

/* FITS (format 1.1): the position of an ae_fit run in a checkpoint. It
 * round-trips, is optional (a reader that lacks it skips it), belongs to
 * checkpoints only and is checked field by field. */
static void test_fit_state_section(void **state) {
    (void)state;
    ae_config *c = NULL;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_size(c, 3));
    OK(ae_config_add_dense(c, 2, AE_ACT_RELU));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_dense(c, 3, AE_ACT_IDENTITY));
    ae_model *m = finish(c);
    float x[10 * 3];
    for (int i = 0; i < 30; i++) x[i] = (float)(i % 7) / 7.0f;
    ae_dataset *ds = NULL;
    OK(ae_dataset_create(&ds, NULL));
    OK(ae_dataset_from_memory(ds, x, NULL, 10, 3, 1, 1, AE_DATA_BORROW));
    ae_fit_options o;
    ae_fit_options_init(&o);
    o.epochs = 2;
    o.batch_size = 4;
    o.restore_best = 1;
    o.patience = 5;
    /* The checkpoint of the last epoch, before the best is restored. */
    char path_[64];
    snprintf(path_, sizeof path_, "/tmp/ae_test_io_fits_%ld.aem", (long)getpid());
    o.checkpoint_path = path_;
    o.checkpoint_every = 2;
    o.checkpoint_unit = AE_CHECKPOINT_EPOCHS;
    OK(ae_fit(m, ds, &o));
    assert_int_equal(ae_fit_resume_point(m, NULL, NULL), AE_ERR_STATE); /* restored: dropped */
    ae_model_destroy(m);
    m = NULL;
    OK(ae_model_load(&m, path_, NULL));
    unlink(path_);
    size_t e = 0, b = 0;
    OK(ae_fit_resume_point(m, &e, &b));
    assert_int_equal(e, 2);
    size_t n, len;
    unsigned char *p = save_buf(m, AE_SAVE_CHECKPOINT, &n);
    assert_int_equal(p[10], AE_FORMAT_VERSION_MINOR);
    size_t fits = find_section(p, n, "FITS", &len);
    assert_int_equal(len, 192 + 4 * (m->nparams + m->nbuffers));
    assert_int_equal(rd32(p + fits - 12), 1); /* optional */
    ae_model *back = load_buf(p, n, NULL);
    OK(ae_fit_resume_point(back, &e, &b));
    assert_int_equal(e, 2);
    assert_int_equal(b, 0);
    size_t n2;
    unsigned char *p2 = save_buf(back, AE_SAVE_CHECKPOINT, &n2);
    assert_int_equal(n, n2);
    assert_memory_equal(p, p2, n);
    free(p2);
    ae_model_destroy(back);
    /* A model file has none. */
    unsigned char *mf = save_buf(m, AE_SAVE_MODEL, &n2);
    for (size_t i = 0; i + 4 <= n2; i++) assert_false(memcmp(mf + i, "FITS", 4) == 0);
    free(mf);

    unsigned char *q = malloc(n);
#define FITS_CRAFT(change, code, text)                                                             \
    do {                                                                                           \
        memcpy(q, p, n);                                                                           \
        change;                                                                                    \
        fix_crc(q, n);                                                                             \
        expect_refused(q, n, code, text);                                                          \
    } while (0)
    FITS_CRAFT(wr64(q + fits + 8, 1), AE_ERR_FORMAT, "step count");
    FITS_CRAFT(wr32(q + fits, 8), AE_ERR_FORMAT, "FITS");
    FITS_CRAFT((wr32(q + fits, 8), q[10] = AE_FORMAT_VERSION_MINOR + 1), AE_ERR_VERSION, "FITS");
    FITS_CRAFT(wr64(q + fits + 24, 0), AE_ERR_FORMAT, "batch size");
    FITS_CRAFT(wr64(q + fits + 48, 4), AE_ERR_FORMAT, "beyond");
    FITS_CRAFT(memset(q + fits + 64, 0, 32), AE_ERR_FORMAT, "RNG");
    FITS_CRAFT(memset(q + fits + 96, 0xFF, 8), AE_ERR_FORMAT, "losses");
    FITS_CRAFT(wr64(q + fits + 176, 1), AE_ERR_FORMAT, "best copy");
    FITS_CRAFT(memset(q + fits + 192, 0xFF, 4), AE_ERR_FORMAT, "not finite");
    /* The checkpoint flag cleared (and OPTM, TRAN left): refused before FITS is
       looked at; FITS alone in a model file is refused by name. */
    size_t olen, optm = find_section(p, n, "OPTM", &olen);
    size_t cut_from = optm - 16, mn;
    unsigned char *mq = splice(p, n, cut_from, "", 0, fits - 16 - cut_from, &mn);
    wr32(mq + 24, rd32(mq + 24) - 2);
    mq[12] = 0;
    fix_crc(mq, mn);
    expect_refused(mq, mn, AE_ERR_FORMAT, "FITS");
    free(mq);
    /* A reader without FITS skips it: the section removed, the checkpoint
       loads without a position. */
    size_t sn;
    unsigned char *sq = splice(p, n, fits - 16, "", 0, len + 16, &sn);
    wr32(sq + 24, rd32(sq + 24) - 1);
    fix_crc(sq, sn);
    back = load_buf(sq, sn, NULL);
    assert_int_equal(ae_fit_resume_point(back, NULL, NULL), AE_ERR_STATE);
    ae_model_destroy(back);
    free(sq);
#undef FITS_CRAFT
    free(q);
    free(p);
    ae_dataset_destroy(ds);
    ae_model_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_meta),
        cmocka_unit_test(test_roundtrip_every_kind),
        cmocka_unit_test(test_sample_shape_saved),
        cmocka_unit_test(test_checkpoint_resumes_bitwise),
        cmocka_unit_test(test_save_buffer_contract),
        cmocka_unit_test(test_load_reports_on_config),
        cmocka_unit_test(test_truncation_every_offset),
        cmocka_unit_test(test_every_bit_flip),
        cmocka_unit_test(test_wrong_magic_and_versions),
        cmocka_unit_test(test_missing_setting_takes_default),
        cmocka_unit_test(test_crafted_headers),
        cmocka_unit_test(test_load_allocation_failures),
        cmocka_unit_test(test_atomic_save),
        cmocka_unit_test(test_golden_files),
        cmocka_unit_test(test_fit_state_section),
    };
    return cmocka_run_group_tests_name("io", tests, setup_dir, teardown_dir);
}
