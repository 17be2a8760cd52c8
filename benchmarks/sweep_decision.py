"""Choose the calibrated decision rule's settings (refine.decision) on a validation split or the unseen set.

For every image it needs the fused map, the image-level probability and the SLIC partition:
computed here from a checkpoint for a manifest split (``--manifest M --split val``, cached in
``--cache``), or read from a ``bench_unseen.py`` run folder (``--unseen-run DIR``: its
per-image stage files). Then it applies the rule for each setting of a small grid, on the
fused map or on the SLIC-refined map (the config's refine section), and prints, per setting,
the pixel F1 at 0.5 and the flagged/true area on manipulated images, the mean flagged area
and the share of authentic images with more than 1 % flagged. Never run it on a test split.

    python benchmarks/sweep_decision.py --manifest data/prepared/synthetic/manifest.csv --split val --checkpoint CKPT
    python benchmarks/sweep_decision.py --unseen-run ~/.cache/weakloc/unseen/runs/KEY
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
from pathlib import Path

import numpy as np

from weakloc.config import load_config
from weakloc.decision import DecisionSettings, calibrated_map, with_rule
from weakloc.errors import WeaklocError
from weakloc.io import read_mask, read_rgb
from weakloc.metrics import ScoreHistogram, summarize_localization
from weakloc.refinement import refine_with_config

GRID = {"unit": ["region", "pixel"], "fraction_b": [3.0, 10.0, 30.0], "min_contrast": [0.05, 0.1, 0.2, 0.3],
        "mask_min_score": [0.0, 0.3, 0.5], "max_fraction": [0.3]}


def _records_from_manifest(args, config) -> list[dict]:
    import torch

    from weakloc.cams import block_maps
    from weakloc.fusion import fuse_with_config
    from weakloc.manifest import read_manifest
    from weakloc.segmenters import build_segmenter
    from weakloc.wcbnet import load_checkpoint

    if args.split == "test":
        raise WeaklocError("choose settings on the validation split, never on the test split")
    torch.set_num_threads(args.threads)
    df = read_manifest(args.manifest, split=args.split)
    sha = hashlib.sha256(Path(args.checkpoint).read_bytes()).hexdigest()
    key = hashlib.sha256(json.dumps({"ckpt": sha, "manifest": str(Path(args.manifest).resolve()), "split": args.split,
                                     "cams": config["cams"], "fusion": config["fusion"]["methods"][0],
                                     "slic": config["segmenters"]["slic"]}, sort_keys=True).encode()).hexdigest()[:12]
    cache = Path(args.cache).expanduser() / "sweep" / key
    cache.mkdir(parents=True, exist_ok=True)
    model = meta = seg = None
    out = []
    for n, row in enumerate(df.itertuples(index=False)):
        f = cache / f"{row.id}.npz"
        if not f.is_file():
            if model is None:
                model, meta = load_checkpoint(args.checkpoint)
                seg = build_segmenter("slic", config["segmenters"]["slic"])
            rgb = read_rgb(row.image)
            bm = block_maps(model, meta, rgb, config["cams"]["method"], config["cams"]["max_side"])
            coarse = fuse_with_config(bm.maps, config["fusion"]["methods"][0], bm.weights, config)
            np.savez_compressed(f, coarse=coarse.astype(np.float32), prob=np.float32(bm.prob), slic=seg(rgb))
        d = np.load(f)
        gt = read_mask(row.mask) if row.mask else np.zeros(d["coarse"].shape, bool)
        out.append({"coarse": d["coarse"], "prob": float(d["prob"]), "slic": d["slic"], "gt": gt,
                    "label": int(row.label)})
        print(f"\rmaps: {n + 1}/{len(df)}", end="", file=sys.stderr)
    print(file=sys.stderr)
    return out


def _records_from_unseen(run_dir: Path) -> list[dict]:
    set_file = run_dir / "set.txt"
    if not set_file.is_file():
        raise WeaklocError(f"{run_dir}: not a bench_unseen run folder (no set.txt)")
    set_dir = Path(set_file.read_text().strip())
    rows = json.loads((set_dir / "index.json").read_text())
    out = []
    for r in rows:
        own, shared = run_dir / f"{r['id']}.npz", set_dir / "stages" / f"{r['id']}.npz"
        if not own.is_file() or not shared.is_file():
            raise WeaklocError(f"{own}: stage files missing (run bench_unseen.py to the end first)")
        d, e = np.load(own), np.load(shared)
        slic = [k for k in e.files if k.startswith("part_slic_")]
        if not slic:
            raise WeaklocError(f"{shared}: no slic partition (run bench_unseen with a slic variant)")
        out.append({"coarse": d["coarse"], "prob": float(d["prob"]), "slic": e[slic[0]], "gt": read_mask(r["mask"]),
                    "label": int(r["label"])})
    print(f"{len(out)} images from {set_dir}", file=sys.stderr)
    return out


def _score(maps, records) -> dict:
    hists, ratios, auth = [], [], []
    for p, r in zip(maps, records, strict=False):
        q = np.rint(np.clip(p, 0, 1) * 255) / 255
        flagged = q > 0.5
        if r["label"]:
            hists.append(ScoreHistogram.from_maps(q, r["gt"]))
            ratios.append(flagged.sum() / max(r["gt"].sum(), 1))
        else:
            auth.append(flagged.mean())
    s = summarize_localization(hists)
    auth = np.asarray(auth)
    return {"f1": s["f1"], "iou": s["iou"], "area": float(np.mean(ratios)) if ratios else float("nan"),
            "auth": float(auth.mean()) if auth.size else float("nan"),
            "auth1": float(np.mean(auth > 0.01)) if auth.size else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest")
    ap.add_argument("--split", default="val")
    ap.add_argument("--checkpoint")
    ap.add_argument("--unseen-run")
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--cache", default="~/.cache/weakloc")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--json", help="also write every row as JSON here")
    args = ap.parse_args()
    config = load_config(args.config)
    try:
        if args.unseen_run:
            records = _records_from_unseen(Path(args.unseen_run).expanduser())
        elif args.manifest and args.checkpoint:
            records = _records_from_manifest(args, config)
        else:
            raise WeaklocError("give --unseen-run DIR, or --manifest M --checkpoint CKPT")
    except WeaklocError as exc:
        sys.exit(f"sweep_decision: {exc}")
    threshold = with_rule(config["refine"], "threshold")  # the baseline row is P > 0.5 whatever config.yaml says
    refined = [refine_with_config(r["coarse"], [r["slic"]], threshold, image_prob=r["prob"]) for r in records]
    sources = {"fused": [r["coarse"] for r in records], "slic-refined": refined}
    rows = []
    for name, maps in sources.items():
        rows.append({"source": name, "rule": "threshold 0.5", **_score(maps, records)})
    keys = list(GRID)
    for name, maps in sources.items():
        for values in itertools.product(*(GRID[k] for k in keys)):
            s = DecisionSettings.from_section({"rule": "calibrated", **dict(zip(keys, values, strict=False))})
            out = [calibrated_map(m, r["slic"], r["prob"], s) for m, r in zip(maps, records, strict=False)]
            rows.append({"source": name, "rule": " ".join(f"{k}={v}" for k, v in zip(keys, values, strict=False)),
                         **_score(out, records)})
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    fmt = ("{source:13s} {rule:72s} F1 {f1:.3f}  IoU {iou:.3f}  area {area:5.2f}x  "
           "authentic {auth:6.2%} (>1%: {auth1:4.0%})")
    print("baseline rule (threshold at 0.5):")
    for r in rows[:2]:
        print("  " + fmt.format(**r))
    print(f"top {args.top} by F1 among settings with <= 1 % flagged on authentic images:")
    ok = sorted((r for r in rows[2:] if r["auth"] <= 0.01), key=lambda r: -r["f1"])
    for r in ok[:args.top]:
        print("  " + fmt.format(**r))
    print(f"top {args.top} by F1 overall:")
    for r in sorted(rows[2:], key=lambda r: -r["f1"])[:args.top]:
        print("  " + fmt.format(**r))


if __name__ == "__main__":
    main()
