#!/usr/bin/python3
"""torch_sparse.py - PyTorch twin of bench_sparse's wide models.

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/torch_sparse.py [--seconds 3]

Times one training step (zero_grad, forward, MSE, backward, Adam lr 1e-3),
batch 256 of Fashion-MNIST images, of
  w    784-4096-784: Linear-LeakyReLU | Linear
  w32  w with top-32 on the code (torch.topk + scatter mask, as the
       reference code and ../shared/bench/torch_bench.py model c write it)
Models b and c (784-64-784, top-16) are ../shared/bench/torch_bench.py's.
"""
import argparse
import ctypes
import gzip
import os
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--seconds", type=float, default=3.0)
ap.add_argument("--min-steps", type=int, default=20)
args = ap.parse_args()
if os.environ.get("OPENBLAS_NUM_THREADS") != "1" or os.environ.get("OMP_NUM_THREADS") != "1":
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    os.environ["OMP_NUM_THREADS"] = "1"
    os.execv(sys.executable, [sys.executable] + sys.argv)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

torch.set_num_threads(1)
torch.manual_seed(0)
ob = ctypes.CDLL("libopenblas.so.0")
ob.openblas_get_corename.restype = ctypes.c_char_p
print(f"# torch {torch.__version__} | OpenBLAS core {ob.openblas_get_corename().decode()} | threads 1")

with gzip.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", "rb") as f:
    raw = f.read()
x_all = torch.from_numpy(np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 784)
                         .astype(np.float32) / 255.0)


class Wide(nn.Module):
    def __init__(self, k):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(784, 4096), nn.LeakyReLU())
        self.dec = nn.Linear(4096, 784)
        self.k = k

    def forward(self, x):
        z = self.enc(x)
        if self.k:
            _, idx = torch.topk(z, self.k, dim=1)
            z = z * torch.zeros_like(z).scatter(1, idx, 1.0)
        return self.dec(z)


def bench(name, k):
    model = Wide(k)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    lossf = nn.MSELoss()
    n = x_all.shape[0] // 256
    ts, i = [], 0
    start = time.perf_counter()
    while len(ts) < args.min_steps + 3 or time.perf_counter() - start < args.seconds:
        x = x_all[(i % n) * 256:(i % n + 1) * 256]
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = lossf(model(x), x)
        loss.backward()
        opt.step()
        ts.append(time.perf_counter() - t0)
        i += 1
    ts = np.array(ts[3:])
    print(f"{name:40s} batch  256  steps {len(ts):6d}  ms/step median {np.median(ts)*1e3:8.4f} "
          f"[min {ts.min()*1e3:8.4f} max {ts.max()*1e3:8.4f}]", flush=True)


bench("w train 784-4096-784", 0)
bench("w32 train 784-4096-784 top32", 32)
