/*
 * libae_mpi under mpirun (tests/mpi/run.sh starts N ranks of this program):
 * N ranks with batches B_r train as one process with their union, the same
 * run repeats bitwise, a failure on one rank stops every rank without a
 * deadlock, and ae_mpi_fit shards, trains and fails alike. Every rank runs
 * every test; the reference (one process) is computed on each rank.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libae/ae.h>
#include <libae/hook.h>
#include <libae/mpi.h>

#define OK(x) assert_int_equal((x), AE_OK)

static int g_rank, g_size;
static ae_optimizer g_opt = AE_OPT_ADAM; /* of the models make() builds */

/* Deterministic values in [lo, hi) (the same on every rank). */
static void fill(float *x, size_t n, uint32_t seed, float lo, float hi) {
    uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        x[i] = lo + (hi - lo) * (float)((s >> 40) & 0xffffff) / 16777216.0f;
    }
}

enum kind { DENSE, TIED, TOPK, CONV_BN, VAE, NKINDS };
static const char *const kind_names[NKINDS] = {"dense", "tied", "top-k", "conv+BatchNorm", "VAE"};
enum { IN = 64, VAE_DIM = 3, STEPS = 20 };

static ae_model *make(enum kind k, int64_t seed) {
    ae_config *c = NULL;
    ae_model *m = NULL;
    OK(ae_config_create(&c, NULL));
    switch (k) {
    case DENSE:
    case TIED:
        OK(ae_config_set_input_size(c, IN));
        OK(ae_config_add_dense(c, 16, AE_ACT_TANH));
        OK(ae_config_add_dense(c, 6, AE_ACT_IDENTITY));
        OK(ae_config_mark_code(c));
        OK(ae_config_mirror_decoder(c, AE_ACT_SIGMOID));
        if (k == TIED) OK(ae_config_tie(c));
        break;
    case TOPK:
        OK(ae_config_set_input_size(c, IN));
        OK(ae_config_add_dense(c, 32, AE_ACT_LEAKY_RELU));
        OK(ae_config_add_topk(c, 4));
        OK(ae_config_mark_code(c));
        OK(ae_config_add_dense(c, IN, AE_ACT_IDENTITY));
        break;
    case CONV_BN:
        /* No bias before a BatchNorm: its gradient is zero but for
         * rounding, which Adam would turn into whole steps. */
        OK(ae_config_set_input_shape(c, 1, 8, 8));
        OK(ae_config_add_conv2d(c, 4, 3, 1, 1, AE_ACT_IDENTITY));
        OK(ae_config_layer_set_int(c, 0, AE_LAYER_BIAS, 0));
        OK(ae_config_add_batchnorm(c));
        OK(ae_config_add_activation(c, AE_ACT_RELU));
        OK(ae_config_add_maxpool2d(c, 2, 2, 0));
        OK(ae_config_mark_code(c));
        OK(ae_config_add_upsample(c, 2, AE_UPSAMPLE_NEAREST));
        OK(ae_config_add_conv2d(c, 1, 3, 1, 1, AE_ACT_SIGMOID));
        break;
    case VAE:
        OK(ae_config_set_input_size(c, IN));
        OK(ae_config_add_dense(c, 16, AE_ACT_TANH));
        OK(ae_config_add_gaussian(c, VAE_DIM));
        OK(ae_config_mark_code(c));
        OK(ae_config_add_dense(c, 16, AE_ACT_TANH));
        OK(ae_config_add_dense(c, IN, AE_ACT_SIGMOID));
        break;
    default:
        fail();
    }
    OK(ae_config_set_int(c, AE_P_OPTIMIZER, g_opt));
    OK(ae_config_set_float(c, AE_P_LEARNING_RATE, g_opt == AE_OPT_SGD ? 0.05 : 0.01));
    if (g_opt == AE_OPT_SGD) OK(ae_config_set_float(c, AE_P_MOMENTUM, 0.9));
    OK(ae_config_set_int(c, AE_P_SEED, seed));
    OK(ae_model_create(&m, c));
    ae_config_destroy(c);
    return m;
}

/* The batch of rank r: B_r samples (3 or 4, so the weights differ), at
 * offset `off` of the step's union. */
static size_t local_batch(int r) { return 3 + (size_t)(r % 2); }
static size_t offset_of(int r) {
    size_t o = 0;
    for (int q = 0; q < r; q++) o += local_batch(q);
    return o;
}
static size_t total_batch(void) { return offset_of(g_size); }

