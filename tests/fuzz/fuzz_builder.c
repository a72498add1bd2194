/* libFuzzer target for the config builder and every model call. An input
 * is a program: builder calls (ae_config_*: layers of every kind with
 * fuzzed settings, settings, shape, optimizer, loss, sparsity, VAE, tying,
 * mirroring), ae_model_create, then model calls (training steps on small
 * finite batches, evaluate, encode, decode, the VAE calls, weights,
 * settings, tying, freezing, copying, metadata, ae_fit, save/load,
 * checkpoint resume). Any call may be made to run out of memory at its
 * n-th allocation (through the allocator hook). It checks:
 *  - a failed call changes nothing: a failed builder call leaves the
 *    config's settings as they were, and the config builds the same model
 *    as a second config given only the calls that succeeded; a failed model
 *    call leaves the model's checkpoint bytes (parameters, optimizer and
 *    layer state, RNG, step count, settings, flags, statistics, metadata)
 *    as they were, and leaves a one-line message;
 *  - a model that saves loads (after every successful call), and
 *    save/load/save gives the same bytes, model file and checkpoint;
 *  - a loaded model file encodes bitwise as the model it came from;
 *  - a checkpoint resumes bitwise: the loaded model's next steps give the
 *    same losses and the same checkpoint bytes as the original's.
 * A violation aborts with a line on stderr saying which. Sizes stay tiny
 * (features <= 108, batch <= 4) so that an execution takes milliseconds.
 *
 * Input layout: a header byte (0xff: the config's allocation fails), then
 * operations: one byte chooses one (modulo their number), the bytes after
 * it are its arguments; past the end every byte reads as 0. Builder operations come first, until B_CREATE (or the
 * end of the input, or 24 of them); then model operations, at most 64. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libae/ae.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ------------------------------------------------------------------------
 * Known defects, once avoided while their fixes were made: the guards are
 * off (every defect below is fixed; the seeds corpus_builder/kd_*.bin reach
 * them and must pass); FUZZ_BUILDER_GUARDS=1 turns them back on, to tell a
 * regression of one of these from a new finding. The number of times each
 * guard acted is printed at exit; FUZZ_BUILDER_KD_DIR names a directory
 * where the inputs that met a guard are kept.
 * ------------------------------------------------------------------------ */
enum {
    /* Item 6: a top-k layer right after a top-k layer; the first one reads
     * gradient entries the second never wrote. The builder does not add it. */
    KD_TOPK_PAIR,
    /* Item 7: a step returns AE_OK and leaves a non-finite parameter,
     * optimizer or layer state (BatchNorm running variance overflowing
     * float, Adam with a float epsilon of 0, Adam's second moment g*g
     * overflowing float for a finite gradient over 1.8e19), so the saved
     * file does not load. The input ends there instead of aborting. */
    KD_NONFINITE_STATE,
    /* Item 7: a float setting accepted in double that is 0, subnormal or
     * infinite as the float it is used as (AE_P_EPSILON = 1e-50). Not set. */
    KD_FLOAT_RANGE,
    KD_COUNT
};
static const char *const kd_names[KD_COUNT] = {"topk-after-topk", "non-finite-state-after-ok",
                                               "float-setting-range"};
static int guards_on = 1;
static int trace; /* FUZZ_BUILDER_TRACE=1: each call and its status on stderr */
static unsigned long kd_hits[KD_COUNT];

static const char *kd_dir; /* FUZZ_BUILDER_KD_DIR: inputs that met a guard are kept there */
static const uint8_t *cur_data;
static size_t cur_size;

/* Keeps the current input as <dir>/<defect>-<hash> (the first 100 of each). */
static void keep_input(int kd) {
    if (!kd_dir || kd_hits[kd] > 100) return;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < cur_size; i++) h = (h ^ cur_data[i]) * 1099511628211ull;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s-%016llx", kd_dir, kd_names[kd], (unsigned long long)h);
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(cur_data, 1, cur_size, f);
    fclose(f);
}

static int known_defect(int kd) {
    if (guards_on) {
        kd_hits[kd]++;
        keep_input(kd);
    }
    return guards_on;
}

