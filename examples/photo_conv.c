/* Trains seed 004's TinyImageNet-style convolutional autoencoder on a
 * folder of 64x64 RGB photo crops (examples/photo_crops.py cuts them from
 * the photographs of Debian's python3-skimage) read with
 * ae_dataset_load_images, and reports the test set's MSE, PSNR, SSIM and
 * latent statistics, with a picture of originals over reconstructions.
 *
 *   encoder  4 x [Conv2d k4 s2 p1, BatchNorm2d, ReLU]  3 -> 64 -> 128 -> 256 -> 512
 *            (64x64 -> 4x4), Flatten, Linear 8192 -> 512 (the code)
 *   decoder  Linear 512 -> 8192, ReLU, Unflatten 512x4x4,
 *            3 x [ConvTranspose2d k4 s2 p1, BatchNorm2d, ReLU] 512 -> 256 -> 128 -> 64,
 *            ConvTranspose2d 64 -> 3 k4 s2 p1, Sigmoid
 *   13,912,707 parameters; Adam lr 1e-3, MSE, batch 32.
 *
 *   photo_conv DIR [epochs] [cache.npy] [picture.ppm]
 *
 * DIR holds train/ and test/ in the ImageFolder layout. With a cache path
 * the training set is decoded once into that uint8 .npy and read from disk
 * batch by batch (ae_fit does not know the difference). */
#include "common.h"

#include <string.h>

#include <libae/metrics.h>

static ae_model *seed004(void) {
    ae_config *c = NULL;
    CHECK(ae_config_create(&c, NULL), "");
#define C(call) CHECK(call, ae_config_last_error(c))
    C(ae_config_set_input_shape(c, 3, 64, 64));
    static const size_t enc[4] = {64, 128, 256, 512};
    for (int i = 0; i < 4; i++) {
        C(ae_config_add_conv2d(c, enc[i], 4, 2, 1, AE_ACT_IDENTITY));
        C(ae_config_add_batchnorm(c));
        C(ae_config_add_activation(c, AE_ACT_RELU));
    }
    C(ae_config_add_flatten(c));
    C(ae_config_add_dense(c, 512, AE_ACT_IDENTITY));
    C(ae_config_mark_code(c));
    C(ae_config_add_dense(c, 512 * 4 * 4, AE_ACT_RELU));
    C(ae_config_add_unflatten(c, 512, 4, 4));
    static const size_t dec[3] = {256, 128, 64};
    for (int i = 0; i < 3; i++) {
        C(ae_config_add_conv_transpose2d(c, dec[i], 4, 2, 1, 0, AE_ACT_IDENTITY));
        C(ae_config_add_batchnorm(c));
        C(ae_config_add_activation(c, AE_ACT_RELU));
    }
    C(ae_config_add_conv_transpose2d(c, 3, 4, 2, 1, 0, AE_ACT_SIGMOID));
    C(ae_config_set_float(c, AE_P_LEARNING_RATE, 1e-3));
    C(ae_config_set_int(c, AE_P_SEED, 4));
#undef C
    ae_model *m = NULL;
    CHECK(ae_model_create(&m, c), ae_config_last_error(c));
    ae_config_destroy(c);
    return m;
}

static int on_epoch(const ae_epoch_stats *s, void *user) {
    (void)user;
    printf("epoch %zu  train loss %.5f  test loss %.5f  %.1f s\n", s->epoch, s->train_loss,
           s->val_loss, s->seconds);
    fflush(stdout);
    return 0;
}

static ae_dataset *load(const char *dir, const char *part, const char *cache) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, part);
    ae_dataset *ds = NULL;
    CHECK(ae_dataset_create(&ds, NULL), "");
    ae_image_options o;
    ae_image_options_init(&o); /* RGB, 64 x 64 */
    o.cache = cache;
    CHECK(ae_dataset_load_images(ds, path, &o), ae_dataset_last_error(ds));
    return ds;
}

