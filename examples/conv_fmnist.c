/* Trains the seeds' convolutional autoencoder on Fashion-MNIST and prints
 * its test MSE beside the dense autoencoder 784-256-32-256-784 trained for
 * the same number of epochs (same batch size, Adam lr 1e-3, MSE, the same
 * shuffles).
 *
 *   encoder  Conv2d 1->16 k3 s2 p1, ReLU     1x28x28 -> 16x14x14
 *            Conv2d 16->32 k3 s2 p1, ReLU            -> 32x7x7
 *            Conv2d 32->64 k7                        -> 64x1x1 (the code)
 *   decoder  ConvTranspose2d 64->32 k7, ReLU         -> 32x7x7
 *            ConvTranspose2d 32->16 k3 s2 p1 op1, ReLU -> 16x14x14
 *            ConvTranspose2d 16->1 k3 s2 p1 op1, Sigmoid -> 1x28x28
 *
 *   conv_fmnist [epochs] [batch] [data-dir]      (defaults 5, 64)
 */
#include "common.h"

static ae_model *conv_model(void) {
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
    CHECK(ae_config_set_int(c, AE_P_SEED, 42), ae_config_last_error(c));
    ae_model *m = NULL;
    CHECK(ae_model_create(&m, c), ae_config_last_error(c));
    ae_config_destroy(c);
    return m;
}

static ae_model *dense_model(void) {
    ae_config *c = NULL;
    CHECK(ae_config_create(&c, NULL), "");
    CHECK(ae_config_set_input_size(c, 784), ae_config_last_error(c));
    CHECK(ae_config_add_dense(c, 256, AE_ACT_RELU), ae_config_last_error(c));
    CHECK(ae_config_add_dense(c, 32, AE_ACT_IDENTITY), ae_config_last_error(c));
    CHECK(ae_config_mirror_decoder(c, AE_ACT_SIGMOID), ae_config_last_error(c));
    CHECK(ae_config_set_float(c, AE_P_LEARNING_RATE, 1e-3), ae_config_last_error(c));
    CHECK(ae_config_set_int(c, AE_P_SEED, 42), ae_config_last_error(c));
    ae_model *m = NULL;
    CHECK(ae_model_create(&m, c), ae_config_last_error(c));
    ae_config_destroy(c);
    return m;
}

/* Trains for `epochs`, printing each epoch; returns the final test MSE. */
static double train(const char *name, ae_model *m, ae_dataset *tr, ae_dataset *te, int epochs,
                    size_t bs, double *seconds) {
    size_t n = ae_dataset_count(tr), d = ae_dataset_dim(tr);
    size_t *idx = malloc(n * sizeof *idx);
    float *batch = malloc(bs * d * sizeof *batch);
    if (!idx || !batch) exit(1);
    uint64_t shuffle_state = 0x9e3779b97f4a7c15ULL;
    double mse = 0.0;
    *seconds = 0.0;
    for (int e = 1; e <= epochs; e++) {
        double t0 = ex_now(), loss_sum = 0.0;
        size_t steps = 0;
        ex_shuffle(idx, n, &shuffle_state);
        for (size_t i = 0; i < n; i += bs) {
            size_t b = n - i < bs ? n - i : bs;
            CHECK(ae_dataset_gather(tr, idx + i, b, batch, NULL), ae_dataset_last_error(tr));
            float loss;
            CHECK(ae_train_step(m, batch, NULL, b, &loss), ae_model_last_error(m));
            loss_sum += loss;
            steps++;
        }
        double dt = ex_now() - t0;
        *seconds += dt;
        mse = ex_test_mse(m, te);
        printf("%-6s epoch %d  train loss %.5f  test MSE %.5f  time %.1f s\n", name, e,
               loss_sum / (double)steps, mse, dt);
        fflush(stdout);
    }
    free(idx);
    free(batch);
    return mse;
}

int main(int argc, char **argv) {
    int epochs = argc > 1 ? atoi(argv[1]) : 5;
    long bs_arg = argc > 2 ? atol(argv[2]) : 64;
    const char *dir = argc > 3 ? argv[3] : FMNIST_DIR;
    if (epochs < 1) epochs = 1;
    size_t bs = bs_arg > 0 ? (size_t)bs_arg : 64;
    ae_dataset *tr = ex_load_fmnist(dir, 1), *te = ex_load_fmnist(dir, 0);

    ae_model *conv = conv_model(), *dense = dense_model();
    size_t code = ae_model_code_size(conv);
    printf("libae %s, Fashion-MNIST, %d epochs, batch %zu, Adam lr 1e-3, MSE\n",
           ae_version_string(), epochs, bs);
    printf("conv:  the seeds' conv autoencoder, code %zu (64x1x1), %zu parameters\n", code,
           ae_model_param_count(conv));
    printf("dense: 784-256-32-256-784, code %zu, %zu parameters\n", ae_model_code_size(dense),
           ae_model_param_count(dense));
    double tc, td;
    double mc = train("conv", conv, tr, te, epochs, bs, &tc);
    double md = train("dense", dense, tr, te, epochs, bs, &td);
    printf("\ntest MSE after %d epochs:  conv %.5f (%.1f s)   dense %.5f (%.1f s)\n", epochs, mc, tc,
           md, td);
    printf("(references: predicting the mean image 0.0866; PCA-32 0.0151, PCA-64 0.0104)\n");
    ae_model_destroy(conv);
    ae_model_destroy(dense);
    ae_dataset_destroy(tr);
    ae_dataset_destroy(te);
    return 0;
}
