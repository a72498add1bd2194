#!/bin/sh
# Runs an MPI test program on NP ranks of this host:
#   run.sh NP PROGRAM [ARGS...]
# Exits 77 (meson: skipped, with this message) when mpirun is not there:
# an MPI test that cannot run is never counted as passed.
set -eu
np=$1
shift
if ! command -v mpirun >/dev/null 2>&1; then
    echo "run.sh: mpirun not found: the MPI tests are skipped (install openmpi-bin)"
    exit 77
fi
# --oversubscribe: more ranks than cores (the machine has 2);
# --allow-run-as-root: CI runs as root. The ranks inherit this environment
# (LSAN_OPTIONS with the suppressions of tests/mpi/lsan.supp under ASan).
exec mpirun -np "$np" --oversubscribe --allow-run-as-root "$@"
