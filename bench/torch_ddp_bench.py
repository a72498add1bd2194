#!/usr/bin/python3
"""PyTorch twin of mpi_bench: a training step (zero_grad, forward, MSE,
backward with DistributedDataParallel's all-reduce, Adam lr 1e-3) of model
a (784-256-32-256-784, global batch 256) and the seeds' conv AE 000 (global
batch 64), on P processes of one thread each (gloo backend, this host),
each taking global batch / P samples of Fashion-MNIST. Process 0 prints the
median step time and the global samples per second.

    /usr/bin/python3 bench/torch_ddp_bench.py [--procs 2] [--seconds 5] [--models ac] [--per-rank]

Run with Debian's python3-torch (1.13). --procs 1 still wraps the model in
DDP (a process group of one), the DDP overhead without communication.
"""
import argparse
import gzip
import os
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--procs", type=int, default=2)
ap.add_argument("--seconds", type=float, default=5.0)
ap.add_argument("--models", default="ac")
ap.add_argument("--port", type=int, default=29517)
ap.add_argument("--per-rank", action="store_true",
                help="model a with 256 samples on every process (global batch 256 P)")
args = ap.parse_args()
if os.environ.get("OMP_NUM_THREADS") != "1" or os.environ.get("OPENBLAS_NUM_THREADS") != "1":
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    os.execv(sys.executable, [sys.executable] + sys.argv)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
import torch.nn as nn  # noqa: E402


def model_a():
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 32),
                         nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 784), nn.Sigmoid())


def model_000():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 7),
        nn.ConvTranspose2d(64, 32, 7), nn.ReLU(),
        nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
        nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid())


def worker(rank, procs, seconds, models, port, per_rank):
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=procs)
    with gzip.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", "rb") as f:
        raw = f.read()
    x_all = torch.from_numpy(np.frombuffer(raw, dtype=np.uint8, offset=16)[:4096 * 784]
                             .astype(np.float32).reshape(-1, 784) / 255.0)
    if rank == 0:
        print("# torch %s, DDP gloo, %d process(es) x %d thread(s)" % (
            torch.__version__, procs, torch.get_num_threads()), flush=True)
    runs = (("a/rank", model_a, 256 * procs, (784,)),) if per_rank else (
        ("a", model_a, 256, (784,)), ("000", model_000, 64, (1, 28, 28)))
    for name, make, G, shape in runs:
        if (name.startswith("a") and "a" not in models) or (name == "000" and "c" not in models):
            continue
        torch.manual_seed(0)
        model = nn.parallel.DistributedDataParallel(make())
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        lossf = nn.MSELoss()
        lo, hi = G * rank // procs, G * (rank + 1) // procs
        nb = x_all.shape[0] // G

        def step(s):
            x = x_all[(s % nb) * G + lo:(s % nb) * G + hi].reshape(-1, *shape)
            opt.zero_grad(set_to_none=True)
            loss = lossf(model(x), x)
            loss.backward()
            opt.step()

        t0 = time.perf_counter()
        for s in range(20):
            step(s)
        n = torch.tensor([max(30, int(seconds / ((time.perf_counter() - t0) / 20)) + 1)])
        dist.broadcast(n, 0)
        ts = []
        for s in range(int(n.item())):
            t = time.perf_counter()
            step(s)
            ts.append(time.perf_counter() - t)
        ts = np.sort(np.array(ts))
        if rank == 0:
            med = ts[len(ts) // 2]
            print("%-8s torch DDP procs %d  threads 1  global batch %4d  steps %5d  ms/step median "
                  "%8.3f [min %8.3f max %8.3f]  samples/s %9.0f" % (
                      name, procs, G, len(ts), med * 1e3, ts[0] * 1e3, ts[-1] * 1e3, G / med),
                  flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    mp.spawn(worker, args=(args.procs, args.seconds, args.models, args.port, args.per_rank), nprocs=args.procs)
