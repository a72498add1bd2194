/* <libae/mpi.h> alone (with MPI's flags), as strict C11 with every warning
 * an error: it needs no other include and no definition of the build. */
#include <libae/mpi.h>

int main(void) {
    int ok = ae_mpi_rank(NULL) == -1 && ae_mpi_size(NULL) == 0;
    ok &= ae_mpi_agree(NULL, AE_OK) == AE_ERR_INVALID_ARG;
    ok &= AE_MPI_LOCAL_BATCHNORM == 1;
    ae_mpi_detach(NULL);
    return ok ? 0 : 1;
}
