#!/bin/sh
# Data-parallel training throughput, all in one run (the machine is shared:
# compare the figures of one run only): libae on 1 rank and on 2 ranks of
# one thread each, libae in one process with 2 threads (OMP_NUM_THREADS
# for the oneDNN backend, OPENBLAS_NUM_THREADS for OpenBLAS; both are set),
# and PyTorch's DistributedDataParallel (gloo) on 1 and 2 processes of one
# thread each, for model a (global batch 256) and the seed-000 conv AE
# (global batch 64); then model a with 256 samples on each of 2 ranks
# (global batch 512), libae and DDP. The rounds alternate, ROUNDS times (default 3), so
# that a slow spell of the machine does not fall on one setting only.
#
#   bench/mpi_bench.sh BUILD_DIR [SECONDS [ROUNDS]]
#
# BUILD_DIR is configured with -Dbench=true and MPI found (bench/mpi_bench).
# OPENBLAS_CORETYPE defaults to Haswell (docs/performance.md).
set -eu
build=$1
secs=${2:-5}
rounds=${3:-3}
here=$(dirname "$0")
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell}
# Waiting ranks yield the core (=0: they poll, which is fastest on an idle
# machine but, with other work on the cores, burns the time slices the
# other rank needs: measured 15-30x slower steps at a load of 7).
export OMPI_MCA_mpi_yield_when_idle=${OMPI_MCA_mpi_yield_when_idle:-1}
mpirun="mpirun --allow-run-as-root --bind-to none"
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE, yield_when_idle=$OMPI_MCA_mpi_yield_when_idle"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
r=1
while [ "$r" -le "$rounds" ]; do
    echo "# round $r" | tee -a "$out"
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $mpirun -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS -np 1 "$build/bench/mpi_bench" "$secs" | tee -a "$out"
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $mpirun -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS -np 2 "$build/bench/mpi_bench" "$secs" | tee -a "$out"
    OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 $mpirun -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS -np 1 "$build/bench/mpi_bench" "$secs" | tee -a "$out"
    /usr/bin/python3 "$here/torch_ddp_bench.py" --procs 1 --seconds "$secs" | tee -a "$out"
    /usr/bin/python3 "$here/torch_ddp_bench.py" --procs 2 --seconds "$secs" | tee -a "$out"
    # Model a with 256 samples per rank (global batch 512 on 2), both sides.
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $mpirun -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS -np 2 "$build/bench/mpi_bench" "$secs" a per-rank | tee -a "$out"
    /usr/bin/python3 "$here/torch_ddp_bench.py" --procs 2 --seconds "$secs" --models a --per-rank | tee -a "$out"
    r=$((r + 1))
done
# The ratios of each round, from the figures above: 2 ranks over 1 rank,
# and libae's 2 ranks over PyTorch DDP's 2 processes (samples/s; above 1:
# the first is faster).
awk '/^# round/ {r = $3}
     / ranks 1 .*threads 1 / {one[r, $1] = $NF; if ($1 == "a") one[r, "a/rank"] = $NF}
     / ranks 2 / {two[r, $1] = $NF}
     /torch DDP procs 2/ {ddp[r, $1] = $NF; m[$1] = 1}
     END {for (k in m) for (i = 1; i <= r; i++)
              if (one[i, k] && ddp[i, k])
                  printf "ratio %-4s round %d  2 ranks / 1 rank %.2f  libae 2 ranks / DDP 2 procs %.2f\n",
                         k, i, two[i, k] / one[i, k], two[i, k] / ddp[i, k]}' "$out"