/* The model's parameters and layer state, as ae_model_visit_state gives them. */
typedef struct dump {
    float *v[2];
    size_t n[2];
} dump;
static ae_status dump_cb(void *ctx, ae_state_part part, void *data, size_t bytes) {
    dump *d = ctx;
    int k = part == AE_STATE_PARAMS ? 0 : part == AE_STATE_LAYERS ? 1 : -1;
    if (k < 0) return AE_OK;
    d->n[k] = bytes / sizeof(float);
    d->v[k] = malloc(bytes ? bytes : 1);
    assert_non_null(d->v[k]);
    if (bytes) memcpy(d->v[k], data, bytes);
    return AE_OK;
}
static dump dump_of(ae_model *m) {
    dump d;
    memset(&d, 0, sizeof d);
    OK(ae_model_visit_state(m, dump_cb, &d));
    return d;
}
static void dump_free(dump *d) {
    free(d->v[0]);
    free(d->v[1]);
}

/* |a - b| <= rtol · max |b|: relative to the array's scale. Returns the
 * ratio. */
static double assert_close_scaled(const float *a, const float *b, size_t n, double rtol,
                                  const char *what) {
    double mx = 0.0, worst = 0.0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs((double)b[i]));
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > worst) {
            worst = d;
            wi = i;
        }
    }
    if (worst > rtol * mx) {
        print_error("rank %d: %s[%zu] = %.9g, one process %.9g (%.3g of the largest, %.3g)\n",
                    g_rank, what, wi, (double)a[wi], (double)b[wi], worst / mx, mx);
        fail();
    }
    return mx > 0.0 ? worst / mx : 0.0;
}

/* Every rank holds rank 0's values, bitwise. */
static void assert_same_on_all_ranks(const float *v, size_t n) {
    float *r0 = malloc(n * sizeof *r0 + 1);
    assert_non_null(r0);
    memcpy(r0, v, n * sizeof *r0);
    MPI_Bcast(r0, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD);
    assert_memory_equal(r0, v, n * sizeof *r0);
    free(r0);
}

/* Trains model kind k distributed for STEPS steps (rank r on its slice of
 * each step's union) and returns its dump; *loss the last step's loss. */
static dump train_distributed(enum kind k, const float *data, const float *eps, float *loss) {
    /* Another seed on every rank: ae_mpi_attach gives them rank 0's model. */
    ae_model *m = make(k, 7 + 100 * g_rank);
    ae_mpi *h = NULL;
    OK(ae_mpi_attach(&h, m, MPI_COMM_WORLD, AE_MPI_DEFAULT));
    size_t B = local_batch(g_rank), off = offset_of(g_rank), T = total_batch();
    for (size_t t = 0; t < STEPS; t++) {
        if (eps) OK(ae_vae_set_fixed_eps(m, eps + (t * T + off) * VAE_DIM, B * VAE_DIM));
        OK(ae_train_step(m, data + (t * T + off) * IN, NULL, B, loss));
    }
    dump d = dump_of(m);
    ae_mpi_detach(h);
    ae_model_destroy(m);
    return d;
}

/* One process that sums its batch the way the ranks do: the gradient and
 * loss terms of each part (sizes parts[0..np)) are computed alone, through
 * the gradient hook (which fails the step, so it changes nothing), and
 * combined in double, weighted by the parts' sizes, in part order; then
 * the step is taken with that combination (the hook writes it). With the
 * ranks' batches as parts this is the ranks' arithmetic exactly; with parts
 * of one sample it is the gradient with the batch summed in double, the
 * reference the float sum of one process is measured against. */
typedef struct parts_hook {
    int capture;
    size_t n;
    float *g;     /* [n]: the captured part's gradient */
    double *acc;  /* [n]: the weighted sum */
    double sc[AE_GRAD_SCALAR_COUNT], sacc[AE_GRAD_SCALAR_BATCH];
} parts_hook;

static ae_status parts_cb(void *ctx, float *g, size_t n, double *sc, size_t ns) {
    parts_hook *p = ctx;
    assert_int_equal(n, p->n);
    if (p->capture) {
        memcpy(p->g, g, n * sizeof *g);
        memcpy(p->sc, sc, (ns < AE_GRAD_SCALAR_COUNT ? ns : AE_GRAD_SCALAR_COUNT) * sizeof *sc);
        return AE_ERR_STATE; /* the step changes nothing */
    }
    for (size_t i = 0; i < n; i++) g[i] = (float)p->acc[i];
    for (size_t k = 0; k < AE_GRAD_SCALAR_BATCH && k < ns; k++) sc[k] = p->sacc[k];
    return AE_OK;
}

