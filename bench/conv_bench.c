/* Times one training step (forward, loss, backward, Adam) of the seeds'
 * models, as bench/torch_conv_bench.py does for PyTorch (which runs the
 * convolutions with oneDNN), then splits the step of a model with an MSE
 * loss into its layers' forward and backward passes, the loss and the
 * optimizer. bench/compare_seeds.py runs them all.
 *
 *   conv_bench [--model 000|001|002|003|004|a|b|vae|001d|004d] [--backend auto|openblas|onednn]
 *              [--steps N] [--batch B] [--data DIR] [--no-profile]
 *
 * The models (architecture descriptions below, the same in the PyTorch twin):
 *   000  the seeds' conv AE on Fashion-MNIST, batch 64 (the default)
 *   001  RGB 64x64: four stride-2 3x3 convs 3->32->64->128->256, average pool
 *        to the 256 code, a dense layer back to 256x4x4, four bilinear
 *        x2 upsamplings each with a 3x3 conv (256->128->64->32->3), batch 32
 *   003  Fashion-MNIST: four 6x6 convs (8 channels, LeakyReLU), 2x2 max pool,
 *        the 128 code, a dense decoder to 784, batch 128
 *   004  the TinyImageNet-style AE of docs/seeds.md (13.9M parameters), batch 32
 *   002  seed 002's conv AE with BatchNorm and a dense 4-d code, trained on
 *        x + 0.3 randn clamped to [0, 1] against the clean x, batch 128
 *   001d seed 001's dense 784-256-256-32 (mirrored), batch 256
 *   004d seed 004's dense 784-200-20 (mirrored), MSE summed, batch 128
 *   a    the dense 784-256-32-256-784 (ReLU, sigmoid output; SPEC.md's model
 *        a, seed 000's dense model), batch 256
 *   b    the dense 784-64-784 (LeakyReLU code, linear output; SPEC.md's b,
 *        the seed blog's), batch 256
 *   vae  the VAE 784-400-[20]-400-784 (ReLU, sigmoid output, BCE and KL
 *        summed over the batch; PyTorch's example, seed 000's), batch 128
 * 001 and 004 train on uniform noise of their shape (timing does not depend
 * on the values), the others on Fashion-MNIST.
 *
 * Run with OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 for the 1-thread figure;
 * bench/compare_conv.py runs every model on each backend and the PyTorch
 * twin in the same run and prints the ratios.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libae/ae.h>

#include "bench_common.h"
#include "model/model.h"

static double now(void) { return bench_now(); }

/* CPU time of this thread: robust to other processes sharing the cores. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define CHECK(call, msg)                                                                          \
    do {                                                                                          \
        ae_status st_ = (call);                                                                   \
        if (st_ != AE_OK) {                                                                       \
            fprintf(stderr, "%s: %s: %s\n", #call, ae_status_name(st_), (msg));                   \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)

typedef struct seed_model {
    const char *name;
    size_t batch;
    int fmnist; /* trains on Fashion-MNIST, else on noise of the input's shape */
    const char *arch;
} seed_model;

