/* Trains the seed blog's sparse autoencoder 784-64-784 (LeakyReLU code,
 * linear output, MSE, Adam lr 1e-3, batch 256) on Fashion-MNIST three ways:
 *   top-16 per sample; top-16 then lifetime top-k 5%; a sigmoid code with
 *   KL sparsity (ρ 0.05, λ 0.1, summed over units; sigmoid output).
 * For each it prints the test MSE, the mean L0 of the test codes and the
 * dead latents (code units not active in the last epoch's steps).
 *
 *   sparse_fmnist [epochs] [data-dir]
 */
#include "common.h"

enum { TOPK, LIFETIME, KL };

static ae_model *build(int kind, size_t d) {
    ae_config *cfg = NULL;
    CHECK(ae_config_create(&cfg, NULL), "");
    const char *e = ae_config_last_error(cfg);
    CHECK(ae_config_set_input_size(cfg, d), e);
    CHECK(ae_config_add_dense(cfg, 64, kind == KL ? AE_ACT_SIGMOID : AE_ACT_LEAKY_RELU), e);
    if (kind == KL) CHECK(ae_config_add_kl_sparsity(cfg, AE_LAST_LAYER, 0.05, 0.1, AE_REDUCE_SUM), e);
    if (kind != KL) CHECK(ae_config_add_topk(cfg, 16), e);
    if (kind == LIFETIME) CHECK(ae_config_add_lifetime_topk_fraction(cfg, 0.05), e);
    /* 64-d: the selection layers stay on the encoder's side. */
    CHECK(ae_config_mirror_decoder(cfg, kind == KL ? AE_ACT_SIGMOID : AE_ACT_IDENTITY), e);
    CHECK(ae_config_set_int(cfg, AE_P_OPTIMIZER, AE_OPT_ADAM), e);
    CHECK(ae_config_set_float(cfg, AE_P_LEARNING_RATE, 1e-3), e);
    CHECK(ae_config_set_int(cfg, AE_P_SEED, 42), e);
    ae_model *m = NULL;
    CHECK(ae_model_create(&m, cfg), e);
    ae_config_destroy(cfg);
    return m;
}

/* Test MSE (reconstruction term only) and mean L0 of the codes, in inference mode. */
static void test_stats(ae_model *m, ae_dataset *test, double *mse, double *l0) {
    size_t n = ae_dataset_count(test), d = ae_dataset_dim(test), bs = 1000;
    const float *x = ae_dataset_data(test);
    double acc_mse = 0.0, acc_l0 = 0.0;
    CHECK(ae_model_set_mode(m, AE_MODE_INFER), ae_model_last_error(m));
    for (size_t i = 0; i < n; i += bs) {
        size_t b = n - i < bs ? n - i : bs;
        float loss;
        double recon, z;
        CHECK(ae_evaluate(m, x + i * d, NULL, b, &loss), ae_model_last_error(m));
        CHECK(ae_model_get_stat(m, AE_STAT_LOSS_RECON, &recon), "stat");
        CHECK(ae_model_get_stat(m, AE_STAT_CODE_L0, &z), "stat");
        acc_mse += recon * (double)b;
        acc_l0 += z * (double)b;
    }
    *mse = acc_mse / (double)n;
    *l0 = acc_l0 / (double)n;
}

int main(int argc, char **argv) {
    int epochs = argc > 1 ? atoi(argv[1]) : 5;
    const char *dir = argc > 2 ? argv[2] : FMNIST_DIR;
    if (epochs < 1) epochs = 1;
    ae_dataset *train = ex_load_fmnist(dir, 1), *test = ex_load_fmnist(dir, 0);
    size_t n = ae_dataset_count(train), d = ae_dataset_dim(train), bs = 256;
    size_t steps_per_epoch = (n + bs - 1) / bs;
    size_t *idx = malloc(n * sizeof *idx);
    float *batch = malloc(bs * d * sizeof *batch);
    if (!idx || !batch) return 1;
    const char *names[] = {"top-16", "top-16 + lifetime top-k 5%", "KL rho 0.05 lambda 0.1"};
    printf("libae %s: 784-64-784 sparse autoencoders, %d epochs, batch %zu\n", ae_version_string(),
           epochs, bs);
    for (int kind = TOPK; kind <= KL; kind++) {
        ae_model *m = build(kind, d);
        /* Dead latents: not active in any step of the last epoch. */
        CHECK(ae_model_set_int(m, AE_P_DEAD_WINDOW, (int64_t)steps_per_epoch), ae_model_last_error(m));
        uint64_t shuffle_state = 0x9e3779b97f4a7c15ULL;
        double t0 = ex_now(), loss_sum = 0.0;
        for (int e = 1; e <= epochs; e++) {
            ex_shuffle(idx, n, &shuffle_state);
            loss_sum = 0.0;
            for (size_t i = 0; i < n; i += bs) {
                size_t b = n - i < bs ? n - i : bs;
                CHECK(ae_dataset_gather(train, idx + i, b, batch, NULL), ae_dataset_last_error(train));
                float loss;
                CHECK(ae_train_step(m, batch, NULL, b, &loss), ae_model_last_error(m));
                loss_sum += loss;
            }
        }
        double mse, l0, dead;
        CHECK(ae_model_get_stat(m, AE_STAT_DEAD_LATENTS, &dead), "stat");
        test_stats(m, test, &mse, &l0);
        printf("%-28s test MSE %.5f  mean L0 %5.2f  dead latents %2.0f/64  last train loss %.5f  "
               "(%.1f s)\n",
               names[kind], mse, l0, dead, loss_sum / (double)steps_per_epoch, ex_now() - t0);
        fflush(stdout);
        ae_model_destroy(m);
    }
    free(idx);
    free(batch);
    ae_dataset_destroy(train);
    ae_dataset_destroy(test);
    return 0;
}
