/* Tests of libae's own threads (src/core/pool.c, ae_model_set_threads):
 * the split covers every index once, and a run on 2 or 3 threads is
 * bitwise the run on one (parameters, optimizer state, losses, outputs). */
#include "test_util.h"

#include <libae/arch.h>
#include <libae/io.h>

#include "core/pool.h"

#define OK_STATUS(call) assert_int_equal((call), AE_OK)

typedef struct cover {
    unsigned char *hits;
    size_t align, n;
    int bad;
} cover;

static void mark(void *ctx, size_t lo, size_t hi) {
    cover *c = ctx;
    /* Inner bounds are multiples of the alignment. */
    if ((lo % c->align) != 0 || (hi != c->n && hi % c->align != 0) || lo >= hi) c->bad = 1;
    for (size_t i = lo; i < hi; i++) c->hits[i]++;
}

static void test_split_covers_once(void **state) {
    (void)state;
    const size_t ns[] = {0, 1, 15, 16, 17, 1000, 65537};
    const size_t aligns[] = {1, 16, 100};
    for (size_t a = 0; a < 3; a++)
        for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++)
            for (int t = 0; t <= 5; t++) {
                size_t n = ns[k];
                cover c = {calloc(n + 1, 1), aligns[a], n, 0};
                assert_non_null(c.hits);
                ae_pool_for(t, n, aligns[a], 7, mark, &c);
                assert_false(c.bad);
                for (size_t i = 0; i < n; i++) assert_int_equal(c.hits[i], 1);
                free(c.hits);
            }
    size_t len = 0;
    assert_int_equal(ae_pool_chunks(0, &len), 0);
    assert_int_equal(ae_pool_chunks(1, &len), 1);
    assert_true(ae_pool_chunks((size_t)1 << 24, &len) <= AE_POOL_CHUNKS);
    assert_int_equal(len % 16, 0);
}

static void test_set_threads_checks(void **state) {
    (void)state;
    ae_config *c = NULL;
    ae_model *m = NULL;
    OK_STATUS(ae_config_create(&c, NULL));
    OK_STATUS(ae_config_set_input_size(c, 8));
    OK_STATUS(ae_config_add_dense(c, 4, AE_ACT_RELU));
    OK_STATUS(ae_config_mark_code(c));
    OK_STATUS(ae_config_add_dense(c, 8, AE_ACT_SIGMOID));
    OK_STATUS(ae_model_create(&m, c));
    assert_int_equal(ae_model_set_threads(NULL, 1), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_threads(NULL), 0);
    OK_STATUS(ae_model_set_threads(m, 3));
    assert_int_equal(ae_model_set_threads(m, -1), AE_ERR_RANGE);
    assert_non_null(strstr(ae_model_last_error(m), "threads"));
    assert_int_equal(ae_model_set_threads(m, AE_MAX_THREADS + 1), AE_ERR_RANGE);
    /* A refused count changes nothing. */
#ifdef _OPENMP
    assert_int_equal(ae_model_threads(m), 3);
#else
    assert_int_equal(ae_model_threads(m), 1); /* no threads of its own without OpenMP */
#endif
    OK_STATUS(ae_model_set_threads(m, 0));
    assert_true(ae_model_threads(m) >= 1);
    ae_model_destroy(m);
    ae_config_destroy(c);
}

/* The model's whole state, as a file holds it. */
static unsigned char *state_of(ae_model *m, size_t *size) {
    assert_int_equal(ae_model_save_buffer(m, NULL, 0, size, AE_SAVE_CHECKPOINT), AE_ERR_RANGE);
    unsigned char *b = malloc(*size);
    assert_non_null(b);
    OK_STATUS(ae_model_save_buffer(m, b, *size, size, AE_SAVE_CHECKPOINT));
    return b;
}

/* Trains `arch` `steps` steps on `threads` threads; its state, losses and
 * reconstruction of the first batch. */
typedef struct run {
    unsigned char *state;
    size_t size;
    float loss[6];
    float *out;
} run;

static run train(const char *arch, int64_t opt, double momentum, size_t in, size_t batch,
                 int threads) {
    ae_config *c = NULL;
    ae_model *m = NULL;
    OK_STATUS(ae_config_create(&c, NULL));
    if (ae_config_from_arch(c, arch) != AE_OK) fail_msg("arch: %s", ae_config_last_error(c));
    OK_STATUS(ae_config_set_int(c, AE_P_OPTIMIZER, opt));
    OK_STATUS(ae_config_set_float(c, AE_P_MOMENTUM, momentum));
    OK_STATUS(ae_config_set_int(c, AE_P_SEED, 7));
    OK_STATUS(ae_model_create(&m, c));
    OK_STATUS(ae_model_set_threads(m, threads));
    float *x = malloc(in * batch * sizeof *x);
    assert_non_null(x);
    run r = {.out = malloc(in * batch * sizeof(float))};
    assert_non_null(r.out);
    for (int s = 0; s < 6; s++) {
        test_fill(x, in * batch, 100 + (uint32_t)s, 0.0f, 1.0f);
        OK_STATUS(ae_train_step(m, x, NULL, batch, &r.loss[s]));
    }
    OK_STATUS(ae_reconstruct(m, x, batch, r.out));
    r.state = state_of(m, &r.size);
    free(x);
    ae_model_destroy(m);
    ae_config_destroy(c);
    return r;
}