static const seed_model MODELS[] = {
    {"000", 64, 1,
     "input 1 28 28\n"
     "conv2d 16 3 stride=2 padding=1 activation=relu\n"
     "conv2d 32 3 stride=2 padding=1 activation=relu\n"
     "conv2d 64 7\n"
     "code\n"
     "convtranspose2d 32 7 activation=relu\n"
     "convtranspose2d 16 3 stride=2 padding=1 output_padding=1 activation=relu\n"
     "convtranspose2d 1 3 stride=2 padding=1 output_padding=1 activation=sigmoid\n"},
    {"001", 32, 0,
     "input 3 64 64\n"
     "conv2d 32 3 stride=2 padding=1 activation=relu\n"
     "conv2d 64 3 stride=2 padding=1 activation=relu\n"
     "conv2d 128 3 stride=2 padding=1 activation=relu\n"
     "conv2d 256 3 stride=2 padding=1 activation=relu\n"
     "adaptive_avgpool2d\n"
     "code\n"
     "flatten\n"
     "dense 4096 activation=relu\n"
     "unflatten 256 4 4\n"
     "upsample 2 mode=bilinear\n"
     "conv2d 128 3 padding=1 activation=relu\n"
     "upsample 2 mode=bilinear\n"
     "conv2d 64 3 padding=1 activation=relu\n"
     "upsample 2 mode=bilinear\n"
     "conv2d 32 3 padding=1 activation=relu\n"
     "upsample 2 mode=bilinear\n"
     "conv2d 3 3 padding=1 activation=sigmoid\n"},
    {"003", 128, 1,
     "input 1 28 28\n"
     "conv2d 8 6 activation=leaky_relu\n"
     "conv2d 8 6 activation=leaky_relu\n"
     "conv2d 8 6 activation=leaky_relu\n"
     "conv2d 8 6 activation=leaky_relu\n"
     "maxpool2d 2\n"
     "flatten\n"
     "code\n"
     "dense 784 activation=sigmoid\n"},
    {"004", 32, 0,
     "input 3 64 64\n"
     "conv2d 64 4 stride=2 padding=1\nbatchnorm2d\nrelu\n"
     "conv2d 128 4 stride=2 padding=1\nbatchnorm2d\nrelu\n"
     "conv2d 256 4 stride=2 padding=1\nbatchnorm2d\nrelu\n"
     "conv2d 512 4 stride=2 padding=1\nbatchnorm2d\nrelu\n"
     "flatten\n"
     "dense 512\n"
     "code\n"
     "dense 8192 activation=relu\n"
     "unflatten 512 4 4\n"
     "convtranspose2d 256 4 stride=2 padding=1\nbatchnorm2d\nrelu\n"
     "convtranspose2d 128 4 stride=2 padding=1\nbatchnorm2d\nrelu\n"
     "convtranspose2d 64 4 stride=2 padding=1\nbatchnorm2d\nrelu\n"
     "convtranspose2d 3 4 stride=2 padding=1 activation=sigmoid\n"},
    {"002", 128, 1,
     "input 1 28 28\n"
     "conv2d 16 3 stride=2 padding=1\nbatchnorm2d\nrelu\n"
     "conv2d 32 3 stride=2 padding=1\nbatchnorm2d\nrelu\n"
     "flatten\n"
     "dense 4\n"
     "code\n"
     "dense 1568 activation=relu\n"
     "unflatten 32 7 7\n"
     "convtranspose2d 16 3 stride=2 padding=1 output_padding=1\nbatchnorm2d\nrelu\n"
     "convtranspose2d 1 3 stride=2 padding=1 output_padding=1 activation=sigmoid\n"
     "set noise_kind=gaussian noise_level=0.3 noise_clip=true\n"},
    {"001d", 256, 1,
     "input 784\n"
     "dense 256 activation=relu\n"
     "dense 256 activation=relu\n"
     "dense 32\n"
     "code\n"
     "dense 256 activation=relu\n"
     "dense 256 activation=relu\n"
     "dense 784 activation=sigmoid\n"},
    {"004d", 128, 1,
     "input 784\n"
     "dense 200 activation=relu\n"
     "dense 20\n"
     "code\n"
     "dense 200 activation=relu\n"
     "dense 784 activation=sigmoid\n"
     "set reduction=sum\n"},
    {"a", 256, 1,
     "input 784\n"
     "dense 256 activation=relu\n"
     "dense 32\n"
     "code\n"
     "dense 256 activation=relu\n"
     "dense 784 activation=sigmoid\n"},
    {"b", 256, 1,
     "input 784\n"
     "dense 64 activation=leaky_relu\n"
     "code\n"
     "dense 784\n"},
    {"vae", 128, 1,
     "input 784\n"
     "dense 400 activation=relu\n"
     "gaussian 20\n"
     "dense 400 activation=relu\n"
     "dense 784 activation=sigmoid\n"
     "set loss=bce reduction=sum\n"},
};

static ae_model *make_model(const seed_model *sm, ae_backend backend) {
    ae_config *c = NULL;
    CHECK(ae_config_create(&c, NULL), "");
    CHECK(ae_config_from_arch(c, sm->arch), ae_config_last_error(c));
    CHECK(ae_config_set_float(c, AE_P_LEARNING_RATE, 1e-3), ae_config_last_error(c));
    CHECK(ae_config_set_backend(c, backend), ae_config_last_error(c));
    ae_model *m = NULL;
    CHECK(ae_model_create(&m, c), ae_config_last_error(c));
    ae_config_destroy(c);
    return m;
}

/* Multiply-adds of one sample's forward pass through the matrix layers
 * (conv, transposed conv, dense): the training step does about 3x that. */
static double forward_macs(const ae_model *m) {
    double macs = 0;
    for (size_t i = 0; i < m->nlayers; i++) {
        const ae_layer *L = &m->layers[i];
        if (L->kind == AE_LAYER_CONV2D)
            macs += (double)L->w_count * (double)(L->out_shape.h * L->out_shape.w);
        else if (L->kind == AE_LAYER_CONV_TRANSPOSE2D)
            macs += (double)L->w_count * (double)(L->in_shape.h * L->in_shape.w);
        else if (L->kind == AE_LAYER_DENSE || L->kind == AE_LAYER_GAUSSIAN)
            macs += (double)L->w_count;
    }
    return macs;
}

