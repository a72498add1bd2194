#!/usr/bin/python3
"""compare_seeds.py - every seed model: libae on each backend vs PyTorch, from one run.

    bench/compare_seeds.py BUILD_DIR [--models 000,001,002,003,004,a,b,vae,001d,004d]
                           [--threads 1,2] [--rounds 3] [--steps N] [--cores set]

The models are bench/conv_bench.c's: the seed conv models 000, 001, 002
(on noisy inputs), 003 and 004, the dense a (seed 000's), b, 001d (seed
001's) and 004d (seed 004's, summed MSE), the VAE of seed 000 (conv_bench's
comment says what each is). For each OpenBLAS core setting (`set`: the
environment as it comes, e.g. OPENBLAS_CORETYPE=Haswell; `unset`: without
OPENBLAS_CORETYPE, OpenBLAS's own choice), each thread count and each model,
runs BUILD_DIR/bench/conv_bench (meson option bench=true) on every backend
built in and its PyTorch twin bench/torch_conv_bench.py (Debian's
/usr/bin/python3, mkldnn on), one after the other, ROUNDS times, and prints
the median over the rounds of each program's median step time (wall and
thread CPU) and the ratios PyTorch / libae (above 1: libae is faster),
then one table of every setting. Each block names the OpenBLAS core the
programs reported and the cache-line round trip between the two vCPUs
(../shared/bench/pingpong.c), on which 2-thread figures depend. A model
whose parameter count differs between libae and PyTorch is flagged.
Nothing is asserted.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
# ../shared/bench beside the checkout (a worktree may sit deeper: look upwards).
shared = os.path.normpath(os.path.join(here, "..", "..", "shared", "bench"))
d = here
while not os.path.exists(os.path.join(shared, "pingpong.c")) and os.path.dirname(d) != d:
    d = os.path.dirname(d)
    if os.path.exists(os.path.join(d, "shared", "bench", "pingpong.c")):
        shared = os.path.join(d, "shared", "bench")

ap = argparse.ArgumentParser()
ap.add_argument("build")
ap.add_argument("--models", default="000,001,002,003,004,a,b,vae,001d,004d")
ap.add_argument("--threads", default="1,2")
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--steps", type=int, default=0, help="steps per run (default: the programs')")
ap.add_argument("--cores", default="set")
args = ap.parse_args()

conv_bench = os.path.join(args.build, "bench", "conv_bench")
torch_bench = os.path.join(here, "torch_conv_bench.py")
LINE = re.compile(r"^seed (\S+) (\S+) .*?\((\d+) p\).*?ms/step median ([\d.]+).*?"
                  r"cpu ms/step median ([\d.]+)", re.M)
BACKENDS = ("openblas", "onednn")


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
    return float(m.group(4)), float(m.group(5)), core.group(1) if core else "?", int(m.group(3))


_pingpong = None


def pingpong():
    global _pingpong
    src = os.path.join(shared, "pingpong.c")
    if not os.path.exists(src):
        return "(../shared/bench/pingpong.c not found)"
    if not _pingpong:
        _pingpong = os.path.join(tempfile.mkdtemp(), "pingpong")
        subprocess.run(["cc", "-O2", "-o", _pingpong, src, "-lpthread"], check=True)
    out = subprocess.run([_pingpong], capture_output=True, text=True, check=True).stdout
    return " ".join(out.split())


models = args.models.split(",")
table = []
for core in args.cores.split(","):
    base = dict(os.environ)
    if core == "unset":
        base.pop("OPENBLAS_CORETYPE", None)
    elif "OPENBLAS_CORETYPE" not in base and "unset" in args.cores.split(","):
        continue  # as set is unset: printed once
    for threads in args.threads.split(","):
        env = dict(base, OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads)
        place = pingpong()
        print("\n# OPENBLAS_CORETYPE=%s, %s thread(s); two-vCPU placement: %s" % (
            env.get("OPENBLAS_CORETYPE", "(unset)"), threads, place), flush=True)
        rows = []
        for model in models:
            times, params = {}, {}
            corename = "?"
            for _ in range(args.rounds):
                for backend in BACKENDS:
                    cmd = [conv_bench, "--model", model, "--backend", backend, "--no-profile"]
                    if args.steps:
                        cmd += ["--steps", str(args.steps)]
                    r = run(cmd, env)
                    if r:
                        times.setdefault(backend, []).append(r[:2])
                        corename, params[backend] = r[2], r[3]
                cmd = ["/usr/bin/python3", torch_bench, "--model", model, "--threads", threads]
                if args.steps:
                    cmd += ["--steps", str(args.steps)]
                r = run(cmd, env)
                times.setdefault("torch", []).append(r[:2])
                params["torch"] = r[3]
            med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
                   for k, v in times.items()}
            same = len(set(params.values())) == 1
            rows.append((model, corename, med, params["torch"], same))
            table.append((core, threads, model, corename, med, place))
            print("#   %s done (%s)%s" % (model, ", ".join(
                "%s %.2f ms" % (k, v[0]) for k, v in med.items()),
                "" if same else "  PARAMETER COUNTS DIFFER: %s" % params), flush=True)
        print("\nmedian ms per training step over %d rounds (wall / thread CPU); "
              "ratio = PyTorch / libae" % args.rounds)
        print("%-5s %-9s %9s %-19s %-19s %-19s %-13s %-13s" % (
            "model", "OB core", "params", "libae openblas", "libae onednn", "PyTorch",
            "ratio openblas", "ratio onednn"))
        for model, corename, med, np_, same in rows:
            def cell(k):
                return "%8.2f / %8.2f" % med[k] if k in med else "%19s" % "-"

            def ratio(k):
                if k not in med:
                    return "%13s" % "-"
                return "%5.2f / %5.2f" % (med["torch"][0] / med[k][0], med["torch"][1] / med[k][1])

            print("%-5s %-9s %9d%s %s %s %s %s %s" % (
                model, corename, np_, " " if same else "!", cell("openblas"), cell("onednn"),
                cell("torch"), ratio("openblas"), ratio("onednn")))

print("\n# every setting, wall ms (ratio PyTorch / libae)")
print("| model | core | threads | libae OpenBLAS | libae oneDNN | PyTorch | vCPU round trip |")
print("|---|---|---|---|---|---|---|")
for core, threads, model, corename, med, place in table:
    rt = re.search(r"median (\d+ ns)", place)
    place = rt.group(1) if rt else place
    def cell(k):
        if k not in med:
            return "-"
        return "%.2f (%.2f)" % (med[k][0], med["torch"][0] / med[k][0])
    print("| %s | %s | %s | %s | %s | %.2f | %s |" % (model, corename, threads, cell("openblas"),
                                                   cell("onednn"), med["torch"][0], place))
