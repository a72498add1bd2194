#!/usr/bin/python3
"""compare_conv.py - the seed conv models: libae on each backend vs PyTorch, from one run.

    bench/compare_conv.py BUILD_DIR [--models 000,001,003,004] [--threads 1,2]
                          [--rounds 3] [--steps N] [--cores set,unset]

For each OpenBLAS core setting (`set`: the environment as it comes, e.g.
OPENBLAS_CORETYPE=Haswell; `unset`: without OPENBLAS_CORETYPE, OpenBLAS's own
choice), each thread count and each model, runs BUILD_DIR/bench/conv_bench
(meson option bench=true) on every backend built in and
bench/torch_conv_bench.py (Debian's /usr/bin/python3, mkldnn on), one after
the other, ROUNDS times, and prints the median over the rounds of each
program's median step time (wall and thread CPU) and the ratios PyTorch /
libae (above 1: libae is faster). With 2 threads it first prints the
cache-line round trip between the two vCPUs (../shared/bench/pingpong.c),
on which 2-thread figures depend. Nothing is asserted.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
shared = os.path.normpath(os.path.join(here, "..", "..", "shared", "bench"))

ap = argparse.ArgumentParser()
ap.add_argument("build")
ap.add_argument("--models", default="000,001,003,004")
ap.add_argument("--threads", default="1")
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--steps", type=int, default=0, help="steps per run (default: the programs')")
ap.add_argument("--cores", default="set,unset")
args = ap.parse_args()

conv_bench = os.path.join(args.build, "bench", "conv_bench")
torch_bench = os.path.join(here, "torch_conv_bench.py")
LINE = re.compile(r"^seed (\d+) (\S+) .*?ms/step median ([\d.]+).*?cpu ms/step median ([\d.]+)",
                  re.M)


def run(cmd, env):
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode == 2 and "not built into" in p.stderr:
        return None
    if p.returncode:
        sys.stderr.write(p.stderr)
        p.check_returncode()
    m = LINE.search(p.stdout)
    if not m:
        sys.exit("no timing line in the output of %s:\n%s" % (" ".join(cmd), p.stdout))
    core = re.search(r"OpenBLAS core (\w+)", p.stdout)
    return float(m.group(3)), float(m.group(4)), core.group(1) if core else "?"


def pingpong():
    src = os.path.join(shared, "pingpong.c")
    if not os.path.exists(src):
        return "(../shared/bench/pingpong.c not found)"
    exe = os.path.join(tempfile.mkdtemp(), "pingpong")
    subprocess.run(["cc", "-O2", "-o", exe, src, "-lpthread"], check=True)
    return subprocess.run([exe], capture_output=True, text=True, check=True).stdout.strip()


models = args.models.split(",")
for core in args.cores.split(","):
    base = dict(os.environ)
    if core == "unset":
        base.pop("OPENBLAS_CORETYPE", None)
    elif "OPENBLAS_CORETYPE" not in base and "unset" in args.cores.split(","):
        continue  # as set is unset: printed once
    for threads in args.threads.split(","):
        env = dict(base, OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads)
        print("\n# OPENBLAS_CORETYPE=%s, %s thread(s)" % (env.get("OPENBLAS_CORETYPE", "(unset)"),
                                                         threads))
        if threads != "1":
            print("# two-vCPU placement: " + pingpong())
        rows = []
        for model in models:
            times = {}
            corename = "?"
            for _ in range(args.rounds):
                for backend in ("openblas", "onednn"):
                    cmd = [conv_bench, "--model", model, "--backend", backend, "--no-profile"]
                    if args.steps:
                        cmd += ["--steps", str(args.steps)]
                    r = run(cmd, env)
                    if r:
                        times.setdefault(backend, []).append(r[:2])
                        corename = r[2]
                cmd = ["/usr/bin/python3", torch_bench, "--model", model, "--threads", threads]
                if args.steps:
                    cmd += ["--steps", str(args.steps)]
                times.setdefault("torch", []).append(run(cmd, env)[:2])
            med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
                   for k, v in times.items()}
            rows.append((model, corename, med))
            print("#   seed %s done (%s)" % (model, ", ".join(
                "%s %.2f ms" % (k, v[0]) for k, v in med.items())), flush=True)
        print("\nmedian ms per training step over %d rounds (wall / thread CPU); "
              "ratio = PyTorch / libae" % args.rounds)
        print("%-5s %-9s %-19s %-19s %-19s %-13s %-13s" % (
            "seed", "OB core", "libae openblas", "libae onednn", "PyTorch", "ratio openblas",
            "ratio onednn"))
        for model, corename, med in rows:
            def cell(k):
                return "%8.2f / %8.2f" % med[k] if k in med else "%19s" % "-"

            def ratio(k):
                if k not in med:
                    return "%13s" % "-"
                return "%5.2f / %5.2f" % (med["torch"][0] / med[k][0], med["torch"][1] / med[k][1])

            print("%-5s %-9s %s %s %s %s %s" % (model, corename, cell("openblas"), cell("onednn"),
                                               cell("torch"), ratio("openblas"), ratio("onednn")))
