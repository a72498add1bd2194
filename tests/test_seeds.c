/* The seeds' models as architecture descriptions (the .arch files of examples/arch,
 * docs/seeds.md): every file parses, builds a model whose parameter count
 * is PyTorch's (the numbers examples/arch/seeds_torch.py prints for the
 * PyTorch twins), describes itself back into the same model, and trains a
 * few steps on small random data with finite, falling losses. Seed 003's
 * greedy layer-wise training runs its stages on the two greedy files with
 * the stacking calls the tool's --greedy makes. */
#include "test_util.h"

#include <dirent.h>

#define OK(x) assert_int_equal((x), AE_OK)

typedef struct seed_case {
    const char *name;  /* examples/arch/<name>.arch */
    size_t torch_count; /* sum(p.numel()) of the PyTorch twin */
    size_t batch, steps;
} seed_case;

/* examples/arch/seeds_torch.py --c gives the counts. */
static const seed_case CASES[] = {
    {"seed000_basic", 419120, 8, 8},
    {"seed000_denoising", 419120, 8, 8},
    {"seed000_dropout", 419120, 8, 8},
    {"seed000_stacked", 435536, 8, 8},
    {"seed000_conv", 210369, 8, 8},
    {"seed000_vae", 652824, 8, 8},
    {"seed001_dense", 550704, 8, 8},
    {"seed001_rgb_conv", 1829251, 4, 8},
    {"seed002_conv_bn", 23813, 8, 8},
    {"seed003_topk", 101200, 8, 8},
    {"seed003_kl", 101200, 8, 8},
    {"seed003_lifetime", 101200, 8, 8},
    {"seed003_tied", 201744, 8, 8},
    {"seed003_greedy_stage1", 402448, 8, 8},
    {"seed003_greedy", 435536, 8, 8},
    {"seed003_conv_maxpool", 108368, 8, 8},
    {"seed004_dense_sum", 322804, 8, 8},
    {"seed004_conv", 13912707, 2, 2},
    {"seed004_vae", 326824, 8, 8},
};
#define NCASES (sizeof CASES / sizeof CASES[0])

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        fail();
    }
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n > 0);
    rewind(f);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

static const char *arch_dir(char *buf, size_t n) {
    const char *root = getenv("AE_SOURCE_ROOT");
    if (!root) return NULL;
    snprintf(buf, n, "%s/examples/arch", root);
    return buf;
}

static ae_model *model_from_text(const char *text, const char *what) {
    ae_config *cfg = NULL;
    ae_model *m = NULL;
    OK(ae_config_create(&cfg, NULL));
    ae_status st = ae_config_from_arch(cfg, text);
    if (st) fprintf(stderr, "%s: %s\n", what, ae_config_last_error(cfg));
    OK(st);
    st = ae_model_create(&m, cfg);
    if (st) fprintf(stderr, "%s: create: %s\n", what, ae_config_last_error(cfg));
    OK(st);
    ae_config_destroy(cfg);
    return m;
}

static ae_model *load_case(const char *name) {
    char dir[2048], path[4096];
    assert_non_null(arch_dir(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/%s.arch", dir, name);
    char *text = read_text(path);
    ae_model *m = model_from_text(text, path);
    free(text);
    return m;
}

/* `steps` training steps on one batch; every loss finite, the last below the first. */
static void train_some(ae_model *m, const float *x, size_t batch, size_t steps, const char *what,
                       float *first, float *last) {
    for (size_t s = 0; s < steps; s++) {
        float loss = NAN;
        ae_status st = ae_train_step(m, x, NULL, batch, &loss);
        if (st) fprintf(stderr, "%s step %zu: %s\n", what, s, ae_model_last_error(m));
        OK(st);
        assert_true(isfinite(loss));
        if (s == 0) *first = loss;
        *last = loss;
    }
    if (!(*last < *first)) fprintf(stderr, "%s: loss %g -> %g\n", what, *first, *last);
    assert_true(*last < *first);
}

/* Every file in examples/arch is a case, and every case a file. */
static void test_every_file_listed(void **state) {
    (void)state;
    char dir[2048];
    if (!arch_dir(dir, sizeof dir)) skip();
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t found = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".arch") != 0) continue;
        int listed = 0;
        for (size_t i = 0; i < NCASES; i++)
            if (strlen(CASES[i].name) == n - 5 && strncmp(CASES[i].name, e->d_name, n - 5) == 0)
                listed = 1;
        if (!listed) fprintf(stderr, "examples/arch/%s has no case in tests/test_seeds.c\n", e->d_name);
        assert_true(listed);
        found++;
    }
    closedir(d);
    assert_int_equal(found, NCASES);
}

