#!/bin/sh
# The exported ONNX models against ONNX Runtime (meson test 'onnx_runtime').
# Installs onnxruntime-node from the npm registry into ORT_DIR (once; its
# package carries the CPU library libonnxruntime.so, and --ignore-scripts
# skips its GPU download), has ort_cases write the models and libae's
# outputs, and runs check_ort.js on them. Without node, npm or the network
# it skips (exit 77) and says why.
#
# Usage: ort_test.sh ORT_CASES CHECK_ORT_JS ORT_DIR
set -u
cases=$1
script=$2
ort_dir=$3
version=${AE_ORT_VERSION:-1}

skip() {
    echo "SKIPPED: ONNX Runtime comparison not run: $*" >&2
    echo "SKIPPED: ONNX Runtime comparison not run: $*"
    exit 77
}

command -v node >/dev/null 2>&1 || skip "node (Node.js) not found"
if [ ! -f "$ort_dir/node_modules/onnxruntime-node/package.json" ]; then
    command -v npm >/dev/null 2>&1 || skip "npm not found"
    mkdir -p "$ort_dir" || exit 1
    echo "ort_test: npm install --ignore-scripts onnxruntime-node@$version into $ort_dir"
    if ! (cd "$ort_dir" && npm install --ignore-scripts --no-audit --no-fund --no-save \
              "onnxruntime-node@$version") >"$ort_dir/npm.log" 2>&1; then
        tail -n 5 "$ort_dir/npm.log" >&2
        skip "npm install onnxruntime-node failed (no network?), see $ort_dir/npm.log"
    fi
fi
echo "ort_test: onnxruntime-node $(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' \
    "$ort_dir/node_modules/onnxruntime-node/package.json" | head -n 1)"

work=$(mktemp -d "${TMPDIR:-/tmp}/ae-ort.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
"$cases" "$work" || exit 1
NODE_PATH="$ort_dir/node_modules" node "$script" "$work"
