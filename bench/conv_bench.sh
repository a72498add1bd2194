#!/bin/sh
# Times the seeds' conv autoencoder (batch 64, 1 thread) with libae and with
# PyTorch in the same run, alternating ROUNDS times, and prints each median
# and the ratio of the medians of medians, in wall time and in thread CPU time
# (the second is less disturbed by other processes on the machine).
#
#   bench/conv_bench.sh BUILD_DIR [ROUNDS] [STEPS]
set -eu
build=${1:?usage: conv_bench.sh BUILD_DIR [ROUNDS] [STEPS]}
rounds=${2:-3}
steps=${3:-300}
here=$(dirname "$0")
out=$(mktemp "${TMPDIR:-/tmp}/conv_bench.XXXXXX")
trap 'rm -f "$out"' EXIT
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
i=0
while [ "$i" -lt "$rounds" ]; do
    "$build/bench/conv_bench" --steps "$steps" | tee -a "$out"
    /usr/bin/python3 "$here/torch_conv_bench.py" --threads 1 --steps "$steps" | tee -a "$out"
    i=$((i + 1))
done
awk '
/^d ConvAE \(/ { a[na++] = val("median"); ac[nac++] = val("cpu") }
/^d ConvAE torch/ { t[nt++] = val("median"); tc[ntc++] = val("cpu") }
function val(key,   i) { for (i = 1; i <= NF; i++) if ($i == key) return key == "cpu" ? $(i + 3) : $(i + 1) }
function med(v, n,   i, j, x) {
    for (i = 1; i < n; i++) { x = v[i]; for (j = i - 1; j >= 0 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
    return v[int(n / 2)]
}
END {
    ma = med(a, na); mt = med(t, nt); mac = med(ac, nac); mtc = med(tc, ntc)
    printf "wall: libae %.3f ms, PyTorch %.3f ms per step (medians of %d rounds): PyTorch / libae = %.2f\n", ma, mt, na, mt / ma
    printf "cpu:  libae %.3f ms, PyTorch %.3f ms per step (medians of %d rounds): PyTorch / libae = %.2f\n", mac, mtc, nac, mtc / mac
}' "$out"
