#!/bin/sh
# ae_fit throughput with the rows in memory and read from disk, alternating
# the two modes ROUNDS times on the same uint8 .npy (N samples, made on the
# first run); each run prints samples/s and its peak RSS. A last run in file
# mode on a set BIG_N samples large (as float32 several times the memory
# limit given, under ulimit -v) shows the limit is not needed.
#
#   bench/image_rows_bench.sh BUILD_DIR [ROUNDS] [N] [BIG_N LIMIT_MB]
set -eu
build=${1:?usage: image_rows_bench.sh BUILD_DIR [ROUNDS] [N] [BIG_N LIMIT_MB]}
rounds=${2:-3}
n=${3:-20000}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rows_bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export OPENBLAS_NUM_THREADS=1
i=0
while [ "$i" -lt "$rounds" ]; do
    "$build/bench/image_rows_bench" memory "$tmp/data.npy" "$n" 2
    "$build/bench/image_rows_bench" file "$tmp/data.npy" "$n" 2
    i=$((i + 1))
done
if [ $# -ge 5 ]; then
    (ulimit -v $(($5 * 1024)) && "$build/bench/image_rows_bench" file "$tmp/big.npy" "$4" 1)
fi
