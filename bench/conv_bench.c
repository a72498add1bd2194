/* Times one training step (forward, MSE, backward, Adam) of the seeds'
 * convolutional autoencoder at batch 64 on Fashion-MNIST, as
 * bench/torch_conv_bench.py does for PyTorch (which runs it with oneDNN),
 * then splits the step into its layers' forward and backward passes, the
 * loss and the optimizer.
 *
 *   conv_bench [--steps N] [--batch B] [--data DIR]
 *
 * Run with OPENBLAS_NUM_THREADS=1 for the 1-thread figure; bench/conv_bench.sh
 * runs it and the PyTorch twin in the same run and prints the ratio.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libae/ae.h>

#include "model/model.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

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

static ae_model *seed_model(void) {
    ae_config *c = NULL;
    CHECK(ae_config_create(&c, NULL), "");
    CHECK(ae_config_set_input_shape(c, 1, 28, 28), ae_config_last_error(c));
    CHECK(ae_config_add_conv2d(c, 16, 3, 2, 1, AE_ACT_RELU), ae_config_last_error(c));
    CHECK(ae_config_add_conv2d(c, 32, 3, 2, 1, AE_ACT_RELU), ae_config_last_error(c));
    CHECK(ae_config_add_conv2d(c, 64, 7, 1, 0, AE_ACT_IDENTITY), ae_config_last_error(c));
    CHECK(ae_config_mark_code(c), ae_config_last_error(c));
    CHECK(ae_config_add_conv_transpose2d(c, 32, 7, 1, 0, 0, AE_ACT_RELU), ae_config_last_error(c));
    CHECK(ae_config_add_conv_transpose2d(c, 16, 3, 2, 1, 1, AE_ACT_RELU), ae_config_last_error(c));
    CHECK(ae_config_add_conv_transpose2d(c, 1, 3, 2, 1, 1, AE_ACT_SIGMOID),
          ae_config_last_error(c));
    CHECK(ae_config_set_float(c, AE_P_LEARNING_RATE, 1e-3), ae_config_last_error(c));
    ae_model *m = NULL;
    CHECK(ae_model_create(&m, c), ae_config_last_error(c));
    ae_config_destroy(c);
    return m;
}

/* Forward MACs per sample (as torch_bench.py's CONV_FWD_MACS). */
static const double FWD_MACS = 16.0 * 14 * 14 * 9 + 32.0 * 7 * 7 * 16 * 9 + 64.0 * 32 * 49 +
                               64.0 * 32 * 49 + 32.0 * 49 * 16 * 9 + 16.0 * 196 * 9;

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
                          .state = L->s_count ? m->buffers + L->s_off : NULL};
        double t0 = cpu_now();
        L->ops->forward(L, m->params, &io);
        t[i] += cpu_now() - t0;
        in = m->y[i];
    }
    double t0 = cpu_now();
    const ae_layer *last = &m->layers[n - 1];
    ae_loss_input li = {AE_LOSS_MSE, AE_REDUCE_MEAN, last->act, last->slope, m->y[n - 1],
                        m->pre[n - 1], x, B * m->out_size};
    ae_loss_eval(&li, m->grad_a);
    t[2 * n] += cpu_now() - t0;
    float *dy = m->grad_a, *dx = m->grad_b;
    for (size_t i = n; i-- > 0;) {
        ae_layer *L = &m->layers[i];
        ae_layer_io io = {.batch = B, .train = 1, .x = i ? m->y[i - 1] : x, .pre = m->pre[i],
                          .y = m->y[i], .dy = dy, .dx = i ? dx : NULL,
                          .dy_is_dpre = i + 1 == n, .scratch = m->scratch[i],
                          .state = L->s_count ? m->buffers + L->s_off : NULL};
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
    ae_optim_step(&os, m->params, m->grads, m->state1, m->state2, m->blocks, m->nblocks, 1.0f);
    t[2 * n + 1] += cpu_now() - t0;
}

int main(int argc, char **argv) {
    size_t steps = 300, B = 64;
    const char *dir = "/usr/share/datasets/fashion-mnist";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            B = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--data") && i + 1 < argc)
            dir = argv[++i];
        else {
            fprintf(stderr, "usage: conv_bench [--steps N] [--batch B] [--data DIR]\n");
            return 2;
        }
    }
    if (steps < 10) steps = 10;
    if (B < 1) B = 1;
    char path[1024];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
    ae_dataset *ds = NULL;
    CHECK(ae_dataset_create(&ds, NULL), "");
    CHECK(ae_dataset_load_idx(ds, path, NULL), ae_dataset_last_error(ds));
    CHECK(ae_dataset_scale(ds, 1.0f / 255.0f, 0.0f), ae_dataset_last_error(ds));
    const float *data = ae_dataset_data(ds);
    size_t nb = ae_dataset_count(ds) / B, d = ae_dataset_dim(ds);

    const char *coretype = getenv("OPENBLAS_CORETYPE");
    printf("# libae %s, OpenBLAS core %s (OPENBLAS_CORETYPE=%s), %d OpenBLAS thread(s)\n",
           ae_version_string(), openblas_get_corename(), coretype ? coretype : "(unset)",
           openblas_get_num_threads());
    ae_model *m = seed_model();
    size_t warm = 30;
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
    printf("d ConvAE (%zu p) batch %zu  steps %zu  ms/step median %.3f [min %.3f max %.3f]  "
           "cpu ms/step median %.3f  samples/s %.0f  GFLOP/s %.1f  loss %.5f\n",
           ae_model_param_count(m), B, steps, med * 1e3, ts[0] * 1e3, ts[steps - 1] * 1e3,
           cmed * 1e3, (double)B / med, 6.0 * FWD_MACS * (double)B / med * 1e-9, (double)loss);

    /* Where the time goes. */
    size_t n = m->nlayers, prof = steps < 100 ? steps : 100;
    double *t = calloc(2 * n + 2, sizeof *t);
    if (!t) return 1;
    for (size_t s = 0; s < prof; s++) profiled_step(m, data + (s % nb) * B * d, B, t);
    double total = 0;
    for (size_t i = 0; i < 2 * n + 2; i++) total += t[i];
    printf("# profile over %zu steps, mean thread-CPU ms per step (%% of %.3f ms):\n", prof,
           total / (double)prof * 1e3);
    for (size_t i = 0; i < n; i++) {
        const ae_layer *L = &m->layers[i];
        printf("#   layer %zu %-17s %3zux%2zux%2zu -> %3zux%2zux%2zu  forward %6.3f (%4.1f%%)  "
               "backward %6.3f (%4.1f%%)\n",
               i, L->ops->desc->name, L->in_shape.c, L->in_shape.h, L->in_shape.w, L->out_shape.c,
               L->out_shape.h, L->out_shape.w, t[i] / (double)prof * 1e3, 100 * t[i] / total,
               t[n + i] / (double)prof * 1e3, 100 * t[n + i] / total);
    }
    printf("#   loss (MSE + sigmoid gradient) %6.3f (%4.1f%%)   Adam %6.3f (%4.1f%%)\n",
           t[2 * n] / (double)prof * 1e3, 100 * t[2 * n] / total,
           t[2 * n + 1] / (double)prof * 1e3, 100 * t[2 * n + 1] / total);
    free(t);
    free(ts);
    free(cs);
    ae_model_destroy(m);
    ae_dataset_destroy(ds);
    return 0;
}
