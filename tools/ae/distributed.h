/* `ae train --distributed`: the tool's side of libae_mpi (distributed.c).
 * Every call is a no-op answer (rank 0 of 1) when MPI was not started, so
 * the command reads the same with and without it. */
#ifndef AE_TOOL_DISTRIBUTED_H
#define AE_TOOL_DISTRIBUTED_H

#include "tool.h"

/* Whether this ae was built with libae_mpi. */
int dist_available(void);
/* MPI_Init, and g_cmd gets the rank ("ae train: rank 1 of 3") when there
 * are several. 0, or EXIT_RUN with the failure printed. */
int dist_start(void);
/* This process's rank and the number of ranks: 0 and 1 without MPI. */
int dist_rank(void);
int dist_size(void);
/* Collective: every rank passes its exit code so far (0: fine). Returns
 * the code of the first rank (in rank order) that failed, or 0; a rank
 * that did not fail prints that rank's message (g_last_message). Once a
 * failure is agreed, later calls return it without communicating: a rank
 * that failed jumps to its last call (dist_finish), which meets the
 * others' next agreement point. */
int dist_agree(int rc);
/* Collective, only after an agreement that passed: rank 0's n floats. */
int dist_bcast_floats(float *v, size_t n);
/* ae_fit over the ranks: attaches m to MPI_COMM_WORLD, ae_mpi_fit, detaches.
 * On failure (the same status on every rank) `msg` gets the failing rank's
 * reason. Without MPI, ae_fit. */
ae_status dist_fit(ae_model *m, const ae_dataset *train, const ae_fit_options *f, char *msg,
                   size_t cap);
/* The last agreement (dist_agree(rc)), then MPI_Finalize: the exit code,
 * the same on every rank. */
int dist_finish(int rc);
/* Whether `path` is a .npy file (by its magic). */
int dist_is_npy(const char *path);

#endif /* AE_TOOL_DISTRIBUTED_H */
