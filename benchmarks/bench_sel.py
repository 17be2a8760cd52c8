"""Signed-error-level throughput (images/s on one process), to decide: compute in the loader or cache?

    python benchmarks/bench_sel.py [--sizes 256 512] [--images 40] [--qualities 95 85 75 65]

Images are crops of scikit-image's bundled photos (real content: JPEG encoding time depends
on it), JPEG-compressed once at q=85 like a typical input. Prints images/s per size for the
SEL alone, for file reading + SEL (what the training loader does per sample without the
in-memory cache) and for a sample taken from the cache (``train.sel_cache_gb``: integer
differences scaled to float32 and cropped), and the share of a training step's time that
reading + SEL would take at a given training speed.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data

from weakloc.io import read_rgb
from weakloc.sel import scale_error_diff, signed_error_level
from weakloc.training import compact_sel_of_file, grid_crop


def _photos(size: int, n: int) -> list[np.ndarray]:
    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        p = photos[i % len(photos)]
        img = Image.fromarray(p).resize((max(size, p.shape[1]), max(size, p.shape[0])))
        arr = np.asarray(img)
        y = int(rng.integers(0, arr.shape[0] - size + 1))
        x = int(rng.integers(0, arr.shape[1] - size + 1))
        buf = io.BytesIO()
        Image.fromarray(arr[y:y + size, x:x + size]).save(buf, format="JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--qualities", type=int, nargs="+", default=[95, 85, 75, 65])
    ap.add_argument("--train-images-per-s", type=float, default=130.0,
                    help="training throughput to compare with (benchmarks/bench_train.py)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"SEL qualities {args.qualities}, {args.images} images per size, one process")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            files = _photos(size, args.images)
            rgbs = [np.asarray(Image.open(io.BytesIO(f)).convert("RGB")) for f in files]
            paths = []
            for i, f in enumerate(files):
                paths.append(Path(tmp) / f"{size}_{i}.jpg")
                paths[-1].write_bytes(f)
            signed_error_level(rgbs[0], args.qualities, 8.0)  # warm-up
            t = time.perf_counter()
            for rgb in rgbs:
                signed_error_level(rgb, args.qualities, 8.0)
            sel_rate = len(rgbs) / (time.perf_counter() - t)
            t = time.perf_counter()
            for p in paths:
                signed_error_level(read_rgb(p), args.qualities, 8.0)
            full_rate = len(paths) / (time.perf_counter() - t)
            cache = [compact_sel_of_file(p, args.qualities) for p in paths]
            rng = np.random.default_rng(0)
            t = time.perf_counter()
            for _ in range(5):
                for c in cache:
                    grid_crop(scale_error_diff(c, 8.0), 256, rng, flip=True)
            cached_rate = 5 * len(cache) / (time.perf_counter() - t)
            share = args.train_images_per_s / full_rate if size == 256 else None
            line = f"{size} px: SEL {sel_rate:.0f} images/s; read + SEL {full_rate:.0f} images/s"
            if share is not None:
                line += f" (= {100 * share:.1f}% of a training step at {args.train_images_per_s:g} images/s)"
            line += (f"; sample from the cache {cached_rate:.0f} images/s "
                     f"({sum(c.nbytes for c in cache) / len(cache) / 1e6:.2f} MB each)")
            print(line)


if __name__ == "__main__":
    main()
