/* Architecture descriptions (src/model/arch.c, <libae/arch.h>): every layer
 * kind and activation round trips (describe -> parse -> create -> describe
 * gives the same text, the same parameter count and, with the same seed,
 * the same model file), for models built by text, by the builder calls and
 * loaded from the golden files; errors name the line and column and change
 * nothing; bounds come from the descriptors; mutated descriptions never
 * crash, and what parses prints back to text that parses to the same. */
#include "test_util.h"

#include <locale.h>
#include <stdio.h>

#include "model/model.h"

#define OK(x) assert_int_equal((x), AE_OK)

/* The model's description, allocated. */
static char *describe(const ae_model *m) {
    size_t n = 0;
    assert_int_equal(ae_model_describe(m, NULL, 0, &n), AE_ERR_RANGE);
    char *s = malloc(n + 1);
    assert_non_null(s);
    size_t n2 = 0;
    OK(ae_model_describe(m, s, n + 1, &n2));
    assert_int_equal(n, n2);
    assert_int_equal(strlen(s), n);
    return s;
}

static char *print_config(const ae_config *cfg) {
    size_t n = 0;
    assert_int_equal(ae_arch_print_config(cfg, NULL, 0, &n), AE_ERR_RANGE);
    char *s = malloc(n + 1);
    assert_non_null(s);
    OK(ae_arch_print_config(cfg, s, n + 1, &n));
    return s;
}

static ae_model *model_from_text(const char *text) {
    ae_config *cfg = NULL;
    ae_model *m = NULL;
    OK(ae_config_create(&cfg, NULL));
    ae_status st = ae_config_from_arch(cfg, text);
    if (st) fprintf(stderr, "%s\n--\n%s\n", ae_config_last_error(cfg), text);
    OK(st);
    st = ae_model_create(&m, cfg);
    if (st) fprintf(stderr, "create: %s\n--\n%s\n", ae_config_last_error(cfg), text);
    OK(st);
    ae_config_destroy(cfg);
    return m;
}

static unsigned char *save(const ae_model *m, size_t *n) {
    assert_int_equal(ae_model_save_buffer(m, NULL, 0, n, AE_SAVE_MODEL), AE_ERR_RANGE);
    unsigned char *b = malloc(*n);
    assert_non_null(b);
    OK(ae_model_save_buffer(m, b, *n, n, AE_SAVE_MODEL));
    return b;
}

/* describe(m) parses into a model with the same description, parameter
 * count and (same seed, same layers) the same file. Returns the text. */