static void print_guard_hits(void) {
    unsigned long any = 0;
    for (int i = 0; i < KD_COUNT; i++) any |= kd_hits[i];
    if (!any) return;
    fprintf(stderr, "fuzz_builder: known-defect guards acted:");
    for (int i = 0; i < KD_COUNT; i++) fprintf(stderr, " %s=%lu", kd_names[i], kd_hits[i]);
    fprintf(stderr, "\n");
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *g = getenv("FUZZ_BUILDER_GUARDS");
    guards_on = g && strcmp(g, "1") == 0;
    trace = getenv("FUZZ_BUILDER_TRACE") != NULL;
    kd_dir = getenv("FUZZ_BUILDER_KD_DIR");
    atexit(print_guard_hits);
    return 0;
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_builder: " __VA_ARGS__);                                             \
        fprintf(stderr, "\n");                                                                     \
        abort();                                                                                   \
    } while (0)

/* ------------------------------------------------------------------------
 * Reading the input
 * ------------------------------------------------------------------------ */

typedef struct rd {
    const uint8_t *p;
    size_t n, pos;
} rd;

static unsigned u8(rd *r) { return r->pos < r->n ? r->p[r->pos++] : 0u; }
static int more(const rd *r) { return r->pos < r->n; }

/* Usually in [lo, hi]; bytes from 0xf0 give a value the library must
 * refuse or handle (none of them allocates much when accepted). */
static size_t size_arg(rd *r, size_t lo, size_t hi) {
    static const size_t odd[] = {0, ((size_t)1 << 24) + 1, SIZE_MAX, (size_t)1 << 40};
    unsigned b = u8(r);
    if (b < 0xf0) return lo + b % (hi - lo + 1);
    return odd[b % (sizeof odd / sizeof odd[0])];
}

/* A layer index: small, or AE_LAST_LAYER. */
static size_t layer_arg(rd *r) {
    unsigned b = u8(r);
    return b == 0xff ? AE_LAST_LAYER : b % 12;
}

static ae_activation act_arg(rd *r) { return (ae_activation)(u8(r) % 9); /* 8 is no activation */ }

static const double fvals[] = {
    0.0,  1.0,   -1.0,  0.5,   0.1,    0.9,   0.99,    0.999,  1e-3,   1e-8,   1e-5,
    2.0,  10.0,  1e3,   1e6,   1e6 + 1, 1e12, 1e-50,   1e-300, 1e39,   1e300,  -0.0,
    NAN,  INFINITY, -INFINITY, 0.25, 0.01, 3.0, 1e-40, 0.75,   1.0 - 1e-9, 100.0, -1e6,
    1e30, -1e30, 1e31,  5e-3,  0.3,
};
#define NFVALS (sizeof fvals / sizeof fvals[0])

static double float_arg(rd *r) {
    unsigned b = u8(r);
    return b < NFVALS ? fvals[b] : ((double)b - 160.0) / 32.0;
}

/* KD_FLOAT_RANGE: a finite nonzero double that is 0, subnormal or
 * infinite as a float. */
static int float_range_defect(double v) {
    return isfinite(v) && v != 0.0 && (fabs(v) < FLT_MIN || fabs(v) > FLT_MAX);
}

static const int64_t ivals[] = {0,       1,          2,          3,         4,
                                5,       -1,         10,         1000,      INT64_MAX,
                                INT64_MIN, 1LL << 31, 2147483647, 1LL << 62, 6};

static int64_t int_arg(rd *r) {
    unsigned b = u8(r);
    return b < 2 * (sizeof ivals / sizeof ivals[0]) ? ivals[b % (sizeof ivals / sizeof ivals[0])]
                                                    : (int64_t)b - 200;
}

static const ae_param params[] = {
    AE_P_LOSS,          AE_P_REDUCTION,   AE_P_OPTIMIZER,    AE_P_SEED,         AE_P_LEARNING_RATE,
    AE_P_MOMENTUM,      AE_P_NESTEROV,    AE_P_WEIGHT_DECAY, AE_P_BETA1,        AE_P_BETA2,
    AE_P_EPSILON,       AE_P_GRAD_CLIP_NORM, AE_P_DAMPENING, AE_P_NOISE_KIND,   AE_P_NOISE_LEVEL,
    AE_P_NOISE_MEAN,    AE_P_NOISE_CLIP,  AE_P_NOISE_CLIP_LO, AE_P_NOISE_CLIP_HI, AE_P_NOISE_VALUE,
    AE_P_VAE_BETA,      AE_P_VAE_BETA_WARMUP_STEPS, AE_P_DEAD_WINDOW, (ae_param)0, (ae_param)5,
    (ae_param)99,
};
#define NPARAMS (sizeof params / sizeof params[0])
#define NREAL_PARAMS (NPARAMS - 3)

static ae_param param_arg(rd *r) { return params[u8(r) % NPARAMS]; }

static ae_layer_param layer_param_arg(rd *r) {
    static const ae_layer_param lp[] = {AE_LAYER_BIAS, AE_LAYER_LEAKY_SLOPE, AE_LAYER_BN_MOMENTUM,
                                        AE_LAYER_BN_EPS, (ae_layer_param)0, (ae_layer_param)3};
    return lp[u8(r) % (sizeof lp / sizeof lp[0])];
}

/* Finite data values: small, round, large, tiny. */
static const float dvals[] = {0.0f,  1.0f,   -1.0f, 0.5f,   -0.5f, 0.25f, 0.75f, 2.0f,
                              -2.0f, 1e-3f,  10.0f, -10.0f, 100.0f, 1e-30f, 1e3f, -1e3f};
#define NDVALS (sizeof dvals / sizeof dvals[0])

/* Fills n floats as the input says: zeros, a constant, values drawn from
 * a tiny generator seeded by the input, or one input byte per value. */
static void fill(rd *r, float *dst, size_t n) {
    unsigned mode = u8(r) % 4;
    if (mode == 0) {
        memset(dst, 0, n * sizeof *dst);
    } else if (mode == 1) {
        float v = dvals[u8(r) % NDVALS];
        for (size_t i = 0; i < n; i++) dst[i] = v;
    } else if (mode == 2) {
        uint32_t s = 0x9e3779b9u ^ (u8(r) * 0x01000193u);
        for (size_t i = 0; i < n; i++) {
            s = s * 1664525u + 1013904223u;
            unsigned b = s >> 24;
            dst[i] = b < 32 ? dvals[b % NDVALS] : ((float)b - 128.0f) / 64.0f;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            unsigned b = u8(r);
            dst[i] = b < NDVALS ? dvals[b] : ((float)b - 128.0f) / 32.0f;
        }
    }
}

static float *floats(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) abort();
    return p;
}

/* ------------------------------------------------------------------------
 * The allocator hook: makes the n-th allocation of one call fail
 * ------------------------------------------------------------------------ */

typedef struct fz_alloc {
    int armed;
    long countdown; /* allocations to let through before the one that fails */
    int failed;     /* an allocation failed since it was armed */
} fz_alloc;

static fz_alloc g_alloc;

static void *fz_malloc(void *user, size_t n) {
    fz_alloc *a = user;
    if (a->armed && a->countdown-- == 0) {
        a->failed = 1;
        return NULL;
    }
    return malloc(n);
}

static void fz_free(void *user, void *p) {
    (void)user;
    free(p);
}

static const ae_allocator fz_allocator = {sizeof(ae_allocator), fz_malloc, fz_free, &g_alloc};

static void arm(long n) {
    g_alloc.armed = 1;
    g_alloc.countdown = n;
    g_alloc.failed = 0;
}
static void disarm(void) { g_alloc.armed = 0; }

/* ------------------------------------------------------------------------
 * Snapshots
 * ------------------------------------------------------------------------ */

typedef struct bytes {
    uint8_t *p;
    size_t n;
} bytes;

static bytes save(const ae_model *m, unsigned flags) {
    bytes b = {NULL, 0};
    if (ae_model_save_buffer(m, NULL, 0, &b.n, flags) != AE_ERR_RANGE || b.n == 0)
        FAIL("asking for the saved size failed: %s", ae_model_last_error(m));
    b.p = malloc(b.n);
    if (!b.p) abort();
    size_t n2 = 0;
    if (ae_model_save_buffer(m, b.p, b.n, &n2, flags) != AE_OK || n2 != b.n)
        FAIL("saving into a buffer of the size asked for failed: %s", ae_model_last_error(m));
    return b;
}

