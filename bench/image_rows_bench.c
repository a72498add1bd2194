/* Training throughput with the rows in memory against the rows read from
 * disk (ae_dataset_open_npy), one thread: the same uint8 .npy file (N
 * samples of 3x32x32, written on the first run), the same dense model
 * 3072-256-32-256-3072, ae_fit with shuffling, batch 256. Prints samples
 * per second and the peak resident set (ru_maxrss): run each mode in its
 * own process so that the peaks are its own.
 *
 *   image_rows_bench memory|file FILE [N] [EPOCHS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <libae/ae.h>

#define CHECK(x, msg)                                                   \
    do {                                                                \
        if ((x) != AE_OK) {                                             \
            fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, (msg));  \
            exit(1);                                                    \
        }                                                               \
    } while (0)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Smooth random images, so that the model has something to learn. */
static void write_data(const char *path, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) exit(1);
    char dict[128];
    int k = snprintf(dict, sizeof dict, "{'descr': '|u1', 'fortran_order': False, 'shape': (%zu, 3, 32, 32), }", n);
    size_t hlen = (size_t)k + 1, pad = (64 - (10 + hlen) % 64) % 64;
    hlen += pad;
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc((int)(hlen & 255), f);
    fputc((int)(hlen >> 8), f);
    fwrite(dict, 1, (size_t)k, f);
    for (size_t i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    unsigned char img[3 * 32 * 32];
    uint64_t s = 12345;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        unsigned a = (unsigned)(s >> 40) & 255, b = (unsigned)(s >> 32) & 15;
        for (size_t j = 0; j < sizeof img; j++)
            img[j] = (unsigned char)((a + b * (j % 32) + (j / 32 % 32) * (j / 1024 + 1)) & 255);
        fwrite(img, 1, sizeof img, f);
    }
    if (fclose(f) != 0) exit(1);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: image_rows_bench memory|file FILE [N] [EPOCHS]\n");
        return 2;
    }
    int file = strcmp(argv[1], "file") == 0;
    size_t n = argc > 3 ? (size_t)atol(argv[3]) : 20000;
    size_t epochs = argc > 4 ? (size_t)atol(argv[4]) : 2;
    if (access(argv[2], R_OK) != 0) write_data(argv[2], n);
    ae_dataset *ds = NULL;
    CHECK(ae_dataset_create(&ds, NULL), "create");
    CHECK(file ? ae_dataset_open_npy(ds, argv[2]) : ae_dataset_load_npy(ds, argv[2]),
          ae_dataset_last_error(ds));
    CHECK(ae_dataset_scale(ds, 1.0f / 255.0f, 0.0f), ae_dataset_last_error(ds));
    ae_config *c = NULL;
    CHECK(ae_config_create(&c, NULL), "config");
    CHECK(ae_config_set_input_size(c, 3072), ae_config_last_error(c));
    CHECK(ae_config_add_dense(c, 256, AE_ACT_RELU), ae_config_last_error(c));
    CHECK(ae_config_add_dense(c, 32, AE_ACT_IDENTITY), ae_config_last_error(c));
    CHECK(ae_config_mirror_decoder(c, AE_ACT_SIGMOID), ae_config_last_error(c));
    CHECK(ae_config_set_int(c, AE_P_SEED, 1), ae_config_last_error(c));
    ae_model *m = NULL;
    CHECK(ae_model_create(&m, c), ae_config_last_error(c));
    ae_fit_options o;
    ae_fit_options_init(&o);
    o.epochs = epochs;
    o.batch_size = 256;
    ae_history *h = NULL;
    ae_history_create(&h, NULL);
    o.history = h;
    double t0 = now();
    CHECK(ae_fit(m, ds, &o), ae_model_last_error(m));
    double dt = now() - t0;
    ae_epoch_stats es;
    es.struct_size = sizeof es;
    ae_history_get(h, epochs - 1, &es);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%-6s %zu samples x %zu epochs: %.0f samples/s, final loss %.6f, peak RSS %.0f MB "
           "(data as float32 %.0f MB)\n",
           file ? "file" : "memory", ae_dataset_count(ds), epochs,
           (double)(ae_dataset_count(ds) * epochs) / dt, es.train_loss, (double)ru.ru_maxrss / 1024.0,
           (double)ae_dataset_count(ds) * 3072 * 4 / 1048576.0);
    ae_history_destroy(h);
    ae_model_destroy(m);
    ae_config_destroy(c);
    ae_dataset_destroy(ds);
    return 0;
}