static char *round_trip(const ae_model *m) {
    char *t1 = describe(m);
    ae_model *m2 = model_from_text(t1);
    char *t2 = describe(m2);
    if (strcmp(t1, t2) != 0) fprintf(stderr, "first:\n%s\nsecond:\n%s\n", t1, t2);
    assert_string_equal(t1, t2);
    assert_int_equal(ae_model_param_count(m), ae_model_param_count(m2));
    assert_int_equal(ae_model_layer_count(m), ae_model_layer_count(m2));
    assert_int_equal(ae_model_code_layer(m), ae_model_code_layer(m2));
    size_t n1, n2;
    unsigned char *f1 = save(m, &n1), *f2 = save(m2, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(f1, f2, n1);
    free(f1);
    free(f2);
    free(t2);
    ae_model_destroy(m2);
    return t1;
}

/* Descriptions that between them use every layer kind, every activation
 * (standalone and on a layer), every keyword, the aliases, penalties,
 * tying, mirroring and settings. */
static const char *const texts[] = {
    /* dense, tied, penalties, top-k, settings */
    "input 20\n"
    "linear 12 activation=relu\n"
    "dense 6 activation=sigmoid bias=false   # the code\n"
    "kl_sparsity 0.05 0.1 reduction=sum\n"
    "topk 3\n"
    "l1 1e-3\n"
    "code\n"
    "dense 12 activation=relu bias=false\n"
    "dense 20 activation=sigmoid\n"
    "tied\n"
    "set loss=bce reduction=sum optimizer=sgd lr=0.05 momentum=0.9 nesterov=true seed=7\n"
    "set noise_kind=gaussian noise_level=0.09 noise_clip=true grad_clip_norm=5 dead_window=50\n",
    /* a mirrored dense encoder, leaky slope, lifetime and batch top-k */
    "input 16\n"
    "dense 8 activation=leaky_relu slope=0.2\n"
    "lifetime_topk 2\n"
    "dense 4 activation=tanh\n"
    "batch_topk 2\n"
    "mirror activation=sigmoid\n"
    "set optimizer=adamw beta1=0.8 beta2=0.99 eps=1e-6 weight_decay=0\n",
    /* a VAE */
    "input 1 6 6\n"
    "flatten\n"
    "dense 10 activation=softplus\n"
    "gaussian 3\n"
    "code   # accepted after gaussian, which is the code\n"
    "dense 10 activation=elu\n"
    "dense 36 activation=sigmoid\n"
    "unflatten 1 6 6\n"
    "set vae_beta=0.5 vae_beta_warmup_steps=100 reduction=sum\n",
    /* image layers */
    "input 3 8 8\n"
    "conv2d 4 3 stride=1 padding=1 activation=gelu\n"
    "batchnorm2d momentum=0.2 eps=1e-3\n"
    "leaky_relu slope=0.3\n"
    "maxpool2d 2 padding=1\n"
    "conv2d 6 kernel=2 stride=2 bias=false\n"
    "batchnorm\n"
    "relu\n"
    "adaptive_avgpool2d\n"
    "flatten\n"
    "lifetime_topk fraction=0.5\n"
    "code\n"
    "dense 24 activation=identity\n"
    "batchnorm1d\n"
    "unflatten 6 2 2\n"
    "upsample 2 mode=bilinear align_corners=true\n"
    "convtranspose2d 4 3 stride=2 padding=1 output_padding=1 activation=tanh\n"
    "upsample 1\n"
    "conv_transpose2d 3 1 activation=sigmoid bias=false\n"
    "sigmoid\n"
    "identity\n"
    "tanh\n"
    "gelu\n"
    "softplus\n"
    "elu\n"
    "set noise_kind=salt_pepper noise_level=0.1 noise_mean=0.5 noise_value=0.25\n"
    "set noise_clip_lo=-1 noise_clip_hi=2 dampening=0.5\n",
};

static void test_round_trip_text(void **state) {
    (void)state;
    char *all = calloc(1, 1 << 16);
    assert_non_null(all);
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        ae_model *m = model_from_text(texts[i]);
        char *t = round_trip(m);
        strcat(all, t);
        free(t);
        ae_model_destroy(m);
    }
    /* Every kind and every activation was printed. */
    for (size_t k = 0; ae_layer_desc_at(k); k++) {
        const ae_layer_desc *d = ae_layer_desc_at(k);
        char line[64];
        snprintf(line, sizeof line, "\n%s", d->name);
        if (d->kind == AE_LAYER_ACTIVATION) continue; /* printed as the activation's name */
        if (!strstr(all, line)) fprintf(stderr, "kind %s never printed\n", d->name);
        assert_non_null(strstr(all, line));
    }
    for (int a = 0; ae_activation_name((ae_activation)a); a++) {
        char line[64], kw[64];
        snprintf(line, sizeof line, "\n%s\n", ae_activation_name((ae_activation)a));
        snprintf(kw, sizeof kw, "activation=%s", ae_activation_name((ae_activation)a));
        int standalone = strstr(all, line) != NULL ||
                         (a == AE_ACT_LEAKY_RELU && strstr(all, "\nleaky_relu slope="));
        if (!standalone || !strstr(all, kw))
            fprintf(stderr, "activation %s not printed both ways\n", ae_activation_name((ae_activation)a));
        assert_true(standalone);
        assert_non_null(strstr(all, kw));
    }
    /* Every attribute with its value, and the keywords. */
    const char *expect[] = {"kl_sparsity rho=0.05 weight=0.1 reduction=sum", "l1 weight=0.001",
                            "dense 6 activation=sigmoid bias=false", "maxpool2d 2 stride=2 padding=1",
                            "batchnorm momentum=0.2 eps=0.001", "batchnorm momentum=0.1 eps=1e-05",
                            "upsample 2 mode=bilinear align_corners=true", "upsample 1 mode=nearest\n",
                            "lifetime_topk k=0 fraction=0.5", "lifetime_topk k=2 fraction=0",
                            "conv_transpose2d 4 3 stride=2 padding=1 output_padding=1 activation=tanh",
                            "conv2d 6 2 stride=2 padding=0 activation=identity bias=false",
                            "leaky_relu slope=0.3\n", "dense 8 activation=leaky_relu slope=0.2",
                            "\ntied\n", "set noise_kind=salt_pepper", "set nesterov=true",
                            "set learning_rate=0.05", "set epsilon=1e-06", "set weight_decay=0\n",
                            "input 3 8 8\n", "input 20\n", "set seed=7\n", "gaussian 3\ndense 10"};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        if (!strstr(all, expect[i])) fprintf(stderr, "'%s' not in:\n%s", expect[i], all);
        assert_non_null(strstr(all, expect[i]));
    }
    /* A Gaussian code needs no `code` line; an AdamW default weight decay is not printed. */
    assert_null(strstr(all, "gaussian 3\ncode"));
    assert_null(strstr(all, "weight_decay=0.01"));
    free(all);
}

/* Models built by the builder calls (every kind, per-layer settings) describe
 * into text that builds the same model file. */