/* One training step split into parts, the driver's work done by hand with
 * the same internal calls; adds each part's time to t[]. */
static void profiled_step(ae_model *m, const float *x, size_t B, double *t) {
    size_t n = m->nlayers;
    ae_model_reserve(m, B);
    const float *in = x;
    for (size_t i = 0; i < n; i++) {
        ae_layer *L = &m->layers[i];
        ae_layer_io io = {.batch = B, .train = 1, .x = in, .pre = m->pre[i], .y = m->y[i],
                          .scratch = m->scratch[i],
                          .state = L->s_count ? m->buffers + L->s_off : NULL,
                          .backend = m->backend, .threads = ae_model_threads(m),
                          .plan = ae_model_layer_plan(m, i, B)};
        double t0 = cpu_now();
        L->ops->forward(L, m->params, &io);
        t[i] += cpu_now() - t0;
        in = m->y[i];
    }
    double t0 = cpu_now();
    const ae_layer *last = &m->layers[n - 1];
    ae_loss_input li = {AE_LOSS_MSE, AE_REDUCE_MEAN, last->act, last->slope, m->y[n - 1],
                        m->pre[n - 1], x, B * m->out_size, ae_model_threads(m)};
    ae_loss_eval(&li, m->grad_a);
    t[2 * n] += cpu_now() - t0;
    float *dy = m->grad_a, *dx = m->grad_b;
    for (size_t i = n; i-- > 0;) {
        ae_layer *L = &m->layers[i];
        ae_layer_io io = {.batch = B, .train = 1, .x = i ? m->y[i - 1] : x, .pre = m->pre[i],
                          .y = m->y[i], .dy = dy, .dx = i ? dx : NULL,
                          .dy_is_dpre = i + 1 == n, .scratch = m->scratch[i],
                          .state = L->s_count ? m->buffers + L->s_off : NULL,
                          .backend = m->backend, .threads = ae_model_threads(m),
                          .plan = ae_model_layer_plan(m, i, B)};
        t0 = cpu_now();
        L->ops->backward(L, m->params, m->grads, &io, 0);
        t[n + i] += cpu_now() - t0;
        float *tmp = dy;
        dy = dx;
        dx = tmp;
    }
    t0 = cpu_now();
    ae_optim_grad_sqnorm(m->grads, m->blocks, m->nblocks);
    ae_optim_settings os;
    ae_settings_to_optim(&m->s, &os);
    os.threads = ae_model_threads(m);
    ae_optim_step(&os, m->params, m->grads, m->state1, m->state2, m->blocks, m->nblocks, 1.0f);
    t[2 * n + 1] += cpu_now() - t0;
}