static int same(bytes a, bytes b) { return a.n == b.n && memcmp(a.p, b.p, a.n) == 0; }

static void check_message(const char *msg, const char *what, ae_status st) {
    if (!msg || !msg[0] || strchr(msg, '\n'))
        FAIL("%s failed (%s) without a one-line message: \"%s\"", what, ae_status_name(st),
             msg ? msg : "(null)");
}

/* An allocation failed during the call: the call's error says so. */
static void check_oom_code(ae_status st, int injected, const char *what) {
    if (injected && st != AE_OK && st != AE_ERR_OUT_OF_MEMORY)
        FAIL("%s met a failed allocation and returned %s", what, ae_status_name(st));
}

/* Loads `b` (a model the library saved). An armed allocation failure
 * applies to the first try, which may then fail only with
 * AE_ERR_OUT_OF_MEMORY; the second try runs disarmed (and so does the rest
 * of the caller's checks). Returns NULL only when a known defect kept the
 * model from loading; aborts otherwise. */
static ae_model *load(bytes b, const char *what) {
    ae_model *m = (ae_model *)&g_alloc;
    /* The config carries the allocator and the message; made with the
     * armed failure held back, so that it applies to the load itself. */
    int armed = g_alloc.armed;
    g_alloc.armed = 0;
    ae_config *lc = NULL;
    if (ae_config_create(&lc, &fz_allocator) != AE_OK) FAIL("ae_config_create failed disarmed");
    g_alloc.armed = armed;
    char err[256];
    ae_status st = ae_model_load_buffer(&m, b.p, b.n, lc);
    snprintf(err, sizeof err, "%s", ae_config_last_error(lc));
    if (st != AE_OK && g_alloc.armed) {
        int injected = g_alloc.failed;
        disarm();
        if (m) FAIL("a failed load (%s) left *out set", ae_status_name(st));
        check_message(err, "ae_model_load_buffer", st);
        check_oom_code(st, injected, "ae_model_load_buffer");
        st = ae_model_load_buffer(&m, b.p, b.n, lc);
        snprintf(err, sizeof err, "%s", ae_config_last_error(lc));
    }
    disarm();
    ae_config_destroy(lc);
    if (st == AE_OK) return m;
    if (st == AE_ERR_FORMAT && strstr(err, "is not finite") && known_defect(KD_NONFINITE_STATE))
        return NULL;
    FAIL("a model that saved (%s) does not load: %s: %s", what, ae_status_name(st), err);
}

/* ------------------------------------------------------------------------
 * Builder phase
 * ------------------------------------------------------------------------ */

enum {
    B_INPUT_SIZE, B_INPUT_SHAPE, B_DENSE, B_FLATTEN, B_UNFLATTEN, B_ACTIVATION, B_CONV, B_CONVT,
    B_MAXPOOL, B_UPSAMPLE, B_BATCHNORM, B_AVGPOOL, B_TOPK, B_LIFETIME, B_LIFETIME_FRAC,
    B_BATCH_TOPK, B_GAUSSIAN, B_KL, B_L1, B_LAYER_INT, B_LAYER_FLOAT, B_MARK_CODE, B_MIRROR, B_TIE,
    B_SET_INT, B_SET_FLOAT, B_OOM, B_CREATE, B_COUNT
};

static const char *const b_names[B_COUNT] = {
    "set_input_size", "set_input_shape", "add_dense", "add_flatten", "add_unflatten",
    "add_activation", "add_conv2d", "add_conv_transpose2d", "add_maxpool2d", "add_upsample",
    "add_batchnorm", "add_avgpool_1x1", "add_topk", "add_lifetime_topk",
    "add_lifetime_topk_fraction", "add_batch_topk", "add_gaussian", "add_kl_sparsity",
    "add_l1_sparsity", "layer_set_int", "layer_set_float", "mark_code", "mirror_decoder", "tie",
    "set_int", "set_float", "allocation failure", "create"};

/* One decoded builder call, applied to the config and then to its shadow. */
typedef struct bcall {
    int op;
    size_t s[6];
    double f[2];
    int64_t i;
    ae_activation act;
    ae_param param;
    ae_layer_param lparam;
} bcall;

static void decode_bcall(rd *r, bcall *c) {
    memset(c, 0, sizeof *c);
    c->op = (int)(u8(r) % B_COUNT);
    switch (c->op) {
    case B_INPUT_SIZE: c->s[0] = size_arg(r, 1, 16); break;
    case B_INPUT_SHAPE:
        c->s[0] = size_arg(r, 1, 3);
        c->s[1] = size_arg(r, 1, 6);
        c->s[2] = size_arg(r, 1, 6);
        break;
    case B_DENSE:
        c->s[0] = size_arg(r, 1, 16);
        c->act = act_arg(r);
        break;
    case B_UNFLATTEN:
        c->s[0] = size_arg(r, 1, 4);
        c->s[1] = size_arg(r, 1, 4);
        c->s[2] = size_arg(r, 1, 4);
        break;
    case B_ACTIVATION: c->act = act_arg(r); break;
    case B_CONV:
    case B_CONVT:
        c->s[0] = size_arg(r, 1, 4);
        c->s[1] = size_arg(r, 1, 4);
        c->s[2] = size_arg(r, 1, 3);
        c->s[3] = size_arg(r, 0, 3);
        c->s[4] = size_arg(r, 0, 2);
        c->act = act_arg(r);
        break;
    case B_MAXPOOL:
        c->s[0] = size_arg(r, 1, 3);
        c->s[1] = size_arg(r, 0, 3);
        c->s[2] = size_arg(r, 0, 2);
        break;
    case B_UPSAMPLE:
        c->s[0] = size_arg(r, 1, 3);
        c->s[1] = u8(r) % 3;
        break;
    case B_TOPK:
    case B_BATCH_TOPK: c->s[0] = size_arg(r, 1, 16); break;
    case B_LIFETIME: c->s[0] = size_arg(r, 1, 8); break;
    case B_LIFETIME_FRAC: c->f[0] = float_arg(r); break;
    case B_GAUSSIAN: c->s[0] = size_arg(r, 1, 8); break;
    case B_KL:
        c->s[0] = layer_arg(r);
        c->f[0] = float_arg(r);
        c->f[1] = float_arg(r);
        c->s[1] = u8(r) % 3;
        break;
    case B_L1:
        c->s[0] = layer_arg(r);
        c->f[0] = float_arg(r);
        break;
    case B_LAYER_INT:
        c->s[0] = layer_arg(r);
        c->lparam = layer_param_arg(r);
        c->i = int_arg(r);
        break;
    case B_LAYER_FLOAT:
        c->s[0] = layer_arg(r);
        c->lparam = layer_param_arg(r);
        c->f[0] = float_arg(r);
        break;
    case B_MIRROR: c->act = act_arg(r); break;
    case B_SET_INT:
        c->param = param_arg(r);
        c->i = int_arg(r);
        break;
    case B_SET_FLOAT:
        c->param = param_arg(r);
        c->f[0] = float_arg(r);
        break;
    case B_OOM: c->s[0] = u8(r) % 8; break;
    default: break;
    }
}