/* Parse, build, PyTorch's count, describe back to the same model, train. */
static void test_seed_models(void **state) {
    (void)state;
    char dir[2048];
    if (!arch_dir(dir, sizeof dir)) skip();
    for (size_t i = 0; i < NCASES; i++) {
        const seed_case *c = &CASES[i];
        ae_model *m = load_case(c->name);
        size_t count = ae_model_param_count(m);
        if (count != c->torch_count)
            fprintf(stderr, "%s: libae %zu parameters, PyTorch %zu\n", c->name, count,
                    c->torch_count);
        assert_int_equal(count, c->torch_count);

        /* `ae info --arch` of the model builds the same architecture. */
        size_t n = 0;
        assert_int_equal(ae_model_describe(m, NULL, 0, &n), AE_ERR_RANGE);
        char *text = malloc(n + 1);
        assert_non_null(text);
        OK(ae_model_describe(m, text, n + 1, &n));
        ae_model *m2 = model_from_text(text, c->name);
        assert_int_equal(ae_model_param_count(m2), count);
        assert_int_equal(ae_model_layer_count(m2), ae_model_layer_count(m));
        assert_int_equal(ae_model_code_layer(m2), ae_model_code_layer(m));
        ae_model_destroy(m2);
        free(text);

        size_t d = ae_model_input_size(m);
        assert_int_equal(ae_model_output_size(m), d);
        float *x = malloc(c->batch * d * sizeof *x);
        assert_non_null(x);
        test_fill(x, c->batch * d, 1000u + (uint32_t)i, 0.0f, 1.0f);
        float first = 0, last = 0;
        train_some(m, x, c->batch, c->steps, c->name, &first, &last);
        printf("%-22s %9zu parameters  loss %.5g -> %.5g in %zu steps of batch %zu\n", c->name,
               count, first, last, c->steps, c->batch);
        free(x);
        ae_model_destroy(m);
    }
}

/* The seeds' semantics: Gaussian noise x + 0.3 * randn (the level is the
 * standard deviation) in seeds 000 and 002, the KL penalty averaged over
 * the code units in seed 003. */
static void test_seed_semantics(void **state) {
    (void)state;
    char dir[2048];
    if (!arch_dir(dir, sizeof dir)) skip();
    static const char *const gaussian[] = {"seed000_denoising", "seed002_conv_bn"};
    for (size_t i = 0; i < 2; i++) {
        ae_model *m = load_case(gaussian[i]);
        int64_t kind = 0;
        double level = 0;
        OK(ae_model_get_int(m, AE_P_NOISE_KIND, &kind));
        OK(ae_model_get_float(m, AE_P_NOISE_LEVEL, &level));
        assert_int_equal(kind, AE_NOISE_GAUSSIAN);
        if (fabs(level - 0.3) > 1e-12) fprintf(stderr, "%s: noise level %g\n", gaussian[i], level);
        assert_true(fabs(level - 0.3) <= 1e-12);
        ae_model_destroy(m);
    }
    static const char *const kl[] = {"seed003_kl", "seed003_tied"};
    for (size_t i = 0; i < 2; i++) {
        ae_model *m = load_case(kl[i]);
        size_t n = 0;
        assert_int_equal(ae_model_describe(m, NULL, 0, &n), AE_ERR_RANGE);
        char *text = malloc(n + 1);
        assert_non_null(text);
        OK(ae_model_describe(m, text, n + 1, &n));
        const char *line = strstr(text, "kl_sparsity");
        assert_non_null(line);
        const char *end = strchr(line, '\n');
        assert_non_null(end);
        const char *red = strstr(line, "reduction=mean");
        assert_true(red && red < end);
        free(text);
        ae_model_destroy(m);
    }
}

/* Seed 003's greedy layer-wise training on the two greedy files, as `ae
 * train --greedy --layers 256,64` stages it: the frozen outer layers do not
 * move in stage 2, the tied inner pair shares one weight, and the last
 * stage trains everything untied. */
static void test_greedy_stages(void **state) {
    (void)state;
    char dir[2048];
    if (!arch_dir(dir, sizeof dir)) skip();
    enum { B = 8, D = 784 };
    float *x = malloc(B * D * sizeof *x);
    assert_non_null(x);
    test_fill(x, B * D, 77u, 0.0f, 1.0f);
    float first, last;

    ae_model *shallow = load_case("seed003_greedy_stage1");
    train_some(shallow, x, B, 6, "greedy stage 1", &first, &last);

    ae_model *deep = load_case("seed003_greedy");
    size_t nl = ae_model_layer_count(deep);
    assert_int_equal(nl, 4);
    OK(ae_model_copy_outer(deep, shallow));
    OK(ae_model_freeze(deep, 0, 0));
    OK(ae_model_freeze(deep, nl - 1, nl - 1));
    OK(ae_model_tie_layers(deep, 1, 1));
    assert_true(ae_model_is_tied(deep, 2));
    size_t outer = 784 * 256;
    float *w0 = malloc(outer * sizeof *w0), *w0_after = malloc(outer * sizeof *w0);
    assert_non_null(w0);
    assert_non_null(w0_after);
    OK(ae_model_get_weights(shallow, 0, w0, outer));
    train_some(deep, x, B, 6, "greedy stage 2", &first, &last);
    OK(ae_model_get_weights(deep, 0, w0_after, outer));
    assert_memory_equal(w0, w0_after, outer * sizeof *w0); /* frozen: copied, not moved */

    OK(ae_model_unfreeze(deep, 0, AE_LAST_LAYER));
    OK(ae_model_untie(deep));
    assert_false(ae_model_is_tied(deep, 2));
    assert_int_equal(ae_model_param_count(deep), 435536);
    train_some(deep, x, B, 6, "greedy stage 3", &first, &last);
    OK(ae_model_get_weights(deep, 0, w0_after, outer));
    assert_true(memcmp(w0, w0_after, outer * sizeof *w0) != 0); /* fine-tuned */

    free(w0);
    free(w0_after);
    free(x);
    ae_model_destroy(deep);
    ae_model_destroy(shallow);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_file_listed),
        cmocka_unit_test(test_seed_models),
        cmocka_unit_test(test_seed_semantics),
        cmocka_unit_test(test_greedy_stages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
