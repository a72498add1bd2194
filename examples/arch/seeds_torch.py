#!/usr/bin/python3
"""The PyTorch twins of the seed models in examples/arch/*.arch, and their
parameter counts (sum of p.numel() over model.parameters(), as PyTorch
users count them: BatchNorm's running statistics are buffers, not
parameters; a tied weight is one parameter). tests/test_seeds.c checks
that libae builds each description with the count printed here.

    /usr/bin/python3 examples/arch/seeds_torch.py [--c]

--c prints the table as the C initialiser tests/test_seeds.c keeps.
Needs Debian's python3-torch (1.13). It is a generator: the tests never
run Python.
"""
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


def mlp(widths, out_act=nn.Sigmoid, code_at=None):
    """Linear layers through widths; ReLU after each but the code and the output."""
    layers = []
    code_at = code_at if code_at is not None else len(widths) // 2
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i + 1 == len(widths) - 1:
            if out_act:
                layers.append(out_act())
        elif i + 1 != code_at:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class VAE(nn.Module):
    """PyTorch's example VAE with hidden width h and latent d."""

    def __init__(self, h, d):
        super().__init__()
        self.fc1 = nn.Linear(784, h)
        self.fc21 = nn.Linear(h, d)
        self.fc22 = nn.Linear(h, d)
        self.fc3 = nn.Linear(d, h)
        self.fc4 = nn.Linear(h, 784)

    def forward(self, x):
        h = F.relu(self.fc1(x))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z))))


class TopK(nn.Module):
    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, z):
        v, i = z.topk(self.k, dim=1)
        return z.new_zeros(z.shape).scatter(1, i, v)


class Tied(nn.Module):
    """784-256 sigmoid, decoded with W.t() and a bias of its own."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Linear(784, 256)
        self.dec_bias = nn.Parameter(torch.zeros(784))

    def forward(self, x):
        z = torch.sigmoid(self.enc(x))
        return torch.sigmoid(F.linear(z, self.enc.weight.t(), self.dec_bias))


def conv_bn_relu(ci, co, transpose=False):
    conv = nn.ConvTranspose2d if transpose else nn.Conv2d
    return [conv(ci, co, 4, stride=2, padding=1), nn.BatchNorm2d(co), nn.ReLU()]


def up_conv(ci, co, act):
    return [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
            nn.Conv2d(ci, co, 3, padding=1), act]


MODELS = {
    "seed000_basic": lambda: mlp([784, 256, 32, 256, 784]),
    "seed000_denoising": lambda: mlp([784, 256, 32, 256, 784]),
    "seed000_dropout": lambda: nn.Sequential(nn.Dropout(0.2), mlp([784, 256, 32, 256, 784])),
    "seed000_stacked": lambda: mlp([784, 256, 64, 256, 784]),
    "seed000_conv": lambda: nn.Sequential(
        nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 7),
        nn.ConvTranspose2d(64, 32, 7), nn.ReLU(),
        nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
        nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid()),
    "seed000_vae": lambda: VAE(400, 20),
    "seed001_dense": lambda: mlp([784, 256, 256, 32, 256, 256, 784]),
    "seed001_rgb_conv": lambda: nn.Sequential(
        nn.Conv2d(3, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(64, 128, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(128, 256, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(256, 4096), nn.ReLU(), nn.Unflatten(1, (256, 4, 4)),
        *up_conv(256, 128, nn.ReLU()), *up_conv(128, 64, nn.ReLU()),
        *up_conv(64, 32, nn.ReLU()), *up_conv(32, 3, nn.Sigmoid())),
    "seed002_conv_bn": lambda: nn.Sequential(
        nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 4),
        nn.Linear(4, 32 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (32, 7, 7)),
        nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1),
        nn.BatchNorm2d(16), nn.ReLU(),
        nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid()),
    "seed003_topk": lambda: nn.Sequential(nn.Linear(784, 64), nn.LeakyReLU(0.01), TopK(16),
                                          nn.Linear(64, 784)),
    "seed003_kl": lambda: nn.Sequential(nn.Linear(784, 64), nn.Sigmoid(), nn.Linear(64, 784),
                                        nn.Sigmoid()),
    "seed003_lifetime": lambda: nn.Sequential(nn.Linear(784, 64), nn.LeakyReLU(0.01), TopK(16),
                                              nn.Linear(64, 784)),
    "seed003_tied": Tied,
    "seed003_greedy_stage1": lambda: mlp([784, 256, 784], code_at=1),
    "seed003_greedy": lambda: mlp([784, 256, 64, 256, 784]),
    "seed003_conv_maxpool": lambda: nn.Sequential(
        nn.Conv2d(1, 8, 6), nn.LeakyReLU(), nn.Conv2d(8, 8, 6), nn.LeakyReLU(),
        nn.Conv2d(8, 8, 6), nn.LeakyReLU(), nn.Conv2d(8, 8, 6), nn.LeakyReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(128, 784), nn.Sigmoid(),
        nn.Unflatten(1, (1, 28, 28))),
    "seed004_dense_sum": lambda: mlp([784, 200, 20, 200, 784]),
    "seed004_conv": lambda: nn.Sequential(
        *conv_bn_relu(3, 64), *conv_bn_relu(64, 128), *conv_bn_relu(128, 256),
        *conv_bn_relu(256, 512), nn.Flatten(), nn.Linear(8192, 512),
        nn.Linear(512, 8192), nn.ReLU(), nn.Unflatten(1, (512, 4, 4)),
        *conv_bn_relu(512, 256, True), *conv_bn_relu(256, 128, True),
        *conv_bn_relu(128, 64, True),
        nn.ConvTranspose2d(64, 3, 4, stride=2, padding=1), nn.Sigmoid()),
    "seed004_vae": lambda: VAE(200, 20),
}

counts = {}
for name, make in MODELS.items():
    model = make()
    # A forward pass proves the twin's shapes: input 3x64x64 or 784 (1x28x28).
    shape = (2, 3, 64, 64) if "rgb" in name or name == "seed004_conv" else (
        (2, 1, 28, 28) if "conv" in name else (2, 784))
    y = model(torch.rand(*shape))
    assert y.numel() == torch.Size(shape).numel(), name
    counts[name] = sum(p.numel() for p in model.parameters())
if "--c" in sys.argv[1:]:
    for name, n in counts.items():
        print('    {"%s", %d},' % (name, n))
else:
    for name, n in counts.items():
        print("%-24s %12d" % (name, n))