static ae_status apply_bcall(ae_config *cfg, const bcall *c) {
    switch (c->op) {
    case B_INPUT_SIZE: return ae_config_set_input_size(cfg, c->s[0]);
    case B_INPUT_SHAPE: return ae_config_set_input_shape(cfg, c->s[0], c->s[1], c->s[2]);
    case B_DENSE: return ae_config_add_dense(cfg, c->s[0], c->act);
    case B_FLATTEN: return ae_config_add_flatten(cfg);
    case B_UNFLATTEN: return ae_config_add_unflatten(cfg, c->s[0], c->s[1], c->s[2]);
    case B_ACTIVATION: return ae_config_add_activation(cfg, c->act);
    case B_CONV: return ae_config_add_conv2d(cfg, c->s[0], c->s[1], c->s[2], c->s[3], c->act);
    case B_CONVT:
        return ae_config_add_conv_transpose2d(cfg, c->s[0], c->s[1], c->s[2], c->s[3], c->s[4],
                                              c->act);
    case B_MAXPOOL: return ae_config_add_maxpool2d(cfg, c->s[0], c->s[1], c->s[2]);
    case B_UPSAMPLE: return ae_config_add_upsample(cfg, c->s[0], (ae_upsample_mode)c->s[1]);
    case B_BATCHNORM: return ae_config_add_batchnorm(cfg);
    case B_AVGPOOL: return ae_config_add_avgpool_1x1(cfg);
    case B_TOPK: return ae_config_add_topk(cfg, c->s[0]);
    case B_LIFETIME: return ae_config_add_lifetime_topk(cfg, c->s[0]);
    case B_LIFETIME_FRAC: return ae_config_add_lifetime_topk_fraction(cfg, c->f[0]);
    case B_BATCH_TOPK: return ae_config_add_batch_topk(cfg, c->s[0]);
    case B_GAUSSIAN: return ae_config_add_gaussian(cfg, c->s[0]);
    case B_KL: return ae_config_add_kl_sparsity(cfg, c->s[0], c->f[0], c->f[1], (ae_reduction)c->s[1]);
    case B_L1: return ae_config_add_l1_sparsity(cfg, c->s[0], c->f[0]);
    case B_LAYER_INT: return ae_config_layer_set_int(cfg, c->s[0], c->lparam, c->i);
    case B_LAYER_FLOAT: return ae_config_layer_set_float(cfg, c->s[0], c->lparam, c->f[0]);
    case B_MARK_CODE: return ae_config_mark_code(cfg);
    case B_MIRROR: return ae_config_mirror_decoder(cfg, c->act);
    case B_TIE: return ae_config_tie(cfg);
    case B_SET_INT: return ae_config_set_int(cfg, c->param, c->i);
    case B_SET_FLOAT: return ae_config_set_float(cfg, c->param, c->f[0]);
    }
    return AE_OK;
}

/* Every setting of a config, read back through the getters. */
typedef struct settings {
    int64_t iv[NREAL_PARAMS];
    double fv[NREAL_PARAMS];
} settings;

static void read_settings(const ae_config *cfg, settings *s) {
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < NREAL_PARAMS; i++) {
        int is_int = 0;
        if (ae_param_bounds(params[i], &is_int, NULL, NULL, NULL) != AE_OK) abort();
        ae_status st = is_int ? ae_config_get_int(cfg, params[i], &s->iv[i])
                              : ae_config_get_float(cfg, params[i], &s->fv[i]);
        if (st != AE_OK) FAIL("reading setting %d of a config failed", (int)params[i]);
    }
}

/* Whether a known defect makes the fuzzer skip this builder call. */
static int skip_bcall(const bcall *c, int last_added) {
    if (c->op == B_TOPK && last_added == B_TOPK && known_defect(KD_TOPK_PAIR)) return 1;
    double v = c->f[0];
    if ((c->op == B_SET_FLOAT || c->op == B_LAYER_FLOAT || c->op == B_KL) &&
        (float_range_defect(v) || (c->op == B_KL && float_range_defect(c->f[1]))) &&
        known_defect(KD_FLOAT_RANGE))
        return 1;
    return 0;
}

/* ------------------------------------------------------------------------
 * Model phase
 * ------------------------------------------------------------------------ */

enum {
    M_TRAIN, M_EVAL, M_ENCODE, M_DECODE, M_RECON, M_SET_INT, M_SET_FLOAT, M_MODE, M_SET_W,
    M_SET_B, M_TIE, M_TIE_LAYERS, M_UNTIE, M_UNTIE_LAYERS, M_FREEZE, M_UNFREEZE, M_COPY_LAYERS,
    M_COPY_OUTER, M_VAE_ENCODE, M_VAE_SAMPLE, M_VAE_INTERP, M_VAE_ELBO, M_VAE_EPS, M_META,
    M_SAVELOAD, M_RESUME, M_FIT, M_SAVE_SMALL, M_OOM, M_QUERY, M_COUNT
};