static dump train_in_parts(enum kind k, const float *data, const float *eps, const size_t *parts,
                           size_t np) {
    ae_model *m = make(k, 7);
    parts_hook p;
    memset(&p, 0, sizeof p);
    dump d0 = dump_of(m); /* the arena's size (a tied model's holds unused room) */
    p.n = d0.n[0];
    dump_free(&d0);
    p.g = malloc(p.n * sizeof *p.g + 1);
    p.acc = malloc(p.n * sizeof *p.acc + 1);
    assert_non_null(p.g);
    assert_non_null(p.acc);
    OK(ae_model_set_grad_reduce(m, parts_cb, &p));
    size_t T = 0;
    for (size_t j = 0; j < np; j++) T += parts[j];
    for (size_t t = 0; t < STEPS; t++) {
        memset(p.acc, 0, p.n * sizeof *p.acc);
        memset(p.sacc, 0, sizeof p.sacc);
        p.capture = 1;
        for (size_t j = 0, off = t * T; j < np; off += parts[j++]) {
            if (eps) OK(ae_vae_set_fixed_eps(m, eps + off * VAE_DIM, parts[j] * VAE_DIM));
            assert_int_equal(ae_train_step(m, data + off * IN, NULL, parts[j], NULL), AE_ERR_STATE);
            double w = (double)parts[j] / (double)T;
            for (size_t i = 0; i < p.n; i++) p.acc[i] += w * (double)p.g[i];
            for (size_t q = 0; q < AE_GRAD_SCALAR_BATCH; q++) p.sacc[q] += w * p.sc[q];
        }
        p.capture = 0;
        if (eps) OK(ae_vae_set_fixed_eps(m, eps + t * T * VAE_DIM, parts[0] * VAE_DIM));
        OK(ae_train_step(m, data + t * T * IN, NULL, parts[0], NULL));
    }
    dump d = dump_of(m);
    ae_model_destroy(m);
    free(p.g);
    free(p.acc);
    return d;
}

/* The largest |a - b| relative to max |b|. */
static double scaled_diff(const float *a, const float *b, size_t n) {
    double mx = 0.0, worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        mx = fmax(mx, fabs((double)b[i]));
        worst = fmax(worst, fabs((double)a[i] - (double)b[i]));
    }
    return mx > 0.0 ? worst / mx : 0.0;
}

/* N ranks against one process with their union, after 20 steps. SGD with
 * momentum: to 1e-6 of each array's largest value. Adam, for the models
 * without BatchNorm:
 * - bitwise equal to one process that sums the same parts in the same
 *   order (train_in_parts with the ranks' batches): the only difference
 *   from one process is the order of the float sum over the batch;
 * - within max(1e-6, 3 F) of one process, where F is how far one process
 *   itself is from the run whose batch sums are taken sample by sample in
 *   double (its own rounding). Adam's first step is lr·g/(|g| + eps): for
 *   an element whose gradient cancels to about eps (1e-8) over the batch,
 *   the last bits of the float sum change that step by a visible fraction
 *   of lr, in one process as much as in N ranks (docs/mpi.md, measured:
 *   F up to 5e-5, and the ranks' difference within 1.4 F). 1e-6 against
 *   the float sum of one process is below that sum's own error.
 * conv+BatchNorm with Adam: to 1e-6 (its BatchNorm statistics need the
 * whole batch, so it has no part-wise twin). */
