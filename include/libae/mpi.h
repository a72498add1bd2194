/*
 * libae_mpi - data-parallel training over MPI.
 *
 * A separate library (libae_mpi, `pkg-config ae-mpi`), so that programs
 * linking only libae (-lae) need no MPI. Every process (rank) of a
 * communicator creates a model of the same architecture and settings,
 * attaches it with ae_mpi_attach, and trains it on its own share of the
 * data, through ae_train_step or ae_mpi_fit. The ranks then keep the same
 * parameters: each step's gradients and loss terms are combined over the
 * ranks before the update, as one process would compute them on the union
 * of the ranks' batches (docs/mpi.md says exactly what is synchronised and
 * what stays per rank).
 *
 * Collective calls: ae_mpi_attach, ae_mpi_detach, ae_mpi_agree,
 * ae_mpi_sync_stats, ae_mpi_fit and, on an attached model, every
 * ae_train_step that gets past its argument checks: every rank of the
 * communicator makes them, in the same order. A rank whose own part of a
 * step fails (a non-finite input, out of memory) still takes part, and the
 * step fails on every rank (nothing is updated). A rank that stops calling
 * steps (an I/O error outside a step) must call ae_mpi_agree with its
 * error: the other ranks' pending steps then fail, and ae_mpi_agree
 * returns the error on every rank (ae_mpi_fit does this itself).
 *
 * The reduction is deterministic: the same run repeats bitwise (same
 * ranks, data, seeds and thread counts), whatever MPI's timing.
 * A handle is used by one thread at a time; MPI must be initialised.
 */
#ifndef LIBAE_MPI_H
#define LIBAE_MPI_H

#include <mpi.h>

#include <libae/ae.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A model attached to a communicator. Since 0.1.0. */
typedef struct ae_mpi ae_mpi;

/** Flags of ae_mpi_attach (numbers frozen). Since 0.1.0. */
typedef enum ae_mpi_flags {
    AE_MPI_DEFAULT = 0,
    /* BatchNorm layers normalise with their own rank's batch statistics
       instead of the statistics of all the ranks' samples (fewer messages;
       the running statistics then differ between ranks and rank 0's are
       the ones saved). */
    AE_MPI_LOCAL_BATCHNORM = 1
} ae_mpi_flags;

/**
 * Attaches `m` to the communicator `comm` (duplicated: the handle
 * communicates on its own copy). Collective. Checks that every rank's model
 * has the same architecture, tying, frozen layers and settings (the seed
 * aside), then gives every rank rank 0's parameters, optimizer and layer
 * state, step count and dead-latent activity; each rank's random number
 * generator is rank 0's advanced by rank · 2^128 draws (xoshiro256**'s
 * jump: streams that never overlap, derived from the seed, and from the
 * checkpoint on resume). Then sets the model's gradient-reduce hook and,
 * unless AE_MPI_LOCAL_BATCHNORM, its batch-statistics hook
 * (<libae/hook.h>); the model must not be given other hooks while
 * attached, and must outlive the handle. On failure every rank gets an
 * error and no model changes; *out is then a handle that is not attached
 * and serves only ae_mpi_last_error and ae_mpi_detach (as SQLite's
 * sqlite3_open does), or NULL when even it could not be allocated.
 * Errors: AE_ERR_INVALID_ARG (NULL, unknown flags), AE_ERR_STATE (MPI not
 * initialised; the ranks' models differ), AE_ERR_RANGE (an arena larger
 * than MPI's int counts), AE_ERR_OUT_OF_MEMORY, AE_ERR_IO (an MPI error).
 * Since 0.1.0.
 */
AE_API ae_status ae_mpi_attach(ae_mpi **out, ae_model *m, MPI_Comm comm, unsigned flags);

/**
 * Removes the hooks from the model and frees the handle (and its copy of
 * the communicator: collective for an attached handle). Accepts NULL.
 * Since 0.1.0.
 */
AE_API void ae_mpi_detach(ae_mpi *h);

/** The message of the handle's last failure; "" when none, a static
 *  message for NULL. Since 0.1.0. */
AE_API const char *ae_mpi_last_error(const ae_mpi *h);

/** This process's rank, and the number of ranks; -1 and 0 for NULL. Since 0.1.0. */
AE_API int ae_mpi_rank(const ae_mpi *h);
AE_API int ae_mpi_size(const ae_mpi *h);

/**
 * Collective: every rank passes its own status and gets the first error in
 * rank order (AE_OK when every rank passed AE_OK), with the failing rank
 * named in ae_mpi_last_error. A rank that calls it while the others are
 * still inside a training step (it left the loop on an error) makes their
 * step fail: they then call it too, and all agree. Since 0.1.0.
 */
AE_API ae_status ae_mpi_agree(ae_mpi *h, ae_status local);

/**
 * Collective: combines the per-rank statistics that are kept outside the
 * steps' reduction: the dead-latent activity (a code unit was active at a
 * step when it was on some rank), so that AE_STAT_DEAD_LATENTS counts over
 * all ranks' samples afterwards. Errors: AE_ERR_INVALID_ARG, as
 * ae_model_visit_state, AE_ERR_IO (MPI). Since 0.1.0.
 */
AE_API ae_status ae_mpi_sync_stats(ae_mpi *h);

/**
 * ae_fit over the ranks (collective): every rank passes the whole training
 * set as it opened it and the same options; opts->batch_size is the global
 * batch. The run is the run of one process with that batch: each epoch's
 * order is one permutation of the whole set (from shuffle_seed, the same on
 * every rank), cut into global batches, and rank r trains on its slice of
 * each, samples [nb·r/N, nb·(r+1)/N) of a batch of nb (a file-backed set,
 * ae_dataset_open_npy, is read only there). Rank 0 alone evaluates
 * opts->val (the others take its loss), runs the callbacks (their answer
 * stops every rank) and writes opts->checkpoint_path; every rank fills its
 * history, the same everywhere. With opts->resume, every rank loads the
 * same checkpoint first (ae_model_load); the number of ranks may differ
 * from the run's (not the global batch). ae_fit on an attached model runs
 * the same way (ae_mpi_attach sets the hook of ae_model_set_fit_share);
 * ae_mpi_fit adds a check that the ranks' runs are the same and the
 * agreement that ends every rank with the error of a rank that left the
 * run (a read error of its rows), which plain ae_fit cannot give.
 * Errors: those of ae_fit (message in ae_model_last_error of the failing
 * rank's model; ae_mpi_last_error names the rank), AE_ERR_STATE (the
 * ranks' sets, batch, epochs, order options or resume points differ; a
 * batch with fewer samples than ranks). Since 0.1.0.
 */
AE_API ae_status ae_mpi_fit(ae_mpi *h, const ae_dataset *train, const ae_fit_options *opts);

#ifdef __cplusplus
}
#endif

#endif /* LIBAE_MPI_H */
