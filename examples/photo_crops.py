#!/usr/bin/python3
"""Cuts the photographs Debian's python3-skimage ships into 64x64 crops in
class folders (one class per photo), the ImageFolder layout that
ae_dataset_load_images and `ae train -d DIR` read:

    /usr/bin/python3 examples/photo_crops.py OUT [--format jpg|png|both] [--stride S] [--max N]

writes OUT/train/<photo>/<y>_<x>.<ext> and OUT/test/<photo>/... (every
fifth crop, by position, goes to test). Crops are taken on a grid of
stride S (default 32) and at most N per photo (default 400, evenly spread
over the grid). --format both alternates JPEG (quality 90) and PNG.
"""
import argparse
import os

from PIL import Image

SKIMAGE = "/usr/lib/python3/dist-packages/skimage/data"
# The colour photographs (not the synthetic or microscope test cards).
PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
          "hubble_deep_field.jpg", "retina.jpg", "ihc.png"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--format", choices=["jpg", "png", "both"], default="both")
    ap.add_argument("--stride", type=int, default=32)
    ap.add_argument("--max", type=int, default=400)
    ap.add_argument("--size", type=int, default=64)
    a = ap.parse_args()
    total = 0
    for name in PHOTOS:
        im = Image.open(os.path.join(SKIMAGE, name)).convert("RGB")
        w, h = im.size
        s = a.size
        grid = [(y, x) for y in range(0, h - s + 1, a.stride) for x in range(0, w - s + 1, a.stride)]
        if len(grid) > a.max:
            step = len(grid) / a.max
            grid = [grid[int(i * step)] for i in range(a.max)]
        cls = os.path.splitext(name)[0]
        for k, (y, x) in enumerate(grid):
            part = "test" if k % 5 == 4 else "train"
            d = os.path.join(a.out, part, cls)
            os.makedirs(d, exist_ok=True)
            ext = a.format if a.format != "both" else ("jpg" if k % 2 == 0 else "png")
            crop = im.crop((x, y, x + s, y + s))
            path = os.path.join(d, "%04d_%04d.%s" % (y, x, ext))
            if ext == "jpg":
                crop.save(path, quality=90)
            else:
                crop.save(path)
            total += 1
    print("%d crops of %dx%d in %s" % (total, a.size, a.size, a.out))


if __name__ == "__main__":
    main()
