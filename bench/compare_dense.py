#!/usr/bin/python3
"""compare_dense.py - libae vs PyTorch vs the GEMM-only bound, from one run.

    bench/compare_dense.py BUILD_DIR [--threads 1] [--seconds 3]

Runs, one after the other under the same environment (so the same OpenBLAS
core): ../shared/bench/gemm_model.c (compiled here), BUILD_DIR/bench/bench_dense
(meson option bench=true) once per backend built in (openblas, onednn), and
../shared/bench/torch_bench.py --only abe with Debian's /usr/bin/python3.
Prints each median and the ratios. Nothing is asserted.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
shared = os.path.normpath(os.path.join(here, "..", "..", "shared", "bench"))

ap = argparse.ArgumentParser()
ap.add_argument("build")
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--seconds", type=float, default=3.0)
args = ap.parse_args()

env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))


def run(cmd):
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    sys.stdout.write(out)
    return out


def medians(text, pattern):
    """name -> median ms for lines matching pattern (groups: name, batch, median)."""
    found = {}
    for m in re.finditer(pattern, text):
        found[(m.group(1).strip(), int(m.group(2)))] = float(m.group(3))
    return found


tmp = tempfile.mkdtemp()
gemm = os.path.join(tmp, "gemm_model")
subprocess.run(["cc", "-O2", "-o", gemm, os.path.join(shared, "gemm_model.c"), "-lopenblas", "-lm"],
               check=True)
print(f"# OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')} threads={args.threads}")
g = run([gemm])
bench = os.path.join(args.build, "bench", "bench_dense")
outs = {}
for backend in ("openblas", "onednn"):
    # bench_dense exits with 2 when the backend is not built in.
    p = subprocess.run([bench, str(args.seconds), "abe", backend], env=env, capture_output=True,
                       text=True)
    if p.returncode == 2:
        continue
    p.check_returncode()
    sys.stdout.write(p.stdout)
    outs[backend] = p.stdout
t = run(["/usr/bin/python3", os.path.join(shared, "torch_bench.py"), "--threads", str(args.threads),
         "--only", "abe", "--min-seconds", str(args.seconds)])

core = re.search(r"OpenBLAS core (\S+)", outs["openblas"]).group(1)
G = medians(g, r"(\S+ \S+ (?:GEMMs?|GEMV) [\d-]+)\s+B=\s*(\d+).*?median\s+([\d.]+)")
T = medians(t, r"(?m)^([a-e] .*?)\s+batch\s+(\d+).*?median\s+([\d.]+)")


def pick(d, prefix, batch):
    for (name, b), v in d.items():
        if name.startswith(prefix) and b == batch:
            return v
    return float("nan")


rows = [("a train step", "a", "a train", 256), ("b train step", "b", "b/c train", 256),
        ("e encode", "e", "e encode GEMMs", 1), ("e encode", "e", "e encode GEMMs", 256)]
print(f"\n# summary (OpenBLAS core {core}, {args.threads} thread(s)), median ms; the GEMM bound "
      "is OpenBLAS's")
for backend, a in outs.items():
    A = medians(a, r"([a-e] \w+ [\d-]+)\s+batch\s+(\d+).*?median\s+([\d.]+)")
    print(f"\n# libae on {backend}")
    print(f"{'what':16s} {'batch':>5s} {'libae':>9s} {'PyTorch':>9s} {'GEMM bound':>10s} "
          f"{'PyTorch/libae':>13s} {'libae/bound':>11s}")
    for label, key, gkey, batch in rows:
        lib = pick(A, key, batch)
        pt = pick(T, key, batch)
        gb = pick(G, gkey, batch)
        if batch == 1:
            gb = min(gb, pick(G, "e encode GEMV", 1))
        print(f"{label:16s} {batch:5d} {lib:9.4f} {pt:9.4f} {gb:10.4f} {pt / lib:13.2f} "
              f"{lib / gb:11.2f}")