/* Originals (top rows) over reconstructions, 8 a row, as a binary PPM. */
static int write_pairs(const char *path, const float *x, const float *y, size_t n) {
    const size_t s = 64, gap = 2, cols = 8, rows = 2 * ((n + cols - 1) / cols);
    size_t W = cols * (s + gap) + gap, H = rows * (s + gap) + gap;
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fprintf(f, "P6\n%zu %zu\n255\n", W, H);
    for (size_t r = 0; r < H; r++)
        for (size_t cpx = 0; cpx < W; cpx++) {
            unsigned char px[3] = {255, 255, 255};
            size_t gr = r / (s + gap), gc = cpx / (s + gap), yy = r % (s + gap), xx = cpx % (s + gap);
            size_t k = (gr / 2) * cols + gc;
            if (yy >= gap && xx >= gap && k < n) {
                const float *img = (gr % 2 ? y : x) + k * 3 * s * s;
                for (int ch = 0; ch < 3; ch++) {
                    float v = img[ch * s * s + (yy - gap) * s + (xx - gap)];
                    px[ch] = (unsigned char)(v <= 0 ? 0 : v >= 1 ? 255 : (int)(v * 255.0f + 0.5f));
                }
            }
            fwrite(px, 1, 3, f);
        }
    return fclose(f) == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: photo_conv DIR [epochs] [cache.npy] [picture.ppm]\n");
        return 2;
    }
    int epochs = argc > 2 ? atoi(argv[2]) : 3;
    const char *cache = argc > 3 && argv[3][0] ? argv[3] : NULL;
    const char *pic = argc > 4 ? argv[4] : "photo_recon.ppm";
    if (epochs < 1) epochs = 1;
    ae_dataset *tr = load(argv[1], "train", cache), *te = load(argv[1], "test", NULL);
    ae_model *m = seed004();
    printf("libae %s: %zu training and %zu test crops of 3x64x64 (%zu classes)%s\n",
           ae_version_string(), ae_dataset_count(tr), ae_dataset_count(te),
           ae_dataset_class_count(tr), ae_dataset_file_backed(tr) ? ", training rows read from disk" : "");
    printf("seed 004 conv AE: %zu parameters, code %zu\n", ae_model_param_count(m),
           ae_model_code_size(m));
    ae_fit_options fo;
    ae_fit_options_init(&fo);
    fo.epochs = (size_t)epochs;
    fo.batch_size = 32;
    fo.shuffle_seed = 4;
    fo.val = te;
    fo.callback = on_epoch;
    CHECK(ae_fit(m, tr, &fo), ae_model_last_error(m));

    size_t n = ae_dataset_count(te), d = ae_dataset_dim(te), k = ae_model_code_size(m);
    const float *x = ae_dataset_data(te);
    float *y = malloc(n * d * sizeof *y), *z = malloc(n * k * sizeof *z);
    if (!y || !z) return 1;
    for (size_t i = 0; i < n; i += 64) {
        size_t b = n - i < 64 ? n - i : 64;
        CHECK(ae_reconstruct(m, x + i * d, b, y + i * d), ae_model_last_error(m));
        CHECK(ae_encode(m, x + i * d, b, z + i * k), ae_model_last_error(m));
    }
    double mse, psnr, ssim;
    CHECK(ae_metric_mse(x, y, n * d, &mse), "mse");
    CHECK(ae_metric_psnr(x, y, n * d, 1.0, &psnr), "psnr");
    CHECK(ae_metric_ssim(x, y, n, 3, 64, 64, 1.0, &ssim), "ssim");
    ae_latent_stats ls;
    ls.struct_size = sizeof ls;
    CHECK(ae_metric_latent_stats(z, n, k, 0.01, &ls), "latent stats");
    printf("test: MSE %.5f  PSNR %.2f dB  SSIM %.4f\n", mse, psnr, ssim);
    printf("latent: %zu of %zu dims active (variance > 0.01), %zu dead, mean activation %.4f, "
           "mean |z| %.4f, total variance %.2f\n",
           ls.active, ls.dims, ls.dead, ls.mean_activation, ls.mean_abs, ls.total_variance);
    /* Two crops of each class: every fifth test crop walks the classes in order. */
    float *px = malloc(16 * d * sizeof *px), *py = malloc(16 * d * sizeof *py);
    if (!px || !py) return 1;
    for (size_t i = 0; i < 16; i++) {
        size_t j = i * (n / 16);
        memcpy(px + i * d, x + j * d, d * sizeof *px);
        memcpy(py + i * d, y + j * d, d * sizeof *py);
    }
    if (write_pairs(pic, px, py, 16) == 0) printf("originals over reconstructions: %s\n", pic);
    free(px);
    free(py);
    free(y);
    free(z);
    ae_model_destroy(m);
    ae_dataset_destroy(tr);
    ae_dataset_destroy(te);
    return 0;
}