static const char *const m_names[M_COUNT] = {
    "ae_train_step", "ae_evaluate", "ae_encode", "ae_decode", "ae_reconstruct",
    "ae_model_set_int", "ae_model_set_float", "ae_model_set_mode", "ae_model_set_weights",
    "ae_model_set_bias", "ae_model_tie", "ae_model_tie_layers", "ae_model_untie",
    "ae_model_untie_layers", "ae_model_freeze", "ae_model_unfreeze", "ae_model_copy_layers",
    "ae_model_copy_outer", "ae_vae_encode", "ae_vae_sample", "ae_vae_interpolate",
    "ae_vae_neg_elbo", "ae_vae_set_fixed_eps", "ae_model_set_meta", "save/load",
    "checkpoint resume", "ae_fit", "ae_model_save_buffer (small)", "allocation failure", "queries"};

typedef struct ctx {
    rd *r;
    ae_model *m;
    ae_model *other; /* a model loaded from m's file earlier, or NULL */
    size_t in, out, code, nlayers;
    int vae;
    int loss_bce;
} ctx;

static void refresh(ctx *c) {
    c->in = ae_model_input_size(c->m);
    c->out = ae_model_output_size(c->m);
    c->code = ae_model_code_size(c->m);
    c->nlayers = ae_model_layer_count(c->m);
    ae_layer_info info = {.struct_size = sizeof info};
    c->vae = 0;
    for (size_t i = 0; i < c->nlayers; i++)
        if (ae_model_layer_info(c->m, i, &info) == AE_OK && info.kind == AE_LAYER_GAUSSIAN) c->vae = 1;
    int64_t loss = 0;
    ae_model_get_int(c->m, AE_P_LOSS, &loss);
    c->loss_bce = loss == AE_LOSS_BCE;
}

/* A batch size: 1 to 4, or now and then one the library must refuse. */
static size_t batch_arg(rd *r) {
    unsigned b = u8(r);
    if (b >= 0xf8) return b & 1 ? 0 : ((size_t)1 << 24) + 1;
    return 1 + b % 4;
}

/* The number of floats to allocate for `batch` rows of `width` (a refused
 * batch reads nothing). */
static size_t rows(size_t batch, size_t width) { return (batch <= 4 ? batch : 1) * width; }

/* One training step on m from the input's next batch (also used to drive
 * two models identically: x, target, batch are returned for reuse). */
typedef struct batch_data {
    float *x, *t;
    size_t batch;
    int with_target, with_loss;
} batch_data;

static void read_batch(ctx *c, batch_data *b) {
    b->batch = batch_arg(c->r);
    unsigned f = u8(c->r);
    b->with_target = f & 1;
    b->with_loss = (f >> 1) & 1;
    b->x = floats(rows(b->batch, c->in));
    b->t = floats(rows(b->batch, c->out));
    fill(c->r, b->x, rows(b->batch, c->in));
    if (b->with_target) fill(c->r, b->t, rows(b->batch, c->out));
}

static void free_batch(batch_data *b) {
    free(b->x);
    free(b->t);
}

static ae_status step(ae_model *m, const batch_data *b, float *loss) {
    *loss = -12345.0f;
    return ae_train_step(m, b->x, b->with_target ? b->t : NULL, b->batch,
                         b->with_loss ? loss : NULL);
}

/* A fresh load of m's model file (not a checkpoint): the same bytes when
 * saved again, the same codes bitwise. Keeps the loaded model as `other`.
 * Returns 0 when a known defect ended the input. */
static int check_saveload(ctx *c) {
    bytes a = save(c->m, AE_SAVE_MODEL);
    ae_model *m2 = load(a, "model file");
    if (!m2) {
        free(a.p);
        return 0;
    }
    bytes b = save(m2, AE_SAVE_MODEL);
    if (!same(a, b)) FAIL("save/load/save of a model file gives different bytes");
    free(b.p);
    free(a.p);
    if (ae_model_get_mode(c->m) == AE_MODE_INFER) {
        size_t batch = 1 + u8(c->r) % 4;
        float *x = floats(batch * c->in), *y1 = floats(batch * c->code),
              *y2 = floats(batch * c->code);
        fill(c->r, x, batch * c->in);
        ae_status s1 = ae_encode(c->m, x, batch, y1), s2 = ae_encode(m2, x, batch, y2);
        if (s1 != s2 || (s1 == AE_OK && memcmp(y1, y2, batch * c->code * sizeof(float)) != 0))
            FAIL("a loaded model file encodes differently from its model (%s, %s)",
                 ae_status_name(s1), ae_status_name(s2));
        free(x);
        free(y1);
        free(y2);
    }
    ae_model_destroy(c->other);
    c->other = m2;
    return 1;
}

/* Checkpoint, load, save again (same bytes), then 1 to 3 steps on both:
 * the same statuses, losses and checkpoint bytes. Continues with either.
 * Returns 0 when a known defect ended the input. */
static int check_resume(ctx *c) {
    bytes a = save(c->m, AE_SAVE_CHECKPOINT);
    ae_model *m2 = load(a, "checkpoint");
    if (!m2) {
        free(a.p);
        return 0;
    }
    bytes b = save(m2, AE_SAVE_CHECKPOINT);
    if (!same(a, b)) FAIL("save/load/save of a checkpoint gives different bytes");
    free(b.p);
    free(a.p);
    size_t k = 1 + u8(c->r) % 3;
    for (size_t s = 0; s < k; s++) {
        batch_data bd;
        read_batch(c, &bd);
        float l1, l2;
        ae_status s1 = step(c->m, &bd, &l1), s2 = step(m2, &bd, &l2);
        free_batch(&bd);
        if (s1 != s2 || memcmp(&l1, &l2, sizeof l1) != 0)
            FAIL("resumed step %zu differs: %s loss %a, resumed %s loss %a", s, ae_status_name(s1),
                 (double)l1, ae_status_name(s2), (double)l2);
    }
    a = save(c->m, AE_SAVE_CHECKPOINT);
    b = save(m2, AE_SAVE_CHECKPOINT);
    if (!same(a, b)) FAIL("a resumed model's checkpoint differs from the original's after %zu steps", k);
    free(a.p);
    free(b.p);
    if (u8(c->r) & 1) {
        ae_model_destroy(c->m);
        c->m = m2;
    } else {
        ae_model_destroy(m2);
    }
    return 1;
}

