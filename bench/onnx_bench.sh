#!/bin/sh
# Encode at batch 1 and 256, libae against ONNX Runtime (CPU, one intra-op
# thread) on the same ONNX file, in one run: rounds of libae and ONNX
# Runtime interleaved, each printing medians; then the ratios.
#
# The Node.js call overhead (tensor wrapping, the N-API crossing, the
# promise, copying the output out) is measured by timing, the same way, a
# graph with the encoder's input and output sizes and next to no work
# (Reshape + Slice of the input to the code's width, onnx_bench.js), and
# subtracted: ort_net = ort(model) - ort(slice). The Identity graph of the
# same input, whose output is the input's size (25x the code's for
# dense_a), is printed beside it and was the subtrahend before. Both the
# raw and the net ratios are printed.
#
# Usage: bench/onnx_bench.sh BUILD_DIR [ROUNDS [BACKEND]]
#   BACKEND: auto (default), openblas or onednn, libae's.
#   BUILD_DIR configured with -Dbench=true; onnxruntime-node is taken from
#   BUILD_DIR/ort/node_modules (meson test onnx_runtime installs it there).
set -eu
build=$1
rounds=${2:-3}
backend=${3:-auto}
here=$(cd "$(dirname "$0")" && pwd)
# One thread for either backend: OpenBLAS's own, oneDNN's OpenMP.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
export NODE_PATH="$build/ort/node_modules"
work=$(mktemp -d "${TMPDIR:-/tmp}/ae-onnx-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
# Writes the models and the input, and prints the OpenBLAS core.
"$build/bench/onnx_bench" "$work" 0 "$backend" | grep '^#' || true
: >"$work/times"
i=0
while [ "$i" -lt "$rounds" ]; do
    "$build/bench/onnx_bench" "$work" 1 "$backend" >>"$work/times"
    node "$here/onnx_bench.js" "$work" >>"$work/times"
    i=$((i + 1))
done
# Medians over the rounds, then the ratios (> 1: libae faster).
awk '
function med(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
$1 == "libae" { L[$2 " " $3] = L[$2 " " $3] " " $4 }
$1 == "ort" { O[$2 " " $3] = O[$2 " " $3] " " $4; I[$2 " " $3] = I[$2 " " $3] " " $5; S[$2 " " $3] = S[$2 " " $3] " " $6 }
END {
    printf "%-16s %6s %10s %10s %12s %10s %10s %10s\n", "model", "batch", "libae us", "ORT us", "identity us", "slice us", "raw ratio", "net ratio"
    for (k in L) {
        l = med(L[k]); o = med(O[k]); id = med(I[k]); sl = med(S[k]); split(k, kb, " ")
        printf "%-16s %6s %10.2f %10.2f %12.2f %10.2f %10.2f %10.2f\n", kb[1], kb[2], l, o, id, sl, o / l, (o - sl) / l
    }
}' "$work/times"
