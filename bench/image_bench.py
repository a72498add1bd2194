#!/usr/bin/python3
"""The twin of bench/image_bench.c: torchvision's ImageFolder with
Resize((SIZE, SIZE)) and ToTensor over the same folder, one thread, every
image decoded, resized and converted once per round.

    /usr/bin/python3 bench/image_bench.py DIR [ROUNDS] [SIZE]
"""
import sys
import time

import torch
import torchvision
import torchvision.transforms as T


def main():
    d = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    torch.set_num_threads(1)
    tf = T.Compose([T.Resize((size, size)), T.ToTensor()])
    times = []
    n = 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        ds = torchvision.datasets.ImageFolder(d, transform=tf)
        n = len(ds)
        for i in range(n):
            ds[i]
        times.append(time.perf_counter() - t0)
    times.sort()
    print("torchvision %s %s: %d images, %d rounds: median %.0f images/s, best %.0f images/s"
          % (torchvision.__version__, d, n, rounds, n / times[rounds // 2], n / times[0]))


if __name__ == "__main__":
    main()