static ae_status run_fit(ctx *c) {
    size_t n = 1 + u8(c->r) % 8;
    float *x = floats(n * c->in);
    fill(c->r, x, n * c->in);
    ae_dataset *ds = NULL, *val = NULL;
    if (ae_dataset_create(&ds, NULL) != AE_OK ||
        ae_dataset_from_memory(ds, x, NULL, n, c->in, 1, 1, AE_DATA_COPY) != AE_OK)
        FAIL("a dataset from memory failed: %s", ae_dataset_last_error(ds));
    ae_fit_options o;
    ae_fit_options_init(&o);
    unsigned f = u8(c->r);
    o.epochs = 1 + f % 2;
    o.batch_size = 1 + (f >> 1) % 4;
    o.shuffle = (f >> 3) & 1;
    o.drop_last = (f >> 4) & 1;
    o.restore_best = (f >> 5) & 1;
    o.patience = (f >> 6) & 1;
    if ((f >> 7) & 1) {
        if (ae_dataset_create(&val, NULL) != AE_OK ||
            ae_dataset_from_memory(val, x, NULL, n, c->in, 1, 1, AE_DATA_BORROW) != AE_OK)
            FAIL("a dataset from memory failed");
        o.val = val;
    }
    unsigned g = u8(c->r);
    o.schedule = (ae_schedule)(g % 5); /* 4 is no schedule */
    o.warmup_steps = (g >> 3) % 3;
    o.shuffle_seed = g;
    o.gamma = (g >> 5) & 1 ? 0.5 : 0.1;
    ae_status st = ae_fit(c->m, ds, &o);
    ae_dataset_destroy(val);
    ae_dataset_destroy(ds);
    free(x);
    return st;
}

/* Runs one model operation. Returns its status, or -1 for an operation
 * that checks itself (and -2 when a known defect ended the input).
 * *mutates: the call may change the model (else it takes a const model). */