static void test_equivalence(void **state) {
    (void)state;
    size_t T = total_batch();
    float *data = malloc(STEPS * T * IN * sizeof *data);
    float *eps = malloc(STEPS * T * VAE_DIM * sizeof *eps);
    size_t *ones = malloc(T * sizeof *ones), *ranks = malloc((size_t)g_size * sizeof *ranks);
    assert_non_null(data);
    assert_non_null(eps);
    assert_non_null(ones);
    assert_non_null(ranks);
    fill(data, STEPS * T * IN, 1, 0.0f, 1.0f);
    fill(eps, STEPS * T * VAE_DIM, 2, -2.0f, 2.0f);
    for (size_t i = 0; i < T; i++) ones[i] = 1;
    for (int r = 0; r < g_size; r++) ranks[r] = local_batch(r);
    for (int opt = 0; opt < 2; opt++) {
        g_opt = opt ? AE_OPT_ADAM : AE_OPT_SGD;
        for (int k = 0; k < NKINDS; k++) {
            const float *ek = k == VAE ? eps : NULL;
            ae_model *ref = make((enum kind)k, 7);
            float ref_loss = 0.0f, loss = 0.0f;
            for (size_t t = 0; t < STEPS; t++) {
                if (ek) OK(ae_vae_set_fixed_eps(ref, eps + t * T * VAE_DIM, T * VAE_DIM));
                OK(ae_train_step(ref, data + t * T * IN, NULL, T, &ref_loss));
            }
            dump r = dump_of(ref);
            dump d = train_distributed((enum kind)k, data, ek, &loss);
            assert_int_equal(d.n[0], r.n[0]);
            assert_int_equal(d.n[1], r.n[1]);
            double tol = 1e-6, floor_err = 0.0;
            if (opt && k != CONV_BN) {
                dump same = train_in_parts((enum kind)k, data, ek, ranks, (size_t)g_size);
                assert_memory_equal(same.v[0], d.v[0], d.n[0] * sizeof(float));
                dump exact = train_in_parts((enum kind)k, data, ek, ones, T);
                floor_err = scaled_diff(r.v[0], exact.v[0], r.n[0]);
                tol = fmax(tol, 3.0 * floor_err);
                dump_free(&same);
                dump_free(&exact);
            }
            double e = assert_close_scaled(d.v[0], r.v[0], r.n[0], tol, kind_names[k]);
            double es = assert_close_scaled(d.v[1], r.v[1], r.n[1], tol, "layer state");
            if (g_rank == 0)
                print_message("%s, %s: %zu parameters, differ by %.2g of the largest (state "
                              "%.2g; one process's own rounding %.2g); loss %.7g, one process "
                              "%.7g\n",
                              opt ? "Adam" : "SGD", kind_names[k], r.n[0], e, es, floor_err,
                              (double)loss, (double)ref_loss);
            assert_true(fabs((double)loss - ref_loss) <= tol * fabs((double)ref_loss));
            assert_same_on_all_ranks(d.v[0], d.n[0]);
            assert_same_on_all_ranks(d.v[1], d.n[1]);
            dump_free(&r);
            dump_free(&d);
            ae_model_destroy(ref);
        }
    }
    g_opt = AE_OPT_ADAM;
    free(data);
    free(eps);
    free(ones);
    free(ranks);
}

/* The same run twice: bitwise the same parameters and layer state. */
static void test_bitwise_repeat(void **state) {
    (void)state;
    size_t T = total_batch();
    float *data = malloc(STEPS * T * IN * sizeof *data);
    assert_non_null(data);
    fill(data, STEPS * T * IN, 3, 0.0f, 1.0f);
    float l1, l2;
    dump a = train_distributed(CONV_BN, data, NULL, &l1);
    dump b = train_distributed(CONV_BN, data, NULL, &l2);
    assert_memory_equal(a.v[0], b.v[0], a.n[0] * sizeof(float));
    assert_memory_equal(a.v[1], b.v[1], a.n[1] * sizeof(float));
    assert_true(l1 == l2);
    dump_free(&a);
    dump_free(&b);
    free(data);
}

/* A NaN in the last rank's batch fails the step on every rank with that
 * error, and changes nothing; a rank that leaves the steps (ae_mpi_agree
 * with an error) makes the others' step fail and every rank agrees; the
 * ranks then train on, in step. */
