/* Data-parallel training throughput with libae_mpi: a training step
 * (forward, MSE, backward, all-reduce, Adam) of model a (784-256-32-256-784,
 * global batch 256) and the seeds' conv AE 000 (global batch 64), each rank
 * taking global batch / ranks samples. Run under mpirun with any number
 * of ranks (1 included); rank 0 prints the median step time and the
 * global samples per second. bench/mpi_bench.sh runs it on 1 and 2 ranks
 * and 2 OpenBLAS threads, beside PyTorch's DistributedDataParallel.
 *
 *   mpirun -np N mpi_bench [SECONDS [MODELS [per-rank]]]   MODELS: a, c (000) or ac
 *
 * per-rank: model a with 256 samples on every rank (global batch 256 N, as
 * DDP's batch size is per process) rather than 256 in all.
 */
#include <libae/mpi.h>

#include "bench_common.h"

#define ROWS 4096

static const char ARCH_000[] =
    "input 1 28 28\n"
    "conv2d 16 3 stride=2 padding=1 activation=relu\n"
    "conv2d 32 3 stride=2 padding=1 activation=relu\n"
    "conv2d 64 7\n"
    "code\n"
    "convtranspose2d 32 7 activation=relu\n"
    "convtranspose2d 16 3 stride=2 padding=1 output_padding=1 activation=relu\n"
    "convtranspose2d 1 3 stride=2 padding=1 output_padding=1 activation=sigmoid\n";

static ae_model *build(int conv) {
    ae_config *c = NULL;
    ae_model *m = NULL;
    if (ae_config_create(&c, NULL)) exit(1);
    if (conv) {
        if (ae_config_from_arch(c, ARCH_000)) {
            fprintf(stderr, "arch: %s\n", ae_config_last_error(c));
            exit(1);
        }
    } else {
        const size_t w[] = {256, 32, 256, 784};
        const ae_activation a[] = {AE_ACT_RELU, AE_ACT_IDENTITY, AE_ACT_RELU, AE_ACT_SIGMOID};
        ae_config_set_input_size(c, 784);
        for (int i = 0; i < 4; i++) {
            ae_config_add_dense(c, w[i], a[i]);
            if (i == 1) ae_config_mark_code(c);
        }
    }
    ae_config_set_int(c, AE_P_OPTIMIZER, AE_OPT_ADAM);
    ae_config_set_float(c, AE_P_LEARNING_RATE, 1e-3);
    if (ae_model_create(&m, c)) {
        fprintf(stderr, "create: %s\n", ae_config_last_error(c));
        exit(1);
    }
    ae_config_destroy(c);
    return m;
}

typedef struct ctx {
    ae_model *m;
    const float *x;
    size_t batch, global, offset; /* this rank's rows of each global batch */
} ctx;

static int step_fn(void *p, int i) {
    ctx *c = p;
    size_t off = ((size_t)i * c->global) % (ROWS - c->global + 1) + c->offset;
    if (ae_train_step(c->m, c->x + off * 784, NULL, c->batch, NULL) != AE_OK) {
        fprintf(stderr, "step: %s\n", ae_model_last_error(c->m));
        return 1;
    }
    return 0;
}

/* The ranks' medians agree within noise; rank 0's is printed. A step that
 * one rank starts late is late on every rank, so the ranks stay in step
 * without a barrier (the reduction is one). */
static void bench(const char *name, int conv, size_t global, double secs, const float *x,
                  int rank, int size) {
    ae_model *m = build(conv);
    ae_mpi *h = NULL;
    if (ae_mpi_attach(&h, m, MPI_COMM_WORLD, AE_MPI_DEFAULT)) {
        fprintf(stderr, "attach: %s\n", ae_mpi_last_error(h));
        exit(1);
    }
    size_t lo = global * (size_t)rank / (size_t)size, hi = global * (size_t)(rank + 1) / (size_t)size;
    ctx c = {m, x, hi - lo, global, lo};
    /* A warm-up, timed on rank 0, sets the number of steps (the same on
       every rank: each step is a collective). */
    double t0 = bench_now();
    for (int i = 0; i < 20; i++)
        if (step_fn(&c, i)) exit(1);
    int steps = (int)(secs / ((bench_now() - t0) / 20)) + 1;
    if (steps < 30) steps = 30;
    MPI_Bcast(&steps, 1, MPI_INT, 0, MPI_COMM_WORLD);
    bench_result     r = bench_run(step_fn, &c, 0, steps, 0.0);
    if (rank == 0)
        printf("%-8s ranks %d  threads %d  backend %s  global batch %4zu  steps %5d  ms/step median "
               "%8.3f [min %8.3f max %8.3f]  samples/s %9.0f\n",
               name, size, openblas_get_num_threads(), ae_backend_name(ae_model_backend(m)), global,
               r.n, r.median * 1e3,
               r.min * 1e3, r.max * 1e3, (double)global / r.median);
    fflush(stdout);
    ae_mpi_detach(h);
    ae_model_destroy(m);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    double secs = argc > 1 ? atof(argv[1]) : 5.0;
    const char *only = argc > 2 ? argv[2] : "ac";
    float *x = bench_data(ROWS, 784);
    if (rank == 0) bench_header(AE_BACKEND_AUTO);
    /* "per-rank": every rank takes model a's 256 samples (global batch 256 N) */
    int per_rank = argc > 3 && strcmp(argv[3], "per-rank") == 0;
    if (strchr(only, 'a')) bench(per_rank ? "a/rank" : "a", 0, per_rank ? 256 * (size_t)size : 256, secs, x, rank, size);
    if (strchr(only, 'c')) bench("000", 1, 64, secs, x, rank, size);
    free(x);
    MPI_Finalize();
    return 0;
}
