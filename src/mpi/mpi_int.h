/* libae_mpi internals, shared by mpi.c (attach, the hooks, agreement) and
 * fit.c (ae_mpi_fit). Only the public API of libae is used. */
#ifndef AE_MPI_INT_H
#define AE_MPI_INT_H

#include <libae/hook.h>
#include <libae/mpi.h>

/* What a collective is, in its header (see exchange). */
enum {
    TAG_ATTACH = 1,
    TAG_STATE = 2,
    TAG_GRAD = 3,
    TAG_BATCH = 4,
    TAG_FIT = 5,      /* a point of ae_fit (ae_fit_point in n) */
    TAG_STATS = 6,
    TAG_AGREE = 7,
    TAG_FIT_ARGS = 8, /* ae_mpi_fit's check that the ranks' runs are the same */
    TAG_RANGE = 9     /* the inputs' range over every rank, after ae_mpi_fit */
};

/* Every collective of the library starts with an MPI_Allgather of one
 * header per rank: so ranks at different points (one left the steps on an
 * error) find out, instead of meeting in mismatched collectives. */
typedef struct mpi_hdr {
    int32_t tag, status;
    uint64_t n;    /* what the collective moves (a size, a part number, a signature) */
    double value;  /* the batch size (TAG_GRAD); 1: the error was caught (TAG_AGREE) */
    double sc[AE_GRAD_SCALAR_COUNT]; /* the loss terms (TAG_GRAD), ae_fit's values (TAG_FIT) */
} mpi_hdr;

struct ae_mpi {
    ae_model *m;
    MPI_Comm comm;
    int has_comm, attached;
    int rank, size;
    unsigned flags;
    /* Another rank left the sequence (ae_mpi_agree): no communication
     * until this rank agrees too; the hooks fail with broken_status. */
    int broken;
    ae_status broken_status;
    /* The rank whose error the last failed collective reported (-1: none
     * yet since the last agreement): ae_mpi_agree prefers the ranks whose
     * error is their own over those that caught it. */
    int culprit;
    char err[256];
    mpi_hdr *hdrs;        /* [size] */
    size_t nparams;       /* floats of the gradient arena */
    int *counts, *displs; /* [size] each: the arena's chunks, one per rank */
    int *rcounts, *rdispls;
    float *recv, *part;   /* [size · chunk], [chunk]: the chunk this rank sums */
    double *w;            /* [size]: the ranks' weights of a step */
    double *dbuf;         /* [size · dcap]: the batch statistics of every rank */
    size_t dcap;
};

/* Sets the handle's message; returns st. */
ae_status ae_mpi_error(ae_mpi *h, ae_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The header exchange: AE_OK when every rank is at the same tag and n
 * (h->hdrs then holds every rank's header); otherwise the handle is
 * broken and its status returned. */
ae_status ae_mpi_exchange(ae_mpi *h, mpi_hdr *me);
/* The first rank (in rank order) whose header reports a failure, or -1;
 * and that rank's error, with a message naming it and `what` it failed. */
int ae_mpi_first_failed(const ae_mpi *h);
ae_status ae_mpi_rank_failed(ae_mpi *h, int q, const char *what);
/* The fit-share hook of <libae/hook.h> (fit.c), set by ae_mpi_attach. */
ae_status ae_mpi_fit_hook(void *ctx, ae_fit_point point, double *values, size_t n, ae_status local);

#endif
