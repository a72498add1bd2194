#!/usr/bin/python3
"""PyTorch twin of conv_bench: one training step (zero_grad, forward, MSE
(the VAE: BCE + KL, summed), backward, Adam lr 1e-3) of one of the seeds'
models, timed as
../shared/bench/torch_bench.py --only d does (median of per-step
perf_counter times after a warm-up), and the median thread CPU time per
step, which other processes on the machine disturb less.

    /usr/bin/python3 bench/torch_conv_bench.py [--model 000|001|002|003|004|a|b|vae|001d|004d]
        [--threads 1] [--steps N] [--batch B]

The models are conv_bench.c's (its comment says what each is); 001 and 004
train on uniform noise of their shape, the others on Fashion-MNIST. Run
with Debian's python3-torch 1.13 (its CPU convolutions use oneDNN).
"""
import argparse
import ctypes
import gzip
import os
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="000", choices=["000", "001", "002", "003", "004", "a", "b", "vae", "001d", "004d"])
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--steps", type=int, default=0, help="default: 200, 20 for batch-32 models")
ap.add_argument("--warmup", type=int, default=0, help="default: a tenth of the steps, at least 3")
ap.add_argument("--batch", type=int, default=0, help="default: the model's")
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


def conv_bn_relu(ci, co, transpose=False):
    conv = nn.ConvTranspose2d if transpose else nn.Conv2d
    return [conv(ci, co, 4, stride=2, padding=1), nn.BatchNorm2d(co), nn.ReLU()]


def up_conv(ci, co, act):
    return [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
            nn.Conv2d(ci, co, 3, padding=1), act]


MODELS = {
    "000": (64, (1, 28, 28), lambda: nn.Sequential(
        nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 7),
        nn.ConvTranspose2d(64, 32, 7), nn.ReLU(),
        nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
        nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid())),
    "001": (32, (3, 64, 64), lambda: nn.Sequential(
        nn.Conv2d(3, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(64, 128, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(128, 256, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(256, 4096), nn.ReLU(), nn.Unflatten(1, (256, 4, 4)),
        *up_conv(256, 128, nn.ReLU()), *up_conv(128, 64, nn.ReLU()),
        *up_conv(64, 32, nn.ReLU()), *up_conv(32, 3, nn.Sigmoid()))),
    "003": (128, (1, 28, 28), lambda: nn.Sequential(
        nn.Conv2d(1, 8, 6), nn.LeakyReLU(), nn.Conv2d(8, 8, 6), nn.LeakyReLU(),
        nn.Conv2d(8, 8, 6), nn.LeakyReLU(), nn.Conv2d(8, 8, 6), nn.LeakyReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(128, 784), nn.Sigmoid(),
        nn.Unflatten(1, (1, 28, 28)))),
    "004": (32, (3, 64, 64), lambda: nn.Sequential(
        *conv_bn_relu(3, 64), *conv_bn_relu(64, 128), *conv_bn_relu(128, 256),
        *conv_bn_relu(256, 512), nn.Flatten(), nn.Linear(8192, 512),
        nn.Linear(512, 8192), nn.ReLU(), nn.Unflatten(1, (512, 4, 4)),
        *conv_bn_relu(512, 256, True), *conv_bn_relu(256, 128, True),
        *conv_bn_relu(128, 64, True),
        nn.ConvTranspose2d(64, 3, 4, stride=2, padding=1), nn.Sigmoid())),
}

class VAE(nn.Module):
    """PyTorch's example VAE: 784-400-[20]-400-784."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def forward(self, x):
        h = torch.relu(self.fc1(x))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(torch.relu(self.fc3(z)))), mu, logvar


MODELS.update({
    "a": (256, (784,), lambda: nn.Sequential(
        nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 32),
        nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 784), nn.Sigmoid())),
    "b": (256, (784,), lambda: nn.Sequential(
        nn.Linear(784, 64), nn.LeakyReLU(), nn.Linear(64, 784))),
    "vae": (128, (784,), VAE),
    "002": (128, (1, 28, 28), lambda: nn.Sequential(
        nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Flatten(), nn.Linear(1568, 4),
        nn.Linear(4, 1568), nn.ReLU(), nn.Unflatten(1, (32, 7, 7)),
        nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1),
        nn.BatchNorm2d(16), nn.ReLU(),
        nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid())),
    "001d": (256, (784,), lambda: nn.Sequential(
        nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 32),
        nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
        nn.Linear(256, 784), nn.Sigmoid())),
    "004d": (128, (784,), lambda: nn.Sequential(
        nn.Linear(784, 200), nn.ReLU(), nn.Linear(200, 20),
        nn.Linear(20, 200), nn.ReLU(), nn.Linear(200, 784), nn.Sigmoid())),
})


def vae_loss(out, x):
    recon, mu, logvar = out
    bce = nn.functional.binary_cross_entropy(recon, x, reduction="sum")
    return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


batch, shape, make = MODELS[args.model]
B = args.batch or batch
steps = args.steps or (20 if batch == 32 else 200)
warmup = args.warmup or max(3, steps // 10)
if shape in ((1, 28, 28), (784,)):
    with gzip.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", "rb") as f:
        raw = f.read()
    x_all = torch.from_numpy(np.frombuffer(raw, dtype=np.uint8, offset=16)
                             .astype(np.float32).reshape(-1, *shape) / 255.0)
else:
    x_all = torch.rand(8 * B, *shape)
model = make()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
lossf = (vae_loss if args.model == "vae" else
         nn.MSELoss(reduction="sum") if args.model == "004d" else nn.MSELoss())
# seed 002 trains on x + 0.3 randn clamped to [0, 1], against the clean x
noisy = (lambda x: (x + 0.3 * torch.randn_like(x)).clamp(0.0, 1.0)) if args.model == "002" else None
nb = x_all.shape[0] // B
ts, cs = [], []
for s in range(warmup + steps):
    x = x_all[(s % nb) * B:(s % nb + 1) * B]
    t0, c0 = time.perf_counter(), time.thread_time()
    opt.zero_grad(set_to_none=True)
    loss = lossf(model(noisy(x) if noisy else x), x)
    loss.backward()
    opt.step()
    if s >= warmup:
        ts.append(time.perf_counter() - t0)
        cs.append(time.thread_time() - c0)
ts, cs = np.sort(np.array(ts)), np.sort(np.array(cs))
nparams = sum(p.numel() for p in model.parameters())
print("seed %s torch (%d p) batch %d  steps %d  ms/step median %.3f [min %.3f max %.3f]  "
      "cpu ms/step median %.3f  loss %.5f" % (args.model, nparams, B, len(ts),
                                            ts[len(ts) // 2] * 1e3, ts[0] * 1e3, ts[-1] * 1e3,
                                            cs[len(cs) // 2] * 1e3, loss.item()))