static int model_op(ctx *c, int op, int *mutates) {
    rd *r = c->r;
    ae_model *m = c->m;
    ae_status st = AE_OK;
    *mutates = 1;
    switch (op) {
    case M_TRAIN: {
        batch_data bd;
        read_batch(c, &bd);
        float l;
        st = step(m, &bd, &l);
        if (st == AE_OK && bd.with_loss && !isfinite(l)) FAIL("a step returned AE_OK and loss %g", (double)l);
        free_batch(&bd);
        break;
    }
    case M_EVAL: {
        batch_data bd;
        read_batch(c, &bd);
        float l;
        st = ae_evaluate(m, bd.x, bd.with_target ? bd.t : NULL, bd.batch, bd.with_loss ? &l : NULL);
        if (st == AE_OK && bd.with_loss && !isfinite(l))
            FAIL("ae_evaluate returned AE_OK and loss %g", (double)l);
        free_batch(&bd);
        break;
    }
    case M_ENCODE:
    case M_DECODE:
    case M_RECON: {
        size_t batch = batch_arg(r);
        size_t win = op == M_DECODE ? c->code : c->in, wout = op == M_ENCODE ? c->code : c->out;
        float *x = floats(rows(batch, win)), *y = floats(rows(batch, wout));
        fill(r, x, rows(batch, win));
        st = op == M_ENCODE   ? ae_encode(m, x, batch, y)
             : op == M_DECODE ? ae_decode(m, x, batch, y)
                              : ae_reconstruct(m, x, batch, y);
        free(x);
        free(y);
        break;
    }
    case M_SET_INT: {
        ae_param p = param_arg(r);
        int64_t v = int_arg(r);
        if (trace) fprintf(stderr, "  setting %d = %lld\n", (int)p, (long long)v);
        st = ae_model_set_int(m, p, v);
        break;
    }
    case M_SET_FLOAT: {
        ae_param p = param_arg(r);
        double v = float_arg(r);
        if (trace) fprintf(stderr, "  setting %d = %g\n", (int)p, v);
        if (float_range_defect(v) && known_defect(KD_FLOAT_RANGE)) return -1;
        st = ae_model_set_float(m, p, v);
        break;
    }
    case M_MODE: st = ae_model_set_mode(m, (ae_mode)(u8(r) % 3)); break;
    case M_SET_W:
    case M_SET_B: {
        size_t layer = u8(r) % (c->nlayers + 1);
        ae_layer_info info = {.struct_size = sizeof info};
        size_t want = ae_model_layer_info(m, layer, &info) == AE_OK
                          ? (op == M_SET_W ? info.weight_count : info.bias_count)
                          : 1;
        unsigned f = u8(r);
        size_t count = want + (f & 1); /* sometimes one too many */
        float *v = floats(count), *back = floats(count);
        fill(r, v, count);
        if (count && ((f >> 1) & 1)) v[(f >> 2) % count] = NAN; /* refused: nothing written */
        st = op == M_SET_W ? ae_model_set_weights(m, layer, v, count)
                           : ae_model_set_bias(m, layer, v, count);
        if (st == AE_OK) {
            ae_status g = op == M_SET_W ? ae_model_get_weights(m, layer, back, count)
                                        : ae_model_get_bias(m, layer, back, count);
            if (g != AE_OK || memcmp(v, back, count * sizeof *v) != 0)
                FAIL("layer %zu: what %s wrote does not read back", layer, m_names[op]);
        }
        free(v);
        free(back);
        break;
    }
    case M_TIE: st = ae_model_tie(m); break;
    case M_UNTIE: st = ae_model_untie(m); break;
    case M_TIE_LAYERS:
    case M_UNTIE_LAYERS:
    case M_FREEZE:
    case M_UNFREEZE: {
        size_t a = layer_arg(r), b = layer_arg(r);
        st = op == M_TIE_LAYERS     ? ae_model_tie_layers(m, a, b)
             : op == M_UNTIE_LAYERS ? ae_model_untie_layers(m, a, b)
             : op == M_FREEZE       ? ae_model_freeze(m, a, b)
                                    : ae_model_unfreeze(m, a, b);
        break;
    }
    case M_COPY_LAYERS: {
        size_t d = layer_arg(r), s = layer_arg(r), n = u8(r) % 4;
        st = ae_model_copy_layers(m, d, c->other ? c->other : m, s, n);
        break;
    }
    case M_COPY_OUTER: st = ae_model_copy_outer(m, c->other ? c->other : m); break;
    case M_VAE_ENCODE: {
        size_t batch = batch_arg(r);
        float *x = floats(rows(batch, c->in)), *mu = floats(rows(batch, c->code)),
              *lv = floats(rows(batch, c->code));
        fill(r, x, rows(batch, c->in));
        st = ae_vae_encode(m, x, batch, mu, u8(r) & 1 ? lv : NULL);
        free(x);
        free(mu);
        free(lv);
        break;
    }
    case M_VAE_SAMPLE: {
        size_t n = batch_arg(r);
        float *out = floats(rows(n, c->out)), *z = floats(rows(n, c->code));
        st = ae_vae_sample(m, n, out, u8(r) & 1 ? z : NULL);
        free(out);
        free(z);
        break;
    }
    case M_VAE_INTERP: {
        size_t steps = u8(r) % 5; /* 0 and 1 are refused */
        float *z0 = floats(c->code), *z1 = floats(c->code), *out = floats((steps + 1) * c->out);
        fill(r, z0, c->code);
        fill(r, z1, c->code);
        st = ae_vae_interpolate(m, z0, z1, steps, out);
        free(z0);
        free(z1);
        free(out);
        break;
    }
    case M_VAE_ELBO: {
        size_t batch = batch_arg(r);
        float *x = floats(rows(batch, c->in));
        fill(r, x, rows(batch, c->in));
        double ne, rc, kl;
        st = ae_vae_neg_elbo(m, x, batch, &ne, &rc, &kl);
        if (st == AE_OK && !(isfinite(ne) && isfinite(rc) && isfinite(kl)))
            FAIL("ae_vae_neg_elbo returned AE_OK and %g = %g + %g", ne, rc, kl);
        free(x);
        break;
    }
    case M_VAE_EPS: {
        unsigned f = u8(r);
        size_t n = (1 + f % 4) * c->code + ((f >> 2) & 1); /* sometimes not a multiple of dim */
        float *e = floats(n);
        fill(r, e, n);
        st = ae_vae_set_fixed_eps(m, (f >> 3) & 1 ? NULL : e, n);
        free(e);
        break;
    }
    case M_META: {
        static const char *const keys[] = {"a", "key", "ae.data.shape", "", "\xc3\x28"};
        static const char *const values[] = {NULL, "x", "", "1x2x3", "\xff"};
        unsigned f = u8(r);
        st = ae_model_set_meta(m, keys[f % 5], values[(f / 5) % 5]);
        break;
    }
    case M_SAVELOAD: return check_saveload(c) ? -1 : -2;
    case M_RESUME: return check_resume(c) ? -1 : -2;
    case M_FIT: {
        uint64_t before = ae_model_step_count(m);
        st = run_fit(c);
        /* A fit that failed after some steps keeps them (documented). */
        if (st != AE_OK && ae_model_step_count(m) != before) return -1;
        break;
    }
    case M_SAVE_SMALL: {
        size_t need = 0;
        unsigned flags = u8(r) % 3; /* 2 is no flag */
        if (ae_model_save_buffer(m, NULL, 0, &need, flags & 1) != AE_ERR_RANGE) abort();
        size_t cap = need ? (size_t)u8(r) * need / 256 : 0;
        uint8_t *buf = malloc(cap + 1);
        if (!buf) abort();
        memset(buf, 0xa5, cap + 1);
        size_t got = 0;
        st = ae_model_save_buffer(m, cap ? buf : NULL, cap, &got, flags);
        if (flags < 2 && (st != AE_ERR_RANGE || got != need))
            FAIL("saving into %zu bytes of %zu returned %s, size %zu", cap, need, ae_status_name(st), got);
        for (size_t i = 0; i <= cap; i++)
            if (buf[i] != 0xa5) FAIL("a save that did not fit wrote into the buffer");
        free(buf);
        *mutates = 0;
        break;
    }
    case M_QUERY: {
        *mutates = 0;
        for (int s = AE_STAT_LOSS; s <= AE_STAT_LOSS_VAE_KL + 1; s++) {
            double v;
            if (ae_model_get_stat(m, (ae_stat)s, &v) == AE_OK && !isfinite(v))
                FAIL("statistic %d is %g", s, v);
        }
        double rc, kl;
        ae_vae_loss_terms(m, &rc, &kl);
        for (size_t i = 0; i <= c->nlayers; i++) {
            ae_layer_info info = {.struct_size = sizeof info};
            size_t in[3], out[3];
            ae_model_layer_shape(m, i, in, out);
            if (ae_model_layer_info(m, i, &info) != AE_OK) continue;
            float *w = floats(info.weight_count), *b = floats(info.bias_count);
            if (ae_model_get_weights(m, i, w, info.weight_count) != AE_OK ||
                ae_model_get_bias(m, i, b, info.bias_count) != AE_OK)
                FAIL("layer %zu: reading its weight or bias failed", i);
            free(w);
            free(b);
            (void)ae_model_is_tied(m, i);
            (void)ae_model_is_frozen(m, i);
        }
        for (size_t i = 0; i < ae_model_meta_count(m); i++) {
            const char *k = NULL, *v = NULL, *v2 = NULL;
            if (ae_model_meta_at(m, i, &k, &v) != AE_OK || ae_model_get_meta(m, k, &v2) != AE_OK ||
                v != v2)
                FAIL("metadata %zu does not read back", i);
        }
        return -1;
    }
    default: break;
    }
    return st;
}

/* The model's size limits how much work one execution does. */
static int small_enough(const ae_model *m) {
    size_t work = 0;
    for (size_t i = 0; i < ae_model_layer_count(m); i++) {
        ae_layer_info info = {.struct_size = sizeof info};
        ae_model_layer_info(m, i, &info);
        work += info.out_size + info.weight_count;
    }
    return work <= 40000;
}