static void test_failure_on_one_rank(void **state) {
    (void)state;
    for (int k = 0; k < NKINDS; k++) {
        ae_model *m = make((enum kind)k, 11);
        ae_mpi *h = NULL;
        OK(ae_mpi_attach(&h, m, MPI_COMM_WORLD, AE_MPI_DEFAULT));
        size_t B = local_batch(g_rank);
        float x[4 * IN], eps[4 * VAE_DIM];
        fill(eps, 4 * VAE_DIM, 5, -1.0f, 1.0f);
        if (k == VAE) OK(ae_vae_set_fixed_eps(m, eps, B * VAE_DIM));
        for (int step = 0; step < 4; step++) {
            fill(x, B * IN, 100 + (uint32_t)(step * g_size + g_rank), 0.0f, 1.0f);
            if (step == 1 && g_rank == g_size - 1) x[5] = NAN;
            ae_status st = step == 2 && g_rank == g_size - 1
                               ? ae_mpi_agree(h, AE_ERR_IO)
                               : ae_train_step(m, x, NULL, B, NULL);
            if (step == 1) {
                assert_int_equal(st, AE_ERR_NUMERIC);
                assert_int_equal(ae_model_step_count(m), 1);
                if (g_rank != g_size - 1)
                    assert_non_null(strstr(ae_mpi_last_error(h), "failed its part"));
            } else if (step == 2) {
                if (g_rank != g_size - 1) {
                    assert_int_equal(st, AE_ERR_IO);
                    assert_int_equal(ae_mpi_agree(h, st), AE_ERR_IO);
                } else {
                    assert_int_equal(st, AE_ERR_IO);
                }
                assert_non_null(strstr(ae_mpi_last_error(h), "rank"));
            } else {
                OK(st);
            }
        }
        assert_int_equal(ae_model_step_count(m), 2);
        dump d = dump_of(m);
        assert_same_on_all_ranks(d.v[0], d.n[0]);
        assert_same_on_all_ranks(d.v[1], d.n[1]);
        dump_free(&d);
        ae_mpi_detach(h);
        ae_model_destroy(m);
    }
}

/* Models that differ are refused on every rank; so are bad arguments. */
static void test_attach_refuses(void **state) {
    (void)state;
    ae_model *m = make(g_rank == g_size - 1 ? TIED : DENSE, 3);
    ae_mpi *h = NULL;
    assert_int_equal(ae_mpi_attach(&h, m, MPI_COMM_WORLD, 0), AE_ERR_STATE);
    assert_non_null(h);
    if (g_rank != 0) assert_non_null(strstr(ae_mpi_last_error(h), "differs from rank 0"));
    assert_int_equal(ae_mpi_agree(h, AE_OK), AE_ERR_STATE); /* not attached: local */
    ae_mpi_detach(h);
    /* The model trains alone as before. */
    float x[3 * IN];
    fill(x, 3 * IN, 9, 0.0f, 1.0f);
    OK(ae_train_step(m, x, NULL, 3, NULL));
    assert_int_equal(ae_mpi_attach(NULL, m, MPI_COMM_WORLD, 0), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_mpi_attach(&h, m, MPI_COMM_WORLD, 8), AE_ERR_INVALID_ARG);
    ae_mpi_detach(h);
    assert_int_equal(ae_mpi_attach(&h, NULL, MPI_COMM_WORLD, 0), AE_ERR_INVALID_ARG);
    ae_mpi_detach(h);
    assert_int_equal(ae_mpi_rank(NULL), -1);
    assert_int_equal(ae_mpi_size(NULL), 0);
    assert_int_equal(ae_mpi_agree(NULL, AE_OK), AE_ERR_INVALID_ARG);
    ae_model_destroy(m);
}

/* ---- ae_mpi_fit ---- */

/* The global batch: 2 per rank and one more, so that the ranks' slices
 * differ (3 and 2 on 2 ranks; 3, 2, 2 on 3); the set ends in a last batch
 * of N samples, one per rank. */
static size_t fit_batch(void) { return 2 * (size_t)g_size + 1; }
static size_t fit_count(void) { return 5 * fit_batch() + (size_t)g_size; }

static ae_dataset *dataset_of(const float *x, size_t n) {
    ae_dataset *ds = NULL;
    OK(ae_dataset_create(&ds, NULL));
    OK(ae_dataset_from_memory(ds, x, NULL, n, IN, 1, 1, AE_DATA_COPY));
    return ds;
}

/* A path every rank of `comm` agrees on (rank 0's process id), in TMPDIR. */
static void shared_path(char *buf, size_t len, const char *what, MPI_Comm comm) {
    int pid = (int)getpid();
    MPI_Bcast(&pid, 1, MPI_INT, 0, comm);
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(buf, len, "%s/ae_mpi_test_%d_%s", dir, pid, what);
}

static ae_fit_options fit_opts(int shuffle) {
    ae_fit_options o;
    ae_fit_options_init(&o);
    o.epochs = 3;
    o.batch_size = fit_batch();
    o.shuffle = shuffle;
    o.shuffle_seed = 99;
    return o;
}