static void test_round_trip_builder(void **state) {
    (void)state;
    ae_config *cfg = NULL;
    ae_model *m = NULL;
    OK(ae_config_create(&cfg, NULL));
    OK(ae_config_set_input_shape(cfg, 2, 9, 9));
    OK(ae_config_add_conv2d(cfg, 4, 3, 2, 1, AE_ACT_LEAKY_RELU));
    OK(ae_config_layer_set_float(cfg, AE_LAST_LAYER, AE_LAYER_LEAKY_SLOPE, 0.125));
    OK(ae_config_add_batchnorm(cfg));
    OK(ae_config_layer_set_float(cfg, AE_LAST_LAYER, AE_LAYER_BN_MOMENTUM, 0.3));
    OK(ae_config_layer_set_float(cfg, AE_LAST_LAYER, AE_LAYER_BN_EPS, 1e-4));
    OK(ae_config_add_maxpool2d(cfg, 3, 0, 1));
    OK(ae_config_add_upsample(cfg, 3, AE_UPSAMPLE_NEAREST));
    OK(ae_config_add_avgpool_1x1(cfg));
    OK(ae_config_add_flatten(cfg));
    OK(ae_config_add_dense(cfg, 5, AE_ACT_SIGMOID));
    OK(ae_config_layer_set_int(cfg, AE_LAST_LAYER, AE_LAYER_BIAS, 0));
    OK(ae_config_add_kl_sparsity(cfg, AE_LAST_LAYER, 0.1, 0.5, AE_REDUCE_MEAN));
    OK(ae_config_add_topk(cfg, 2));
    OK(ae_config_add_lifetime_topk_fraction(cfg, 0.25));
    OK(ae_config_add_batch_topk(cfg, 1));
    OK(ae_config_add_l1_sparsity(cfg, AE_LAST_LAYER, 0.01));
    OK(ae_config_mark_code(cfg));
    OK(ae_config_add_dense(cfg, 4 * 3 * 3, AE_ACT_RELU));
    OK(ae_config_add_unflatten(cfg, 4, 3, 3));
    OK(ae_config_add_upsample(cfg, 2, AE_UPSAMPLE_BILINEAR));
    OK(ae_config_add_conv_transpose2d(cfg, 2, 3, 1, 1, 0, AE_ACT_IDENTITY));
    OK(ae_config_add_activation(cfg, AE_ACT_LEAKY_RELU));
    OK(ae_config_layer_set_float(cfg, AE_LAST_LAYER, AE_LAYER_LEAKY_SLOPE, 0.3));
    /* 6x6 -> 9x9: a 4x4 convolution of stride 1 and padding 3 */
    OK(ae_config_add_conv2d(cfg, 2, 4, 1, 3, AE_ACT_SIGMOID));
    OK(ae_config_set_int(cfg, AE_P_SEED, 99));
    OK(ae_config_set_float(cfg, AE_P_LEARNING_RATE, 0.003));
    OK(ae_model_create(&m, cfg));
    char *t = round_trip(m);
    assert_non_null(strstr(t, "conv2d 4 3 stride=2 padding=1 activation=leaky_relu slope=0.125\n"));
    assert_non_null(strstr(t, "maxpool2d 3 stride=3 padding=1\n"));
    assert_non_null(strstr(t, "leaky_relu slope=0.3\n"));
    assert_non_null(strstr(t, "set learning_rate=0.003\n"));
    free(t);
    size_t c = 0, h = 0, w = 0;
    OK(ae_model_sample_shape(m, &c, &h, &w));
    assert_true(c == 2 && h == 9 && w == 9);
    ae_model_destroy(m);
    ae_config_destroy(cfg);

    /* A mirrored, tied dense model; the description spells the decoder out. */
    OK(ae_config_create(&cfg, NULL));
    OK(ae_config_set_input_size(cfg, 10));
    OK(ae_config_add_dense(cfg, 6, AE_ACT_ELU));
    OK(ae_config_add_dense(cfg, 3, AE_ACT_IDENTITY));
    OK(ae_config_mirror_decoder(cfg, AE_ACT_SIGMOID));
    OK(ae_config_tie(cfg));
    OK(ae_model_create(&m, cfg));
    t = round_trip(m);
    assert_non_null(strstr(t, "code\ndense 6 activation=elu\ndense 10 activation=sigmoid\ntied\n"));
    /* Frozen layers and a partial tie are model state: told in comments. */
    OK(ae_model_untie_layers(m, 1, 1));
    OK(ae_model_freeze(m, 0, 1));
    free(t);
    t = describe(m);
    assert_null(strstr(t, "\ntied\n"));
    assert_non_null(strstr(t, "# frozen (ae_model_freeze): 0 1\n"));
    assert_non_null(strstr(t, "# tied (ae_model_tie_layers), encoder layers: 0\n"));
    free(t);
    ae_model_destroy(m);
    ae_config_destroy(cfg);
}

/* The golden model files of every release describe and rebuild. */
static void test_round_trip_golden(void **state) {
    (void)state;
    const char *root = getenv("AE_SOURCE_ROOT");
    if (!root) skip();
    const char *names[] = {"golden_v1.aem", "golden_conv_v1.aem", "golden_vae_v1.aem",
                           "golden_sparse_v1.aem", "golden_convt_v1.aem"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/tests/fixtures/%s", root, names[i]);
        ae_model *m = NULL;
        OK(ae_model_load(&m, p, NULL));
        char *t1 = describe(m);
        ae_model *m2 = model_from_text(t1);
        char *t2 = describe(m2);
        /* The same text but for the comments on frozen and tied layers. */
        char *strip = malloc(strlen(t1) + 1), *q = strip;
        for (const char *s = t1; *s;) {
            const char *e = strchr(s, '\n');
            size_t n = e ? (size_t)(e - s) + 1 : strlen(s);
            if (*s != '#') {
                memcpy(q, s, n);
                q += n;
            }
            s += n;
        }
        *q = '\0';
        if (strcmp(strip, t2) != 0) fprintf(stderr, "%s:\n%s\n--\n%s\n", names[i], t1, t2);
        assert_string_equal(strip, t2);
        if (!strstr(t1, "# tied")) assert_int_equal(ae_model_param_count(m), ae_model_param_count(m2));
        size_t a[3], b[3];
        OK(ae_model_sample_shape(m, &a[0], &a[1], &a[2]));
        OK(ae_model_sample_shape(m2, &b[0], &b[1], &b[2]));
        assert_memory_equal(a, b, sizeof a);
        free(strip);
        free(t1);
        free(t2);
        ae_model_destroy(m);
        ae_model_destroy(m2);
    }
}

