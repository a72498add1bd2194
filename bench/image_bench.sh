#!/bin/sh
# Decode + resize throughput, one thread: libae's image loader beside
# torchvision's ImageFolder + Resize + ToTensor, on the 64x64 photo crops of
# examples/photo_crops.py, once as JPEGs and once as PNGs, alternating the
# two programs ROUNDS times each, resized to SIZE x SIZE (default 64: the
# resize runs, as an identity; 32 shrinks).
#
#   bench/image_bench.sh BUILD_DIR [ROUNDS] [SIZE]
set -eu
build=${1:?usage: image_bench.sh BUILD_DIR [ROUNDS]}
rounds=${2:-5}
size=${3:-64}
here=$(dirname "$0")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/image_bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
for fmt in jpg png; do
    /usr/bin/python3 "$here/../examples/photo_crops.py" "$tmp/$fmt" --format "$fmt" --stride 16 >/dev/null
    "$build/bench/image_bench" "$tmp/$fmt/train" "$rounds" "$size"
    /usr/bin/python3 "$here/image_bench.py" "$tmp/$fmt/train" "$rounds" "$size"
done
