"""Seconds per image of each segmenter on real photographs at the default 256 px.

Usage: python benchmarks/bench_segmenters.py [--size 256] [--images 6] [--sam-points 4 6 8]
       [--sam-encoder-sizes 1024 768 512] [--threads N]

Prints one line per segmenter (and per SAM grid size): mean and min wall-clock seconds per
image over the images after one warm-up call, the mean CPU seconds per image (all threads
together: on a shared machine the wall time swells with the load, the CPU time much less;
CPU seconds / cores is what the segmenter adds to a run whose cores are all busy), and the
mean number of regions. ``sam`` runs only when
weights/mobile_sam.pt exists (``weakloc weights mobile-sam``). Torch uses its default
thread count unless --threads is given; note what else runs on the machine when reading
the numbers.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data

from weakloc.segmenters import build_segmenter
from weakloc.segmenters.sam import DEFAULT_MOBILE_SAM

PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry"]


def photos(size: int, n: int) -> list[np.ndarray]:
    out = []
    for i in range(n):
        rgb = getattr(data, PHOTOS[i % len(PHOTOS)])()
        out.append(np.asarray(Image.fromarray(rgb).resize((size, size), Image.BILINEAR)))
    return out


def bench(name: str, settings: dict, images: list[np.ndarray], label: str) -> None:
    t0 = time.perf_counter()
    seg = build_segmenter(name, settings)
    build = time.perf_counter() - t0
    seg(images[0])  # warm-up
    times, cpu, regions = [], [], []
    for rgb in images:
        t, c = time.perf_counter(), time.process_time()
        labels = seg(rgb)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        regions.append(int(labels.max()) + 1)
    print(f"{label:<22} {np.mean(times):7.3f} s/img (min {np.min(times):.3f})  "
          f"cpu {np.mean(cpu):7.3f} s/img  regions {np.mean(regions):6.1f}  build {build:.1f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--sam-points", type=int, nargs="*", default=[4, 6, 8])
    ap.add_argument("--sam-encoder-sizes", type=int, nargs="*", default=[1024],
                    help="segmenters.sam.encoder_size values, each with every --sam-points (default 1024)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    images = photos(args.size, args.images)
    print(f"{args.images} photos at {args.size} px, torch threads {torch.get_num_threads()}, "
          f"device {'cuda' if torch.cuda.is_available() else 'cpu'}")
    bench("slic", {}, images, "slic")
    bench("felzenszwalb", {}, images, "felzenszwalb")
    if Path(DEFAULT_MOBILE_SAM).is_file():
        for size in args.sam_encoder_sizes:
            for pps in args.sam_points:
                bench("sam", {"points_per_side": pps, "encoder_size": size}, images, f"sam vit_t {size} pps={pps}")
    else:
        print(f"sam: skipped ({DEFAULT_MOBILE_SAM} missing; run `weakloc weights mobile-sam`)")


if __name__ == "__main__":
    main()