/* Aliases build what the libae names build. */
static void test_aliases(void **state) {
    (void)state;
    const char *pairs[][2] = {
        {"input 4\nlinear 2\ncode\nlinear 4\n", "input 4\ndense 2\ncode\ndense 4\n"},
        {"input 1 4 4\nconv2d 2 3 padding=1\nbatchnorm2d\nadaptive_avgpool2d\ncode\ndense 32\n"
         "unflatten 2 4 4\nconvtranspose2d 1 3 padding=1\n",
         "input 1 4 4\nconv2d 2 3 padding=1\nbatchnorm\navgpool_1x1\ncode\ndense 32\n"
         "unflatten 2 4 4\nconv_transpose2d 1 3 padding=1\n"},
        {"input 4\ndense 2\nbatchnorm1d\ncode\ndense 4\nset lr=0.5 eps=0.25\n",
         "input 4\ndense 2\nbatchnorm\ncode\ndense 4\nset learning_rate=0.5 epsilon=0.25\n"},
        {"input 4\r\ndense 2 activation=relu\r\n\tcode  \r\n  dense 4 # x=1 y\n# only a comment\n",
         "input 4\ndense 2 activation=relu\ncode\ndense 4\n"},
        {"input 4\ndense 2\ncode\ndense 4\nleaky_relu\nset noise_clip=True nesterov=0\n",
         "input 4 1 1\ndense 2\ncode\ndense 4\nactivation activation=leaky_relu slope=0.01\n"
         "set noise_clip=1\n"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        ae_model *a = model_from_text(pairs[i][0]), *b = model_from_text(pairs[i][1]);
        char *ta = describe(a), *tb = describe(b);
        assert_string_equal(ta, tb);
        free(ta);
        free(tb);
        ae_model_destroy(a);
        ae_model_destroy(b);
    }
}

/* ---- errors ---- */

typedef struct bad_case {
    const char *text;
    ae_status st;
    const char *where; /* "line L, column C: " and the start of the message */
} bad_case;

static const bad_case bad[] = {
    {"input 4\nfoo 3\n", AE_ERR_FORMAT, "line 2, column 1: unknown layer kind or statement 'foo'"},
    {"input 4\n  dense 3 act=relu\n", AE_ERR_FORMAT, "line 2, column 11: dense has no argument 'act'"},
    {"input 4\ndense x\n", AE_ERR_FORMAT, "line 2, column 7: dense units takes an integer"},
    {"input 4\ndense 0\n", AE_ERR_RANGE, "line 2, column 7: dense units must be in [1, 16777216]"},
    {"input 4\ndense\n", AE_ERR_FORMAT, "line 2, column 1: dense needs units"},
    {"input 4\ndense 3 4\n", AE_ERR_FORMAT, "line 2, column 9: dense takes the values units"},
    {"input 4\ndense units=3 4\n", AE_ERR_FORMAT, "line 2, column 15: '4' follows name=value"},
    {"input 4\ndense 3 units=4\n", AE_ERR_FORMAT, "line 2, column 9: dense units is given twice"},
    {"input 4\ndense 3 activation=swish\n", AE_ERR_FORMAT, "line 2, column 20: unknown activation 'swish'"},
    {"input 4\ndense 3 activation=relu activation=tanh\n", AE_ERR_FORMAT,
     "line 2, column 25: the activation is given twice"},
    {"input 4\ndense 3 slope=-1\n", AE_ERR_RANGE, "line 2, column 15: slope must be in [0, 1000]"},
    {"input 4\ndense 3 bias=maybe\n", AE_ERR_FORMAT, "line 2, column 14: bias takes true or false"},
    {"input 4\ntopk 2 bias=false\n", AE_ERR_FORMAT, "line 2, column 8: topk has no argument 'bias'"},
    {"input 4\nflatten 3\n", AE_ERR_FORMAT, "line 2, column 9: flatten takes no values"},
    {"input 4\ndense 3 =4\n", AE_ERR_FORMAT, "line 2, column 9: '=' without a name"},
    {"input 4\ndense 3 units=\n", AE_ERR_FORMAT, "line 2, column 9: units= without a value"},
    {"input 4\nunits=3\n", AE_ERR_FORMAT, "line 2, column 1: a line starts with a layer kind"},
    {"input 1 8 8\nconv2d 2 3 stride=1.5\n", AE_ERR_FORMAT,
     "line 2, column 19: conv2d stride takes an integer, got '1.5'"},
    {"input 1 8 8\nconv2d 2 99\n", AE_ERR_RANGE, "line 2, column 10: conv2d kernel must be in [1, 64], got 99"},
    {"input 1 8 8\nconv2d 2 3 padding=99999999999999999999999\n", AE_ERR_RANGE,
     "line 2, column 20: conv2d padding: 9999"},
    {"input 1 8 8\nconv2d 2 9\n", AE_ERR_SHAPE, "line 2, column 1: conv2d kernel 9 does not fit"},
    {"input 1 8 8\nconv2d 2\n", AE_ERR_FORMAT, "line 2, column 1: conv2d needs kernel"},
    {"input 1 8 8\nbatchnorm eps=0\n", AE_ERR_RANGE, "line 2, column 15: batchnorm eps must be in [1.17549e-38, 1]"},
    {"input 1 8 8\nbatchnorm momentum=nan\n", AE_ERR_FORMAT, "line 2, column 20: batchnorm momentum takes a number"},
    {"input 1 8 8\nbatchnorm momentum=1e999\n", AE_ERR_RANGE, "line 2, column 20: batchnorm momentum must be finite"},
    {"input 1 8 8\nupsample 2 mode=cubic\n", AE_ERR_FORMAT,
     "line 2, column 17: upsample mode must be one of nearest, bilinear; got 'cubic'"},
    {"input 1 8 8\nupsample 2 align_corners=true\n", AE_ERR_FORMAT,
     "line 2, column 12: align_corners needs mode=bilinear"},
    {"input 1 8 8\nupsample 2 mode=bilinear align_corners=false\n", AE_ERR_UNSUPPORTED,
     "line 2, column 26: align_corners=false is not supported"},
    {"input 1 8 8\nconv_transpose2d 1 3 stride=2 output_padding=2\n", AE_ERR_RANGE,
     "line 2, column 1: conv_transpose2d output_padding must be smaller than the stride"},
    {"input 1 8 8\nmaxpool2d 2 padding=2\n", AE_ERR_RANGE, "line 2, column 1: maxpool2d padding must be at most"},
    {"input 4\nlifetime_topk\n", AE_ERR_RANGE, "line 2, column 1: lifetime_topk k must be in"},
    {"input 4\ntopk 5\n", AE_ERR_RANGE, "line 2, column 1: "},
    {"dense 4\n", AE_ERR_STATE, "line 1, column 1: set the input size"},
    {"input 4\ninput 4\n", AE_ERR_FORMAT, "line 2, column 1: a second input line (the first is line 1)"},
    {"input 0\n", AE_ERR_RANGE, "line 1, column 7: input channels must be in [1, 16777216]"},
    {"input 4096 4096 4096\n", AE_ERR_RANGE, "line 1, column 1: input shape 4096x4096x4096"},
    {"input 4\ncode\n", AE_ERR_STATE, "line 2, column 1: add encoder layers before the code"},
    {"input 4\ndense 2\ncode\ncode\n", AE_ERR_STATE, "line 4, column 1: the code is already marked"},
    {"input 4\ndense 2\ntied\ntied\n", AE_ERR_STATE, "line 4, column 1: "},
    {"input 4\ndense 2\nmirror\ndense 4\n", AE_ERR_STATE, "line 4, column 1: the decoder was mirrored"},
    {"input 4\ndense 2\nmirror activation=relu slope=2000\n", AE_ERR_RANGE, "line 3, column 30: slope must be in"},
    {"input 4\ndense 2\nkl_sparsity 0.05\n", AE_ERR_FORMAT, "line 3, column 1: kl_sparsity needs weight"},
    {"input 4\ndense 2\nkl_sparsity 1.5 1\n", AE_ERR_RANGE, "line 3, column 13: kl_sparsity rho must be in (0, 1]"},
    {"input 4\ndense 2\nkl_sparsity 1 1\n", AE_ERR_RANGE, "line 3, column 1: "},
    {"input 4\ndense 2\nkl_sparsity 0.5 1 reduction=max\n", AE_ERR_FORMAT,
     "line 3, column 29: kl_sparsity reduction must be one of mean, sum; got 'max'"},
    {"input 4\nl1 0.1\n", AE_ERR_STATE, "line 2, column 1: "},
    {"set\n", AE_ERR_FORMAT, "line 1, column 1: set needs name=value"},
    {"set lr\n", AE_ERR_FORMAT, "line 1, column 5: set takes name=value, got 'lr'"},
    {"set speed=3\n", AE_ERR_FORMAT, "line 1, column 5: unknown setting 'speed'"},
    {"set lr=-1\n", AE_ERR_RANGE, "line 1, column 8: learning_rate: AE_P_LEARNING_RATE must be in"},
    {"set loss=l2\n", AE_ERR_FORMAT, "line 1, column 10: loss must be one of mse, bce; got 'l2'"},
    {"set seed=1.5\n", AE_ERR_FORMAT, "line 1, column 10: seed takes an integer"},
    {"set seed=9223372036854775808\n", AE_ERR_RANGE, "line 1, column 10: seed: 9223372036854775808 is out of range"},
    {"set lr=0.1 learning_rate=0.2\n", AE_ERR_FORMAT, "line 1, column 12: learning_rate is given twice"},
    {"input 4\n\xff\xfe 3\n", AE_ERR_FORMAT, "line 2, column 1: unknown layer kind or statement '?\?'"},
};

static void test_errors(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ae_config *cfg = NULL;
        OK(ae_config_create(&cfg, NULL));
        char *before = print_config(cfg);
        ae_status st = ae_config_from_arch(cfg, bad[i].text);
        const char *msg = ae_config_last_error(cfg);
        if (st != bad[i].st || strncmp(msg, bad[i].where, strlen(bad[i].where)) != 0)
            fprintf(stderr, "case %zu: %s: got %s '%s', expected %s '%s...'\n", i, bad[i].text,
                    ae_status_name(st), msg, ae_status_name(bad[i].st), bad[i].where);
        assert_int_equal(st, bad[i].st);
        assert_true(strncmp(msg, bad[i].where, strlen(bad[i].where)) == 0);
        /* A failed call changes nothing. */
        char *after = print_config(cfg);
        assert_string_equal(before, after);
        free(before);
        free(after);
        ae_config_destroy(cfg);
    }
    /* On a config with layers and settings: a failure on a late line keeps them all. */
    ae_config *cfg = NULL;
    OK(ae_config_create(&cfg, NULL));
    OK(ae_config_from_arch(cfg, "input 6\ndense 4 activation=relu\nset seed=5\n"));
    char *before = print_config(cfg);
    assert_int_equal(ae_config_from_arch(cfg, "dense 3\nset seed=9 lr=2\ncode\nbogus\n"), AE_ERR_FORMAT);
    assert_string_equal(ae_config_last_error(cfg), "line 4, column 1: unknown layer kind or statement 'bogus'");
    char *after = print_config(cfg);
    assert_string_equal(before, after);
    /* ... and a success appends to them. */
    OK(ae_config_from_arch(cfg, "dense 3\ncode\ndense 6\n"));
    free(after);
    after = print_config(cfg);
    assert_string_equal(after, "input 6\ndense 4 activation=relu\ndense 3 activation=identity\ncode\n"
                               "dense 6 activation=identity\nset seed=5\n");
    free(before);
    free(after);
    /* NUL bytes and NULL. */
    assert_int_equal(ae_arch_parse(cfg, "dense 2\0x", 9), AE_ERR_FORMAT);
    assert_string_equal(ae_config_last_error(cfg), "line 1, column 8: a NUL byte");
    assert_int_equal(ae_config_from_arch(cfg, NULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_config_from_arch(NULL, "input 3"), AE_ERR_INVALID_ARG);
    /* An input line replaces the input set before, while there is no layer. */
    ae_config_destroy(cfg);
    OK(ae_config_create(&cfg, NULL));
    OK(ae_config_set_input_shape(cfg, 1, 2, 2));
    OK(ae_config_from_arch(cfg, "input 3 1 1\ndense 2\n"));
    after = print_config(cfg);
    assert_string_equal(after, "input 3\ndense 2 activation=identity\n");
    free(after);
    /* Too many words. */
    char longline[400] = "dense 2";
    for (int i = 0; i < 70; i++) strcat(longline, " x");
    assert_int_equal(ae_config_from_arch(cfg, longline), AE_ERR_FORMAT);
    assert_non_null(strstr(ae_config_last_error(cfg), "more than 64 words"));
    ae_config_destroy(cfg);
}

/* Out of memory at every allocation: an error, nothing changed, nothing leaked. */
static void test_out_of_memory(void **state) {
    (void)state;
    for (long k = 0;; k++) {
        test_alloc ta = {0, 0, k};
        ae_allocator a = test_allocator(&ta);
        ae_config *cfg = NULL;
        ta.fail_at = -1;
        OK(ae_config_create(&cfg, &a));
        OK(ae_config_set_input_size(cfg, 4));
        long base = ta.count;
        ta.fail_at = base + k;
        ae_status st = ae_config_from_arch(cfg, texts[0]);
        ta.fail_at = -1;
        if (st == AE_OK) {
            ae_config_destroy(cfg);
            assert_int_equal(ta.live, 0);
            break;
        }
        assert_int_equal(st, AE_ERR_OUT_OF_MEMORY);
        char *p = print_config(cfg);
        assert_string_equal(p, "input 4\n");
        free(p);
        ae_config_destroy(cfg);
        assert_int_equal(ta.live, 0);
    }
}

/* Every attribute's bounds, from its descriptor: a value just outside is
 * refused at its column; the attributes' own values at the bounds parse. */
static void test_bounds_from_descriptors(void **state) {
    (void)state;
    size_t checked = 0;
    for (size_t k = 0; ae_layer_desc_at(k); k++) {
        const ae_layer_desc *d = ae_layer_desc_at(k);
        for (size_t j = 0; j < d->nattrs; j++) {
            const ae_layer_attr *a = &d->attrs[j];
            char text[512], bad_value[64];
            int n = snprintf(text, sizeof text, "input 4\n%s",
                             d->kind == AE_LAYER_ACTIVATION ? "activation" : d->name);
            /* The other required attributes at their lowest value, by name. */
            for (size_t q = 0; q < d->nattrs; q++)
                if (q != j && !d->attrs[q].has_default && d->attrs[q].type != AE_ATTR_ENUM)
                    n += snprintf(text + n, sizeof text - (size_t)n, " %s=%.17g", d->attrs[q].name,
                                  d->attrs[q].lo + (d->attrs[q].lo_open ? 0.5 : 0.0));
            if (a->type == AE_ATTR_ENUM) snprintf(bad_value, sizeof bad_value, "no_such_value");
            else if (a->type == AE_ATTR_INT) snprintf(bad_value, sizeof bad_value, "%.0f", a->hi + 1);
            else snprintf(bad_value, sizeof bad_value, "%.17g", a->hi * 2 + 1);
            n += snprintf(text + n, sizeof text - (size_t)n, " %s=", a->name);
            size_t col = (size_t)n - strlen("input 4\n") + 1;
            snprintf(text + n, sizeof text - (size_t)n, "%s\n", bad_value);
            ae_config *cfg = NULL;
            OK(ae_config_create(&cfg, NULL));
            ae_status st = ae_config_from_arch(cfg, text);
            char where[64];
            snprintf(where, sizeof where, "line 2, column %zu: %s %s ", col, d->name, a->name);
            if (st != (a->type == AE_ATTR_ENUM ? AE_ERR_FORMAT : AE_ERR_RANGE) ||
                strncmp(ae_config_last_error(cfg), where, strlen(where)) != 0)
                fprintf(stderr, "%s-> %s %s\n", text, ae_status_name(st), ae_config_last_error(cfg));
            assert_int_equal(st, a->type == AE_ATTR_ENUM ? AE_ERR_FORMAT : AE_ERR_RANGE);
            assert_true(strncmp(ae_config_last_error(cfg), where, strlen(where)) == 0);
            /* The lower bound: below it (or at it, when open) too. */
            if (a->type != AE_ATTR_ENUM) {
                if (a->type == AE_ATTR_INT) snprintf(bad_value, sizeof bad_value, "%.0f", a->lo - 1);
                else snprintf(bad_value, sizeof bad_value, "%.17g", a->lo_open ? a->lo : a->lo - 1);
                snprintf(text + n, sizeof text - (size_t)n, "%s\n", bad_value);
                assert_int_equal(ae_config_from_arch(cfg, text), AE_ERR_RANGE);
                assert_true(strncmp(ae_config_last_error(cfg), where, strlen(where)) == 0);
            }
            ae_config_destroy(cfg);
            checked++;
        }
    }
    assert_true(checked >= 20);
}

/* ---- mutated descriptions ---- */

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Parses `text`; when it parses, its printed form must parse and print
 * the same (the printer's output is a fixed point); when it does not,
 * the message names a line. */
static int check_text(const char *text, size_t len) {
    ae_config *cfg = NULL;
    OK(ae_config_create(&cfg, NULL));
    ae_status st = ae_arch_parse(cfg, text, len);
    if (st) {
        const char *msg = ae_config_last_error(cfg);
        if (strncmp(msg, "line ", 5) != 0) {
            fputs("message without a line: ", stderr);
            fputs(msg, stderr);
        }
        assert_true(strncmp(msg, "line ", 5) == 0);
        ae_config_destroy(cfg);
        return 0;
    }
    char *p1 = print_config(cfg);
    ae_config *c2 = NULL;
    OK(ae_config_create(&c2, NULL));
    st = ae_config_from_arch(c2, p1);
    if (st) fprintf(stderr, "reprint does not parse: %s\n%s\n--from--\n%.*s\n", ae_config_last_error(c2),
                    p1, (int)len, text);
    OK(st);
    char *p2 = print_config(c2);
    if (strcmp(p1, p2)) fprintf(stderr, "%s\n--\n%s\n", p1, p2);
    assert_string_equal(p1, p2);
    free(p1);
    free(p2);
    ae_config_destroy(c2);
    ae_config_destroy(cfg);
    return 1;
}

static void test_mutations(void **state) {
    (void)state;
    static const char *const pieces[] = {
        " ", "\n", "=", "#", "0", "1", "-1", "3", "64", "65", "0.5", "1e-5", "1e999", "true", "false",
        "dense", "conv2d", "code", "tied", "mirror", "set", "input", "topk", "relu", "kernel=",
        "stride=", "activation=", "lr=", "\r", "\t", "gaussian 2", "flatten", "unflatten 1 2 2",
        "bias=false", "slope=", "mode=bilinear", "\xc3\xa9", "\x01"};
    uint64_t s = 12345;
    size_t parsed = 0, total = 0;
    char buf[4096];
    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
        for (int iter = 0; iter < 1500; iter++) {
            size_t len = strlen(texts[t]);
            memcpy(buf, texts[t], len);
            int edits = 1 + (int)(rng_next(&s) % 4);
            for (int e = 0; e < edits; e++) {
                size_t at = len ? (size_t)(rng_next(&s) % len) : 0;
                switch (rng_next(&s) % 4) {
                case 0: /* a byte changed */
                    if (len) buf[at] = (char)(rng_next(&s) & 0xff);
                    break;
                case 1: { /* bytes deleted */
                    size_t n = 1 + (size_t)(rng_next(&s) % 8);
                    if (at + n > len) n = len - at;
                    memmove(buf + at, buf + at + n, len - at - n);
                    len -= n;
                    break;
                }
                default: { /* a piece inserted */
                    const char *pc = pieces[rng_next(&s) % (sizeof pieces / sizeof pieces[0])];
                    size_t n = strlen(pc);
                    if (len + n >= sizeof buf) break;
                    memmove(buf + at + n, buf + at, len - at);
                    memcpy(buf + at, pc, n);
                    len += n;
                }
                }
            }
            parsed += (size_t)check_text(buf, len);
            total++;
        }
    }
    /* Some mutations keep a valid description (a comment, a number). */
    assert_true(parsed > total / 50);
    assert_true(parsed < total);
}

/* The API's edges: sizes, NULLs, the sample shape. */
static void test_describe_api(void **state) {
    (void)state;
    ae_model *m = model_from_text("input 12\nunflatten 3 2 2\nflatten\ndense 2\ncode\ndense 12\n");
    size_t n = 0, n2 = 0;
    assert_int_equal(ae_model_describe(m, NULL, 0, &n), AE_ERR_RANGE);
    assert_true(n > 20);
    char *buf = malloc(n + 1);
    memset(buf, 'x', n + 1);
    assert_int_equal(ae_model_describe(m, buf, n, &n2), AE_ERR_RANGE);
    assert_int_equal(n2, n);
    assert_int_equal(buf[0], 'x'); /* nothing written */
    assert_non_null(strstr(ae_model_last_error(m), "bytes"));
    OK(ae_model_describe(m, buf, n + 1, &n2));
    assert_int_equal(buf[n], '\0');
    assert_true(strncmp(buf, "input 12\nunflatten 3 2 2\n", 25) == 0);
    assert_int_equal(ae_model_describe(NULL, buf, n + 1, &n2), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_describe(m, buf, n + 1, NULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_describe(m, NULL, 5, &n2), AE_ERR_INVALID_ARG);
    free(buf);
    /* The first layer unflattens the vector input: that is the sample's shape. */
    size_t c = 0, h = 0, w = 0;
    OK(ae_model_sample_shape(m, &c, &h, &w));
    assert_true(c == 3 && h == 2 && w == 2);
    OK(ae_model_sample_shape(m, NULL, NULL, NULL));
    assert_int_equal(ae_model_sample_shape(NULL, &c, &h, &w), AE_ERR_INVALID_ARG);
    ae_model_destroy(m);
    m = model_from_text("input 7\ndense 2\ncode\ndense 7\n");
    OK(ae_model_sample_shape(m, &c, &h, &w));
    assert_true(c == 7 && h == 1 && w == 1);
    ae_model_destroy(m);
}

/* Numbers mean the same in a locale with a decimal comma. */
static void test_locale(void **state) {
    (void)state;
    if (!setlocale(LC_NUMERIC, "de_DE.UTF-8") && !setlocale(LC_NUMERIC, "fr_FR.UTF-8")) skip();
    ae_model *m = model_from_text("input 4\ndense 2\nbatchnorm momentum=0.25\ncode\ndense 4\nset lr=0.5\n");
    char *t = describe(m);
    setlocale(LC_NUMERIC, "C");
    assert_non_null(strstr(t, "momentum=0.25 eps=1e-05"));
    assert_non_null(strstr(t, "set learning_rate=0.5"));
    free(t);
    ae_model_destroy(m);
}

/* docs/arch.md's reference part is what the descriptors and tables say:
 * a kind, an attribute, a bound or a default the page lacks fails here.
 * On a mismatch the expected text is written to arch_reference.md in the
 * build directory (copy it between the markers). */
static void test_docs_reference(void **state) {
    (void)state;
    const char *root = getenv("AE_SOURCE_ROOT"), *build = getenv("AE_BUILD_ROOT");
    if (!root) skip();
    char p[1024];
    snprintf(p, sizeof p, "%s/docs/arch.md", root);
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    static char doc[1 << 17];
    size_t n = fread(doc, 1, sizeof doc - 1, f);
    fclose(f);
    doc[n] = '\0';
    const char *begin = "<!-- reference: generated from the descriptors (tests/test_arch.c) -->\n",
               *end = "<!-- end of the reference -->";
    char *b = strstr(doc, begin), *e = b ? strstr(b, end) : NULL;
    assert_non_null(b);
    assert_non_null(e);
    b += strlen(begin);
    *e = '\0';
    size_t len = 0;
    assert_int_equal(ae_arch_reference(NULL, 0, &len), AE_ERR_RANGE);
    char *want = malloc(len + 1);
    assert_non_null(want);
    OK(ae_arch_reference(want, len + 1, &len));
    if (strcmp(b, want) != 0) {
        snprintf(p, sizeof p, "%s/arch_reference.md", build ? build : ".");
        FILE *o = fopen(p, "wb");
        if (o) {
            fputs(want, o);
            fclose(o);
        }
        fprintf(stderr, "docs/arch.md's reference is out of date: the expected text is in %s\n", p);
    }
    assert_string_equal(b, want);
    free(want);
    /* The page's examples build models. */
    size_t examples = 0;
    for (char *q = strstr(doc, "\n```\n"); q && q < b; q = strstr(q, "\n```\n")) {
        char *start = q + 5, *stop = strstr(start, "\n```\n");
        assert_non_null(stop);
        *stop = '\0';
        ae_model *m = model_from_text(start);
        ae_model_destroy(m);
        examples++;
        q = stop + 4;
    }
    assert_true(examples >= 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_text),
        cmocka_unit_test(test_round_trip_builder),
        cmocka_unit_test(test_round_trip_golden),
        cmocka_unit_test(test_aliases),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_bounds_from_descriptors),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_describe_api),
        cmocka_unit_test(test_locale),
        cmocka_unit_test(test_docs_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
