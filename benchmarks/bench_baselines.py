"""Seconds per image of each classic baseline (pyIFD) at a given size, on one CPU process.

    python benchmarks/bench_baselines.py [--size 256] [--images 20]

Images are crops of scikit-image's bundled photos, saved as JPEG (q=85) and PNG alternately
(as in the synthetic data set). Prints one line per baseline and the total for the default
test split of about 90 images.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from weakloc.baselines import BASELINES, baseline_map


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--split-size", type=int, default=90, help="images of the split to extrapolate to")
    args = ap.parse_args()
    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.images):
            photo = photos[i % len(photos)]
            y = rng.integers(0, photo.shape[0] - args.size + 1) if photo.shape[0] > args.size else 0
            x = rng.integers(0, photo.shape[1] - args.size + 1) if photo.shape[1] > args.size else 0
            crop = np.asarray(Image.fromarray(photo[y:y + args.size, x:x + args.size]).resize((args.size, args.size)))
            path = Path(tmp) / (f"{i}.jpg" if i % 2 == 0 else f"{i}.png")
            Image.fromarray(crop).save(path, **({"quality": 85} if i % 2 == 0 else {}))
            paths.append(path)
        for name in BASELINES:
            baseline_map(name, paths[0])  # imports and warm-up
            start = time.perf_counter()
            for p in paths:
                baseline_map(name, p)
            per = (time.perf_counter() - start) / len(paths)
            print(f"{name:5s} {args.size} px: {per:.4f} s/image, "
                  f"{per * args.split_size:.1f} s for {args.split_size} images")


if __name__ == "__main__":
    main()
