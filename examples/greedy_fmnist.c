/* Greedy layer-wise training of a stacked autoencoder on Fashion-MNIST, as
 * Hinton and Salakhutdinov (2006) grew theirs:
 *
 *   1. train a shallow 784-256-784;
 *   2. build 784-256-64-256-784, copy the shallow model's layers into its
 *      outer layers and freeze them, tie the new inner pair (64-256 uses
 *      256-64's weight transposed), and train;
 *   3. unfreeze everything, untie, and fine-tune the whole model.
 *
 * Beside it, the same 784-256-64-256-784 trained from scratch for the same
 * total number of steps. Each stage trains `epochs` epochs (default 2) with
 * Adam lr 1e-3, batch 256, MSE; ReLU hidden layers, a linear code and a
 * sigmoid output. Prints the test MSE after each stage.
 *
 *   greedy_fmnist [epochs] [data-dir]
 */
#include "common.h"

enum { BATCH = 256 };

/* 784-256-784 (deep = 0) or 784-256-64-256-784 (deep = 1). */
static ae_model *build(size_t d, int deep, int64_t seed) {
    ae_config *cfg = NULL;
    CHECK(ae_config_create(&cfg, NULL), "");
    CHECK(ae_config_set_input_size(cfg, d), ae_config_last_error(cfg));
    CHECK(ae_config_add_dense(cfg, 256, AE_ACT_RELU), ae_config_last_error(cfg));
    if (deep) CHECK(ae_config_add_dense(cfg, 64, AE_ACT_IDENTITY), ae_config_last_error(cfg));
    CHECK(ae_config_mirror_decoder(cfg, AE_ACT_SIGMOID), ae_config_last_error(cfg));
    CHECK(ae_config_set_int(cfg, AE_P_OPTIMIZER, AE_OPT_ADAM), ae_config_last_error(cfg));
    CHECK(ae_config_set_float(cfg, AE_P_LEARNING_RATE, 1e-3), ae_config_last_error(cfg));
    CHECK(ae_config_set_int(cfg, AE_P_SEED, seed), ae_config_last_error(cfg));
    ae_model *m = NULL;
    CHECK(ae_model_create(&m, cfg), ae_config_last_error(cfg));
    ae_config_destroy(cfg);
    return m;
}

typedef struct trainer {
    ae_dataset *train;
    size_t *idx;
    float *batch;
    uint64_t shuffle;
} trainer;

/* Trains `epochs` epochs; returns the number of steps, adds the time to *secs. */
static size_t train_epochs(trainer *t, ae_model *m, int epochs, double *secs) {
    size_t n = ae_dataset_count(t->train), steps = 0;
    double t0 = ex_now();
    for (int e = 0; e < epochs; e++) {
        ex_shuffle(t->idx, n, &t->shuffle);
        for (size_t i = 0; i < n; i += BATCH) {
            size_t b = n - i < BATCH ? n - i : BATCH;
            CHECK(ae_dataset_gather(t->train, t->idx + i, b, t->batch, NULL),
                  ae_dataset_last_error(t->train));
            CHECK(ae_train_step(m, t->batch, NULL, b, NULL), ae_model_last_error(m));
            steps++;
        }
    }
    *secs += ex_now() - t0;
    return steps;
}

static void report(const char *what, ae_model *m, ae_dataset *test, size_t steps, double secs) {
    printf("  %-44s test MSE %.5f  (%zu parameters, %zu steps, %.1f s, %.2f ms/step)\n", what,
           ex_test_mse(m, test), ae_model_param_count(m), steps, secs,
           steps ? 1e3 * secs / (double)steps : 0.0);
    fflush(stdout);
}

int main(int argc, char **argv) {
    int epochs = argc > 1 ? atoi(argv[1]) : 2;
    const char *dir = argc > 2 ? argv[2] : FMNIST_DIR;
    if (epochs < 1) epochs = 1;
    ae_dataset *train = ex_load_fmnist(dir, 1), *test = ex_load_fmnist(dir, 0);
    size_t n = ae_dataset_count(train), d = ae_dataset_dim(train);
    trainer t = {train, malloc(n * sizeof(size_t)), malloc(BATCH * d * sizeof(float)),
                 0x9e3779b97f4a7c15ULL};
    if (!t.idx || !t.batch) return 1;
    printf("libae %s: greedy layer-wise training on Fashion-MNIST, %d epoch(s) per stage, "
           "batch %d, Adam lr 1e-3\n",
           ae_version_string(), epochs, BATCH);

    /* 1. The shallow model. */
    double secs = 0.0;
    ae_model *shallow = build(d, 0, 1);
    size_t s1 = train_epochs(&t, shallow, epochs, &secs);
    printf("stage 1: 784-256-784\n");
    report("trained", shallow, test, s1, secs);

    /* 2. The deep model: outer layers copied and frozen, inner pair tied. */
    ae_model *deep = build(d, 1, 2);
    CHECK(ae_model_copy_outer(deep, shallow), ae_model_last_error(deep));
    CHECK(ae_model_freeze(deep, 0, 0), ae_model_last_error(deep));
    CHECK(ae_model_freeze(deep, 3, 3), ae_model_last_error(deep));
    CHECK(ae_model_tie_layers(deep, 1, 1), ae_model_last_error(deep));
    printf("stage 2: 784-256-64-256-784, layers 0 and 3 copied and frozen, 1 and 2 tied\n");
    report("before training", deep, test, 0, 0.0);
    secs = 0.0;
    size_t s2 = train_epochs(&t, deep, epochs, &secs);
    report("inner layers trained", deep, test, s2, secs);

    /* 3. Everything unfrozen and untied, fine-tuned. */
    CHECK(ae_model_unfreeze(deep, 0, AE_LAST_LAYER), ae_model_last_error(deep));
    CHECK(ae_model_untie(deep), ae_model_last_error(deep));
    printf("stage 3: unfrozen, untied\n");
    secs = 0.0;
    size_t s3 = train_epochs(&t, deep, epochs, &secs);
    report("fine-tuned", deep, test, s3, secs);

    /* The same deep model from scratch, for the same total number of steps. */
    printf("baseline: 784-256-64-256-784 from scratch, %zu steps in all\n", s1 + s2 + s3);
    ae_model *scratch = build(d, 1, 2);
    t.shuffle = 0x9e3779b97f4a7c15ULL;
    secs = 0.0;
    size_t done = train_epochs(&t, scratch, epochs, &secs);
    report("after as many steps as stage 1", scratch, test, done, secs);
    done += train_epochs(&t, scratch, epochs, &secs);
    report("after as many steps as stages 1-2", scratch, test, done, secs);
    done += train_epochs(&t, scratch, epochs, &secs);
    report("after as many steps as stages 1-3", scratch, test, done, secs);
    printf("references: mean image 0.0866, PCA-64 0.0104 (SPEC.md)\n");

    free(t.idx);
    free(t.batch);
    ae_model_destroy(shallow);
    ae_model_destroy(deep);
    ae_model_destroy(scratch);
    ae_dataset_destroy(train);
    ae_dataset_destroy(test);
    return 0;
}
