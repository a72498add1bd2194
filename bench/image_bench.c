/* Images decoded and resized per second, one thread: loads an image folder
 * with ae_dataset_load_images (RGB, 64 x 64, bilinear, values to [0, 1])
 * ROUNDS times and prints the best and median rate. Its twin
 * bench/image_bench.py times torchvision's ImageFolder + Resize + ToTensor
 * on the same folder; bench/image_bench.sh runs both.
 *
 *   image_bench DIR [ROUNDS] [SIZE]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <libae/ae.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: image_bench DIR [ROUNDS] [SIZE]\n");
        return 2;
    }
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    size_t size = argc > 3 ? (size_t)atol(argv[3]) : 64;
    if (rounds < 1 || rounds > 100) rounds = 5;
    double t[100];
    size_t n = 0;
    for (int r = 0; r < rounds; r++) {
        ae_dataset *ds = NULL;
        ae_image_options o;
        ae_image_options_init(&o);
        o.height = o.width = size;
        if (ae_dataset_create(&ds, NULL) != AE_OK) return 1;
        double t0 = now();
        if (ae_dataset_load_images(ds, argv[1], &o) != AE_OK) {
            fprintf(stderr, "%s\n", ae_dataset_last_error(ds));
            return 1;
        }
        t[r] = now() - t0;
        n = ae_dataset_count(ds);
        ae_dataset_destroy(ds);
    }
    qsort(t, (size_t)rounds, sizeof *t, cmp);
    printf("libae %s: %zu images, %d rounds: median %.0f images/s, best %.0f images/s\n", argv[1], n,
           rounds, (double)n / t[rounds / 2], (double)n / t[0]);
    return 0;
}
