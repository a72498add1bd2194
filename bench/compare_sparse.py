#!/usr/bin/python3
"""compare_sparse.py - libae's sparse models vs the same without sparsity vs PyTorch.

    bench/compare_sparse.py BUILD_DIR [--seconds 3]

Runs, one after the other under the same environment (one thread, so the
same OpenBLAS core): BUILD_DIR/bench/bench_sparse (meson option bench=true),
../shared/bench/torch_bench.py --only bc and bench/torch_sparse.py with
Debian's /usr/bin/python3. Prints each median and the ratios. Nothing is asserted.
"""
import argparse
import os
import re
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
shared = os.path.normpath(os.path.join(here, "..", "..", "shared", "bench"))
ap = argparse.ArgumentParser()
ap.add_argument("build")
ap.add_argument("--seconds", type=float, default=3.0)
args = ap.parse_args()
env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")


def run(cmd):
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    sys.stdout.write(out)
    got = {}
    for line in out.splitlines():
        m = re.match(r"(\w+) .*median\s+([\d.]+)", line)
        if m and not line.startswith("#"):
            got[m.group(1)] = float(m.group(2))
    return got


lib = run([os.path.join(args.build, "bench", "bench_sparse"), str(args.seconds), "bcww32"])
torch = run(["/usr/bin/python3", os.path.join(shared, "torch_bench.py"), "--threads", "1",
             "--only", "bc", "--min-seconds", str(args.seconds)])
torch.update(run(["/usr/bin/python3", os.path.join(here, "torch_sparse.py"),
                  "--seconds", str(args.seconds)]))
print("\nmedian ms per training step, batch 256, 1 thread")
print("%-6s %10s %10s %12s" % ("model", "libae", "PyTorch", "PyTorch/libae"))
for k in ("b", "c", "w", "w32"):
    if k in lib and k in torch:
        print("%-6s %10.3f %10.3f %12.2f" % (k, lib[k], torch[k], torch[k] / lib[k]))
print("\nsparsity speed-up, same model without / with top-k:")
for dense, sparse in (("b", "c"), ("w", "w32")):
    if all(k in lib for k in (dense, sparse)) and all(k in torch for k in (dense, sparse)):
        print("  %s/%s  libae %.2fx   PyTorch %.2fx" % (dense, sparse, lib[dense] / lib[sparse],
                                                      torch[dense] / torch[sparse]))