/* ae_mpi_fit on N ranks is ae_fit of one process with the global batch:
 * the same samples in every step (one shuffled order of the whole set,
 * each rank its slice of every batch), the same losses and validation;
 * the ranks stay bitwise the same, and a run repeats bitwise. */
static void test_fit_as_one_process(void **state) {
    (void)state;
    size_t n = fit_count(), nv = 9;
    float *x = malloc(n * IN * sizeof *x), *xv = malloc(nv * IN * sizeof *xv);
    assert_non_null(x);
    assert_non_null(xv);
    fill(x, n * IN, 21, 0.0f, 1.0f);
    fill(xv, nv * IN, 22, 0.0f, 1.0f);
    ae_dataset *all = dataset_of(x, n), *val = dataset_of(xv, nv);
    for (int shuffle = 0; shuffle < 2; shuffle++) {
        ae_fit_options o = fit_opts(shuffle);
        o.val = val;
        ae_history *hr = NULL, *hd = NULL;
        OK(ae_history_create(&hr, NULL));
        OK(ae_history_create(&hd, NULL));
        o.history = hr;
        ae_model *ref = make(CONV_BN, 5);
        OK(ae_fit(ref, all, &o));
        dump r = dump_of(ref);
        dump first;
        memset(&first, 0, sizeof first);
        for (int run = 0; run < 2; run++) {
            o.history = hd;
            ae_model *m = make(CONV_BN, 5 + g_rank);
            ae_mpi *h = NULL;
            OK(ae_mpi_attach(&h, m, MPI_COMM_WORLD, 0));
            OK(ae_mpi_fit(h, all, &o));
            assert_int_equal(ae_model_step_count(m), 3 * 6);
            dump e = dump_of(m);
            assert_same_on_all_ranks(e.v[0], e.n[0]);
            assert_same_on_all_ranks(e.v[1], e.n[1]);
            /* Every rank's value convention records the range of every
               slice's inputs, as the one process on the whole set. */
            ae_data_convention c = {.struct_size = sizeof c}, rc = {.struct_size = sizeof rc};
            OK(ae_model_data_convention(m, &c, NULL, NULL, 0));
            OK(ae_model_data_convention(ref, &rc, NULL, NULL, 0));
            assert_true(!isnan(rc.lo) && c.lo == rc.lo && c.hi == rc.hi);
            assert_close_scaled(e.v[0], r.v[0], r.n[0], 1e-6, "fit parameter");
            assert_close_scaled(e.v[1], r.v[1], r.n[1], 1e-6, "fit layer state");
            assert_int_equal(ae_history_count(hd), 3);
            for (size_t i = 0; i < 3; i++) {
                ae_epoch_stats a, b;
                a.struct_size = b.struct_size = sizeof a;
                OK(ae_history_get(hd, i, &a));
                OK(ae_history_get(hr, i, &b));
                assert_true(fabs(a.train_loss - b.train_loss) <= 1e-6 * b.train_loss);
                assert_true(fabs(a.val_loss - b.val_loss) <= 1e-6 * b.val_loss);
                float l[2] = {(float)a.train_loss, (float)a.val_loss};
                assert_same_on_all_ranks(l, 2);
            }
            if (run == 0) {
                first = e;
            } else {
                assert_memory_equal(first.v[0], e.v[0], e.n[0] * sizeof(float));
                dump_free(&first);
                dump_free(&e);
            }
            ae_mpi_detach(h);
            ae_model_destroy(m);
        }
        dump_free(&r);
        ae_model_destroy(ref);
        ae_history_destroy(hr);
        ae_history_destroy(hd);
    }
    ae_dataset_destroy(all);
    ae_dataset_destroy(val);
    free(x);
    free(xv);
}

static int stop_at_8(const ae_batch_stats *s, void *user) {
    (void)user;
    return s->step == 8;
}

/* Rank 0 alone writes the checkpoints (each rank names its own file, and
 * only rank 0's exists); the checkpoint resumes on every rank, on fewer
 * ranks, and in one process with plain ae_fit: all end as the run that
 * was not interrupted (bitwise on the same ranks). */