int main(int argc, char **argv) {
    size_t steps = 0, B = 0;
    const char *dir = "/usr/share/datasets/fashion-mnist", *model = "000", *bname = NULL;
    int profile = 1, threads = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            B = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--data") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(argv[i], "--backend") && i + 1 < argc)
            bname = argv[++i];
        else if (!strcmp(argv[i], "--no-profile"))
            profile = 0;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: conv_bench [--model 000|001|002|003|004|a|b|vae|001d|004d] [--backend "
                            "auto|openblas|onednn] [--steps N] [--batch B] [--data DIR] "
                            "[--no-profile] [--threads N (ae_model_set_threads)]\n");
            return 2;
        }
    }
    const seed_model *sm = NULL;
    for (size_t i = 0; i < sizeof MODELS / sizeof MODELS[0]; i++)
        if (!strcmp(model, MODELS[i].name)) sm = &MODELS[i];
    if (!sm) {
        fprintf(stderr, "conv_bench: no model %s (000, 001, 003, 004, a, b, vae)\n", model);
        return 2;
    }
    ae_backend backend = bench_backend(bname);
    if (!B) B = sm->batch;
    if (!steps) steps = sm->batch == 32 ? 20 : 200;
    if (steps < 5) steps = 5;
    ae_model *m = make_model(sm, backend);
    if (threads >= 0) CHECK(ae_model_set_threads(m, threads), ae_model_last_error(m));
    size_t d = ae_model_input_size(m), nb;
    ae_dataset *ds = NULL;
    float *noise = NULL;
    const float *data;
    if (sm->fmnist) {
        char path[1024];
        snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
        CHECK(ae_dataset_create(&ds, NULL), "");
        CHECK(ae_dataset_load_idx(ds, path, NULL), ae_dataset_last_error(ds));
        CHECK(ae_dataset_scale(ds, 1.0f / 255.0f, 0.0f), ae_dataset_last_error(ds));
        data = ae_dataset_data(ds);
        nb = ae_dataset_count(ds) / B;
    } else {
        nb = 8;
        noise = malloc(nb * B * d * sizeof *noise);
        if (!noise) return 1;
        uint32_t r = 12345;
        for (size_t i = 0; i < nb * B * d; i++) {
            r = r * 1664525u + 1013904223u;
            noise[i] = (float)(r >> 8) / 16777216.0f;
        }
        data = noise;
    }

    const char *coretype = getenv("OPENBLAS_CORETYPE");
    bench_header(ae_model_backend(m));
    printf("# OPENBLAS_CORETYPE=%s\n", coretype ? coretype : "(unset)");
    size_t warm = steps / 10 < 3 ? 3 : steps / 10;
    double *ts = malloc(steps * sizeof *ts), *cs = malloc(steps * sizeof *cs);
    if (!ts || !cs) return 1;
    float loss = 0;
    for (size_t s = 0; s < warm + steps; s++) {
        const float *x = data + (s % nb) * B * d;
        double t0 = now(), c0 = cpu_now();
        CHECK(ae_train_step(m, x, NULL, B, &loss), ae_model_last_error(m));
        if (s >= warm) {
            ts[s - warm] = now() - t0;
            cs[s - warm] = cpu_now() - c0;
        }
    }
    qsort(ts, steps, sizeof *ts, cmp_double);
    qsort(cs, steps, sizeof *cs, cmp_double);
    double med = ts[steps / 2], cmed = cs[steps / 2];
    printf("seed %s libae %s (%zu p) batch %zu  steps %zu  ms/step median %.3f [min %.3f max %.3f]  "
           "cpu ms/step median %.3f  samples/s %.0f  GFLOP/s %.1f  loss %.5f\n",
           sm->name, ae_backend_name(ae_model_backend(m)), ae_model_param_count(m), B, steps,
           med * 1e3, ts[0] * 1e3, ts[steps - 1] * 1e3, cmed * 1e3, (double)B / med,
           6.0 * forward_macs(m) * (double)B / med * 1e-9, (double)loss);
    fflush(stdout);

    /* Where the time goes. */
    size_t n = m->nlayers, prof = steps < 100 ? steps : 100;
    /* The split below computes an MSE loss: not a VAE's step. */
    for (size_t i = 0; i < n; i++) profile &= m->layers[i].kind != AE_LAYER_GAUSSIAN;
    /* Nor a step on corrupted inputs (002) or with a summed loss (004d). */
    profile &= strcmp(sm->name, "002") && strcmp(sm->name, "004d");
    double *t = calloc(2 * n + 2, sizeof *t);
    if (!t) return 1;
    for (size_t s = 0; profile && s < prof; s++) profiled_step(m, data + (s % nb) * B * d, B, t);
    double total = 0;
    for (size_t i = 0; i < 2 * n + 2; i++) total += t[i];
    if (profile) {
        printf("# profile over %zu steps, mean thread-CPU ms per step (%% of %.3f ms):\n", prof,
               total / (double)prof * 1e3);
        for (size_t i = 0; i < n; i++) {
            const ae_layer *L = &m->layers[i];
            printf("#   layer %2zu %-17s %3zux%2zux%2zu -> %3zux%2zux%2zu  forward %7.3f (%4.1f%%)  "
                   "backward %7.3f (%4.1f%%)\n",
                   i, L->ops->desc->name, L->in_shape.c, L->in_shape.h, L->in_shape.w,
                   L->out_shape.c, L->out_shape.h, L->out_shape.w, t[i] / (double)prof * 1e3,
                   100 * t[i] / total, t[n + i] / (double)prof * 1e3, 100 * t[n + i] / total);
        }
        printf("#   loss (MSE + output gradient) %6.3f (%4.1f%%)   Adam %6.3f (%4.1f%%)\n",
               t[2 * n] / (double)prof * 1e3, 100 * t[2 * n] / total,
               t[2 * n + 1] / (double)prof * 1e3, 100 * t[2 * n + 1] / total);
    }
    free(t);
    free(ts);
    free(cs);
    free(noise);
    ae_model_destroy(m);
    ae_dataset_destroy(ds);
    return 0;
}
