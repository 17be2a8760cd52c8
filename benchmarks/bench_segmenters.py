"""Seconds per image of each segmenter on real photographs at the default 256 px.

Usage: python benchmarks/bench_segmenters.py [--size 256] [--images 6] [--sam-points 4 6 8]
       [--sam-encoder-sizes 1024 768 512] [--sam-stages] [--sam-bf16] [--threads N]

Prints one line per segmenter (and per SAM grid size): mean and min wall-clock seconds per
image over the images after one warm-up call, the mean CPU seconds per image (all threads
together: on a shared machine the wall time swells with the load, the CPU time much less;
CPU seconds / cores is what the segmenter adds to a run whose cores are all busy), and the
mean number of regions. ``sam`` runs only when
weights/mobile_sam.pt exists (``weakloc weights mobile-sam``). Torch uses its default
thread count unless --threads is given; note what else runs on the machine when reading
the numbers.

``--sam-stages`` splits each SAM setting's CPU seconds per image into its stages: the image
encoder, the prompt encoder and mask decoder (all points), the automatic mask generator's
post-processing (upsampling, IoU and stability filters, RLE, NMS) and the partition step
(:func:`weakloc.segmenters.partition.masks_to_partition`).

``--sam-bf16`` also times each SAM setting with its image encoder and mask decoder under
torch's bfloat16 autocast (a probe, not an option weakloc offers: it pays only on CPUs with
bfloat16 instructions) and counts its partitions that are byte-identical to the float32
ones, with their mean adjusted Rand index against them.
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


def bench(name: str, settings: dict, images: list[np.ndarray], label: str, seg=None,
          reference: list[np.ndarray] | None = None):
    """Time ``seg`` (else a new ``name`` segmenter) on ``images``; print one line, return the
    segmenter (warmed up) and its partitions."""
    built = ""
    if seg is None:
        t0 = time.perf_counter()
        seg = build_segmenter(name, settings)
        built = f"  build {time.perf_counter() - t0:.1f} s"
    seg(images[0])  # warm-up
    times, cpu, out = [], [], []
    for rgb in images:
        t, c = time.perf_counter(), time.process_time()
        out.append(seg(rgb))
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    agree = ""
    if reference is not None:
        from sklearn.metrics import adjusted_rand_score

        same = sum(np.array_equal(a, b) for a, b in zip(out, reference, strict=True))
        ari = np.mean([adjusted_rand_score(b.ravel(), a.ravel()) for a, b in zip(out, reference, strict=True)])
        agree = f"  identical {same}/{len(out)}  ARI {ari:.3f}"
    print(f"{label:<22} {np.mean(times):7.3f} s/img (min {np.min(times):.3f})  "
          f"cpu {np.mean(cpu):7.3f} s/img  regions {np.mean([int(p.max()) + 1 for p in out]):6.1f}"
          f"{built}{agree}", flush=True)
    return seg, out


def stage_seconds(seg, images: list[np.ndarray]) -> dict[str, float]:
    """CPU seconds per image of each stage of ``seg`` (a warmed-up SAM segmenter) over ``images``."""
    model = seg.model
    patched = [(model.image_encoder, "encoder"), (model.prompt_encoder, "decoder"),
               (model.mask_decoder, "decoder")]
    spent = dict.fromkeys(("encoder", "decoder", "generate", "call"), 0.0)

    def timed(fn, key):
        def run(*args, **kwargs):
            c = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] += time.process_time() - c
        return run

    for module, key in patched:
        module.forward = timed(module.forward, key)
    seg.generator.generate = timed(seg.generator.generate, "generate")
    call = timed(seg, "call")
    try:
        for rgb in images:
            call(rgb)
    finally:  # back to the classes' own methods
        for module, _ in patched:
            del module.forward
        del seg.generator.generate
    n = len(images)
    return {"encoder": spent["encoder"] / n, "decoder": spent["decoder"] / n,
            "post-processing": (spent["generate"] - spent["encoder"] - spent["decoder"]) / n,
            "partition": (spent["call"] - spent["generate"]) / n}


def under_bf16(module: torch.nn.Module) -> None:
    """Run ``module`` under bfloat16 autocast, its outputs cast back to float32 (in place)."""
    forward = module.forward

    def wrapped(*args, **kwargs):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = forward(*args, **kwargs)
        return tuple(o.float() for o in out) if isinstance(out, tuple) else out.float()

    module.forward = wrapped


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--sam-points", type=int, nargs="*", default=[4, 6, 8])
    ap.add_argument("--sam-encoder-sizes", type=int, nargs="*", default=[1024],
                    help="segmenters.sam.encoder_size values, each with every --sam-points (default 1024)")
    ap.add_argument("--sam-stages", action="store_true",
                    help="split each SAM setting's CPU seconds per image into encoder, decoder, post-processing, "
                         "partition")
    ap.add_argument("--sam-bf16", action="store_true",
                    help="also time each SAM setting under bfloat16 autocast and compare its partitions")
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
                settings = {"points_per_side": pps, "encoder_size": size}
                label = f"sam vit_t {size} pps={pps}"
                seg, ref = bench("sam", settings, images, label)
                if args.sam_stages:
                    stages = stage_seconds(seg, images)
                    print(f"{label} stages (cpu s/img): "
                          + ", ".join(f"{k} {v:.3f}" for k, v in stages.items()), flush=True)
                if args.sam_bf16:  # last: it changes seg for good
                    under_bf16(seg.model.image_encoder)
                    under_bf16(seg.model.mask_decoder)
                    bench("sam", settings, images, f"{label} bf16", seg, ref)
    else:
        print(f"sam: skipped ({DEFAULT_MOBILE_SAM} missing; run `weakloc weights mobile-sam`)")


if __name__ == "__main__":
    main()