static void test_fit_checkpoint_resume(void **state) {
    (void)state;
    size_t n = fit_count();
    float *x = malloc(n * IN * sizeof *x);
    assert_non_null(x);
    fill(x, n * IN, 41, 0.0f, 1.0f);
    ae_dataset *all = dataset_of(x, n);
    ae_fit_options o = fit_opts(1);
    /* The run that is not interrupted. */
    ae_model *m = make(CONV_BN, 8);
    ae_mpi *h = NULL;
    OK(ae_mpi_attach(&h, m, MPI_COMM_WORLD, 0));
    OK(ae_mpi_fit(h, all, &o));
    dump u = dump_of(m);
    ae_mpi_detach(h);
    ae_model_destroy(m);
    /* Stopped by rank 0's batch callback at step 8, with a checkpoint. */
    char path[256], mine[300];
    shared_path(path, sizeof path, "ckpt.aem", MPI_COMM_WORLD);
    snprintf(mine, sizeof mine, "%s.%d", path, g_rank);
    m = make(CONV_BN, 8);
    OK(ae_mpi_attach(&h, m, MPI_COMM_WORLD, 0));
    o.batch_callback = g_rank == 0 ? stop_at_8 : NULL;
    o.checkpoint_path = mine;
    o.checkpoint_every = 5;
    OK(ae_mpi_fit(h, all, &o));
    assert_int_equal(ae_model_step_count(m), 8);
    ae_mpi_detach(h);
    ae_model_destroy(m);
    MPI_Barrier(MPI_COMM_WORLD);
    snprintf(path + strlen(path), sizeof path - strlen(path), ".0");
    assert_int_equal(access(mine, F_OK), g_rank == 0 ? 0 : -1);
    o.batch_callback = NULL;
    o.checkpoint_path = NULL;
    o.checkpoint_every = 0;
    o.resume = 1;
    /* Resumed on every rank: bitwise the run that went on. */
    OK(ae_model_load(&m, path, NULL));
    OK(ae_mpi_attach(&h, m, MPI_COMM_WORLD, 0));
    OK(ae_mpi_fit(h, all, &o));
    dump d = dump_of(m);
    assert_memory_equal(d.v[0], u.v[0], u.n[0] * sizeof(float));
    assert_memory_equal(d.v[1], u.v[1], u.n[1] * sizeof(float));
    dump_free(&d);
    ae_mpi_detach(h);
    ae_model_destroy(m);
    /* On the ranks but the last (one rank when there are two). */
    MPI_Comm fewer;
    MPI_Comm_split(MPI_COMM_WORLD, g_rank < g_size - 1 ? 0 : MPI_UNDEFINED, g_rank, &fewer);
    if (fewer != MPI_COMM_NULL) {
        OK(ae_model_load(&m, path, NULL));
        OK(ae_mpi_attach(&h, m, fewer, 0));
        OK(ae_mpi_fit(h, all, &o));
        assert_int_equal(ae_model_step_count(m), 3 * 6);
        d = dump_of(m);
        assert_close_scaled(d.v[0], u.v[0], u.n[0], 1e-6, "resumed on fewer ranks");
        assert_close_scaled(d.v[1], u.v[1], u.n[1], 1e-6, "its layer state");
        dump_free(&d);
        ae_mpi_detach(h);
        ae_model_destroy(m);
        MPI_Comm_free(&fewer);
    }
    /* In one process, without MPI. */
    OK(ae_model_load(&m, path, NULL));
    OK(ae_fit(m, all, &o));
    d = dump_of(m);
    assert_close_scaled(d.v[0], u.v[0], u.n[0], 1e-6, "resumed in one process");
    dump_free(&d);
    ae_model_destroy(m);
    MPI_Barrier(MPI_COMM_WORLD);
    if (g_rank == 0) unlink(path);
    dump_free(&u);
    ae_dataset_destroy(all);
    free(x);
}

/* A .npy of float32 [n, IN]. */
static void write_npy(const char *path, const float *x, size_t n) {
    char hdr[128];
    int len = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %d), }",
                       n, IN);
    size_t total = 10 + (size_t)len + 1;
    size_t pad = (64 - total % 64) % 64;
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    unsigned short hl = (unsigned short)(len + 1 + pad);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    unsigned char hb[2] = {(unsigned char)(hl & 0xff), (unsigned char)(hl >> 8)};
    fwrite(hb, 1, 2, f);
    fwrite(hdr, 1, (size_t)len, f);
    for (size_t i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    fwrite(x, sizeof *x, n * IN, f);
    assert_int_equal(fclose(f), 0);
}

