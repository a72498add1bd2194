/* The denoising examples' shared program: train a dense denoising
 * autoencoder 784-256-64-256-784 on Fashion-MNIST with ae_fit (validation
 * split, cosine schedule with warm-up, early stopping), then compare on the
 * test set the noisy images and their reconstructions with the clean ones.
 * Only the public API is used. */
#ifndef AE_EXAMPLES_DENOISE_COMMON_H
#define AE_EXAMPLES_DENOISE_COMMON_H

#include <string.h>

#include "common.h"

static int dn_progress(const ae_epoch_stats *s, void *user) {
    (void)user;
    printf("epoch %2zu  train loss %.5f  val loss %.5f  lr %.2e  %.2f s%s\n", s->epoch,
           s->train_loss, s->val_loss, s->learning_rate, s->seconds, s->best ? "  *" : "");
    fflush(stdout);
    return 0;
}

static double dn_mse(const float *a, const float *b, size_t n) {
    double acc = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)a[i] - (double)b[i];
        acc += e * e;
    }
    return acc / (double)n;
}

/* Runs the example for one corruption; returns the process exit code. */
static int dn_run(const char *title, const ae_noise *noise, int argc, char **argv) {
    int epochs = argc > 1 ? atoi(argv[1]) : 10;
    const char *dir = argc > 2 ? argv[2] : FMNIST_DIR;
    if (epochs < 1) epochs = 1;
    ae_dataset *all = ex_load_fmnist(dir, 1), *test = ex_load_fmnist(dir, 0);
    ae_dataset *train = NULL, *val = NULL;
    CHECK(ae_dataset_split(all, 1.0 / 12.0, 7, &train, &val), ae_dataset_last_error(all));
    ae_dataset_destroy(all);
    size_t d = ae_dataset_dim(train);

    ae_config *cfg = NULL;
    CHECK(ae_config_create(&cfg, NULL), "");
    CHECK(ae_config_set_input_size(cfg, d), ae_config_last_error(cfg));
    CHECK(ae_config_add_dense(cfg, 256, AE_ACT_RELU), ae_config_last_error(cfg));
    CHECK(ae_config_add_dense(cfg, 64, AE_ACT_IDENTITY), ae_config_last_error(cfg));
    CHECK(ae_config_mirror_decoder(cfg, AE_ACT_SIGMOID), ae_config_last_error(cfg));
    CHECK(ae_config_set_float(cfg, AE_P_LEARNING_RATE, 2e-3), ae_config_last_error(cfg));
    CHECK(ae_config_set_int(cfg, AE_P_SEED, 42), ae_config_last_error(cfg));
    /* Denoising: each training step corrupts its batch afresh, the target is clean. */
    CHECK(ae_config_set_int(cfg, AE_P_NOISE_KIND, noise->kind), ae_config_last_error(cfg));
    CHECK(ae_config_set_float(cfg, AE_P_NOISE_LEVEL, noise->level), ae_config_last_error(cfg));
    CHECK(ae_config_set_float(cfg, AE_P_NOISE_VALUE, noise->value), ae_config_last_error(cfg));
    CHECK(ae_config_set_int(cfg, AE_P_NOISE_CLIP, noise->clip), ae_config_last_error(cfg));
    CHECK(ae_config_set_float(cfg, AE_P_NOISE_CLIP_LO, noise->clip_lo), ae_config_last_error(cfg));
    CHECK(ae_config_set_float(cfg, AE_P_NOISE_CLIP_HI, noise->clip_hi), ae_config_last_error(cfg));
    ae_model *m = NULL;
    CHECK(ae_model_create(&m, cfg), ae_config_last_error(cfg));
    ae_config_destroy(cfg);

    printf("libae %s: %s\n784-256-64-256-784, %zu training and %zu validation images, up to %d "
           "epochs\n(validation: the corrupted validation images against the clean ones)\n",
           ae_version_string(), title, ae_dataset_count(train), ae_dataset_count(val), epochs);
    ae_history *hist = NULL;
    CHECK(ae_history_create(&hist, NULL), "");
    ae_fit_options o;
    ae_fit_options_init(&o);
    o.epochs = (size_t)epochs;
    o.batch_size = 128;
    o.val = val;
    o.shuffle_seed = 1;
    o.schedule = AE_SCHED_COSINE;
    o.min_lr = 1e-4;
    o.warmup_steps = 200;
    o.patience = 4;
    o.min_delta = 1e-5;
    o.restore_best = 1;
    o.callback = dn_progress;
    o.history = hist;
    double t0 = ex_now();
    CHECK(ae_fit(m, train, &o), ae_model_last_error(m));
    printf("trained in %.1f s; best epoch %zu of %zu%s\n", ex_now() - t0,
           ae_history_best_epoch(hist), ae_history_count(hist),
           ae_history_stop_reason(hist) == AE_FIT_EARLY_STOPPED ? " (early stop)" : "");

    /* The test set, corrupted once with a fixed seed, through the model. */
    size_t n = ae_dataset_count(test), total = n * d;
    const float *clean = ae_dataset_data(test);
    float *noisy = malloc(total * sizeof *noisy), *rec = malloc(total * sizeof *rec);
    if (!noisy || !rec) return 1;
    CHECK(ae_corrupt(noise, clean, noisy, n, d, 2024), "ae_corrupt");
    for (size_t i = 0; i < n; i += 1000) {
        size_t b = n - i < 1000 ? n - i : 1000;
        CHECK(ae_reconstruct(m, noisy + i * d, b, rec + i * d), ae_model_last_error(m));
    }
    double mse_noisy = dn_mse(noisy, clean, total), mse_rec = dn_mse(rec, clean, total);
    printf("test MSE, noisy input vs clean:     %.5f\n", mse_noisy);
    printf("test MSE, reconstruction vs clean:  %.5f  (%.1fx lower)\n", mse_rec,
           mse_noisy / mse_rec);
    printf("test MSE, clean input reconstructed: %.5f\n", ex_test_mse(m, test));
    free(noisy);
    free(rec);
    ae_history_destroy(hist);
    ae_model_destroy(m);
    ae_dataset_destroy(train);
    ae_dataset_destroy(val);
    ae_dataset_destroy(test);
    return mse_rec * 3.0 < mse_noisy ? 0 : 2;
}

#endif
