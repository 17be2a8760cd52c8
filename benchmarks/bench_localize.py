"""Speed of `weakloc localize`: images per second at 512 x 512 with SLIC on 2 CPU cores.

Uses --checkpoint if given, else a randomly initialised WCBnet of the default configuration
(same architecture and cost as a trained one). Prints the end-to-end rate and the time of
each stage per image.

    python benchmarks/bench_localize.py [--checkpoint CKPT] [--n 16] [--size 512] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from weakloc.cams import block_maps
from weakloc.config import validate_config
from weakloc.fusion import fuse_with_config
from weakloc.localize import build_segmenters, localize_images
from weakloc.refinement import refine_with_config
from weakloc.wcbnet import build_wcbnet, load_checkpoint, save_checkpoint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    config = validate_config({})
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = Path(args.checkpoint) if args.checkpoint else tmp / "wcbnet.pt"
        if not args.checkpoint:
            torch.manual_seed(0)
            save_checkpoint(ckpt, build_wcbnet(config), config)
        (tmp / "in").mkdir()
        yy, xx = np.mgrid[0:args.size, 0:args.size]
        for i in range(args.n):
            base = np.stack([xx, yy, (xx + yy) // 2], -1) * (255 / args.size)
            img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(tmp / "in" / f"img{i:03d}.jpg", quality=90)
        localize_images([tmp / "in" / "img000.jpg"], ckpt, tmp / "warm", config, progress=False)  # warm-up
        t0 = time.perf_counter()
        res = localize_images([tmp / "in"], ckpt, tmp / "out", config, progress=False)
        dt = time.perf_counter() - t0
        print(f"weakloc localize, {args.n} images {args.size}x{args.size}, slic, attention, "
              f"{args.threads} threads: {args.n / dt:.2f} images/s ({1000 * dt / args.n:.0f} ms/image)")
        assert len(res.rows) == args.n and not res.failures

        # Where the time goes, per image.
        model, meta = load_checkpoint(ckpt)
        seg = build_segmenters(["slic"], config)[0]
        rgb = np.asarray(Image.open(tmp / "in" / "img001.jpg").convert("RGB"))
        stages = {"cams (SEL + WCBnet + upsampling)": 0.0, "fusion": 0.0, "slic": 0.0, "refinement": 0.0}
        reps = 5
        for _ in range(reps):
            t = time.perf_counter(); bm = block_maps(model, meta, rgb); stages["cams (SEL + WCBnet + upsampling)"] += time.perf_counter() - t  # noqa: E702
            t = time.perf_counter(); c = fuse_with_config(bm.maps, "attention", bm.weights, config); stages["fusion"] += time.perf_counter() - t  # noqa: E702
            t = time.perf_counter(); p = seg(rgb); stages["slic"] += time.perf_counter() - t  # noqa: E702
            t = time.perf_counter(); refine_with_config(c, [p], config["refine"], bm.prob, bm.maps); stages["refinement"] += time.perf_counter() - t  # noqa: E702
        for name, s in stages.items():
            print(f"  {name:34s} {1000 * s / reps:7.1f} ms/image")


if __name__ == "__main__":
    main()