/* Failures: a NaN in a row only the last rank reads (file-backed, found
 * outside a step), a checkpoint rank 0 cannot write, runs that differ
 * between the ranks, a batch smaller than the ranks. Every rank returns
 * the same error, named by rank, and the models stay in step. */
static void test_fit_failures(void **state) {
    (void)state;
    size_t N = (size_t)g_size, G = fit_batch(), n = fit_count();
    float *x = malloc(n * IN * sizeof *x);
    assert_non_null(x);
    fill(x, n * IN, 31, 0.0f, 1.0f);
    /* The third batch's last slice (without shuffling). */
    x[(2 * G + G - 1) * IN + 3] = NAN;
    char path[300], expect[64];
    shared_path(path, sizeof path, "rows.npy", MPI_COMM_WORLD);
    if (g_rank == 0) write_npy(path, x, n);
    MPI_Barrier(MPI_COMM_WORLD);
    ae_dataset *ds = NULL;
    OK(ae_dataset_create(&ds, NULL));
    OK(ae_dataset_open_npy(ds, path));
    ae_fit_options o = fit_opts(0);
    ae_model *m = make(CONV_BN, 5);
    ae_mpi *h = NULL;
    OK(ae_mpi_attach(&h, m, MPI_COMM_WORLD, 0));
    assert_int_equal(ae_mpi_fit(h, ds, &o), AE_ERR_FORMAT);
    snprintf(expect, sizeof expect, "rank %d", g_size - 1);
    assert_non_null(strstr(ae_mpi_last_error(h), expect));
    assert_int_equal(ae_model_step_count(m), 2);
    dump d = dump_of(m);
    assert_same_on_all_ranks(d.v[0], d.n[0]);
    dump_free(&d);
    /* Rank 0 cannot write its checkpoint (no such directory). */
    ae_dataset *mem = dataset_of(x, 2 * G);
    o.checkpoint_path = "/nonexistent-dir-of-ae-tests/ckpt.aem";
    o.checkpoint_every = 1;
    assert_int_equal(ae_mpi_fit(h, mem, &o), AE_ERR_IO);
    assert_non_null(strstr(ae_mpi_last_error(h), "rank 0"));
    assert_int_equal(ae_model_step_count(m), 3);
    o.checkpoint_path = NULL;
    o.checkpoint_every = 0;
    /* The last rank's set is smaller, or its batch differs. */
    ae_dataset *part = dataset_of(x, g_rank == g_size - 1 ? G : 2 * G);
    if (g_size > 1) {
        assert_int_equal(ae_mpi_fit(h, part, &o), AE_ERR_STATE);
        assert_non_null(strstr(ae_mpi_last_error(h), g_rank == 0 ? "" : "size"));
        o.batch_size = G + (g_rank == g_size - 1);
        assert_int_equal(ae_mpi_fit(h, mem, &o), AE_ERR_STATE);
        o.batch_size = N - 1;
        assert_int_equal(ae_mpi_fit(h, mem, &o), AE_ERR_STATE);
        assert_non_null(strstr(ae_model_last_error(m), "smaller than"));
    }
    assert_int_equal(ae_model_step_count(m), 3);
    /* And the ranks train on together. */
    o.batch_size = G;
    o.epochs = 1;
    OK(ae_mpi_fit(h, mem, &o));
    assert_int_equal(ae_model_step_count(m), 5);
    d = dump_of(m);
    assert_same_on_all_ranks(d.v[0], d.n[0]);
    dump_free(&d);
    ae_mpi_detach(h);
    ae_model_destroy(m);
    ae_dataset_destroy(ds);
    ae_dataset_destroy(mem);
    ae_dataset_destroy(part);
    MPI_Barrier(MPI_COMM_WORLD);
    if (g_rank == 0) unlink(path);
    free(x);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equivalence),
        cmocka_unit_test(test_bitwise_repeat),
        cmocka_unit_test(test_failure_on_one_rank),
        cmocka_unit_test(test_attach_refuses),
        cmocka_unit_test(test_fit_as_one_process),
        cmocka_unit_test(test_fit_checkpoint_resume),
        cmocka_unit_test(test_fit_failures),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    /* One rank's failed assertion may leave the others inside a collective:
     * abort them all rather than wait for the timeout. */
    int any = 0;
    if (!failed) MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (failed) MPI_Abort(MPI_COMM_WORLD, 1);
    MPI_Finalize();
    return any ? 1 : 0;
}
