"""Choose refinement settings on the VALIDATION split (never the test split) and print the table.

For each manipulated validation image: the trained checkpoint's block maps, the fused map
(``--fusion``), SLIC regions (the config's ``segmenters.slic``), then the Bayesian refinement
for every value of ``--quantiles`` (``refine.background_quantile`` with ``evidence: contrast``)
and the as-written ``coarse`` rule. Prints pixel F1 / IoU at 0.5 and pixel AUC per image,
averaged, and the mean flagged area over the true area; on the authentic validation images, the
mean flagged fraction. Ground-truth masks are read for scoring only: the chosen value is
a choice on the validation split, which the docs say.

    python benchmarks/choose_on_val.py --manifest data/prepared/synthetic/manifest.csv \
        --checkpoint checkpoints/synthetic/seed0/wcbnet.pt [--quantiles 0.25 0.5 0.75 0.9]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from weakloc.cams import block_maps
from weakloc.config import load_config
from weakloc.decision import with_rule
from weakloc.fusion import fuse_with_config
from weakloc.io import read_mask, read_rgb
from weakloc.manifest import read_manifest
from weakloc.metrics import pixel_metrics
from weakloc.refinement import refine_with_config
from weakloc.segmenters import build_segmenter
from weakloc.wcbnet import load_checkpoint


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--config", default="config.yaml", help="study config (default: config.yaml)")
    ap.add_argument("--fusion", default="attention")
    ap.add_argument("--quantiles", type=float, nargs="+", default=[0.25, 0.5, 0.75, 0.9])
    ap.add_argument("--limit", type=int, default=0, help="at most this many images per label (0 = all)")
    args = ap.parse_args()

    config = load_config(args.config)
    model, meta = load_checkpoint(args.checkpoint)
    df = read_manifest(args.manifest, split="val")
    slic = build_segmenter("slic", config["segmenters"]["slic"])
    variants = {"fused (no refinement)": None, "coarse (as written)": {"evidence": "coarse"}}
    variants.update({f"contrast q={q:g}": {"evidence": "contrast", "background_quantile": q} for q in args.quantiles})
    stats = {v: {"f1": [], "iou": [], "auc": [], "area": [], "auth": []} for v in variants}
    t0 = time.perf_counter()
    groups = [df[df["label"] == 1], df[df["label"] == 0]]
    if args.limit:
        groups = [g.head(args.limit) for g in groups]
    for part in groups:
        for row in part.itertuples(index=False):
            rgb = read_rgb(row.image)
            bm = block_maps(model, meta, rgb, config["cams"]["method"], config["cams"]["max_side"])
            coarse = fuse_with_config(bm.maps, args.fusion, bm.weights, config)
            seg = slic(rgb)
            gt = read_mask(row.mask) if row.label == 1 and row.mask else None
            for name, over in variants.items():
                if over is None:
                    prob = coarse
                else:
                    cfg = with_rule(config["refine"], "threshold")  # the quantile choice was made at P > 0.5
                    cfg.update(over)
                    prob = refine_with_config(coarse, [seg], cfg, image_prob=bm.prob)
                flagged = prob > 0.5
                if gt is None:
                    stats[name]["auth"].append(float(flagged.mean()))
                    continue
                m = pixel_metrics(prob, gt, 0.5)
                stats[name]["f1"].append(m["f1"])
                stats[name]["iou"].append(m["iou"])
                if m["auc"] is not None:
                    stats[name]["auc"].append(m["auc"])
                stats[name]["area"].append(flagged.sum() / max(gt.sum(), 1))
    n_pos, n_neg = len(stats["fused (no refinement)"]["f1"]), len(stats["fused (no refinement)"]["auth"])
    print(f"validation split of {args.manifest}: {n_pos} manipulated, {n_neg} authentic images; "
          f"checkpoint {args.checkpoint} (epoch {meta.get('epoch')}, val AUC {meta.get('val_auc')}); "
          f"fusion {args.fusion}, SLIC; {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    print("| variant | F1@0.5 | IoU | pixel AUC | flagged / true area | flagged on authentic |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, s in stats.items():
        print(f"| {name} | {np.mean(s['f1']):.3f} | {np.mean(s['iou']):.3f} | {np.mean(s['auc']):.3f} | "
              f"{np.mean(s['area']):.2f} | {100 * np.mean(s['auth']):.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
