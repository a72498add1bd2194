/* Trains PyTorch's example VAE, 784-400-[Gaussian 20]-400-784 (ReLU,
 * sigmoid output, BCE summed + KL, Adam lr 1e-3, batch 128), on
 * Fashion-MNIST with pixels in [0, 1]. Prints the training loss per image
 * each epoch and the test negative ELBO per image in nats (one sample of z
 * per image, on the [0, 1] pixels, not binarised), then writes
 *   vae_samples.pgm  an 8x8 grid of images decoded from z ~ N(0, I)
 *   vae_interp.pgm   the decoded path between the mu codes of two test
 *                    images (a trouser and an ankle boot), 10 steps
 *
 *   vae_fmnist [epochs] [data-dir] [output-dir]
 *
 * examples/vae_fmnist_torch.py is the PyTorch twin.
 */
#include "common.h"
#include "pgm.h"

static ae_model *build(size_t d) {
    ae_config *cfg = NULL;
    CHECK(ae_config_create(&cfg, NULL), "");
    const char *e = ae_config_last_error(cfg);
    CHECK(ae_config_set_input_size(cfg, d), e);
    CHECK(ae_config_add_dense(cfg, 400, AE_ACT_RELU), e);
    CHECK(ae_config_add_gaussian(cfg, 20), e);
    CHECK(ae_config_mirror_decoder(cfg, AE_ACT_SIGMOID), e); /* 20-400-784 */
    CHECK(ae_config_set_int(cfg, AE_P_LOSS, AE_LOSS_BCE), e);
    CHECK(ae_config_set_int(cfg, AE_P_REDUCTION, AE_REDUCE_SUM), e);
    CHECK(ae_config_set_int(cfg, AE_P_OPTIMIZER, AE_OPT_ADAM), e);
    CHECK(ae_config_set_float(cfg, AE_P_LEARNING_RATE, 1e-3), e);
    CHECK(ae_config_set_int(cfg, AE_P_SEED, 1), e);
    ae_model *m = NULL;
    CHECK(ae_model_create(&m, cfg), e);
    ae_config_destroy(cfg);
    return m;
}

/* The test negative ELBO per image (and its terms), in batches of 1000. */
static void test_elbo(ae_model *m, ae_dataset *test, double *elbo, double *recon, double *kl) {
    size_t n = ae_dataset_count(test), d = ae_dataset_dim(test), bs = 1000;
    const float *x = ae_dataset_data(test);
    *elbo = *recon = *kl = 0.0;
    for (size_t i = 0; i < n; i += bs) {
        size_t b = n - i < bs ? n - i : bs;
        double e, r, k;
        CHECK(ae_vae_neg_elbo(m, x + i * d, b, &e, &r, &k), ae_model_last_error(m));
        *elbo += e * (double)b;
        *recon += r * (double)b;
        *kl += k * (double)b;
    }
    *elbo /= (double)n;
    *recon /= (double)n;
    *kl /= (double)n;
}

static size_t first_of_class(ae_dataset *ds, int32_t label) {
    const int32_t *labels = ae_dataset_labels(ds);
    for (size_t i = 0; labels && i < ae_dataset_count(ds); i++)
        if (labels[i] == label) return i;
    return 0;
}

int main(int argc, char **argv) {
    int epochs = argc > 1 ? atoi(argv[1]) : 10;
    const char *dir = argc > 2 ? argv[2] : FMNIST_DIR;
    const char *out_dir = argc > 3 ? argv[3] : ".";
    if (epochs < 1) epochs = 1;
    ae_dataset *train = ex_load_fmnist(dir, 1), *test = ex_load_fmnist(dir, 0);
    size_t n = ae_dataset_count(train), d = ae_dataset_dim(train), bs = 128;
    size_t *idx = malloc(n * sizeof *idx);
    float *batch = malloc(bs * d * sizeof *batch);
    if (!idx || !batch) return 1;
    ae_model *m = build(d);
    printf("libae %s: VAE 784-400-[20]-400-784, BCE sum + KL, Adam lr 1e-3, batch %zu, %d epochs\n",
           ae_version_string(), bs, epochs);
    uint64_t shuffle_state = 0x9e3779b97f4a7c15ULL;
    double t0 = ex_now();
    for (int e = 1; e <= epochs; e++) {
        ex_shuffle(idx, n, &shuffle_state);
        double loss_sum = 0.0, recon_sum = 0.0, kl_sum = 0.0;
        for (size_t i = 0; i < n; i += bs) {
            size_t b = n - i < bs ? n - i : bs;
            CHECK(ae_dataset_gather(train, idx + i, b, batch, NULL), ae_dataset_last_error(train));
            float loss;
            double recon, kl;
            CHECK(ae_train_step(m, batch, NULL, b, &loss), ae_model_last_error(m));
            CHECK(ae_vae_loss_terms(m, &recon, &kl), ae_model_last_error(m));
            loss_sum += loss; /* summed over the batch */
            recon_sum += recon;
            kl_sum += kl;
        }
        printf("epoch %2d  train loss/image %.2f (recon %.2f, KL %.2f)  %.1f s\n", e,
               loss_sum / (double)n, recon_sum / (double)n, kl_sum / (double)n, ex_now() - t0);
        fflush(stdout);
    }
    double elbo, recon, kl;
    test_elbo(m, test, &elbo, &recon, &kl);
    printf("test negative ELBO %.2f nats/image (recon %.2f + KL %.2f), [0, 1] pixels, one z "
           "sample per image\n", elbo, recon, kl);

    /* 64 samples from the prior. */
    char path[1024];
    float *samples = malloc(64 * d * sizeof *samples);
    if (!samples) return 1;
    CHECK(ae_vae_sample(m, 64, samples, NULL), ae_model_last_error(m));
    snprintf(path, sizeof path, "%s/vae_samples.pgm", out_dir);
    if (pgm_write_grid(path, samples, 64, 28, 28, 8, 2) != 0) return 1;
    printf("wrote %s\n", path);

    /* From a trouser (class 1) to an ankle boot (class 9) through their mu. */
    const float *tx = ae_dataset_data(test);
    size_t a = first_of_class(test, 1), b = first_of_class(test, 9);
    float mu_a[20], mu_b[20];
    CHECK(ae_vae_encode(m, tx + a * d, 1, mu_a, NULL), ae_model_last_error(m));
    CHECK(ae_vae_encode(m, tx + b * d, 1, mu_b, NULL), ae_model_last_error(m));
    CHECK(ae_vae_interpolate(m, mu_a, mu_b, 10, samples), ae_model_last_error(m));
    snprintf(path, sizeof path, "%s/vae_interp.pgm", out_dir);
    if (pgm_write_grid(path, samples, 10, 28, 28, 10, 2) != 0) return 1;
    printf("wrote %s (test images %zu -> %zu)\n", path, a, b);

    free(samples);
    free(idx);
    free(batch);
    ae_model_destroy(m);
    ae_dataset_destroy(train);
    ae_dataset_destroy(test);
    return 0;
}
