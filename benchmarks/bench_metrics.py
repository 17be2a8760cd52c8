"""Pixel-metric throughput: what ``weakloc score`` spends per map, against scikit-learn.

    python benchmarks/bench_metrics.py [--size 256] [--images 200]

Synthetic 8-bit maps (a noisy rectangle) of ``--size`` px; prints maps/s for the histogram
of one map (:meth:`ScoreHistogram.from_maps`), for the dataset summary over all of them
(:func:`summarize_localization`), and for scikit-learn's ``roc_auc_score`` plus ``f1_score``
on the same pixels (what a direct implementation would pay per map).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score

from weakloc.metrics import ScoreHistogram, summarize_localization


def _maps(size: int, n: int) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(0)
    gt = np.zeros((size, size), bool)
    gt[size // 4: size // 2, size // 3: 3 * size // 4] = True
    maps = [(np.rint(np.clip(0.3 * gt + rng.random((size, size)) * 0.7, 0, 1) * 255) / 255).astype(np.float32)
            for _ in range(n)]
    return maps, gt


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--images", type=int, default=200)
    args = ap.parse_args(argv)
    maps, gt = _maps(args.size, args.images)
    t0 = time.perf_counter()
    hists = [ScoreHistogram.from_maps(m, gt) for m in maps]
    t1 = time.perf_counter()
    summarize_localization(hists)
    t2 = time.perf_counter()
    for m in maps:
        roc_auc_score(gt.ravel(), m.ravel())
        f1_score(gt.ravel(), m.ravel() > 0.5)
    t3 = time.perf_counter()
    n = len(maps)
    print(f"{n} maps of {args.size}x{args.size} px")
    print(f"  weakloc histograms   {n / (t1 - t0):9.1f} maps/s")
    print(f"  weakloc summary      {(t2 - t1) * 1e3:9.1f} ms for all {n}")
    print(f"  sklearn AUC + F1     {n / (t3 - t2):9.1f} maps/s")


if __name__ == "__main__":
    main()