static void same_on_every_count(const char *arch, int64_t opt, double momentum, size_t in,
                                size_t batch) {
    run one = train(arch, opt, momentum, in, batch, 1);
    for (int t = 2; t <= 3; t++) {
        run r = train(arch, opt, momentum, in, batch, t);
        assert_memory_equal(r.loss, one.loss, sizeof one.loss);
        assert_memory_equal(r.out, one.out, in * batch * sizeof(float));
        assert_int_equal(r.size, one.size);
        assert_memory_equal(r.state, one.state, one.size);
        free(r.state);
        free(r.out);
    }
    free(one.state);
    free(one.out);
}

/* Wide enough that every pooled loop splits (batch 64 x 784 outputs). */
static const char DENSE[] = "input 784\n"
                            "dense 256 activation=relu\n"
                            "dense 32\n"
                            "code\n"
                            "dense 256 activation=tanh\n"
                            "dense 784 activation=sigmoid\n";

static void test_dense_adam_bitwise(void **state) {
    (void)state;
    same_on_every_count(DENSE, AE_OPT_ADAM, 0.0, 784, 64);
}

static void test_dense_sgd_momentum_bitwise(void **state) {
    (void)state;
    same_on_every_count(DENSE, AE_OPT_SGD, 0.9, 784, 64);
}

static const char CONV[] = "input 1 28 28\n"
                           "conv2d 16 3 stride=2 padding=1 activation=relu\n"
                           "batchnorm2d\n"
                           "conv2d 32 3 stride=2 padding=1 activation=relu\n"
                           "code\n"
                           "convtranspose2d 16 3 stride=2 padding=1 output_padding=1 "
                           "activation=relu\n"
                           "convtranspose2d 1 3 stride=2 padding=1 output_padding=1\n";

static void test_conv_adamw_bitwise(void **state) {
    (void)state;
    same_on_every_count(CONV, AE_OPT_ADAMW, 0.0, 784, 48);
}

/* Gaussian denoising: the draws stay one stream, the transform is split. */
static const char DENOISE[] = "input 785\n"
                              "dense 64 activation=relu\n"
                              "code\n"
                              "dense 785 activation=sigmoid\n"
                              "set noise_kind=gaussian noise_level=0.3 noise_clip=true\n";

static void test_gaussian_noise_bitwise(void **state) {
    (void)state;
    same_on_every_count(DENOISE, AE_OPT_ADAM, 0.0, 785, 63); /* an odd count of values */
}

/* BCE (from the logits) in chunks, and a VAE's sampling around it. */
static const char VAE[] = "input 784\n"
                          "dense 400 activation=relu\n"
                          "gaussian 20\n"
                          "dense 400 activation=relu\n"
                          "dense 784 activation=sigmoid\n"
                          "set loss=bce reduction=sum\n";

static void test_vae_bce_bitwise(void **state) {
    (void)state;
    same_on_every_count(VAE, AE_OPT_ADAM, 0.0, 784, 64);
}

/* Upsampling's planes are split over the threads, each with rows of its own. */
static const char UPSAMPLE[] = "input 3 16 16\n"
                               "conv2d 8 3 stride=2 padding=1 activation=relu\n"
                               "code\n"
                               "upsample 2 mode=bilinear align_corners=true\n"
                               "conv2d 8 3 padding=1 activation=relu\n"
                               "upsample 1\n"
                               "conv2d 3 3 padding=1 activation=sigmoid\n";

static void test_upsample_bitwise(void **state) {
    (void)state;
    same_on_every_count(UPSAMPLE, AE_OPT_ADAM, 0.0, 3 * 16 * 16, 96);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_covers_once),
        cmocka_unit_test(test_set_threads_checks),
        cmocka_unit_test(test_dense_adam_bitwise),
        cmocka_unit_test(test_dense_sgd_momentum_bitwise),
        cmocka_unit_test(test_conv_adamw_bitwise),
        cmocka_unit_test(test_upsample_bitwise),
        cmocka_unit_test(test_gaussian_noise_bitwise),
        cmocka_unit_test(test_vae_bce_bitwise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
