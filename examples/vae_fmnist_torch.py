#!/usr/bin/python3
"""The PyTorch twin of examples/vae_fmnist.c: PyTorch's example VAE
784-400-[20]-400-784 (ReLU, sigmoid output, BCE summed + KL summed, Adam lr
1e-3, batch 128) on Fashion-MNIST in [0, 1], the same number of epochs; it
prints the training loss per image each epoch and the test negative ELBO per
image in nats, computed as ae_vae_neg_elbo does (one z sample per image,
[0, 1] pixels).

    /usr/bin/python3 examples/vae_fmnist_torch.py [epochs] [data-dir]

Needs Debian's python3-torch (1.13) and numpy; runs on one thread.
"""

import gzip
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def load_images(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[4:8], "big")
    return torch.from_numpy(np.frombuffer(raw, np.uint8, offset=16).reshape(n, 784)
                            .astype(np.float32) / 255.0)


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def forward(self, x):
        h = F.relu(self.fc1(x))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


def terms(y, x, mu, logvar):
    recon = F.binary_cross_entropy(y, x, reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return recon, kl


def main():
    epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    data = sys.argv[2] if len(sys.argv) > 2 else "/usr/share/datasets/fashion-mnist"
    torch.set_num_threads(1)
    torch.manual_seed(1)
    train = load_images(data + "/train-images-idx3-ubyte.gz")
    test = load_images(data + "/t10k-images-idx3-ubyte.gz")
    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n, bs = train.shape[0], 128
    print("PyTorch %s: VAE 784-400-[20]-400-784, BCE sum + KL, Adam lr 1e-3, batch %d, %d epochs"
          % (torch.__version__, bs, epochs))
    t0 = time.time()
    for e in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(n)
        sums = [0.0, 0.0, 0.0]
        for i in range(0, n, bs):
            x = train[perm[i:i + bs]]
            opt.zero_grad()
            y, mu, logvar = model(x)
            recon, kl = terms(y, x, mu, logvar)
            loss = recon + kl
            loss.backward()
            opt.step()
            sums[0] += loss.item()
            sums[1] += recon.item()
            sums[2] += kl.item()
        print("epoch %2d  train loss/image %.2f (recon %.2f, KL %.2f)  %.1f s"
              % (e, sums[0] / n, sums[1] / n, sums[2] / n, time.time() - t0), flush=True)
    model.eval()
    with torch.no_grad():
        r = k = 0.0
        for i in range(0, test.shape[0], 1000):
            x = test[i:i + 1000]
            y, mu, logvar = model(x)
            recon, kl = terms(y, x, mu, logvar)
            r += recon.item()
            k += kl.item()
    m = test.shape[0]
    print("test negative ELBO %.2f nats/image (recon %.2f + KL %.2f), [0, 1] pixels, one z "
          "sample per image" % ((r + k) / m, r / m, k / m))


if __name__ == "__main__":
    main()
