/* `ae train --distributed` over libae_mpi: MPI's start and end, the
 * agreements that keep the ranks' runs of the command in step (a rank
 * that fails before or after the fit stops every rank with its message and
 * exit code), and ae_mpi_fit in place of ae_fit. Built without MPI, the
 * calls answer as one process (and the command refuses --distributed). */
#include <stdio.h>
#include <string.h>

#include "distributed.h"

int dist_is_npy(const char *path) {
    unsigned char b[6] = {0};
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(b, 1, sizeof b, f) : 0;
    if (f) fclose(f);
    return n == 6 && b[0] == 0x93 && memcmp(b + 1, "NUMPY", 5) == 0;
}

#ifdef AE_TOOL_MPI

#include <libae/mpi.h>

static int g_on, g_rank, g_size = 1;
static int g_failed; /* the exit code of an agreed failure: no more collectives */
static char g_name[96];

int dist_available(void) { return 1; }
int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }

int dist_start(void) {
    if (MPI_Init(NULL, NULL) != MPI_SUCCESS) return fail(EXIT_RUN, "--distributed: MPI_Init failed");
    g_on = 1;
    /* The ranks share one terminal: whole lines, not pieces of them. */
    static char line_buf[1024];
    setvbuf(stderr, line_buf, _IOLBF, sizeof line_buf);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    if (g_size > 1) {
        snprintf(g_name, sizeof g_name, "%s: rank %d of %d", g_cmd, g_rank, g_size);
        g_cmd = g_name;
    }
    return 0;
}

int dist_agree(int rc) {
    if (!g_on) return rc;
    if (g_failed) return g_failed;
    /* The first failing rank, then its code and message from it. */
    int me = rc ? g_rank : g_size, first = g_size;
    MPI_Allreduce(&me, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (first == g_size) return 0;
    struct {
        int rc;
        char msg[sizeof g_last_message];
    } why;
    memset(&why, 0, sizeof why);
    if (g_rank == first) {
        why.rc = rc;
        memcpy(why.msg, g_last_message, sizeof why.msg);
    }
    MPI_Bcast(&why, (int)sizeof why, MPI_BYTE, first, MPI_COMM_WORLD);
    if (!rc) fprintf(stderr, "%s: stopped: rank %d failed: %s\n", g_cmd, first, why.msg);
    g_failed = why.rc;
    return why.rc;
}

int dist_bcast_floats(float *v, size_t n) {
    if (!g_on || g_size == 1) return 0;
    /* In pieces that fit MPI's int counts. */
    for (size_t at = 0; at < n; at += 1u << 30) {
        size_t k = n - at < (1u << 30) ? n - at : (1u << 30);
        if (MPI_Bcast(v + at, (int)k, MPI_FLOAT, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
            return fail(EXIT_RUN, "MPI_Bcast failed");
    }
    return 0;
}

ae_status dist_fit(ae_model *m, const ae_dataset *train, const ae_fit_options *f, char *msg,
                   size_t cap) {
    if (!g_on) {
        ae_status st = ae_fit(m, train, f);
        if (st) snprintf(msg, cap, "%s", ae_model_last_error(m));
        return st;
    }
    ae_mpi *h = NULL;
    ae_status st = ae_mpi_attach(&h, m, MPI_COMM_WORLD, AE_MPI_DEFAULT);
    if (!st) st = ae_mpi_fit(h, train, f);
    if (st && h) {
        /* Every rank failed with the same status; the rank whose own
           failure it was (ae_mpi_fit marks it "this rank") tells why. */
        const char *e = ae_mpi_last_error(h);
        int me = strstr(e, "(this rank)") ? g_rank : g_size, first = g_size;
        MPI_Allreduce(&me, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        char why[sizeof g_last_message];
        snprintf(why, sizeof why, "%s", first == g_rank ? ae_model_last_error(m) : e);
        if (first < g_size) {
            MPI_Bcast(why, (int)sizeof why, MPI_BYTE, first, MPI_COMM_WORLD);
            snprintf(msg, cap, "rank %d%s failed: %s", first, first == g_rank ? " (this rank)" : "",
                     why);
        } else {
            snprintf(msg, cap, "%s", e);
        }
    } else if (st) {
        snprintf(msg, cap, "out of memory");
    }
    ae_mpi_detach(h);
    return st;
}

int dist_finish(int rc) {
    if (!g_on) return rc;
    rc = dist_agree(rc);
    MPI_Finalize();
    g_on = 0;
    return rc;
}

#else /* built without MPI: one process */

int dist_available(void) { return 0; }
int dist_start(void) { return 0; }
int dist_rank(void) { return 0; }
int dist_size(void) { return 1; }
int dist_agree(int rc) { return rc; }
int dist_bcast_floats(float *v, size_t n) {
    (void)v, (void)n;
    return 0;
}
ae_status dist_fit(ae_model *m, const ae_dataset *train, const ae_fit_options *f, char *msg,
                   size_t cap) {
    ae_status st = ae_fit(m, train, f);
    if (st) snprintf(msg, cap, "%s", ae_model_last_error(m));
    return st;
}
int dist_finish(int rc) { return rc; }

#endif
