"""Speed of the Bayesian refinement: images per second at 512 x 512 on one CPU core.

Target (issue "Localization"): >= 200 images/s for one segmenter. Prints one line per variant.

    python benchmarks/bench_refine.py [--size 512] [--repeats 200]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import time  # noqa: E402

import numpy as np  # noqa: E402
from scipy.ndimage import gaussian_filter  # noqa: E402
from skimage.segmentation import slic  # noqa: E402

from weakloc.refinement import RefineSettings, refine_bayes  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = args.size
    coarse = np.clip(gaussian_filter(rng.random((n, n)), 8) * 4 - 1.5, 0, 1).astype(np.float32)
    rgb = (rng.random((n, n, 3)) * 255).astype(np.uint8)
    p1 = slic(rgb, n_segments=100, start_label=0).astype(np.int32)
    p2 = slic(rgb, n_segments=400, start_label=0).astype(np.int32)
    blocks = rng.random((n, n)).astype(np.float32)
    def settings(**over):  # the schema's refine section, evidence = coarse unless given
        return RefineSettings.from_section({"evidence": "coarse", "background_quantile": 0.5, **over})

    variants = [
        ("coarse, 1 segmenter, pixel", dict(partitions=[p1], settings=settings())),
        ("coarse, 1 segmenter, region", dict(partitions=[p1], settings=settings(mode="region"))),
        ("contrast, 1 segmenter, pixel", dict(partitions=[p1], settings=settings(evidence="contrast"))),
        ("map, 1 segmenter, pixel", dict(partitions=[p1], settings=settings(evidence="map"), evidence_map=blocks)),
        ("coarse, 2 segmenters, pixel", dict(partitions=[p1, p2], settings=settings())),
    ]
    print(f"refine_bayes at {n}x{n}, one core (OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}):")
    for name, kw in variants:
        refine_bayes(coarse, **kw)  # warm-up
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            refine_bayes(coarse, **kw)
        dt = time.perf_counter() - t0
        print(f"  {name:32s} {args.repeats / dt:8.1f} images/s  ({1000 * dt / args.repeats:.2f} ms/image)")


if __name__ == "__main__":
    main()
