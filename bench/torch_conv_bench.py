#!/usr/bin/python3
"""PyTorch twin of conv_bench: one training step (zero_grad, forward, MSE,
backward, Adam lr 1e-3) of the seeds' conv autoencoder at batch 64 on
Fashion-MNIST, timed as ../shared/bench/torch_bench.py --only d does
(median of per-step perf_counter times after a warm-up), and the median
thread CPU time per step, which other processes on the machine disturb less.

    /usr/bin/python3 bench/torch_conv_bench.py [--threads 1] [--steps 300]

Run with Debian's python3-torch 1.13 (its CPU convolutions use oneDNN).
"""
import argparse
import ctypes
import gzip
import os
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--steps", type=int, default=300)
ap.add_argument("--warmup", type=int, default=30)
ap.add_argument("--batch", type=int, default=64)
args = ap.parse_args()
want = str(args.threads)
if os.environ.get("OMP_NUM_THREADS") != want or os.environ.get("OPENBLAS_NUM_THREADS") != want:
    os.environ["OMP_NUM_THREADS"] = want
    os.environ["OPENBLAS_NUM_THREADS"] = want
    os.execv(sys.executable, [sys.executable] + sys.argv)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

torch.set_num_threads(args.threads)
torch.manual_seed(0)
ob = ctypes.CDLL("libopenblas.so.0")
ob.openblas_get_corename.restype = ctypes.c_char_p
print("# torch %s, %d thread(s), OpenBLAS core %s (OPENBLAS_CORETYPE=%s), mkldnn %s" % (
    torch.__version__, torch.get_num_threads(), ob.openblas_get_corename().decode(),
    os.environ.get("OPENBLAS_CORETYPE", "(unset)"), torch.backends.mkldnn.is_available()))

with gzip.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", "rb") as f:
    raw = f.read()
x_all = torch.from_numpy(np.frombuffer(raw, dtype=np.uint8, offset=16)
                         .astype(np.float32).reshape(-1, 1, 28, 28) / 255.0)

model = nn.Sequential(
    nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
    nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
    nn.Conv2d(32, 64, 7),
    nn.ConvTranspose2d(64, 32, 7), nn.ReLU(),
    nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
    nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid())
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
lossf = nn.MSELoss()
B = args.batch
nb = x_all.shape[0] // B
ts, cs = [], []
for s in range(args.warmup + args.steps):
    x = x_all[(s % nb) * B:(s % nb + 1) * B]
    t0, c0 = time.perf_counter(), time.thread_time()
    opt.zero_grad(set_to_none=True)
    loss = lossf(model(x), x)
    loss.backward()
    opt.step()
    if s >= args.warmup:
        ts.append(time.perf_counter() - t0)
        cs.append(time.thread_time() - c0)
ts, cs = np.sort(np.array(ts)), np.sort(np.array(cs))
print("d ConvAE torch batch %d  steps %d  ms/step median %.3f [min %.3f max %.3f]  "
      "cpu ms/step median %.3f  loss %.5f" % (B, len(ts), ts[len(ts) // 2] * 1e3, ts[0] * 1e3,
                                            ts[-1] * 1e3, cs[len(cs) // 2] * 1e3, loss.item()))