static void model_phase(rd *r, ae_model *m) {
    ctx c = {.r = r, .m = m};
    refresh(&c);
    bytes cur = save(c.m, AE_SAVE_CHECKPOINT);
    ae_model *first = load(cur, "a new model");
    if (!first) goto done;
    ae_model_destroy(first);
    if (!small_enough(c.m)) goto done;
    long oom = -1;
    for (int ops = 0; ops < 64 && more(r); ops++) {
        int op = (int)(u8(r) % M_COUNT);
        if (op == M_OOM) {
            oom = (long)(u8(r) % 8);
            continue;
        }
        int mutates = 1;
        if (oom >= 0) arm(oom);
        int st = model_op(&c, op, &mutates);
        int injected = oom >= 0 && g_alloc.failed;
        disarm();
        if (trace)
            fprintf(stderr, "%s%s: %s %s\n", m_names[op], oom >= 0 ? " (allocation failure armed)" : "",
                    st < 0 ? "(checked)" : ae_status_name((ae_status)st),
                    st > 0 ? ae_model_last_error(c.m) : "");
        oom = -1;
        if (st == -2) goto done;
        refresh(&c);
        bytes now = save(c.m, AE_SAVE_CHECKPOINT);
        if (st > 0) {
            if (mutates) check_message(ae_model_last_error(c.m), m_names[op], (ae_status)st);
            check_oom_code((ae_status)st, injected, m_names[op]);
            if (!same(cur, now))
                FAIL("a failed %s (%s: %s) changed the model", m_names[op],
                     ae_status_name((ae_status)st), ae_model_last_error(c.m));
        } else if (!same(cur, now)) {
            /* Changed: the new state must load. */
            ae_model *l = load(now, m_names[op]);
            if (!l) {
                free(now.p);
                goto done;
            }
            ae_model_destroy(l);
        }
        free(cur.p);
        cur = now;
    }
    /* The last state: saves, loads, and saves to the same bytes. */
    {
        ae_model *l = load(cur, "the last state");
        if (l) {
            bytes again = save(l, AE_SAVE_CHECKPOINT);
            if (!same(cur, again)) FAIL("save/load/save of the last checkpoint gives different bytes");
            free(again.p);
            ae_model_destroy(l);
        }
    }
done:
    free(cur.p);
    ae_model_destroy(c.other);
    ae_model_destroy(c.m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rd r = {data, size, 0};
    cur_data = data;
    cur_size = size;
    disarm();
    ae_config *cfg = NULL, *shadow = NULL;
    /* The first byte is a header: 0xff makes the config's own allocation fail. */
    if (u8(&r) == 0xff) arm(0);
    ae_status st = ae_config_create(&cfg, &fz_allocator);
    disarm();
    if (st != AE_OK) {
        if (st != AE_ERR_OUT_OF_MEMORY || cfg) FAIL("ae_config_create failed with %s", ae_status_name(st));
        return 0;
    }
    if (ae_config_create(&shadow, NULL) != AE_OK) abort();
    /* At most two layers that enlarge the image (upsample, transposed
     * convolution): a chain of them reaches 2^24 values per sample, and the
     * dense layers after it gigabytes. */
    int last_added = -1, ops = 0, grow = 0;
    long oom = -1;
    while (more(&r) && ops++ < 24) {
        bcall bc;
        decode_bcall(&r, &bc);
        if (bc.op == B_CREATE) break;
        if (bc.op == B_OOM) {
            oom = (long)bc.s[0];
            continue;
        }
        if (skip_bcall(&bc, last_added)) continue;
        if ((bc.op == B_UPSAMPLE || bc.op == B_CONVT) && grow >= 2) continue;
        settings before, after;
        read_settings(cfg, &before);
        if (oom >= 0) arm(oom);
        st = apply_bcall(cfg, &bc);
        int injected = oom >= 0 && g_alloc.failed;
        disarm();
        if (trace && (bc.op == B_SET_INT || bc.op == B_SET_FLOAT))
            fprintf(stderr, "  setting %d = %lld / %g\n", (int)bc.param, (long long)bc.i, bc.f[0]);
        if (trace)
            fprintf(stderr, "ae_config_%s%s: %s %s\n", b_names[bc.op], oom >= 0 ? " (allocation failure armed)" : "",
                    ae_status_name(st), st ? ae_config_last_error(cfg) : "");
        oom = -1;
        if (st == AE_OK) {
            ae_status s2 = apply_bcall(shadow, &bc);
            if (s2 != AE_OK)
                FAIL("ae_config_%s succeeded, and failed (%s: %s) on a config given only the "
                     "calls that succeeded", b_names[bc.op], ae_status_name(s2), ae_config_last_error(shadow));
            if (bc.op >= B_DENSE && bc.op <= B_GAUSSIAN) last_added = bc.op;
            grow += bc.op == B_UPSAMPLE || bc.op == B_CONVT;
            if (bc.op == B_MIRROR) last_added = B_DENSE;
        } else {
            check_message(ae_config_last_error(cfg), "a builder call", st);
            check_oom_code(st, injected, "a builder call");
            read_settings(cfg, &after);
            if (memcmp(&before, &after, sizeof before) != 0)
                FAIL("a failed ae_config_%s (%s) changed a setting", b_names[bc.op], ae_status_name(st));
        }
    }
    /* Creation, perhaps out of memory first: then again, which must give
     * what the shadow config gives. */
    ae_model *m = NULL, *ms = NULL;
    if (oom >= 0) {
        arm(oom);
        st = ae_model_create(&m, cfg);
        int injected = g_alloc.failed;
        disarm();
        if (st != AE_OK) {
            if (m) FAIL("a failed ae_model_create left a model");
            check_message(ae_config_last_error(cfg), "ae_model_create", st);
            check_oom_code(st, injected, "ae_model_create");
        }
    }
    if (!m) st = ae_model_create(&m, cfg);
    ae_status s2 = ae_model_create(&ms, shadow);
    if (trace) fprintf(stderr, "ae_model_create: %s %s\n", ae_status_name(st), st ? ae_config_last_error(cfg) : "");
    if (st != s2)
        FAIL("ae_model_create gives %s (%s), on the config of only the calls that succeeded %s (%s)",
             ae_status_name(st), ae_config_last_error(cfg), ae_status_name(s2),
             ae_config_last_error(shadow));
    if (st != AE_OK) {
        if (m || ms) FAIL("a failed ae_model_create left a model");
        check_message(ae_config_last_error(cfg), "ae_model_create", st);
    } else {
        bytes a = save(m, AE_SAVE_CHECKPOINT), b = save(ms, AE_SAVE_CHECKPOINT);
        if (!same(a, b))
            FAIL("the config and the config of only the calls that succeeded build different models");
        free(a.p);
        free(b.p);
    }
    ae_model_destroy(ms);
    ae_config_destroy(shadow);
    ae_config_destroy(cfg);
    if (m) model_phase(&r, m);
    return 0;
}
